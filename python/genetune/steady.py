"""The steady-state loop (``schedule="steady"``): every worker slot stays busy.

The worker's slots are opened once per run. Whenever evaluations end, each result is logged,
told to the engine at once, and the engine is asked for as many candidates as there are free
slots, chosen with every result so far. A result from a placement without a baseline
(``normalize=True``, a worker that joined) waits while that baseline is measured beside the
running evaluations; the other slots go on. A generation is a cohort of ``pool_size`` told
results: the trackers' generation events, the statistics, the progress bar and the checkpoint
follow cohorts.

Every ``ask(n)`` and ``tell`` is logged in order (:mod:`genetune.schedule_log`); a resume
restores the checkpoint's engine and replays the calls logged after it, so the engine is where
the killed search left it: finished evaluations are told from the evaluation log, never run
again, and the candidates that were running are evaluated again.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genetune._core import Candidate
from genetune.engine import Engine
from genetune.exceptions import StateError
from genetune.rows import Row, told_scores
from genetune.schedule_log import ScheduleLog
from genetune.scores import Score
from genetune.workers.base import EvaluationSlots

if TYPE_CHECKING:
    from genetune.search import Search, _Run

__all__ = ["SteadyLoop", "replay_schedule"]

#: How often (seconds) the loop looks at a baseline measured beside the running evaluations.
_BASELINE_POLL_S = 0.05


def replay_schedule(engine: Engine, log: ScheduleLog, start: int, finished: dict[Any, Row], folder: Path) -> list[Row]:
    """Replays the asks and tells logged after the checkpoint's ``start`` events on its engine;
    returns the rows of every told candidate of the run, in the order they were told.

    A power loss can leave a tell whose evaluation row the evaluation log lost (the two files
    reach the disk separately): the schedule is cut before that tell, so the candidate is pending
    again and runs again; what was asked after it is asked anew.
    """
    events = log.events()
    if start > len(events):
        raise StateError(f"{folder}: the checkpoint follows {start} scheduling events but {log.path.name} holds {len(events)}")
    told = [int(e["tell"]) for e in events[:start] if "tell" in e]
    missing = [i for i in told if not _finished(finished.get(i))]
    if missing:
        raise StateError(f"{folder}: the evaluation log lacks the candidates {missing[:5]} that the checkpoint counts as told")
    for number, event in enumerate(events[start:], start + 1):
        if "ask" in event:
            ids = [c.id for c in engine.ask(int(event["ask"]))]
            if ids != event["ids"]:
                raise StateError(
                    f"{folder}: replaying {log.path.name} event {number}, the engine proposed {ids[:5]} where the run had {event['ids'][:5]}"
                )
            continue
        candidate_id = int(event["tell"])
        if not _finished(finished.get(candidate_id)):
            log.cut(number - 1, f"candidate {candidate_id} was told but its evaluation is not in the evaluation log (lost by a crash); it runs again")
            break
        engine.tell([candidate_id], [event["scores"]])
        told.append(candidate_id)
    return [finished[i] for i in told]


def _finished(row: Row | None) -> bool:
    return row is not None and row["status"] in ("valid", "invalid")


@dataclass
class _Cohort:
    index: int
    started: float
    rows: list[Row] = field(default_factory=list)
    announced: bool = False


class SteadyLoop:
    """One run's steady-state loop (made by :class:`~genetune.search.Search`)."""

    def __init__(self, search: Search, run: _Run, told: int) -> None:
        assert run.schedule is not None and run.engine.config.pool_size is not None
        self.search = search
        self.run = run
        self.log: ScheduleLog = run.schedule
        self.pool = run.engine.config.pool_size
        self.told = told
        self.cohort = _Cohort(told // self.pool, time.perf_counter())
        #: Finished candidates a resume found pending (told first, in the evaluation log's order).
        self.ready: deque[Row] = deque()
        #: Pending candidates a resume evaluates again.
        self.rerun: list[Candidate] = []
        #: Results waiting for their placement's baseline, and that measurement.
        self.deferred: list[Score] = []
        self.baseline_job: Future[list[Row]] | None = None
        self.baselined: set[str | None] = set()
        #: The placements the running baseline job measures.
        self.measuring: set[str | None] = set()
        #: False between an engine call and its log line: a stop then writes no checkpoint
        #: (the last one and the log still replay exactly).
        self.consistent = True
        self.slots: EvaluationSlots | None = None

    # ----- resume ------------------------------------------------------------------------------

    def resume_pending(self, finished: dict[Any, Row]) -> None:
        """Sorts what the engine has pending into finished rows (told first) and evaluations to
        run again."""
        pending = {c.id: c for c in self.run.engine.pending()}
        told = {row["id"] for row in self.run.rows}
        orphans = [rid for rid, row in finished.items() if _finished(row) and rid not in pending and rid not in told]
        if orphans:  # their asks were synced before them: only an edited or replaced schedule does this
            raise StateError(f"{self.log.path}: the evaluation log holds candidates {orphans[:5]} that this schedule never asked")
        self.ready.extend(row for rid, row in finished.items() if rid in pending and _finished(row))
        done = {row["id"] for row in self.ready}
        self.rerun = sorted((c for c in pending.values() if c.id not in done), key=lambda c: c.id)

    def cohort_so_far(self, rows: Iterable[Row]) -> None:
        """The told rows of the cohort a resumed search continues."""
        self.cohort.rows.extend(r for r in rows if r["generation"] == self.cohort.index and r["status"] in ("valid", "invalid"))

    # ----- the loop ----------------------------------------------------------------------------

    def run_to_end(self) -> None:
        search, run = self.search, self.run
        config = run.engine.config
        try:
            with search.worker.open_slots(search._shipped_objective(), config.num_objectives, run.options) as slots:
                self.slots = slots
                if self._more():
                    self._announce()
                slots.cohort = self.cohort.index
                for candidate in self.rerun:
                    run.recorder.starts(candidate.id, self.cohort.index, candidate.params)
                    slots.submit(candidate.id, candidate.params)
                while True:
                    while self.ready:
                        self._tell(self.ready.popleft())
                    self._refill()
                    if not (slots.in_flight or self.deferred or self.baseline_job is not None):
                        break
                    self._collect()
            if self.cohort.rows:  # a last, partial cohort (exhaustion, racing's budget)
                self._end_cohort()
        finally:
            if self.baseline_job is not None:
                self.baseline_job.cancel()
            self._stop_checkpoint()

    def _more(self) -> bool:
        """Whether anything is left to evaluate or tell."""
        slots = self.slots
        if self.ready or self.rerun or self.deferred or (slots is not None and slots.in_flight):
            return True
        engine = self.run.engine
        # An exhausted engine proposes nothing new once what it handed out is told.
        return self._room() > 0 and not (engine.exhausted and not engine.pending())

    def _room(self) -> int:
        """How many more candidates may be asked (racing's measurements share the budget)."""
        engine, racing = self.run.engine, self.run.racing
        if engine.done:
            return 0
        if racing is None:
            return 1 << 30
        outstanding = (self.slots.in_flight if self.slots is not None else 0) + len(self.deferred) + len(self.ready)
        return racing.room - outstanding

    def _refill(self) -> None:
        slots = self.slots
        assert slots is not None
        free = min(slots.capacity - slots.in_flight, self._room())
        if free <= 0:
            return
        self.consistent = False
        candidates = self.run.engine.ask(free)
        self.log.asked(free, [c.id for c in candidates])
        self.consistent = True
        if candidates and not self.cohort.announced:
            self._announce()
        slots.cohort = self.cohort.index
        for candidate in candidates:
            self.run.recorder.starts(candidate.id, self.cohort.index, candidate.params)
            slots.submit(candidate.id, candidate.params)

    def _collect(self) -> None:
        """Waits for results (and a baseline measured meanwhile) and records them."""
        slots = self.slots
        assert slots is not None
        job = self.baseline_job
        if slots.in_flight:
            arrived = slots.wait(_BASELINE_POLL_S if job is not None else None)
            if arrived:
                self.log.make_durable()  # their asks reach the disk before their rows
            for score in arrived:
                self._arrived(score)
        if job is not None and (job.done() or not slots.in_flight):
            rows = job.result()
            self.baseline_job = None
            for row in rows:
                self.run.rows.append(row)
                self.run.recorder.baseline(row, failed=not all(math.isfinite(v) for v in row["scores"]))
            waiting, self.deferred = self.deferred, []
            for score in waiting:
                self._arrived(score)

    def _arrived(self, score: Score) -> None:
        baselines = self.run.baselines
        if self.baseline_job is not None and baselines.placement_of(score.metadata) in self.measuring:
            # The measuring thread may already hold the baseline: its row is recorded first.
            self.deferred.append(score)
            return
        if baselines.lacks(score):
            key = baselines.placement_of(score.metadata)
            if key not in self.baselined or self.baseline_job is not None:
                self.deferred.append(score)
                if self.baseline_job is None:
                    self._measure_baselines()
                return
            # Measured once already and still lacking (its worker left first): INVALID, with why.
        row = baselines.row_of(score, self.cohort.index)
        self.run.recorder.evaluated(row)
        self._tell(row)

    def _measure_baselines(self) -> None:
        """The baselines of the new placements, measured beside the running evaluations."""
        search, run = self.search, self.run
        self.measuring = {run.baselines.placement_of(s.metadata) for s in self.deferred}
        self.baselined.update(self.measuring)
        objective = search._shipped_objective()

        def measure() -> list[Row]:
            return run.baselines.measure(objective, run.options, first=False, run_folder=run.folder)

        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="genetune-baseline")
        self.baseline_job = executor.submit(measure)
        executor.shutdown(wait=False)

    def _tell(self, row: Row) -> None:
        """Tells the engine one finished candidate (after racing it, with ``racing=True``)."""
        run = self.run
        raced: dict[int | str, list[float]] = {}
        if run.racing is not None:
            raced = run.racing.generation([row], self.search._race_measure(run, row["generation"], replay=False))
        scores = raced.get(row["id"]) or told_scores(row)
        self.consistent = False
        run.engine.tell([row["id"]], [scores])
        self.log.told(int(row["id"]), scores)
        self.consistent = True
        run.rows.append(row)
        self.told += 1
        self.cohort.rows.append(row)
        if self.told % self.pool == 0:
            self._end_cohort()

    # ----- cohorts -----------------------------------------------------------------------------

    def _announce(self) -> None:
        self.cohort.announced = True
        self.search.current_generation = self.cohort.index
        self.run.recorder.generation_starts(self.cohort.index)
        for row in self.cohort.rows:  # a resumed cohort's results so far
            self.run.recorder.replayed(row)

    def _end_cohort(self) -> None:
        """A cohort of ``pool_size`` results (or the last one) is complete: made durable
        (logs synced, checkpoint), its statistics reported; the next one starts."""
        from genetune.search import _stop_if_all_failed

        search, run = self.search, self.run
        cohort = self.cohort
        if cohort.index == 0 and search.exit_on_failure:
            _stop_if_all_failed(cohort.rows, run.folder)
        if not cohort.announced:
            self._announce()
        self.log.sync()
        draws = run.engine.constraint_draws if search.constraints else None
        run.recorder.generation_ends(cohort.index, cohort.rows, time.perf_counter() - cohort.started, search._checkpoint_payload(run), draws)
        if search.dump_results is not None:
            search._result(run.rows).save(search.dump_results)
        self.cohort = _Cohort(cohort.index + 1, time.perf_counter())
        if self._more():
            self._announce()

    def _stop_checkpoint(self) -> None:
        """At the end or a stop: the engine with what still ran as pending, when consistent."""
        try:
            if self.consistent:
                self.log.sync()
                self.run.recorder.sync()
                self.run.recorder.checkpoint(self.search._checkpoint_payload(self.run))
        finally:
            self.log.close()
