"""The job's objective: compile the bundled C kernels with a candidate's flags, check their
results against the -O2 build, and time them."""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import statistics
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from genetune.exceptions import InvalidCandidate
from genetune.jobs.gcc.flags import BASELINE_FLAGS, flags_from_params
from genetune.jobs.toolchain import run_process
from genetune.metrics import log_metrics

__all__ = ["BASE_CFLAGS", "KERNELS", "KERNEL_DIR", "GccBuild", "GccObjective", "Size"]

#: Where the kernels' C sources are (``<name>.c``).
KERNEL_DIR: Path = Path(__file__).with_name("kernels")
#: The bundled kernels: a blocked double matmul, a 2-D float heat stencil with a float reduction,
#: and an integer radix sort + hash table.
KERNELS: tuple[str, ...] = ("matmul", "stencil", "hashsort")
#: Always passed before the candidate's flags. ISO C because gcc's GNU dialects default to
#: -ffp-contract=fast, which fuses a*b+c into FMAs as soon as -march allows them: results would
#: then depend on -march, and every FMA-capable -march would be rejected as a wrong result.
BASE_CFLAGS: tuple[str, ...] = ("-std=c11",)

Size = Literal["default", "small"]

_CHECKSUM = re.compile(r"^checksum (\S+)$", re.MULTILINE)
_TIME = re.compile(r"^time (\S+)$", re.MULTILINE)
# gcc in English with ASCII quotes, so "compile failed:" reasons read the same everywhere.
_GCC_LOCALE = {"LC_ALL": "C"}

# -O2 checksums per (cc, kernel, size), computed once per process (workers are long-lived).
_REFERENCES: dict[tuple[str, str, str], str] = {}
_REFERENCES_LOCK = threading.Lock()


@dataclass(frozen=True)
class _Built:
    exe: Path
    compile_s: float


@dataclass(frozen=True)
class GccBuild:
    """A candidate compiled by :meth:`GccObjective.build`: its executables in their own
    temporary directory (removed by :meth:`GccObjective.release`). Plain paths: it pickles, so a
    process pool may measure it in another process of the same machine."""

    flags: tuple[str, ...]
    folder: str
    exes: dict[str, str]
    compile_s: dict[str, float]


def _first_error(stderr: str, scratch: Path) -> str:
    """The first meaningful line of gcc's stderr (an error rather than a warning or context)."""
    lines = [line.replace(f"{scratch}{os.sep}", "").strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line]
    for marker in ("error:", "fatal", "Error"):
        for line in lines:
            if marker in line:
                return line[:300]
    return lines[0][:300] if lines else "no message"


