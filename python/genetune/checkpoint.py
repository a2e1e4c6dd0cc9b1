"""A search's run folder: an atomic checkpoint per generation plus an append-only evaluation log.

``checkpoint.json`` is replaced atomically (write, fsync, rename, fsync of the folder) after
every generation and holds the engine state (RNG included), the configuration, hashes of the
space and configuration, versions and the pickled objective; the one it replaces is kept as
``checkpoint.previous.json`` (read when ``checkpoint.json`` is damaged). ``evaluations.jsonl``
gets one line per finished evaluation, flushed as it arrives and fsynced at every generation
boundary, so a killed search loses no measured result: on resume, finished candidates are read
back, only unfinished ones are evaluated again. A line cut by a crash is removed (with a
warning) before anything is appended; a damaged line elsewhere is skipped with a warning naming
the file and line.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO, cast

from genetune._core import __version__
from genetune.rows import Row

__all__ = [
    "CHECKPOINT_FILE",
    "EVALUATIONS_FILE",
    "PREVIOUS_CHECKPOINT_FILE",
    "EvaluationLog",
    "digest",
    "find_run_folder",
    "read_checkpoint",
    "write_checkpoint",
]

CHECKPOINT_FILE = "checkpoint.json"
PREVIOUS_CHECKPOINT_FILE = "checkpoint.previous.json"
EVALUATIONS_FILE = "evaluations.jsonl"
FORMAT = 1


def digest(value: Any) -> str:
    """SHA-256 of a value's canonical JSON."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def versions() -> dict[str, str]:
    return {"genetune": __version__, "python": sys.version.split()[0], "platform": platform.platform()}


def encode_bytes(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode_bytes(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


def _sync_folder(folder: Path) -> None:
    """Makes a rename in ``folder`` durable (a power loss then keeps the new name)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_checkpoint(folder: Path, payload: dict[str, Any]) -> Path:
    """Replaces the folder's checkpoint atomically; the replaced one becomes
    ``checkpoint.previous.json`` (a hard link first, so ``checkpoint.json`` never goes missing)
    unless it is damaged (a resume fell back to the previous one, which is kept)."""
    target = folder / CHECKPOINT_FILE
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump({"format": FORMAT, **payload}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        if target.exists() and _loads(target):
            link = folder / f".{PREVIOUS_CHECKPOINT_FILE}.tmp"
            link.unlink(missing_ok=True)
            os.link(target, link)
            os.replace(link, folder / PREVIOUS_CHECKPOINT_FILE)
        os.replace(tmp, target)
        _sync_folder(folder)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def find_run_folder(path: str | os.PathLike[str]) -> Path:
    """The run folder from itself or its checkpoint file."""
    p = Path(path).expanduser()
    folder = p.parent if p.is_file() else p
    if not (folder / CHECKPOINT_FILE).is_file():
        raise FileNotFoundError(f"no {CHECKPOINT_FILE} in {folder}: not a genetune run folder")
    return folder


def _loads(path: Path) -> bool:
    try:
        _load_checkpoint(path)
    except ValueError:
        return False
    return True


def _load_checkpoint(path: Path) -> dict[str, Any]:
    """One checkpoint file, or ValueError naming it."""
    try:
        payload = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        size = path.stat().st_size
        raise ValueError(f"{path}: damaged checkpoint ({size} bytes, cut short or overwritten: {err})") from None
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: damaged checkpoint (a JSON {type(payload).__name__}, not an object)")
    if payload.get("format") != FORMAT:
        raise ValueError(f"{path}: unsupported checkpoint format {payload.get('format')!r}")
    return payload


def read_checkpoint(folder: Path) -> dict[str, Any]:
    """The folder's checkpoint; when ``checkpoint.json`` is damaged, the one it replaced (with a
    warning: the evaluation log gives back the generation in between). Errors name the file."""
    try:
        return _load_checkpoint(folder / CHECKPOINT_FILE)
    except ValueError as err:
        previous = folder / PREVIOUS_CHECKPOINT_FILE
        if not previous.is_file():
            raise
        try:
            payload = _load_checkpoint(previous)
        except ValueError as second:
            raise ValueError(f"{err}; and {second}") from None
        warnings.warn(f"{err}; resuming from {previous} (generation {payload.get('generation')})", UserWarning, stacklevel=2)
        return payload


_ROW_KEYS = ("id", "status", "generation")


class EvaluationLog:
    """Append-only JSON Lines of finished evaluations (NaN written as ``NaN``)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / EVALUATIONS_FILE
        self._handle: TextIO | None = None

    def append(self, row: Mapping[str, Any]) -> None:
        if self._handle is None:
            self.repair()
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the search
        self._handle.write(json.dumps(row) + "\n")
        self._handle.flush()

    def repair(self) -> None:
        """Truncates a last line cut short by a crash (no newline), with a warning, so the next
        row starts on a line of its own."""
        try:
            with open(self.path, "rb+") as handle:
                size = handle.seek(0, os.SEEK_END)
                if size == 0:
                    return
                handle.seek(size - 1)
                if handle.read(1) == b"\n":
                    return
                start = max(0, size - (1 << 16))
                while True:  # find the last newline, reading backwards in blocks
                    handle.seek(start)
                    block = handle.read(size - start)
                    cut = block.rfind(b"\n")
                    if cut >= 0:
                        keep = start + cut + 1
                        break
                    if start == 0:
                        keep = 0
                        break
                    start = max(0, start - (1 << 16))
                handle.seek(keep)
                dropped = handle.read(200)
                handle.truncate(keep)
                handle.flush()
                os.fsync(handle.fileno())
        except FileNotFoundError:
            return
        warnings.warn(
            f"{self.path}: removed a last line cut short by a crash ({size - keep} bytes: {dropped[:80]!r}); "
            "that evaluation runs again",
            UserWarning,
            stacklevel=3,
        )

    def sync(self) -> None:
        """Makes what was appended durable (called at every generation boundary)."""
        if self._handle is not None:
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def rows(self) -> Iterator[Row]:
        """Every complete row. A last line cut short by a crash is left out (:meth:`repair`
        removes it before the next append); a damaged line elsewhere is skipped with a warning
        naming the file and the line (never taken for the end of the data)."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.endswith(b"\n"):
                    return
                if not line.strip():
                    continue
                try:
                    row = json.loads(line.decode("utf-8"))
                    if not isinstance(row, dict) or any(k not in row for k in _ROW_KEYS):
                        raise ValueError(f"not an evaluation row (needs {', '.join(_ROW_KEYS)})")
                except ValueError as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                    warnings.warn(
                        f"{self.path}, line {number}: skipped a damaged line ({type(err).__name__}: {err}; {line[:80]!r})",
                        UserWarning,
                        stacklevel=2,
                    )
                    continue
                yield cast(Row, row)
