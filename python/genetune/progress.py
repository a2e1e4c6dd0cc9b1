"""The search's progress display: one tqdm bar per generation, on stderr, left on screen when the
generation ends (``gen 2/6 ... 16/16 [00:12, 1.3eval/s, best so far 0.5168, invalid 12%]``)."""

from __future__ import annotations

import math
import sys
from typing import Any

from tqdm import tqdm

__all__ = ["Progress"]


class Progress:
    """Evaluations of the current generation out of ``pool_size``, with the best score so far,
    the generation's invalid rate and tqdm's evaluations per second. Disabled: nothing."""

    def __init__(self, generations: int, pool_size: int, disabled: bool) -> None:
        self._generations = generations
        self._pool_size = pool_size
        self._disabled = disabled
        self._bar: tqdm[Any] | None = None
        self._best: str = "-"
        self._done = 0
        self._failed = 0

    def generation(self, index: int) -> None:
        """Generation ``index`` starts: a new bar (the previous one stays on screen)."""
        self.close()
        self._done = self._failed = 0
        if not self._disabled:
            width = len(str(self._generations))
            self._bar = tqdm(
                total=self._pool_size,
                unit="eval",
                file=sys.stderr,
                dynamic_ncols=True,
                desc=f"gen {index + 1:>{width}}/{self._generations}",
                leave=True,
            )
            self._refresh()

    def evaluated(self, failed: bool) -> None:
        """One candidate of the current generation finished (or was read back on resume)."""
        if self._bar is None:
            return
        self._done += 1
        self._failed += failed
        self._refresh(update=False)
        self._bar.update(1)

    def best(self, values: tuple[float, ...] | None, pareto_size: int | None = None) -> None:
        """The generation ended with these best values (or this Pareto front): shown, then the bar closes."""
        if pareto_size is not None:
            self._best = f"front {pareto_size}"
        elif values is not None and all(math.isfinite(v) for v in values):
            self._best = ", ".join(f"{v:.4g}" for v in values)
        self._refresh()
        self.close()

    def _refresh(self, update: bool = True) -> None:
        if self._bar is not None:
            invalid = f"{self._failed / self._done:.0%}" if self._done else "-"
            self._bar.set_postfix_str(f"best so far {self._best}, invalid {invalid}", refresh=update)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
