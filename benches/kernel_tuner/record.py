"""Record brute-force Kernel Tuner caches of the CPU kernels in kernels.py (gcc, Kernel Tuner's
C backend). Minutes per kernel; run it niced: `nice -n 10 .venv/bin/python benches/kernel_tuner/record.py`."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kernels import CACHES, KERNELS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", default=list(KERNELS), help="kernels to record (default: all)")
    args = parser.parse_args()
    import kernel_tuner

    CACHES.mkdir(exist_ok=True)
    os.chdir(tempfile.mkdtemp(prefix="kt-record-"))  # the C backend writes its temporary sources to the working directory
    for name in args.names:
        kernel = KERNELS[name]
        start = time.perf_counter()
        results, _ = kernel_tuner.tune_kernel(**kernel.tune_kernel_args(), cache=str(kernel.cache), quiet=True)
        print(f"{name}: {len(results)} configurations in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
