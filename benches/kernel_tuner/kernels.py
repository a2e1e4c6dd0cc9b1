"""The CPU kernels whose Kernel Tuner caches `bench_kernel_tuner.py` replays: real tuning
parameters and restrictions (strings in Kernel Tuner's syntax and a callable), recorded with
Kernel Tuner's C backend by `record.py`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
CACHES = HERE / "caches"
COMPILER_OPTIONS = ["-O3", "-march=native"]


def _acc_fits(tile_x: int, tile_y: int, rows: int, unroll_f: int, filter_outer: int) -> bool:
    """The convolution's accumulator (ROWS x TILE_X floats) stays small (Kernel Tuner passes a
    callable restriction every parameter, in order)."""
    return rows * tile_x <= 2048


@dataclass(frozen=True)
class Kernel:
    name: str
    tune_params: dict[str, list[Any]]
    restrictions: list[Any]  # strings and callables, as Kernel Tuner takes them
    arguments: Callable[[], list[np.ndarray]]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> Path:
        return HERE / f"{self.name}.c"

    @property
    def cache(self) -> Path:
        return CACHES / f"{self.name}.json"

    def tune_kernel_args(self) -> dict[str, Any]:
        """What `kernel_tuner.tune_kernel` takes for this kernel (besides strategy and cache)."""
        return {
            "kernel_name": self.name,
            "kernel_source": str(self.source),
            "problem_size": 1,
            "arguments": self.arguments(),
            "tune_params": self.tune_params,
            "restrictions": self.restrictions,
            "lang": "C",
            "compiler_options": COMPILER_OPTIONS,
            "iterations": 5,
        }


def _rand(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).random(shape, dtype=np.float32)


KERNELS: dict[str, Kernel] = {
    k.name: k
    for k in (
        Kernel(
            "matmul",
            {
                "TILE_I": [4, 8, 16, 32, 64],
                "TILE_J": [16, 32, 64, 96, 192],
                "TILE_K": [8, 32, 192],
                "UNROLL_J": [1, 4, 8],
                "LOOP_ORDER": [0, 1],
            },
            ["TILE_I * TILE_K <= 4096"],
            lambda: [np.zeros(192 * 192, np.float32), _rand(192 * 192), _rand(192 * 192)],
        ),
        Kernel(
            "convolution",
            {
                "TILE_X": [8, 16, 32, 64, 128, 256, 768],
                "TILE_Y": [1, 2, 4, 8, 16, 32, 64],
                "ROWS": [1, 2, 4, 8],
                "UNROLL_F": [1, 7],
                "FILTER_OUTER": [0, 1],
            },
            ["TILE_Y % ROWS == 0", _acc_fits],
            lambda: [np.zeros(768 * 512, np.float32), _rand((512 + 6) * (768 + 6)), _rand(49)],
        ),
        Kernel(
            "transpose",
            {
                "TILE_I": [1, 2, 4, 8, 16, 32, 64, 128],
                "TILE_J": [1, 2, 4, 8, 16, 32, 64, 128],
                "UNROLL": [1, 2, 4, 8],
                "BUFFERED": [0, 1],
            },
            ["UNROLL <= TILE_J", "TILE_I * TILE_J <= 4096 or BUFFERED == 0"],
            lambda: [np.zeros(1536 * 1536, np.float32), _rand(1536 * 1536)],
        ),
    )
}
