"""The search's progress bar (tqdm, on stderr, cleared lines written through tqdm.write)."""

from __future__ import annotations

import math
import sys
from typing import Any

from tqdm import tqdm

__all__ = ["Progress"]


class Progress:
    """Evaluations done out of the budget, with generation, best score and failures."""

    def __init__(self, total: int, generations: int, disabled: bool, initial: int = 0) -> None:
        self._generations = generations
        self._bar: tqdm[Any] | None = None
        if not disabled:
            self._bar = tqdm(total=total, initial=initial, unit="eval", file=sys.stderr, dynamic_ncols=True, desc="genetune")
        self._failures = 0
        self._best: str = "-"
        self._generation = 0

    def generation(self, index: int) -> None:
        self._generation = index
        self._refresh()

    def evaluated(self, failed: bool) -> None:
        self._failures += failed
        if self._bar is not None:
            self._bar.update(1)
            self._refresh()

    def best(self, values: tuple[float, ...] | None, pareto_size: int | None = None) -> None:
        if pareto_size is not None:
            self._best = f"front {pareto_size}"
        elif values is not None and all(math.isfinite(v) for v in values):
            self._best = ", ".join(f"{v:.4g}" for v in values)
        self._refresh()

    def _refresh(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(f"gen {self._generation + 1}/{self._generations} best {self._best} failed {self._failures}", refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
