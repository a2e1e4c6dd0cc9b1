"""Tunes nvcc/ptxas flags and the block size of a bundled CUDA kernel (kernel.cu) with genetune,
built on every worker thread and measured one candidate at a time per GPU, on Dask workers that
declare GPU slots (``resources={"GPU": 1}`` per evaluation).

    python examples/cuda_nvcc/tune_nvcc.py [--generations N] [--pool-size P] [--seed S]
        [--dask-address ADDR] [--cache-folder DIR] [--n 2048] [--reps 20] [--arch native] ...

Without ``--dask-address`` it needs a local NVIDIA GPU and nvcc; where either is missing it prints
one line starting ``skipped:`` and exits 0 (so CI and laptops can run it). It then starts a local
Dask cluster with one worker per GPU, each pinned to its GPU with ``CUDA_VISIBLE_DEVICES`` and
offering ``GPU=2`` with 2 threads (two candidates compile at once; the GPU's measuring slot lets
one run). With ``--dask-address`` it uses your cluster (``dask scheduler`` plus one
``CUDA_VISIBLE_DEVICES=i dask worker ADDR --resources GPU=2 --nthreads 2`` per GPU): the workers
compile and run, so they need nvcc and a GPU, this machine needs neither.

Each evaluation compiles kernel.cu with the candidate's flags into its own temporary directory
(``build``), then runs it with the candidate's block size (``measure``, alone on its GPU) and
returns the median kernel time (seconds, lower is better). When the search ends, the 3 best are
re-measured 5 times interleaved with the default build, and the best re-measured one is reported. The result must equal the default build's (``nvcc -arch=native``, block size 256)
exactly: kernel.cu's arithmetic is exact (see its header), so any difference is a bug, not
rounding. Failures make the candidate INVALID with a reason starting ``compile failed:``,
``launch failed:`` (e.g. 1024 threads with too many registers per thread), ``wrong result:``,
``timeout:`` or ``crashed:``; the search goes on.

The objective needs nothing from this directory on the workers: the kernel source travels inside
it and the module is pickled by value.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import genetune as gt
from genetune.search_spaces import SearchSpace
from genetune.jobs.toolchain import leaves, number_text, run_process

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "KERNEL_PATH",
    "NvccBuild",
    "SPACE_PATH",
    "NvccObjective",
    "block_size_of",
    "confirm_speedup",
    "detect_gpus",
    "load_space",
    "local_gpu_cluster",
    "main",
    "nvcc_argv",
    "nvcc_flags",
    "skip_reason",
]

HERE = Path(__file__).resolve().parent
#: The CUDA program that is compiled and timed.
KERNEL_PATH: Path = HERE / "kernel.cu"
#: The search space (genetune's friendly YAML form).
SPACE_PATH: Path = HERE / "nvcc_space.yaml"
#: The launch parameter's name in the space, and its value when a candidate has none (the baseline).
BLOCK_SIZE_KEY = "block_size"
DEFAULT_BLOCK_SIZE = 256
#: Candidates of one GPU that compile at once (each GPU worker's threads and GPU slots).
BUILDS_PER_GPU = 2
#: The best candidates re-measured when the search ends, and how many rounds.
REMEASURE_TOP, REMEASURE_REPEATS = 3, 5
#: Numeric parameters and the nvcc flag each becomes (``{}``: the value).
VALUED_FLAGS: Mapping[str, str] = MappingProxyType({"maxrregcount": "--maxrregcount={}"})

_CHECKSUM = re.compile(r"^checksum (\S+)$", re.MULTILINE)
_TIME = re.compile(r"^time (\S+)$", re.MULTILINE)
_STAT = re.compile(r"^(gflops|regs|local_bytes) (\S+)$", re.MULTILINE)
_GPU_LINE = re.compile(r"^GPU (\d+):", re.MULTILINE)
# kernel.cu's exit codes: 2 bad arguments, 3 a CUDA error, 4 a failed self-check.
_EXIT_USAGE, _EXIT_CUDA, _EXIT_WRONG = 2, 3, 4
# nvcc and its host compiler in English, so "compile failed:" reasons read the same everywhere.
_COMPILER_ENV = {"LC_ALL": "C"}


# ----- from a candidate to an nvcc command line ---------------------------------------------------------


def nvcc_flags(params: Mapping[str, Any]) -> list[str]:
    """The nvcc arguments a candidate selects, in the space's order: a string is the flag text
    (split like a shell would: ``"-Xptxas -O2"`` is two arguments), a number becomes its
    ``VALUED_FLAGS`` template (``maxrregcount`` -> ``--maxrregcount=N``) or, for a parameter named
    after a flag prefix such as ``"--maxrregcount="``, that prefix and the number. ``block_size``
    is the launch parameter, never a flag; knocked-out parameters are absent and add nothing, so
    the baseline ``{}`` gives ``[]``."""
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping, got {type(params).__name__}")
    flags: list[str] = []
    for key, value in leaves(params):
        if key == BLOCK_SIZE_KEY or value is None:
            continue
        if isinstance(value, bool):
            raise ValueError(f"params[{key!r}] = {value!r}: use a literal flag (present or knocked out) instead of a bool")
        if isinstance(value, str):
            flags.extend(shlex.split(value))
        elif isinstance(value, int | float):
            template = VALUED_FLAGS.get(key)
            if template is not None:
                flags.append(template.format(number_text(value)))
            elif key.startswith("-"):
                flags.append(key + number_text(value))
            else:
                raise ValueError(
                    f"params[{key!r}] = {value!r}: a number needs a flag: name the parameter after the flag prefix "
                    f"(e.g. '--{key}=') or use one of {sorted(VALUED_FLAGS)}"
                )
        else:
            raise TypeError(f"params[{key!r}] = {value!r}: expected a flag string or a number, got {type(value).__name__}")
    return flags


def block_size_of(params: Mapping[str, Any]) -> int:
    """The candidate's threads per block (``DEFAULT_BLOCK_SIZE`` when it has none): a multiple of
    32 in [32, 1024], as kernel.cu requires."""
    value = params.get(BLOCK_SIZE_KEY, DEFAULT_BLOCK_SIZE) if isinstance(params, Mapping) else DEFAULT_BLOCK_SIZE
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not (32 <= value <= 1024 and value % 32 == 0):
        raise ValueError(f"{BLOCK_SIZE_KEY} must be a multiple of 32 in [32, 1024], got {value!r}")
    return value


def nvcc_argv(
    params: Mapping[str, Any],
    source: str | os.PathLike[str],
    exe: str | os.PathLike[str],
    nvcc: str = "nvcc",
    arch: str = "native",
) -> list[str]:
    """The whole nvcc command line that builds ``exe`` from ``source`` for a candidate."""
    return _argv(nvcc, arch, nvcc_flags(params), source, exe)


def _argv(nvcc: str, arch: str, flags: Sequence[str], source: str | os.PathLike[str], exe: str | os.PathLike[str]) -> list[str]:
    return [nvcc, f"-arch={arch}", *flags, "-o", os.fspath(exe), os.fspath(source)]


def load_space(path: str | os.PathLike[str] = SPACE_PATH) -> SearchSpace:
    """The search space of ``nvcc_space.yaml`` (or of another file in the same form), read by
    ``genetune.flows.load_search_space``."""
    from genetune.flows import load_search_space  # flows imports Prefect: only when needed

    return load_search_space(path)


# ----- the objective ----------------------------------------------------------------------------------


def _first_error(stderr: str, scratch: Path) -> str:
    """The first meaningful line of a compiler's stderr (an error rather than a warning)."""
    lines = [line.replace(f"{scratch}{os.sep}", "").strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line]
    for marker in ("error", "fatal", "Error", "ERROR"):
        for line in lines:
            if marker in line:
                return line[:300]
    return lines[0][:300] if lines else "no message"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no message"


