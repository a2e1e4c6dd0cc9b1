"""`Search`: a CompileIQ-shaped search over a worker, with checkpoints and exact resume."""

from __future__ import annotations

import math
import os
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np

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
from genetune.config import SearchConfiguration, as_search_configuration
from genetune.engine import Engine
from genetune.exceptions import CheckpointMismatchError, ObjectiveReturnError, SearchFailedError
from genetune.progress import Progress
from genetune.results import SearchResult
from genetune.scores import BASELINE_CONFIG, Score, normalize_scores
from genetune.search_spaces import SearchSpace, compile_space, space_from_spec
from genetune.settings import get_settings
from genetune.manifest import GenerationStats, manifest
from genetune.trackers import TrackerBus, TrackerConfig, TrackerTypes, build_trackers
from genetune.workers import BaseWorker, WorkerTypes, make_worker, worker_from_reference, worker_reference

__all__ = ["Search"]

Row = dict[str, Any]


def _run_folder_name() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:8]


class Search:
    """A genetic search of ``objective_function`` over ``search_space``.

    The objective receives a candidate's params (a nested dict, or a list for a list space) and
    returns a number, or a tuple/list of ``num_objectives`` numbers; ``"*"``, NaN, inf, an
    exception, a timeout or a crashed worker process make that candidate INVALID (with the reason
    recorded) and the search goes on. A return value of the wrong type or count stops the search
    with an error naming the candidate.

    Every search writes a run folder under ``cache_folder``: an atomic checkpoint after every
    generation and every finished evaluation as it arrives, so :meth:`resume` continues a killed
    search to exactly the table an uninterrupted run gives.
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
    ) -> None:
        if not callable(objective_function):
            raise TypeError(f"objective_function must be callable, got {type(objective_function).__name__}")
        self.objective_function = objective_function
        self.search_config = as_search_configuration(search_config)
        self.search_space = search_space
        # Validates the space and configuration now, not at start().
        Engine(search_space, self.search_config, seed=0)
        self.worker = make_worker(worker_type)
        self.trackers = build_trackers(tracker_config, trackers)
        self.tracker_report: dict[str, str] = {}
        self.cache_folder = Path(cache_folder).expanduser() if cache_folder is not None else None
        self.dump_results = Path(dump_results).expanduser() if dump_results is not None else None
        self.disable_progress_bar = disable_progress_bar
        self.exit_on_failure = exit_on_failure
        self.run_folder: Path | None = None
        self.current_generation = 0

    # ----- public API --------------------------------------------------------------------------

    def start(self, num_workers: int | None = None, task_timeout: float | None = None, **worker_kwargs: Any) -> SearchResult:
        """Runs the search to the end and returns every evaluation. Can be called again: each call
        is a new run (with the same seed, the same result)."""
        engine = Engine(self.search_space, self.search_config)
        folder = (self.cache_folder or get_settings().cache_folder) / _run_folder_name()
        folder.mkdir(parents=True, exist_ok=False)
        self.run_folder = folder
        return self._run(engine, folder, {}, num_workers, task_timeout, worker_kwargs)

    def sample(self, num_samples: int = 1) -> list[Any]:
        """``num_samples`` candidates shaped exactly as the objective receives them; nothing is
        evaluated. Drawn like a first generation (seed ranges included)."""
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
        config = self.search_config.model_dump()
        config.update(
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
            engine = Engine(self.search_space, config)
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
        num_workers: int | None = None,
        task_timeout: float | None = None,
        **worker_kwargs: Any,
    ) -> SearchResult:
        """Continues the search saved in ``path`` (a run folder or its ``checkpoint.json``) and
        returns the complete result. Finished evaluations are read back, never re-run; ones
        that were running when the search died are evaluated again.

        Without ``objective_function`` the objective pickled into the checkpoint is used. Passing
        ``search_space``/``search_config`` checks them against the checkpoint: a different one is
        refused with :class:`CheckpointMismatchError` unless ``allow_mismatch=True``.
        """
        folder = find_run_folder(path)
        payload = read_checkpoint(folder)
        if search_space is not None and digest(compile_space(search_space)) != payload["space_hash"] and not allow_mismatch:
            raise CheckpointMismatchError(
                f"{folder}: the checkpoint was made for a different search space; pass allow_mismatch=True to resume anyway"
            )
        if search_config is not None and not allow_mismatch:
            given = as_search_configuration(search_config)
            if digest(given.model_dump(mode="json")) != payload["config_hash"]:
                raise CheckpointMismatchError(
                    f"{folder}: the checkpoint was made for a different search configuration; "
                    "pass allow_mismatch=True to resume anyway"
                )
        saved_versions = payload.get("versions", {})
        if saved_versions.get("genetune") != versions()["genetune"]:
            warnings.warn(
                f"{folder}: checkpoint written by genetune {saved_versions.get('genetune')}, resuming with {versions()['genetune']}",
                UserWarning,
                stacklevel=2,
            )
        if objective_function is None:
            if payload.get("objective") is None:
                raise ValueError(f"{folder}: the checkpoint holds no objective; pass objective_function")
            try:
                objective_function = cloudpickle.loads(decode_bytes(payload["objective"]))
            except Exception as err:
                raise ValueError(f"{folder}: the saved objective cannot be loaded ({err}); pass objective_function") from err
        engine = Engine.from_bytes(decode_bytes(payload["engine"]))
        search = cls.__new__(cls)
        search.objective_function = objective_function
        search.search_config = engine.config
        search.search_space = space_from_spec(payload["space"])
        search.worker = make_worker(worker_type) if worker_type is not None else worker_from_reference(payload["worker"])
        search.cache_folder = folder.parent
        search.dump_results = Path(payload["dump_results"]) if payload.get("dump_results") else None
        search.trackers = build_trackers(None, trackers)
        search.tracker_report = {}
        search.disable_progress_bar = disable_progress_bar
        search.exit_on_failure = payload.get("exit_on_failure", True)
        search.run_folder = folder
        search.current_generation = engine.generation
        finished = {row["id"]: row for row in EvaluationLog(folder).rows()}
        return search._run(engine, folder, finished, num_workers, task_timeout, worker_kwargs)

    # ----- the loop ----------------------------------------------------------------------------

    def _checkpoint(self, engine: Engine, folder: Path, baselines: list[Row]) -> None:
        config = engine.config.model_dump(mode="json")
        spec = compile_space(self.search_space)
        try:
            objective: str | None = encode_bytes(cloudpickle.dumps(self.objective_function))
        except Exception:  # an unpicklable objective: resume then needs objective_function
            objective = None
        write_checkpoint(
            folder,
            {
                "generation": engine.generation,
                "seed": engine.seed,
                "config": config,
                "config_hash": digest(config),
                "space": spec,
                "space_hash": digest(spec),
                "engine": encode_bytes(engine.to_bytes()),
                "objective": objective,
                "worker": worker_reference(self.worker),
                "exit_on_failure": self.exit_on_failure,
                "dump_results": str(self.dump_results) if self.dump_results else None,
                "baselines": baselines,
                "versions": versions(),
            },
        )

    def _check_options(self, num_workers: int | None, task_timeout: float | None) -> None:
        if num_workers is not None:
            if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
                raise ValueError(f"num_workers must be a positive integer, got {num_workers!r}")
            if not self.worker.respects_num_workers:
                warnings.warn(f"num_workers is not supported by {self.worker.name}; it is ignored", UserWarning, stacklevel=3)
        if task_timeout is not None:
            if isinstance(task_timeout, bool) or not isinstance(task_timeout, int | float) or not task_timeout > 0:
                raise ValueError(f"task_timeout must be a positive number of seconds, got {task_timeout!r}")
            if not self.worker.supports_timeout:
                warnings.warn(
                    f"task_timeout is not supported by {self.worker.name}: a hung evaluation will not be stopped",
                    UserWarning,
                    stacklevel=3,
                )

    def _placement_of(self, metadata: Any) -> str | None:
        """The key of the baseline that normalizes a result ("*": the one baseline of a worker
        without per-placement baselines)."""
        if not self.worker.baselines_per_placement:
            return "*"
        key = metadata.get("placement") if isinstance(metadata, dict) else None
        return str(key) if key is not None else None

    def _row(
        self, score: Score, generation: int, baseline: tuple[float, ...] | None, status: str | None = None, baseline_problem: str = ""
    ) -> Row:
        raw = score.values()
        norm = None if baseline is None else tuple(float(v) for v in normalize_scores(np.asarray(raw), np.asarray(baseline)))
        used = norm if norm is not None else raw
        valid = all(math.isfinite(v) for v in used)
        reason = score.reason
        if not valid and not reason:
            reason = baseline_problem or "invalid normalized score (baseline is zero or invalid)"
        metadata = score.metadata if isinstance(score.metadata, dict) else {"note": score.metadata}
        return {
            "generation": generation,
            "id": score.param_id,
            "params": score.params,
            "scores": list(raw),
            "norm_scores": list(norm) if norm is not None else None,
            "status": status or ("valid" if valid else "invalid"),
            "reason": "" if valid else reason,
            "duration_s": score.duration_s,
            "metadata": metadata,
        }

    def _result(self, rows: list[Row]) -> SearchResult:
        config = self.search_config
        assert config.directions is not None
        ordered = sorted(rows, key=lambda r: (r["status"] != "baseline", r["generation"], str(r["id"]) if r["status"] == "baseline" else r["id"]))
        return SearchResult.from_rows(ordered, [str(d) for d in config.directions], config.num_objectives, normalized=config.normalize)

    def _evaluate(
        self,
        params_pool: list[Any],
        ids: list[int | str],
        num_workers: int | None,
        task_timeout: float | None,
        worker_kwargs: dict[str, Any],
        on_result: Callable[[Score], None],
    ) -> dict[int | str, Score]:
        if not ids:
            return {}
        scores = self.worker.run(
            self.objective_function,
            params_pool,
            ids,
            self.search_config.num_objectives,
            num_workers=num_workers,
            task_timeout=task_timeout,
            on_result=on_result,
            **worker_kwargs,
        )
        by_id = {s.param_id: s for s in scores}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise RuntimeError(f"{self.worker.name} returned no score for candidates {missing[:10]}")
        return by_id

    def _run(
        self,
        engine: Engine,
        folder: Path,
        finished: dict[Any, Row],
        num_workers: int | None,
        task_timeout: float | None,
        worker_kwargs: dict[str, Any],
    ) -> SearchResult:
        self._check_options(num_workers, task_timeout)
        config = engine.config
        assert config.pool_size is not None and config.directions is not None
        started = time.perf_counter()
        log = EvaluationLog(folder)
        # On resume: the rows of the generations the checkpoint already completed.
        rows: list[Row] = [r for r in finished.values() if r["status"] != "baseline" and r["generation"] < engine.generation]
        disabled = self.disable_progress_bar if self.disable_progress_bar is not None else get_settings().disable_progress_bar
        progress = Progress(config.generations * config.pool_size + int(config.normalize), config.generations, disabled, initial=len(rows))
        persisted_ids: set[Any] = set(finished)
        stats = GenerationStats([str(d) for d in config.directions], config.normalize)
        for generation in sorted({r["generation"] for r in rows}):
            stats.add_generation(generation, [r for r in rows if r["generation"] == generation], 0.0)
        bus = TrackerBus(self.trackers)
        config_dump = config.model_dump(mode="json")
        bus.emit("search_starts", manifest(config_dump, compile_space(self.search_space), engine.parameter_names, engine.seed, str(folder)))

        def persist(row: Row) -> None:
            if row["id"] not in persisted_ids:
                log.append(row)
                persisted_ids.add(row["id"])

        def candidate(c_id: Any, generation: int, params: Any) -> dict[str, Any]:
            return {"id": c_id, "generation": generation, "params": params}

        baselines: dict[str | None, Row] = {}  # by placement (see _placement_of)
        for row in finished.values():
            if row["status"] == "baseline":
                baselines[self._placement_of(row["metadata"])] = row
                rows.append(row)
                progress.evaluated(False)

        def measure_baselines(first: bool) -> None:
            """Baselines for the placements that lack one (all of them at the start)."""
            measured = self.worker.measure_baselines(
                self.objective_function,
                config.num_objectives,
                {k for k in baselines if k is not None},
                num_workers=num_workers,
                task_timeout=task_timeout,
                on_result=lambda s: None,
                **worker_kwargs,
            )
            if first and not baselines and measured and all(s.failed for s in measured):
                reasons = "; ".join(sorted({s.reason or "invalid score" for s in measured}))
                raise SearchFailedError(
                    f"Baseline measurement for normalization failed ({reasons}); "
                    "the objective must return a valid score for BASELINE_CONFIG ({})",
                    run_folder=folder,
                )
            for score in measured:
                key = self._placement_of(score.metadata)
                row = self._row(score, 0, score.values(), status="baseline")
                if score.failed:
                    warnings.warn(
                        f"The baseline on {key} failed ({score.reason or 'invalid score'}): results from there are INVALID",
                        UserWarning,
                        stacklevel=4,
                    )
                baselines[key] = row
                persist(row)
                rows.append(row)
                progress.evaluated(score.failed)
                bus.emit("pre_objective", candidate(row["id"], 0, row["params"]))
                bus.emit("post_objective", candidate(row["id"], 0, row["params"]), row)

        def baseline_for(score: Score) -> tuple[tuple[float, ...] | None, str]:
            """The baseline values that normalize a result, and why they are missing or invalid."""
            if not config.normalize:
                return None, ""
            key = self._placement_of(score.metadata)
            row = baselines.get(key)
            if row is None:
                nothing = (math.nan,) * config.num_objectives
                return nothing, f"no baseline for placement {key!r} (its worker left before one was measured)"
            values = tuple(float(v) for v in row["scores"])
            if not all(math.isfinite(v) for v in values):
                return values, f"the baseline on placement {key!r} failed ({row['reason'] or 'invalid score'})"
            return values, ""

        def row_of(score: Score, generation: int) -> Row:
            values, problem = baseline_for(score)
            return self._row(score, generation, values, baseline_problem=problem)

        def lacks_baseline(score: Score) -> bool:
            return config.normalize and not score.failed and self._placement_of(score.metadata) not in baselines

        reason = "error"
        result: SearchResult | None = None
        try:
            if config.normalize:
                measure_baselines(first=True)
            self._checkpoint(engine, folder, list(baselines.values()))

            while not engine.done:
                generation = engine.generation
                generation_started = time.perf_counter()
                self.current_generation = generation
                progress.generation(generation)
                bus.emit("generation_starts", generation)
                if config.normalize and generation > 0 and self.worker.baselines_per_placement:
                    measure_baselines(first=False)  # workers that joined since
                candidates = engine.ask()
                known = {c.id: finished[c.id] for c in candidates if c.id in finished}
                todo = [c for c in candidates if c.id not in known]
                for row in known.values():
                    progress.evaluated(row["status"] != "valid")
                for c in todo:
                    bus.emit("pre_objective", candidate(c.id, generation, c.params))

                def on_result(score: Score, generation: int = generation) -> None:
                    if lacks_baseline(score):  # from a worker that joined mid-generation: after its baseline
                        return
                    row = row_of(score, generation)
                    persist(row)
                    progress.evaluated(row["status"] != "valid")
                    bus.emit("post_objective", candidate(row["id"], generation, row["params"]), row)

                scores = self._evaluate([c.params for c in todo], [c.id for c in todo], num_workers, task_timeout, worker_kwargs, on_result)
                if any(lacks_baseline(s) for s in scores.values()):
                    measure_baselines(first=False)
                new_rows = {i: row_of(s, generation) for i, s in scores.items()}
                for row in new_rows.values():
                    if row["id"] not in persisted_ids:  # deferred above, or a worker that does not stream results
                        persist(row)
                        progress.evaluated(row["status"] != "valid")
                        bus.emit("post_objective", candidate(row["id"], generation, row["params"]), row)
                generation_rows = [known.get(c.id) or new_rows[c.id] for c in candidates]
                rows.extend(generation_rows)
                if generation == 0 and self.exit_on_failure and generation_rows and all(r["status"] != "valid" for r in generation_rows):
                    common = Counter(r["reason"] for r in generation_rows).most_common(3)
                    raise SearchFailedError(
                        f"All {len(generation_rows)} objective evaluations of the first generation failed "
                        f"(most common: {'; '.join(f'{n}x {r}' for r, n in common)}). "
                        f"Results so far are kept in {folder}; set exit_on_failure=False to continue regardless.",
                        run_folder=folder,
                    )
                told = [r["norm_scores"] if config.normalize else r["scores"] for r in generation_rows]
                engine.tell([c.id for c in candidates], told)
                log.sync()
                self._checkpoint(engine, folder, list(baselines.values()))
                generation_stats = stats.add_generation(generation, generation_rows, time.perf_counter() - generation_started)
                bus.emit("generation_ends", generation, generation_stats)
                progress.best(tuple(generation_stats["best"]) if generation_stats["best"] else None, generation_stats["pareto_size"])
                if self.dump_results is not None:
                    self._result(rows).save(self.dump_results)
            reason = "exhausted" if engine.exhausted else "completed"
            result = self._result(rows)
        except KeyboardInterrupt:
            reason = "stopped"
            raise
        except (SearchFailedError, ObjectiveReturnError) as err:
            err.result = self._result(rows) if rows else None
            err.run_folder = folder
            raise
        finally:
            log.close()
            progress.close()
            self.worker.close()
            final = result if result is not None else (self._result(rows) if rows else None)
            result_csv = final.save(folder / "results.csv") if final is not None else None
            best = stats.best()
            bus.emit(
                "search_ends",
                reason,
                {
                    "reason": reason,
                    "evaluations": sum(r["status"] != "baseline" for r in rows),
                    "invalid": sum(r["status"] == "invalid" for r in rows),
                    "generations": engine.generation,
                    "best": best,
                    "pareto_size": None if config.num_objectives == 1 or final is None else len(final.pareto_front()),
                    "hypervolume": stats.last_hypervolume,
                    "wall_time_s": time.perf_counter() - started,
                    "run_folder": str(folder),
                    "result_csv": str(result_csv) if result_csv is not None else None,
                },
            )
            self.tracker_report = bus.close()
        self.current_generation = engine.generation
        assert result is not None
        if self.dump_results is not None:
            result.save(self.dump_results)
        return result
