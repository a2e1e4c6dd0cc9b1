"""`Search`: a CompileIQ-shaped search over a worker, with checkpoints and exact resume."""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle

from genetune._core import Candidate
from genetune.baselines import Baselines
from genetune.checkpoint import (
    EvaluationLog,
    decode_bytes,
    digest,
    encode_bytes,
    find_run_folder,
    read_checkpoint,
    versions,
    write_checkpoint,
)
from genetune.config import Schedule, SearchConfiguration, as_search_configuration
from genetune.engine import Constraint, Engine, checked_constraints
from genetune.exceptions import CheckpointMismatchError, ObjectiveReturnError, SearchFailedError
from genetune.manifest import manifest
from genetune.objectives import checked_objective, measured_objective
from genetune.racing import STATUS as RACE_STATUS
from genetune.racing import Racing
from genetune.recorder import Recorder
from genetune.remeasure import remeasure, remeasured_summary
from genetune.results import SearchResult
from genetune.rows import Row, told_scores
from genetune.schedule_log import ScheduleLog
from genetune.scores import Score
from genetune.search_spaces import SearchSpace, compile_space, space_from_spec
from genetune.settings import get_settings
from genetune.steady import SteadyLoop, replay_schedule
from genetune.stopping import is_stop, stop_on_signals, stop_requested
from genetune.trackers import TrackerConfig, TrackerTypes, build_trackers
from genetune.warm_start import WarmStart, plan_warm_start
from genetune.workers import BaseWorker, RunOptions, WorkerTypes, make_worker, worker_from_reference, worker_reference
from genetune.workers.process import refuse_in_worker_bootstrap

__all__ = ["Search"]


def _run_folder_name() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:8]


