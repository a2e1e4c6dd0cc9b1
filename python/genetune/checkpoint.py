"""A search's run folder: an atomic checkpoint per generation plus an append-only evaluation log.

``checkpoint.json`` is replaced atomically (write, fsync, rename) after every generation and
holds the engine state (RNG included), the configuration, hashes of the space and configuration,
versions and the pickled objective. ``evaluations.jsonl`` gets one line per finished evaluation,
flushed as it arrives, so a killed search loses no measured result: on resume, finished
candidates are read back, only unfinished ones are evaluated again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO, cast

from genetune._core import __version__
from genetune.rows import Row

__all__ = ["CHECKPOINT_FILE", "EVALUATIONS_FILE", "EvaluationLog", "digest", "find_run_folder", "read_checkpoint", "write_checkpoint"]

CHECKPOINT_FILE = "checkpoint.json"
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


def write_checkpoint(folder: Path, payload: dict[str, Any]) -> Path:
    """Replaces the folder's checkpoint atomically."""
    target = folder / CHECKPOINT_FILE
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump({"format": FORMAT, **payload}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
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


def read_checkpoint(folder: Path) -> dict[str, Any]:
    with open(folder / CHECKPOINT_FILE) as handle:
        payload: dict[str, Any] = json.load(handle)
    if payload.get("format") != FORMAT:
        raise ValueError(f"{folder / CHECKPOINT_FILE}: unsupported checkpoint format {payload.get('format')!r}")
    return payload


class EvaluationLog:
    """Append-only JSON Lines of finished evaluations (NaN written as ``NaN``)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / EVALUATIONS_FILE
        self._handle: TextIO | None = None

    def append(self, row: Mapping[str, Any]) -> None:
        if self._handle is None:
            self._handle = open(self.path, "a")  # noqa: SIM115 - kept open for the search
        self._handle.write(json.dumps(row) + "\n")
        self._handle.flush()

    def sync(self) -> None:
        """Makes what was appended durable (called at every generation boundary)."""
        if self._handle is not None:
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def rows(self) -> Iterator[Row]:
        """Every complete row; a line cut short by a kill is skipped."""
        if not self.path.exists():
            return
        with open(self.path) as handle:
            for line in handle:
                if not line.endswith("\n"):
                    break
                try:
                    yield cast(Row, json.loads(line))
                except json.JSONDecodeError:
                    break