def _crash_reason(kernel: str, returncode: int, stderr: str) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (illegal instruction: is -march beyond this CPU?)" if -returncode == signal.SIGILL else ""
        return f"crashed: {kernel} killed by {name}{hint}"
    tail = stderr.strip().splitlines()[-1:] if stderr.strip() else []
    return f"crashed: {kernel} exited with status {returncode}" + (f": {tail[0][:200]}" if tail else "")


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__} {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number of seconds, got {value!r}")
    return float(value)


def _check_kernels(kernels: Sequence[str] | None) -> tuple[str, ...]:
    if kernels is None:
        return KERNELS
    if isinstance(kernels, str) or not isinstance(kernels, Sequence):
        raise TypeError(f"kernels must be a sequence of kernel names such as ['matmul'], got {kernels!r}")
    names = tuple(kernels)
    if not names:
        raise ValueError(f"kernels must name at least one kernel of {list(KERNELS)}")
    for name in names:
        if name not in KERNELS:
            raise ValueError(f"kernels: unknown kernel {name!r}; choose from {list(KERNELS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"kernels must not repeat a kernel, got {list(names)}")
    return names


class GccObjective:
    """Compiles each kernel with the candidate's flags, runs it ``warmup + repeats`` times and
    returns the sum over kernels of the median kernel-reported time (seconds; lower is better).

    It is a two-phase objective: a search calls :meth:`build` (compile; on every worker slot at
    once) and then :meth:`measure` (run and time; one measurement at a time per host), so a
    timing is never disturbed by a neighbour's benchmark; calling it does both.

    A kernel whose checksum differs from its -O2 build's, that fails to compile, crashes or runs
    past a timeout makes the candidate INVALID (:class:`genetune.InvalidCandidate` with a reason
    starting ``wrong result:``, ``compile failed:``, ``crashed:`` or ``timeout:``). Each call works
    in its own temporary directory, so concurrent evaluations never share files. Picklable.
    """

    def __init__(
        self,
        kernels: Sequence[str] | None = None,
        size: Size = "default",
        repeats: int = 5,
        warmup: int = 1,
        compile_timeout: float = 60.0,
        run_timeout: float = 30.0,
        cc: str = "gcc",
        work_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.kernels: tuple[str, ...] = _check_kernels(kernels)
        if size not in get_args(Size):
            raise ValueError(f"size must be one of {list(get_args(Size))}, got {size!r}")
        self.size: Size = size
        self.repeats = _check_int("repeats", repeats, 1)
        self.warmup = _check_int("warmup", warmup, 0)
        self.compile_timeout = _check_seconds("compile_timeout", compile_timeout)
        self.run_timeout = _check_seconds("run_timeout", run_timeout)
        if not isinstance(cc, str) or not cc.strip():
            raise ValueError(f"cc must be the name or path of a C compiler, got {cc!r}")
        self.cc = cc
        if work_dir is not None and not isinstance(work_dir, str | os.PathLike):
            raise TypeError(f"work_dir must be a directory path or None, got {type(work_dir).__name__} {work_dir!r}")
        self.work_dir: str | None = None if work_dir is None else os.fspath(work_dir)

    def _settings(self) -> tuple[Any, ...]:
        timeouts = (self.compile_timeout, self.run_timeout)
        return (self.kernels, self.size, self.repeats, self.warmup, timeouts, self.cc, self.work_dir)

    def __repr__(self) -> str:
        return (
            f"GccObjective(kernels={list(self.kernels)!r}, size={self.size!r}, repeats={self.repeats}, warmup={self.warmup}, "
            f"compile_timeout={self.compile_timeout}, run_timeout={self.run_timeout}, cc={self.cc!r}, work_dir={self.work_dir!r})"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GccObjective) and self._settings() == other._settings()

    def __hash__(self) -> int:
        return hash(self._settings())

    # ----- the two phases ------------------------------------------------------------------------

    def build(self, params: Mapping[str, Any]) -> GccBuild:
        """Compiles every kernel with the candidate's flags into a new temporary directory
        (and, once per process, the -O2 references the checksums are checked against)."""
        flags = flags_from_params(params)
        self._reference_checksums()  # compiled here, not while measuring
        if self.work_dir is not None:
            Path(self.work_dir).mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="genetune-gcc-", dir=self.work_dir))
        try:
            built = self._build(flags, folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        compile_s = {kernel: b.compile_s for kernel, b in built.items()}
        log_metrics({"compile_s": compile_s})
        return GccBuild(tuple(flags), str(folder), {kernel: str(b.exe) for kernel, b in built.items()}, compile_s)

    def measure(self, built: GccBuild) -> float:
        """Runs each built kernel ``warmup + repeats`` times, checking every checksum; the sum
        over kernels of the median time."""
        expected = self._reference_checksums()
        medians = {
            kernel: statistics.median(self._timed_runs(kernel, Path(exe), expected[kernel], self.warmup, self.repeats))
            for kernel, exe in built.exes.items()
        }
        log_metrics({"time_s": medians})
        return math.fsum(medians.values())

    def release(self, built: GccBuild) -> None:
        """Removes the candidate's executables."""
        shutil.rmtree(built.folder, ignore_errors=True)

    def __call__(self, params: Mapping[str, Any]) -> float:
        flags = flags_from_params(params)
        expected = self._reference_checksums()
        with self._scratch() as scratch:
            built = self._build(flags, scratch)
            log_metrics({"compile_s": {kernel: b.compile_s for kernel, b in built.items()}})
            medians = {
                kernel: statistics.median(self._timed_runs(kernel, b.exe, expected[kernel], self.warmup, self.repeats))
                for kernel, b in built.items()
            }
        log_metrics({"time_s": medians})
        return math.fsum(medians.values())

    # ----- the steps, shared with stats.measure_speedups -------------------------------------------

    @contextmanager
    def _scratch(self) -> Iterator[Path]:
        """A private temporary directory, removed afterwards."""
        if self.work_dir is not None:
            Path(self.work_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="genetune-gcc-", dir=self.work_dir, ignore_cleanup_errors=True) as tmp:
            yield Path(tmp)

    def _compile(self, kernel: str, flags: Sequence[str], out_dir: Path) -> _Built:
        out_dir.mkdir(parents=True, exist_ok=True)
        exe = out_dir / kernel
        argv = [self.cc, *BASE_CFLAGS, *flags, "-o", str(exe), str(KERNEL_DIR / f"{kernel}.c"), "-lm"]
        try:
            done = run_process(argv, self.compile_timeout, out_dir, _GCC_LOCALE)
        except OSError as err:  # no compiler at all: the machine's fault, not the candidate's
            raise RuntimeError(f"cc: cannot run the C compiler {self.cc!r}: {err}") from err
        if done.returncode is None:
            raise InvalidCandidate(f"timeout: compiling {kernel} took longer than compile_timeout={self.compile_timeout:g} s")
        if done.returncode != 0 or not exe.is_file():
            raise InvalidCandidate(f"compile failed: {kernel}: {_first_error(done.stderr, out_dir)}")
        return _Built(exe, done.seconds)

    def _build(self, flags: Sequence[str], out_dir: Path) -> dict[str, _Built]:
        return {kernel: self._compile(kernel, flags, out_dir) for kernel in self.kernels}

    def _run_once(self, kernel: str, exe: Path) -> tuple[str, float]:
        """One run: (checksum, kernel-reported seconds)."""
        done = run_process([str(exe), self.size], self.run_timeout, exe.parent)
        if done.returncode is None:
            raise InvalidCandidate(f"timeout: {kernel} ran longer than run_timeout={self.run_timeout:g} s")
        if done.returncode != 0:
            raise InvalidCandidate(_crash_reason(kernel, done.returncode, done.stderr))
        checksum, seconds = _CHECKSUM.findall(done.stdout), _TIME.findall(done.stdout)
        try:
            elapsed = float(seconds[0]) if len(seconds) == 1 else math.nan
        except ValueError:
            elapsed = math.nan
        if len(checksum) != 1 or not (math.isfinite(elapsed) and elapsed >= 0):
            raise InvalidCandidate(
                f"wrong result: {kernel} did not print one 'checksum' and one 'time' line: {done.stdout[:200]!r}"
            )
        return checksum[0], elapsed

    def _timed_runs(self, kernel: str, exe: Path, expected: str, warmup: int, repeats: int) -> list[float]:
        """Runs ``warmup + repeats`` times, checking every checksum; returns the timed runs."""
        times = []
        for _ in range(warmup + repeats):
            checksum, elapsed = self._run_once(kernel, exe)
            if checksum != expected:
                raise InvalidCandidate(f"wrong result: {kernel} checksum {checksum} != {expected} (its -O2 build's)")
            times.append(elapsed)
        return times[warmup:]

    def _reference_checksums(self) -> dict[str, str]:
        """Each kernel's checksum when built with -O2 (at this size), cached per process."""
        keys = {kernel: (self.cc, kernel, self.size) for kernel in self.kernels}
        if any(key not in _REFERENCES for key in keys.values()):
            with _REFERENCES_LOCK, self._scratch() as scratch:  # threads of one worker compute it once
                for kernel, key in keys.items():
                    if key in _REFERENCES:
                        continue
                    try:
                        built = self._compile(kernel, BASELINE_FLAGS, scratch / "reference")
                        _REFERENCES[key] = self._run_once(kernel, built.exe)[0]
                    except InvalidCandidate as err:
                        raise RuntimeError(
                            f"the -O2 reference build of kernel {kernel!r} failed ({err.reason}); "
                            f"is {self.cc!r} a working C compiler?"
                        ) from None
        return {kernel: _REFERENCES[key] for kernel, key in keys.items()}