class Search:
    """A genetic search of ``objective_function`` over ``search_space``.

    The objective receives a candidate's params (a nested dict, or a list for a list space) and
    returns a number, or a tuple/list of ``num_objectives`` numbers; ``"*"``, NaN, inf, an
    exception, a timeout or a crashed worker process make that candidate INVALID (with the reason
    recorded) and the search goes on. A return value of the wrong type or count stops the search
    with an error naming the candidate.

    ``search_config.schedule``: ``"steady"`` (default) keeps every worker slot busy, telling the
    engine each result as it arrives (:mod:`genetune.steady`); ``"generational"`` evaluates whole
    generations, identical for 1 and N workers.

    Every search writes a run folder under ``cache_folder``: an atomic checkpoint after every
    generation (cohort of ``pool_size`` results) and at a stop, every finished evaluation as it
    arrives and (steady) the order of the engine's asks and tells, so :meth:`resume` continues a
    killed search to exactly the table an uninterrupted run (with one worker, when steady) gives.

    ``constraints`` and ``warm_start`` are as on :class:`~genetune.Engine`; prior evaluations of
    a warm start are kept in the result (status ``"prior"``, generation -1), never re-evaluated.
    """

    def __init__(
        self,
        objective_function: Callable[[Any], Any],
        search_space: SearchSpace,
        search_config: SearchConfiguration | dict[str, Any],
        worker_type: WorkerTypes | str | type[BaseWorker] | BaseWorker = WorkerTypes.DEFAULT,
        tracker_config: TrackerConfig | TrackerTypes | str | None = None,
        trackers: list[Any] | None = None,
        cache_folder: str | os.PathLike[str] | None = None,
        dump_results: str | os.PathLike[str] | None = None,
        disable_progress_bar: bool | None = None,
        exit_on_failure: bool = True,
        constraints: Sequence[Constraint] | None = None,
        warm_start: WarmStart | None = None,
    ) -> None:
        self.objective_function = checked_objective(objective_function)
        self.search_config = as_search_configuration(search_config)
        self.search_space = search_space
        self.constraints = checked_constraints(constraints)
        self.warm_start = plan_warm_start(
            warm_start, self.search_config.num_objectives, self.search_config.normalize, list_space=isinstance(search_space, list | tuple)
        )
        # Validates the space, configuration, constraints and warm start now, not at start().
        Engine(search_space, self.search_config, seed=0, constraints=self.constraints, warm_start=self.warm_start)
        self.worker = make_worker(worker_type)
        self.trackers = build_trackers(tracker_config, trackers)
        self.tracker_report: dict[str, str] = {}
        self.cache_folder = Path(cache_folder).expanduser() if cache_folder is not None else None
        self.dump_results = Path(dump_results).expanduser() if dump_results is not None else None
        self.disable_progress_bar = disable_progress_bar
        self.exit_on_failure = exit_on_failure
        self.run_folder: Path | None = None
        self.current_generation = 0
        #: The trackers as the checkpoint keeps them (pickled when the run starts).
        self._saved_trackers: dict[str, Any] = {"pickled": [], "left_out": []}

    # ----- public API --------------------------------------------------------------------------

    def start(self, num_workers: int | None = None, task_timeout: float | None = None, **worker_kwargs: Any) -> SearchResult:
        """Runs the search to the end and returns every evaluation. Can be called again: each call
        is a new run (with the same seed, the same result)."""
        refuse_in_worker_bootstrap("Search.start()")
        options = RunOptions.checked(num_workers, task_timeout, worker_kwargs)
        engine = Engine(self.search_space, self.search_config, constraints=self.constraints, warm_start=self.warm_start)
        self._saved_trackers = _pickled_trackers(self.trackers)
        priors: dict[Any, Row] = {row["id"]: row for row in self.warm_start.prior_rows()}
        folder = self._new_run_folder(engine, list(priors.values()))
        self.run_folder = folder
        with stop_on_signals():  # SIGTERM stops it as Ctrl-C does
            return self._run(engine, folder, priors, options, _first_events(engine))

    def _new_run_folder(self, engine: Engine, priors: list[Row]) -> Path:
        """The run folder, resumable from the moment it exists: made under a temporary name with
        its first checkpoint (before any evaluation) and the prior evaluations of a warm start in
        its log (a resume reads them back like any row), then renamed."""
        parent = self.cache_folder or get_settings().cache_folder
        parent.mkdir(parents=True, exist_ok=True)
        folder = parent / _run_folder_name()
        partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", suffix=".partial", dir=parent))
        try:
            write_checkpoint(partial, self._payload(engine, [], _first_events(engine)))
            if priors:
                log = EvaluationLog(partial)
                for row in priors:
                    log.append(row)
                log.close()
            os.rename(partial, folder)  # atomic: the folder appears with its checkpoint (its name is new: time and a random suffix)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        return folder

    def sample(self, num_samples: int = 1) -> list[Any]:
        """``num_samples`` candidates shaped exactly as the objective receives them; nothing is
        evaluated. Drawn like a first generation (seed ranges included)."""
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
        config = self.search_config.model_dump()
        config.update(
            schedule="generational",  # drawn like a first generation
            pool_size=max(num_samples, 6),
            cull_size=None,
            num_objectives=1,
            engine="ga",
            directions=None,
            objective_weights=None,
            crossover_prob=None,
            crossover_eta=None,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            engine = Engine(self.search_space, config, constraints=self.constraints)
            return [c.params for c in engine.ask(num_samples)]

    @classmethod
    def resume(
        cls,
        path: str | os.PathLike[str],
        objective_function: Callable[[Any], Any] | None = None,
        *,
        search_space: SearchSpace | None = None,
        search_config: SearchConfiguration | dict[str, Any] | None = None,
        allow_mismatch: bool = False,
        worker_type: WorkerTypes | str | type[BaseWorker] | BaseWorker | None = None,
        trackers: list[Any] | None = None,
        disable_progress_bar: bool | None = None,
        constraints: Sequence[Constraint] | None = None,
        num_workers: int | None = None,
        task_timeout: float | None = None,
        **worker_kwargs: Any,
    ) -> SearchResult:
        """Continues the search saved in ``path`` (a run folder or its ``checkpoint.json``) and
        returns the complete result. Finished evaluations are read back, never re-run; ones
        that were running when the search died are evaluated again.

        The search's constructor options come back from the checkpoint (worker, trackers,
        ``dump_results``, ``disable_progress_bar``, ``exit_on_failure``) unless passed here;
        trackers that could not be pickled are left out, with a warning. Without
        ``objective_function`` the objective pickled into the checkpoint is used. Passing
        ``search_space``/``search_config`` checks them against the checkpoint: a different one is
        refused with :class:`CheckpointMismatchError` unless ``allow_mismatch=True``.

        **A run folder is code: resume only folders you trust.** ``checkpoint.json`` holds
        cloudpickles of the objective, the worker, the trackers and the callable constraints;
        loading one runs whatever its author put there. ``resume`` unpickles none that you pass:
        give ``objective_function``, ``worker_type``, ``trackers`` (``[]`` for none) and the
        callable ``constraints`` (the expression ones come back from the engine state, which is
        data) and nothing from the folder is unpickled.
        """
        refuse_in_worker_bootstrap("Search.resume()")
        folder = find_run_folder(path)
        payload = read_checkpoint(folder)
        _check_matches(folder, payload, search_space, search_config, allow_mismatch)
        if constraints is not None:
            functions = [c for c in checked_constraints(constraints) if not isinstance(c, str)]
        else:
            functions = _saved_constraint_functions(folder, payload)
        engine = Engine.from_bytes(decode_bytes(payload["engine"]), functions)
        search = cls(
            objective_function if objective_function is not None else _saved_objective(folder, payload),
            space_from_spec(payload["space"]),
            engine.config,
            worker_type=worker_type if worker_type is not None else worker_from_reference(payload["worker"]),
            trackers=trackers if trackers is not None else _saved_trackers(folder, payload),
            cache_folder=folder.parent,
            dump_results=payload.get("dump_results") or None,
            disable_progress_bar=disable_progress_bar if disable_progress_bar is not None else payload.get("disable_progress_bar"),
            exit_on_failure=payload.get("exit_on_failure", True),
            constraints=engine.constraints,
        )
        search._saved_trackers = _pickled_trackers(search.trackers)
        search.run_folder = folder
        search.current_generation = engine.generation
        finished: dict[Any, Row] = {row["id"]: row for row in EvaluationLog(folder).rows()}
        options = RunOptions.checked(num_workers, task_timeout, worker_kwargs)
        # A checkpoint without schedule_events was written by a generational loop (or before steady-state scheduling).
        with stop_on_signals():  # SIGTERM stops it as Ctrl-C does
            return search._run(engine, folder, finished, options, payload.get("schedule_events"))

    # ----- the loop ----------------------------------------------------------------------------

    def _run(self, engine: Engine, folder: Path, finished: dict[Any, Row], options: RunOptions, schedule_events: int | None) -> SearchResult:
        """ask → evaluate → record → tell: steadily (every slot busy, see :mod:`genetune.steady`;
        ``schedule_events``: the logged asks and tells the engine holds) or, when it is None,
        generation after generation; then the summary."""
        self._warn_unsupported(options)
        run = self._prepare(engine, folder, finished, options, schedule_events)
        reason = "error"
        result: SearchResult | None = None
        try:
            if engine.config.normalize:
                self._measure_baselines(run, first=True)
            run.recorder.checkpoint(self._checkpoint_payload(run))
            if run.steady is not None:
                run.steady.run_to_end()
            while run.steady is None and not engine.done and not (run.racing is not None and run.racing.spent(engine.config.pool_size or 0)):
                self._generation(run)
            reason = "exhausted" if engine.exhausted else ("completed" if engine.done else "budget")
            if engine.config.remeasure_top > 0:
                self._remeasure(run)
            result = self._result(run.rows)
        except KeyboardInterrupt:
            reason = "stopped"
            raise
        except (SearchFailedError, ObjectiveReturnError) as err:
            err.result = self._result(run.rows) if run.rows else None
            err.run_folder = folder
            raise
        finally:
            self._finish(run, reason, result)
        self.current_generation = _generations(run)
        if self.dump_results is not None:
            result.save(self.dump_results)
        return result

    def _prepare(self, engine: Engine, folder: Path, finished: dict[Any, Row], options: RunOptions, schedule_events: int | None) -> _Run:
        """The state of one run; on resume, what the evaluation log already holds."""
        config = engine.config
        schedule: ScheduleLog | None = None
        told: list[Row] = []
        if schedule_events is not None:
            # On resume: the engine replays the asks and tells logged after its checkpoint.
            schedule = ScheduleLog(folder)
            told = replay_schedule(engine, schedule, schedule_events, finished, folder)
            completed = len(told) // (config.pool_size or 1)
            rows = [r for r in finished.values() if r["status"] == "prior"] + told
            counted = [r for r in told if r["generation"] < completed]
        else:
            # On resume: the rows of the generations the checkpoint already completed.
            rows = [r for r in finished.values() if r["status"] != "baseline" and r["generation"] < engine.generation]
            counted = [r for r in rows if r["status"] != "prior"]  # earlier searches' rows are not this run's progress
        disabled = self.disable_progress_bar if self.disable_progress_bar is not None else get_settings().disable_progress_bar
        recorder = Recorder(folder, config, self.trackers, disabled, replayed=counted, already_logged=finished.keys())
        spec = compile_space(self.search_space)
        recorder.search_starts(manifest(config.model_dump(mode="json"), spec, engine.parameter_names, engine.seed, str(folder)))
        baselines = Baselines(self.worker, config.num_objectives, config.normalize)
        for row in finished.values():
            if row["status"] == "baseline":
                baselines.restore(row)
                rows.append(row)
                recorder.replayed(row)
        run = _Run(engine, folder, finished, options, baselines, recorder, rows, time.perf_counter(), schedule=schedule)
        if config.racing:
            run.racing = Racing(config)
            for row in told:  # steady: the races as they were run, result after result
                run.racing.generation([row], self._replayed_race(run, row["generation"]))
            for generation in sorted({r["generation"] for r in rows if r["status"] in ("valid", "invalid") and schedule is None}):
                ordered = sorted((r for r in rows if r["generation"] == generation and r["status"] in ("valid", "invalid")), key=lambda r: r["id"])
                run.racing.generation(ordered, self._race_measure(run, generation, replay=True))
        if schedule is not None:
            run.steady = SteadyLoop(self, run, len(told))
            run.steady.cohort_so_far(told)
            run.steady.resume_pending(finished)
        return run

    def _generation(self, run: _Run) -> None:
        engine, recorder = run.engine, run.recorder
        generation = self.current_generation = engine.generation
        started = time.perf_counter()
        recorder.generation_starts(generation)
        if engine.config.normalize and generation > 0 and self.worker.baselines_per_placement:
            self._measure_baselines(run, first=False)  # workers that joined since
        candidates = engine.ask()
        known = {c.id: run.finished[c.id] for c in candidates if c.id in run.finished}
        for row in known.values():
            recorder.replayed(row)
        new_rows = self._evaluate(run, [c for c in candidates if c.id not in known], generation)
        generation_rows = [known.get(c.id) or new_rows[c.id] for c in candidates]
        run.rows.extend(generation_rows)
        if generation == 0 and self.exit_on_failure:
            _stop_if_all_failed(generation_rows, run.folder)
        raced: dict[int | str, list[float]] = {}
        if run.racing is not None:
            raced = run.racing.generation(generation_rows, self._race_measure(run, generation, replay=False))
        engine.tell([c.id for c in candidates], [raced.get(r["id"]) or told_scores(r) for r in generation_rows])
        draws = engine.constraint_draws if self.constraints else None
        recorder.generation_ends(generation, generation_rows, time.perf_counter() - started, self._checkpoint_payload(run), draws)
        if self.dump_results is not None:
            self._result(run.rows).save(self.dump_results)

    def _evaluate(self, run: _Run, todo: list[Candidate], generation: int) -> dict[int | str, Row]:
        """Evaluates the candidates on the worker; each result is recorded as it arrives, or,
        from a worker that joined mid-generation, once its placement has a baseline."""
        for c in todo:
            run.recorder.starts(c.id, generation, c.params)

        def on_result(score: Score) -> None:
            if not run.baselines.lacks(score):
                run.recorder.evaluated(run.baselines.row_of(score, generation))

        scores: dict[int | str, Score] = {}
        if todo:
            returned = self.worker.run(
                self._shipped_objective(),
                [c.params for c in todo],
                [c.id for c in todo],
                self.search_config.num_objectives,
                **run.options.with_on_result(on_result).as_kwargs(),
            )
            scores = {s.param_id: s for s in returned}
            missing = [c.id for c in todo if c.id not in scores]
            if missing:
                raise RuntimeError(f"{self.worker.name} returned no score for candidates {missing[:10]}")
        if any(run.baselines.lacks(s) for s in scores.values()):
            self._measure_baselines(run, first=False)
        rows = {i: run.baselines.row_of(s, generation) for i, s in scores.items()}
        for row in rows.values():
            if not run.recorder.is_logged(row):  # deferred above, or a worker that does not stream results
                run.recorder.evaluated(row)
        return rows

    def _measure_baselines(self, run: _Run, *, first: bool) -> None:
        for row in run.baselines.measure(self._shipped_objective(), run.options, first=first, run_folder=run.folder):
            run.rows.append(row)
            run.recorder.baseline(row, failed=not all(math.isfinite(v) for v in row["scores"]))

    def _race_measure(self, run: _Run, generation: int, *, replay: bool) -> Callable[[list[tuple[str, int | str, Any]]], list[Row]]:
        """How racing measures a candidate again: from the evaluation log when it holds the row
        (resume), else on the worker; new rows are logged and join the result."""

        def measure(todo: list[tuple[str, int | str, Any]]) -> list[Row]:
            known = [run.finished[rid] for rid, _, _ in todo if rid in run.finished]
            fresh = [(rid, of, params) for rid, of, params in todo if rid not in run.finished]
            if replay and fresh:
                raise RuntimeError(f"{run.folder}: the evaluation log lacks the race measurements {[r for r, _, _ in fresh][:5]}")
            rows: list[Row] = []
            if fresh:
                of = {rid: candidate for rid, candidate, _ in fresh}

                def race_row(score: Score) -> Row:
                    row = run.baselines.row_of(score, generation)
                    return {**row, "status": RACE_STATUS, "metadata": {**row["metadata"], "race_of": of[str(score.param_id)]}}

                def on_result(score: Score) -> None:  # logged as it arrives: a stop mid-race loses none
                    if not run.baselines.lacks(score):
                        run.recorder.evaluated(race_row(score))

                scores = self.worker.run(
                    self._shipped_objective(), [p for _, _, p in fresh], [rid for rid, _, _ in fresh],
                    self.search_config.num_objectives, **run.options.with_on_result(on_result).as_kwargs(),
                )
                if any(run.baselines.lacks(score) for score in scores):
                    self._measure_baselines(run, first=False)
                for score in scores:
                    row = race_row(score)
                    if not run.recorder.is_logged(row):
                        run.recorder.evaluated(row)
                    rows.append(row)
            if not replay:
                for row in known:
                    run.recorder.replayed(row)
                run.rows.extend(known + rows)
            return known + rows

        return measure

    def _replayed_race(self, run: _Run, generation: int) -> Callable[[list[tuple[str, int | str, Any]]], list[Row]]:
        """A race read back from the evaluation log, its rows joining the result."""
        measure = self._race_measure(run, generation, replay=True)

        def collect(todo: list[tuple[str, int | str, Any]]) -> list[Row]:
            rows = measure(todo)
            run.rows.extend(rows)
            return rows

        return collect

    def _shipped_objective(self) -> Any:
        """The objective as workers get it: with its measuring plan (repeats, two phases)."""
        config = self.search_config
        return measured_objective(self.objective_function, config.repeats, config.quiet_measurements)

    def _remeasure(self, run: _Run) -> None:
        """The re-measurement phase (``remeasure_top``); its rows join the result."""
        rows = remeasure(
            self.worker,
            self.objective_function,
            [r for r in run.rows if r["status"] == "valid"],
            run.engine.config,
            run.options,
            generation=_generations(run),
            seed=run.engine.seed,
            finished=run.finished,
            record=run.recorder.remeasured,
        )
        run.rows.extend(rows)

    def _finish(self, run: _Run, reason: str, result: SearchResult | None) -> None:
        """Closes files and the worker, saves ``results.csv`` and reports the end to the trackers.
        When an error stops the search (a full disk, say), that error is the one raised: a
        later failure here is a warning."""
        first_error = sys.exc_info()[1]
        if reason == "error" and (stop_requested() or is_stop(first_error)):  # a signal, as Prefect or another thread saw it
            reason = "stopped"
        run.recorder.close_files()
        self.worker.close()
        # Stopped or failed: every evaluation the log holds, the unfinished generation's too.
        logged = list(EvaluationLog(run.folder).rows()) if result is None else []
        final = result if result is not None else (self._result(logged) if logged else None)
        try:
            result_csv = final.save(run.folder / "results.csv") if final is not None else None
        except Exception as err:
            if first_error is None:
                raise
            warnings.warn(f"{run.folder / 'results.csv'} not written ({type(err).__name__}: {err})", UserWarning, stacklevel=3)
            result_csv = None
        config = run.engine.config
        stats = run.recorder.stats
        summary = {
            "reason": reason,
            "evaluations": sum(r["status"] not in ("baseline", "prior", "remeasure") for r in run.rows),
            "prior_evaluations": sum(r["status"] == "prior" for r in run.rows),
            "raced": sum(r["status"] == "race" for r in run.rows),
            "invalid": sum(r["status"] == "invalid" for r in run.rows),
            "generations": _generations(run),
            "best": stats.best(),
            "pareto_size": None if config.num_objectives == 1 or final is None else len(final.pareto_front()),
            "hypervolume": stats.last_hypervolume,
            "wall_time_s": time.perf_counter() - run.started,
            "run_folder": str(run.folder),
            "result_csv": str(result_csv) if result_csv is not None else None,
        }
        summary.update(remeasured_summary(final, config.remeasure_top))
        self.tracker_report = run.recorder.search_ends(reason, summary)

    # ----- pieces ------------------------------------------------------------------------------

    def _checkpoint_payload(self, run: _Run) -> dict[str, Any]:
        return self._payload(run.engine, run.baselines.rows(), run.schedule.count if run.schedule is not None else None)

    def _payload(self, engine: Engine, baselines: list[Any], schedule_events: int | None) -> dict[str, Any]:
        """What ``checkpoint.json`` holds: the engine (RNG included), what it was made for, and
        the search's constructor options."""
        config = engine.config.model_dump(mode="json")
        spec = compile_space(self.search_space)
        try:
            objective: str | None = encode_bytes(cloudpickle.dumps(self.objective_function))
        except Exception:  # an unpicklable objective: resume then needs objective_function
            objective = None
        return {
            "generation": engine.generation,
            "seed": engine.seed,
            "config": config,
            "config_hash": digest(config),
            "space": spec,
            "space_hash": digest(spec),
            "engine": encode_bytes(engine.to_bytes()),
            # The steady loop: the events of schedule.jsonl this engine state holds (None: generational).
            "schedule_events": schedule_events,
            "objective": objective,
            "worker": worker_reference(self.worker),
            "exit_on_failure": self.exit_on_failure,
            "constraints": [c for c in self.constraints if isinstance(c, str)],
            "constraint_functions": _pickled_functions([c for c in self.constraints if not isinstance(c, str)]),
            "dump_results": str(self.dump_results) if self.dump_results else None,
            "baselines": baselines,
            "disable_progress_bar": self.disable_progress_bar,
            "trackers": self._saved_trackers,
            "versions": versions(),
        }

    def _warn_unsupported(self, options: RunOptions) -> None:
        if options.num_workers is not None and not self.worker.respects_num_workers:
            warnings.warn(f"num_workers is not supported by {self.worker.name}; it is ignored", UserWarning, stacklevel=4)
        if options.task_timeout is not None and not self.worker.supports_timeout:
            warnings.warn(
                f"task_timeout is not supported by {self.worker.name}: a hung evaluation will not be stopped",
                UserWarning,
                stacklevel=4,
            )

    def _result(self, rows: list[Row]) -> SearchResult:
        config = self.search_config
        assert config.directions is not None
        ordered = sorted(rows, key=_result_order)
        return SearchResult.from_rows(ordered, [str(d) for d in config.directions], config.num_objectives, normalized=config.normalize)


@dataclass
class _Run:
    """The state of one run of the loop (``start`` or ``resume``)."""

    engine: Engine
    folder: Path
    #: Rows read back from the evaluation log on resume, by id (never evaluated again).
    finished: dict[Any, Row]
    options: RunOptions
    baselines: Baselines
    recorder: Recorder
    #: Every row of the run so far, baselines included.
    rows: list[Row]
    started: float
    #: The race state (``racing=True``).
    racing: Racing | None = None
    #: ``schedule="steady"``: the log of asks and tells, and the loop.
    schedule: ScheduleLog | None = None
    steady: SteadyLoop | None = None


def _first_events(engine: Engine) -> int | None:
    """A new run's ``schedule_events``: 0 for the steady loop, None for the generational one."""
    return 0 if engine.config.schedule == Schedule.STEADY else None


def _generations(run: _Run) -> int:
    """Generations (cohorts of ``pool_size`` results, under the steady schedule) finished."""
    return run.steady.cohort.index if run.steady is not None else run.engine.generation


def _result_order(row: Row) -> tuple[bool, int, bool, Any]:
    """Baselines first (by id), then each generation's candidates by id, then the rows that
    measure them again (racing, re-measurement; text ids)."""
    is_baseline = row["status"] == "baseline"
    text = isinstance(row["id"], str)
    return (not is_baseline, row["generation"], text, str(row["id"]) if text else row["id"])


def _stop_if_all_failed(rows: list[Row], folder: Path) -> None:
    """The first generation all INVALID: most likely a broken objective, so stop and say why."""
    if rows and all(r["status"] != "valid" for r in rows):
        common = Counter(r["reason"] for r in rows).most_common(3)
        raise SearchFailedError(
            f"All {len(rows)} objective evaluations of the first generation failed "
            f"(most common: {'; '.join(f'{n}x {r}' for r, n in common)}). "
            f"Results so far are kept in {folder}; set exit_on_failure=False to continue regardless.",
            run_folder=folder,
        )


def _check_matches(
    folder: Path,
    payload: dict[str, Any],
    search_space: SearchSpace | None,
    search_config: SearchConfiguration | dict[str, Any] | None,
    allow_mismatch: bool,
) -> None:
    """Refuses to resume with a space or configuration the checkpoint was not made for (unless
    ``allow_mismatch``); warns when another genetune version wrote it."""
    if not allow_mismatch:
        if search_space is not None and digest(compile_space(search_space)) != payload["space_hash"]:
            raise CheckpointMismatchError(
                f"{folder}: the checkpoint was made for a different search space; pass allow_mismatch=True to resume anyway"
            )
        if search_config is not None and digest(as_search_configuration(search_config).model_dump(mode="json")) != payload["config_hash"]:
            raise CheckpointMismatchError(
                f"{folder}: the checkpoint was made for a different search configuration; pass allow_mismatch=True to resume anyway"
            )
    saved = payload.get("versions", {}).get("genetune")
    if saved != versions()["genetune"]:
        warnings.warn(f"{folder}: checkpoint written by genetune {saved}, resuming with {versions()['genetune']}", UserWarning, stacklevel=3)


def _pickled_trackers(trackers: list[Any]) -> dict[str, Any]:
    """The trackers for the checkpoint: each one cloudpickled, or named in ``left_out`` when it
    cannot be (a tracker holding a live context or stream)."""
    pickled: list[str] = []
    left_out: list[str] = []
    for tracker in trackers:
        try:
            pickled.append(encode_bytes(cloudpickle.dumps(tracker)))
        except Exception:
            left_out.append(type(tracker).__name__)
    return {"pickled": pickled, "left_out": left_out}


def _saved_trackers(folder: Path, payload: dict[str, Any]) -> list[Any]:
    """The trackers of the checkpoint's search (a warning names those it could not keep)."""
    saved = payload.get("trackers") or {}
    trackers: list[Any] = []
    left_out = list(saved.get("left_out") or [])
    for blob in saved.get("pickled") or []:
        try:
            trackers.append(cloudpickle.loads(decode_bytes(blob)))
        except Exception as err:
            left_out.append(f"one that cannot be loaded ({type(err).__name__}: {err})")
    if left_out:
        warnings.warn(
            f"{folder}: resuming without the tracker(s) {', '.join(left_out)} (not picklable); pass trackers= to keep them",
            UserWarning,
            stacklevel=3,
        )
    return trackers


def _saved_objective(folder: Path, payload: dict[str, Any]) -> Callable[[Any], Any]:
    """The objective pickled into the checkpoint."""
    if payload.get("objective") is None:
        raise ValueError(f"{folder}: the checkpoint holds no objective; pass objective_function")
    try:
        objective: Callable[[Any], Any] = cloudpickle.loads(decode_bytes(payload["objective"]))
    except Exception as err:
        raise ValueError(f"{folder}: the saved objective cannot be loaded ({err}); pass objective_function") from err
    return objective


def _pickled_functions(functions: list[Any]) -> str | None:
    """Callable constraints for the checkpoint (None when there are none)."""
    return encode_bytes(cloudpickle.dumps(functions)) if functions else None


def _saved_constraint_functions(folder: Path, payload: dict[str, Any]) -> list[Callable[[Any], Any]]:
    """The callable constraints pickled into the checkpoint."""
    if not payload.get("constraint_functions"):
        return []
    try:
        functions: list[Callable[[Any], Any]] = cloudpickle.loads(decode_bytes(payload["constraint_functions"]))
    except Exception as err:
        raise ValueError(f"{folder}: the saved constraint functions cannot be loaded ({err})") from err
    return functions