def _check_seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def _check_int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an int in [{low}, {high}], got {value!r}")
    return value


@dataclass(frozen=True)
class NvccBuild:
    """A candidate compiled by :meth:`NvccObjective.build` (plain paths: it pickles)."""

    folder: str
    exe: str
    block_size: int


class NvccObjective:
    """Compiles kernel.cu with a candidate's nvcc flags, runs it with the candidate's block size
    and returns the median kernel time in seconds (lower is better).

    Two-phase: a search calls :meth:`build` (nvcc, on every worker thread) and :meth:`measure`
    (the run, one at a time per GPU), so no timing shares its GPU with another candidate's.

    * ``n``, ``reps``: the matrix size and the timed launches (after 2 warm-ups) per run.
    * ``nvcc``, ``arch``: the compiler and its ``-arch=`` (``native``: the GPU of the worker).
    * ``compile_timeout``, ``run_timeout``: past them the compiler or the run is killed and the
      candidate is INVALID (``timeout: ...``).
    * ``rtol``: 0 compares the checksum with the default build's exactly (right for kernel.cu,
      whose arithmetic is exact); a kernel of your own whose results --use_fast_math may change
      needs a relative tolerance instead, e.g. ``1e-5`` for float sums of well-conditioned data.
    * ``work_dir``: where the per-evaluation temporary directories go (default: the system's).

    Each call builds in its own temporary directory, so concurrent evaluations never share files.
    The default build's checksum is measured once per process and GPU. The kernel source travels
    inside the object (``source``), so Dask workers need only nvcc and a GPU. Picklable.
    """

    def __init__(
        self,
        n: int = 2048,
        reps: int = 20,
        nvcc: str = "nvcc",
        arch: str = "native",
        compile_timeout: float = 180.0,
        run_timeout: float = 60.0,
        rtol: float = 0.0,
        work_dir: str | os.PathLike[str] | None = None,
        source: str | None = None,
    ) -> None:
        self.n = _check_int("n", n, 32, 8192)
        self.reps = _check_int("reps", reps, 1, 1000)
        if not isinstance(nvcc, str) or not nvcc.strip():
            raise ValueError(f"nvcc must be the name or path of nvcc, got {nvcc!r}")
        if not isinstance(arch, str) or not re.fullmatch(r"[A-Za-z0-9_.,-]+", arch):
            raise ValueError(f"arch must be an nvcc -arch value such as 'native' or 'sm_90', got {arch!r}")
        self.nvcc = nvcc
        self.arch = arch
        self.compile_timeout = _check_seconds("compile_timeout", compile_timeout)
        self.run_timeout = _check_seconds("run_timeout", run_timeout)
        if isinstance(rtol, bool) or not isinstance(rtol, int | float) or not (math.isfinite(rtol) and rtol >= 0):
            raise ValueError(f"rtol must be a finite number >= 0, got {rtol!r}")
        self.rtol = float(rtol)
        self.work_dir: str | None = None if work_dir is None else os.fspath(work_dir)
        self.source: str = KERNEL_PATH.read_text() if source is None else source
        self._references: dict[tuple[str, ...], str] = {}
        self._lock = threading.Lock()

    # Pickling: the lock cannot travel and the cache belongs to the process it was measured in.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_lock", None)
        state["_references"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"NvccObjective(n={self.n}, reps={self.reps}, nvcc={self.nvcc!r}, arch={self.arch!r}, "
            f"compile_timeout={self.compile_timeout:g}, run_timeout={self.run_timeout:g}, rtol={self.rtol:g})"
        )

    # ----- the two phases: compile anywhere, run alone on the GPU ------------------------------------

    def build(self, params: Mapping[str, Any]) -> NvccBuild:
        """Compiles kernel.cu with the candidate's flags into a new temporary directory (no GPU
        work: many candidates build at once while one is measured)."""
        flags = nvcc_flags(params)
        block_size = block_size_of(params)
        if self.work_dir is not None:
            Path(self.work_dir).mkdir(parents=True, exist_ok=True)
        folder = tempfile.mkdtemp(prefix="genetune-nvcc-", dir=self.work_dir)
        try:
            exe, compile_s = self._compile(flags, folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        gt.log_metrics({"compile_s": compile_s})
        return NvccBuild(folder=folder, exe=str(exe), block_size=block_size)

    def measure(self, built: NvccBuild) -> float:
        """Runs the built kernel (holding this GPU's measuring slot during a search) and checks
        its result against the default build's; the median kernel time in seconds."""
        expected = self.reference_checksum()
        checksum, seconds, stats = self._run(Path(built.exe), built.block_size)
        if not self._same(checksum, expected):
            raise gt.InvalidCandidate(f"wrong result: checksum {checksum} != {expected} (the default build's)")
        gt.log_metrics(stats)
        return seconds

    def release(self, built: NvccBuild) -> None:
        """Removes the candidate's build directory."""
        shutil.rmtree(built.folder, ignore_errors=True)

    def __call__(self, params: Mapping[str, Any]) -> float:
        built = self.build(params)
        try:
            return self.measure(built)
        finally:
            self.release(built)

    def reference_checksum(self) -> str:
        """The default build's checksum (no flags, block size 256), measured once per process and
        GPU. A default build that fails is the machine's problem, not a candidate's: RuntimeError."""
        gpu = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        key = (self.nvcc, self.arch, str(self.n), gpu, hashlib.sha256(self.source.encode()).hexdigest())
        with self._lock:  # the threads of one worker measure it once
            if key not in self._references:
                try:
                    with self._scratch() as scratch:
                        exe, _ = self._compile([], scratch)
                        self._references[key] = self._run(exe, DEFAULT_BLOCK_SIZE)[0]
                except gt.InvalidCandidate as err:
                    raise RuntimeError(
                        f"the default build of kernel.cu (no flags, block size {DEFAULT_BLOCK_SIZE}) failed: {err.reason} "
                        f"(nvcc {self.nvcc!r}, -arch={self.arch}, CUDA_VISIBLE_DEVICES={gpu!r})"
                    ) from None
            return self._references[key]

    # ----- the steps ---------------------------------------------------------------------------------

    def _scratch(self) -> tempfile.TemporaryDirectory[str]:
        if self.work_dir is not None:
            Path(self.work_dir).mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryDirectory(prefix="genetune-nvcc-", dir=self.work_dir, ignore_cleanup_errors=True)

    def _compile(self, flags: Sequence[str], scratch: str) -> tuple[Path, float]:
        folder = Path(scratch)
        source, exe = folder / "kernel.cu", folder / "kernel"
        source.write_text(self.source)
        argv = _argv(self.nvcc, self.arch, flags, source, exe)
        try:
            code, _, err, seconds = run_process(argv, self.compile_timeout, folder, _COMPILER_ENV)
        except OSError as error:  # no nvcc at all: the machine's fault, not the candidate's
            raise RuntimeError(f"cannot run nvcc {self.nvcc!r}: {error}") from error
        if code is None:
            raise gt.InvalidCandidate(f"timeout: nvcc took longer than compile_timeout={self.compile_timeout:g} s")
        if code != 0 or not exe.is_file():
            raise gt.InvalidCandidate(f"compile failed: {_first_error(err, folder)}")
        return exe, seconds

    def _run(self, exe: Path, block_size: int) -> tuple[str, float, dict[str, float]]:
        """One run: (checksum, median kernel seconds, the other numbers it printed)."""
        argv = [str(exe), str(block_size), str(self.n), str(self.reps)]
        code, out, err, _ = run_process(argv, self.run_timeout, exe.parent)
        if code is None:
            raise gt.InvalidCandidate(f"timeout: the kernel ran longer than run_timeout={self.run_timeout:g} s")
        if code in (_EXIT_USAGE, _EXIT_CUDA):
            raise gt.InvalidCandidate(f"launch failed: {_last_line(err)}")
        if code == _EXIT_WRONG:
            raise gt.InvalidCandidate(f"wrong result: {_last_line(err).removeprefix('wrong result: ')}")
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            raise gt.InvalidCandidate(f"crashed: the kernel was killed by {name}")
        if code != 0:
            raise gt.InvalidCandidate(f"crashed: the kernel exited with status {code}: {_last_line(err)}")
        checksums, times = _CHECKSUM.findall(out), _TIME.findall(out)
        try:
            seconds = float(times[0]) if len(times) == 1 else math.nan
        except ValueError:
            seconds = math.nan
        if len(checksums) != 1 or not (math.isfinite(seconds) and seconds > 0):
            raise gt.InvalidCandidate(f"wrong result: the kernel did not print one 'checksum' and one 'time' line: {out[:200]!r}")
        stats: dict[str, float] = {}
        for name, value in _STAT.findall(out):
            try:
                stats[name] = float(value)
            except ValueError:
                pass
        return checksums[0], seconds, stats

    def _same(self, checksum: str, expected: str) -> bool:
        if self.rtol == 0:
            return checksum == expected
        try:
            return math.isclose(float(checksum), float(expected), rel_tol=self.rtol)
        except ValueError:
            return False


# ----- where it runs ----------------------------------------------------------------------------------


def detect_gpus(nvidia_smi: str = "nvidia-smi") -> list[str] | None:
    """The indices of the GPUs ``nvidia-smi -L`` lists (``[]``: none, or it failed); None when
    there is no nvidia-smi."""
    path = shutil.which(nvidia_smi)
    if path is None:
        return None
    try:
        done = subprocess.run([path, "-L"], capture_output=True, text=True, errors="replace", timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if done.returncode != 0:
        return []
    return _GPU_LINE.findall(done.stdout)


def skip_reason(nvcc: str = "nvcc") -> str | None:
    """Why this machine cannot run the example locally (None: it can)."""
    gpus = detect_gpus()
    if gpus is None:
        return "no NVIDIA GPU (nvidia-smi not found)"
    if not gpus:
        return "no NVIDIA GPU (nvidia-smi lists none)"
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None and not _visible_devices():
        return "no NVIDIA GPU (CUDA_VISIBLE_DEVICES hides them all)"
    if shutil.which(nvcc) is None:
        return "nvcc not found" if nvcc == "nvcc" else f"nvcc not found ({nvcc!r})"
    return None


def _visible_devices() -> list[str]:
    """The entries of CUDA_VISIBLE_DEVICES, up to the first invalid one (as CUDA reads it)."""
    entries = []
    for entry in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(","):
        entry = entry.strip()
        if not entry or entry.startswith("-"):
            break
        entries.append(entry)
    return entries


def local_gpus() -> list[str]:
    """The GPUs to put one worker on each: CUDA_VISIBLE_DEVICES's entries when it is set, else
    every GPU ``nvidia-smi -L`` lists."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return _visible_devices()
    return detect_gpus() or []


def local_gpu_cluster(gpus: Sequence[str], env: Mapping[str, str] | None = None, builds_per_gpu: int = BUILDS_PER_GPU) -> Client:
    """A local Dask cluster with one worker process per GPU, pinned to it with
    ``CUDA_VISIBLE_DEVICES`` (plus ``env``), with ``builds_per_gpu`` threads and offering
    ``GPU=builds_per_gpu``: with ``resources={"GPU": 1}`` that many candidates of a GPU build at
    once while its measuring slot lets one of them run on the GPU. Close the returned Client and
    its ``.cluster``. (``distributed.LocalCluster`` gives every worker the same environment, so all
    of them would use the first GPU; dask-cuda's LocalCUDACluster does what this does.)"""
    from distributed import Client, Nanny, Scheduler, SpecCluster

    if not gpus:
        raise ValueError("local_gpu_cluster needs at least one GPU")
    if isinstance(builds_per_gpu, bool) or not isinstance(builds_per_gpu, int) or builds_per_gpu < 1:
        raise ValueError(f"builds_per_gpu must be a positive int, got {builds_per_gpu!r}")
    scheduler = {"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}}
    workers = {
        f"gpu{gpu}": {
            "cls": Nanny,
            "options": {
                "host": "127.0.0.1",
                "nthreads": builds_per_gpu,
                "resources": {"GPU": builds_per_gpu},
                "env": {**(env or {}), "CUDA_VISIBLE_DEVICES": str(gpu)},
                "dashboard_address": None,
                "name": f"gpu{gpu}",
                "silence_logs": logging.WARNING,
            },
        }
        for gpu in gpus
    }
    cluster = SpecCluster(  # type: ignore[no-untyped-call]
        workers=workers, scheduler=scheduler, name="genetune-nvcc", silence_logs=logging.WARNING
    )
    client = Client(cluster, set_as_default=False)  # type: ignore[no-untyped-call]
    try:
        client.wait_for_workers(len(workers), timeout=120)
    except BaseException:
        client.close()  # type: ignore[no-untyped-call]
        cluster.close()
        raise
    return client


def _ship_by_value() -> None:
    """Imported as a module (not run as a script), this module would be pickled by reference and
    the Dask workers would have to import it: pickle it by value instead, like ``__main__``."""
    if __name__ != "__main__":
        import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])


# ----- the script --------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Tune nvcc/ptxas flags and the block size of kernel.cu with genetune on Dask.")
    parser.add_argument("--generations", type=int, default=4, help="generations of the search (default 4)")
    parser.add_argument("--pool-size", type=int, default=16, help="candidates per generation (default 16)")
    parser.add_argument("--seed", type=int, default=1, help="the search's seed (default 1)")
    parser.add_argument(
        "--dask-address", default=None, help="scheduler of an existing cluster (workers need nvcc, a GPU and --resources GPU=N --nthreads N)"
    )
    parser.add_argument(
        "--cache-folder", default=None, help="where the run folder goes (default: GENETUNE_CACHE_FOLDER or ~/.cache/genetune)"
    )
    parser.add_argument("--n", type=int, default=2048, help="matrix size (default 2048)")
    parser.add_argument("--reps", type=int, default=20, help="timed launches per run (default 20)")
    parser.add_argument("--nvcc", default="nvcc", help="the nvcc to use (default: nvcc on PATH)")
    parser.add_argument("--arch", default="native", help="nvcc -arch (default native: each worker's GPU)")
    parser.add_argument("--gpus", default=None, help="local GPUs to use, e.g. 0,1 (default: CUDA_VISIBLE_DEVICES or all)")
    parser.add_argument("--compile-timeout", type=float, default=180.0, help="seconds per nvcc run (default 180)")
    parser.add_argument("--run-timeout", type=float, default=60.0, help="seconds per kernel run (default 60)")
    parser.add_argument(
        "--remeasure-top", type=int, default=REMEASURE_TOP, help=f"re-measure this many best candidates at the end (default {REMEASURE_TOP})"
    )
    parser.add_argument(
        "--remeasure-repeats", type=int, default=REMEASURE_REPEATS, help=f"rounds of that re-measurement (default {REMEASURE_REPEATS})"
    )
    parser.add_argument(
        "--confirm-rounds", type=int, default=3, help="re-time the best against the default build, 0 to skip (default 3)"
    )
    return parser


def _describe(params: Mapping[str, Any]) -> str:
    flags = nvcc_flags(params)
    return f"block_size={block_size_of(params)} flags: {shlex.join(flags) if flags else '(none: the default build)'}"


def confirm_speedup(objective: NvccObjective, params: Mapping[str, Any], rounds: int = 3) -> tuple[float, float]:
    """Times the candidate and the default build alternately, ``rounds`` times each, on this GPU:
    (median seconds of the candidate, median seconds of the default build). The search's best is
    the luckiest of many noisy measurements; this re-measurement is not selected for luck."""
    mine, default = [], []
    for _ in range(rounds):
        mine.append(objective(params))
        default.append(objective({}))
    return statistics.median(mine), statistics.median(default)


def _connect(args: argparse.Namespace) -> Client:
    from distributed import Client

    if args.dask_address is None:
        env: dict[str, str] = {}
        if args.gpus:
            gpus = [g.strip() for g in args.gpus.split(",") if g.strip()]
        else:
            gpus = local_gpus()
            if os.environ.get("CUDA_VISIBLE_DEVICES") is None and os.environ.get("CUDA_DEVICE_ORDER") is None:
                env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # indices as nvidia-smi numbers them, not fastest first
        print(f"local Dask cluster: one worker per GPU ({', '.join(gpus)})", flush=True)
        return local_gpu_cluster(gpus, env)
    print(f"Dask cluster at {args.dask_address} (workers offering GPU slots)", flush=True)
    return Client(args.dask_address, set_as_default=False)  # type: ignore[no-untyped-call]


def _close(client: Client, local: bool) -> None:
    cluster = client.cluster if local else None
    client.close()  # type: ignore[no-untyped-call]
    if cluster is not None:
        cluster.close()


def _report(result: gt.SearchResult, folder: Path) -> dict[str, Any] | None:
    """Prints what the search found; returns the best row (None when no candidate was valid)."""
    result.save(folder / "results.csv")
    summary = result.summary()
    table = result.get_results()
    reasons = table.loc[table["status"] == "invalid", "reason"].astype(str).str.split(":").str[0].value_counts()
    why = ", ".join(f"{count} {reason}" for reason, count in reasons.items())
    print(f"evaluated: {summary['evaluations']} candidates, {summary['invalid']} invalid{f' ({why})' if why else ''}")
    if summary["best"] is None:
        print(f"no valid candidate; the reasons are in {folder / 'results.csv'}")
        return None
    best = result.get_best_result()
    assert isinstance(best, dict)
    seconds, normalized = float(best["score_1"]), float(best["norm_score_1"])
    metadata = best.get("metadata") or {}
    print(f"best: {_describe(best['params'])}")
    print(
        f"search: {seconds * 1e3:.3f} ms vs {seconds / normalized * 1e3:.3f} ms for the default build "
        f"(block_size={DEFAULT_BLOCK_SIZE}, no flags) on {metadata.get('placement', '?')}: speedup {1 / normalized:.2f}x"
    )
    if best.get("remeasured_mean") is not None:
        mean, (low, high) = float(best["remeasured_mean"]), best["remeasured_ci95"]
        print(
            f"re-measured {best['remeasured_n']} times (interleaved with the default build): {mean:.3f} of the default build's "
            f"time (95% CI {low:.3f}-{high:.3f}): speedup {1 / mean:.2f}x; this is the reported winner"
        )
    return best


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        config = gt.SearchConfiguration(
            generations=args.generations,
            pool_size=args.pool_size,
            seed=args.seed,
            normalize=True,
            remeasure_top=args.remeasure_top,
            remeasure_repeats=args.remeasure_repeats,
        )
    except ValueError as err:  # pydantic's ValidationError is a ValueError
        parser.error(f"bad search configuration: {err}")
    if args.confirm_rounds < 0:
        parser.error("--confirm-rounds must be >= 0")
    if args.dask_address is None:
        reason = skip_reason(args.nvcc)
        if reason is not None:
            print(f"skipped: {reason}", flush=True)
            return 0
    objective = NvccObjective(
        n=args.n,
        reps=args.reps,
        nvcc=args.nvcc,
        arch=args.arch,
        compile_timeout=args.compile_timeout,
        run_timeout=args.run_timeout,
    )
    space = load_space()
    # Prefect (imported by load_space) logs to the console from the root logger: keep Dask's
    # cluster chatter (INFO) out of this script's output (after importing distributed, whose
    # import sets that level).
    import distributed  # noqa: F401

    logging.getLogger("distributed").setLevel(logging.WARNING)
    _ship_by_value()

    client = _connect(args)
    try:
        worker = gt.DaskWorker(address=client, resources={"GPU": 1})
        search = gt.Search(objective, space, config, worker_type=worker, cache_folder=args.cache_folder)
        try:
            result = search.start()
        except gt.SearchFailedError as err:
            print(f"the search failed: {err}", file=sys.stderr)
            print(f"run folder: {err.run_folder}", file=sys.stderr)
            return 1
        assert search.run_folder is not None
        best = _report(result, search.run_folder)
        if best is None:
            return 1
        if args.confirm_rounds > 0:
            future = client.submit(
                confirm_speedup, objective, best["params"], args.confirm_rounds, resources={"GPU": 1}, pure=False
            )
            try:
                mine, default = future.result()
            except gt.InvalidCandidate as err:
                print(f"re-measuring failed: {err.reason}")
            else:
                print(
                    f"re-measured ({args.confirm_rounds} alternating rounds on one GPU): {mine * 1e3:.3f} ms vs "
                    f"{default * 1e3:.3f} ms: speedup {default / mine:.2f}x"
                )
        print(f"results: {search.run_folder} (results.csv, evaluations.jsonl, checkpoint.json)")
        return 0
    finally:
        _close(client, local=args.dask_address is None)


if __name__ == "__main__":
    sys.exit(main())
