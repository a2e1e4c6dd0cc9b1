"""Racing (``racing=True``, one objective): a candidate whose measurement would displace the best
so far (the incumbent) is measured again, in a doubling schedule (1 -> 2 -> 4 -> 8 -> 16
measurements, the incumbent topped up to as many), until its mean is significantly better
(Welch's t test, two-sided p < 0.05: it becomes the incumbent) or no longer better (it falls
back), as SMAC's intensification does. At 16 measurements a still-better mean wins.

Every extra measurement is a row with status ``"race"``, id ``race-<id>-<k>`` (the candidate's
k-th measurement) and ``metadata["race_of"]``; it counts toward the search's budget of
``generations * pool_size`` measurements, and a search that spent it ends (reason ``budget``).
A raced candidate is told to the engine with the mean of its measurements. The ids are
deterministic, so a resumed search replays the races from the evaluation log.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any, Final, Literal

from genetune.config import ProblemType, SearchConfiguration
from genetune.intervals import welch
from genetune.rows import Row, told_scores

__all__ = ["RACE_CAP", "STATUS", "Racing", "race_id"]

STATUS: Final[Literal["race"]] = "race"
#: The most measurements a challenger gets in one race.
RACE_CAP: Final = 16
#: Two-sided p-value under which a better mean wins.
ALPHA: Final = 0.05

#: Measures (id, params) pairs once each; returns their rows (status "race", in any order).
Measure = Callable[[list[tuple[str, int | str, Any]]], list[Row]]


def race_id(candidate_id: int | str, k: int) -> str:
    return f"{STATUS}-{candidate_id}-{k}"


def _value(row: Row) -> float:
    told = told_scores(row)
    return float(told[0]) if told and math.isfinite(told[0]) else math.nan


class Racing:
    """The race state of one search: the incumbent and every raced candidate's measurements."""

    def __init__(self, config: SearchConfiguration) -> None:
        assert config.pool_size is not None and config.directions is not None
        self.budget = config.generations * config.pool_size
        self.sign = -1.0 if config.directions[0] == ProblemType.MAX else 1.0
        self.used = 0
        self.incumbent: int | str | None = None
        self.samples: dict[int | str, list[float]] = {}
        self.params: dict[int | str, Any] = {}

    @property
    def room(self) -> int:
        return self.budget - self.used

    def spent(self, pool_size: int) -> bool:
        """No room left for another whole generation."""
        return self.room < pool_size

    def _mean(self, candidate: int | str) -> float:
        return self.sign * statistics.fmean(self.samples[candidate])

    def generation(self, rows: Sequence[Row], measure: Measure) -> dict[int | str, list[float]]:
        """Races the generation's candidates (best first) that would displace the incumbent;
        returns what to tell the engine for each raced one (its mean)."""
        self.used += len(rows)
        told: dict[int | str, list[float]] = {}
        valid = [r for r in rows if r["status"] == "valid" and math.isfinite(_value(r))]
        for row in sorted(valid, key=lambda r: (self.sign * _value(r), str(r["id"]))):
            cid = row["id"]
            self.samples[cid] = [_value(row)]
            self.params[cid] = row["params"]
            if self.incumbent is None:
                self.incumbent = cid
                continue
            if self._mean(cid) >= self._mean(self.incumbent):
                continue  # would not displace it: measured once, as always
            self._race(cid, measure)
            told[cid] = [statistics.fmean(self.samples[cid])]
        return told

    def _race(self, challenger: int | str, measure: Measure) -> None:
        incumbent = self.incumbent
        assert incumbent is not None
        while True:
            ch, inc = self.samples[challenger], self.samples[incumbent]
            if self._mean(challenger) >= self._mean(incumbent):
                return  # falls back
            if len(ch) >= 2 and len(inc) >= 2:
                _, _, _, p = welch(ch, inc)
                if p < ALPHA:
                    break
            if len(ch) >= RACE_CAP:
                break
            add = len(ch)
            top_up = max(0, min(len(ch) + add, RACE_CAP) - len(inc))
            if add + top_up > self.room:
                return  # no budget to settle it: the incumbent stays
            todo = [(race_id(challenger, len(ch) + k), challenger, self.params[challenger]) for k in range(add)]
            todo += [(race_id(incumbent, len(inc) + k), incumbent, self.params[incumbent]) for k in range(top_up)]
            self.used += len(todo)
            rows = {r["id"]: r for r in measure(todo)}
            lost = False
            for rid, of, _ in todo:
                value = _value(rows[rid]) if rows[rid]["reason"] == "" else math.nan
                if math.isfinite(value):
                    self.samples[of].append(value)
                elif of == challenger:
                    lost = True  # a challenger that fails when measured again is not a winner
            if lost:
                return
        self.incumbent = challenger
