"""Process workers: a pool of processes (`MultiProcessWorker`) or a fresh process per evaluation
(`IsolatedWorker`). A timeout kills the process running the evaluation, so a hung C call stops
too; a crashed process makes its candidate INVALID (``crashed: exit code N``).

Every pool process leads a process group of its own (:mod:`genetune.workers.process_groups`):
the processes an objective starts die with it when it times out or crashes, when a fresh
process ends (``IsolatedWorker``) and when the pool closes.

A two-phase objective (``build``/``measure``) is built on every free process of the pool and
measured one candidate at a time; the built artifact travels from the building process to the
measuring one, so it must pickle (a path, say). ``task_timeout`` bounds the build and the
measurement each."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pebble import ProcessExpired, ProcessPool

from genetune.evaluation import evaluate, invalid_score
from genetune.failures import crash_reason, timeout_reason
from genetune.objectives import BuildOutcome, MeasuredObjective
from genetune.scores import Score
from genetune.settings import get_settings
from genetune.shipping import pack, unpack
from genetune.workers.base import BatchWorker, Candidates, EvaluationSlots, RunOptions
from genetune.workers.process_groups import kill_group, lead_own_group

__all__ = ["UNGUARDED_MAIN_HINT", "IsoMultiProcessWorker", "IsolatedWorker", "MultiProcessWorker", "refuse_in_worker_bootstrap"]

#: What a script that starts a search at its top level must do (process workers import it again).
UNGUARDED_MAIN_HINT = (
    'put the search under `if __name__ == "__main__":` (worker processes started with "spawn" or '
    '"forkserver" import the main script again, and a search at its top level would start again in each of them)'
)


def refuse_in_worker_bootstrap(what: str) -> None:
    """Stops a process that is a starting worker importing the parent's main script (which called
    ``what`` at its top level): one line on stderr instead of a nested pool, and the parent's pool
    reports the cause (see :func:`broken_pool_error`)."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        print(f"genetune: {what} called while a worker process imports the main script: {UNGUARDED_MAIN_HINT}", file=sys.stderr, flush=True)
        raise SystemExit(1)


def _main_is_reimported(method: str) -> str | None:
    """The main script worker processes of ``method`` import again (None: they do not)."""
    if method == "fork":
        return None
    main = sys.modules.get("__main__")
    if main is None or getattr(getattr(main, "__spec__", None), "name", None) is not None:  # `python -m pkg`: not re-run
        return None
    path = getattr(main, "__file__", None)
    return str(path) if path else None


def broken_pool_error(err: BrokenProcessPool, method: str) -> RuntimeError:
    """A clear error for a pool whose worker processes died while starting."""
    script = _main_is_reimported(method)
    if script is not None:
        return RuntimeError(
            f"the process workers died while starting ({err}). Most likely {script} starts the search at its top level: "
            f"{UNGUARDED_MAIN_HINT}; or use worker_type=\"sequential\" / start_method=\"fork\""
        )
    return RuntimeError(f"the process workers died while starting ({err}); their output above says why")


def _register_and_lead(folder: str) -> None:
    """A pool process's initializer: leads its own process group and names itself in ``folder``
    (so the parent can kill what it leaves when it is gone)."""
    lead_own_group()
    Path(folder, str(os.getpid())).touch()


def _evaluate_pickled(token: str, blob: bytes, param_id: int | str, params: Any, num_objectives: int, worker: str) -> Score:
    return evaluate(unpack(token, blob), param_id, params, num_objectives, worker)


def _build_pickled(token: str, blob: bytes, param_id: int | str, params: Any, num_objectives: int, worker: str) -> BuildOutcome | Score:
    plan = unpack(token, blob)
    assert isinstance(plan, MeasuredObjective)
    return plan.build_step(param_id, params, num_objectives, worker)


def _measure_pickled(
    token: str, blob: bytes, param_id: int | str, params: Any, built: BuildOutcome, num_objectives: int, worker: str
) -> Score:
    plan = unpack(token, blob)
    assert isinstance(plan, MeasuredObjective)
    return plan.measure_step(param_id, params, built, num_objectives, worker)


@dataclass
class _Phases:
    """The two-phase schedule of one batch: builds on every free process, one measurement at a
    time (so ``task_timeout`` bounds each phase, never the wait for the measuring slot)."""

    todo: deque[tuple[int | str, Any]]
    ready: deque[tuple[int | str, Any, BuildOutcome]] = field(default_factory=deque)
    building: dict[Future[Any], tuple[int | str, Any, float]] = field(default_factory=dict)
    measuring: dict[Future[Any], tuple[int | str, Any, float]] = field(default_factory=dict)


class MultiProcessWorker(BatchWorker):
    """A pool of ``num_workers`` processes (default: one per CPU) that stays up for the whole
    search. Objectives are shipped with cloudpickle, so lambdas and closures work. ``start_method``
    defaults to the ``GENETUNE_PROCESS_START_METHOD`` setting (forkserver)."""

    respects_num_workers: ClassVar[bool] = True
    supports_timeout: ClassVar[bool] = True
    #: Tasks a process runs before it is replaced (0: never replaced).
    tasks_per_process: ClassVar[int] = 0

    def __init__(self, start_method: str | None = None) -> None:
        self._start_method = start_method
        self._pool: ProcessPool | None = None
        self._pool_size = 0
        #: Where the pool's processes name themselves (one empty file per pid).
        self._groups: str | None = None

    def _ensure_pool(self, num_workers: int) -> ProcessPool:
        if self._pool is None or self._pool_size != num_workers:
            self.close()
            method = self._start_method or get_settings().process_start_method
            context = multiprocessing.get_context(method)
            if method == "forkserver":
                # Forked children then start with genetune already imported (≈ms, not ≈1 s).
                context.set_forkserver_preload(["genetune.workers.process"])
            self._groups = tempfile.mkdtemp(prefix="genetune-pool-")
            self._pool = ProcessPool(
                max_workers=num_workers,
                max_tasks=self.tasks_per_process,
                context=context,
                initializer=_register_and_lead,
                initargs=(self._groups,),
            )
            self._pool_size = num_workers
        return self._pool

    def _kill_leftovers(self) -> None:
        """Kills what is left of the process groups of the pool processes that are gone (timed
        out, crashed, done with their tasks). Only once no process holds the pid: the group's id
        is then that pid, and the kernel gives it to no new process while the group has members."""
        if self._groups is None:
            return
        for entry in os.scandir(self._groups):
            pid = int(entry.name)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                kill_group(pid)
                os.unlink(entry.path)
            except PermissionError:  # another user's process has the pid: ours is long gone
                os.unlink(entry.path)

    def evaluate(self, function: Callable[[Any], Any], candidates: Candidates, num_objectives: int, options: RunOptions) -> list[Score]:
        timeout = options.task_timeout
        pool = self._ensure_pool(int(options.num_workers or os.cpu_count() or 1))
        if isinstance(function, MeasuredObjective) and function.two_phase:
            return self._evaluate_two_phase(pool, function, candidates, num_objectives, options)
        token, blob = pack(function)
        pending: dict[Future[Score], tuple[int | str, Any, float]] = {}
        for param_id, params in candidates:
            future: Future[Score] = pool.schedule(_evaluate_pickled, args=(token, blob, param_id, params, num_objectives, self.name), timeout=timeout)
            pending[future] = (param_id, params, time.perf_counter())
        scores: list[Score] = []
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                param_id, params, started = pending.pop(future)
                scores.append(options.report(self._outcome(future, param_id, params, num_objectives, started, timeout)))
            if self.tasks_per_process:
                self._kill_leftovers()
        return scores

    def _evaluate_two_phase(
        self, pool: ProcessPool, plan: MeasuredObjective, candidates: Candidates, num_objectives: int, options: RunOptions
    ) -> list[Score]:
        timeout = options.task_timeout
        token, blob = pack(plan)
        slots = self._pool_size
        state = _Phases(deque(candidates))
        scores: list[Score] = []
        quiet = plan.quiet  # then builds and measurements never overlap: batches of builds, then their measurements
        while state.todo or state.ready or state.building or state.measuring:
            if not state.measuring and state.ready and not (quiet and state.building):
                param_id, params, built = state.ready.popleft()
                args = (token, blob, param_id, params, built, num_objectives, self.name)
                state.measuring[pool.schedule(_measure_pickled, args=args, timeout=timeout)] = (param_id, params, time.perf_counter())
            # Builds fill the other processes; at most one process' worth of built, unmeasured candidates waits.
            while (
                state.todo
                and len(state.building) + len(state.measuring) < slots
                and len(state.ready) + len(state.building) < slots
                and not (quiet and (state.measuring or state.ready))
            ):
                param_id, params = state.todo.popleft()
                build_args = (token, blob, param_id, params, num_objectives, self.name)
                state.building[pool.schedule(_build_pickled, args=build_args, timeout=timeout)] = (param_id, params, time.perf_counter())
            done, _ = wait([*state.building, *state.measuring], return_when=FIRST_COMPLETED)
            for future in done:
                if future in state.building:
                    param_id, params, started = state.building.pop(future)
                    outcome = self._outcome(future, param_id, params, num_objectives, started, timeout)
                    if isinstance(outcome, BuildOutcome):
                        state.ready.append((param_id, params, outcome))
                        continue
                else:
                    param_id, params, started = state.measuring.pop(future)
                    outcome = self._outcome(future, param_id, params, num_objectives, started, timeout)
                scores.append(options.report(outcome))
        return scores

    def open_slots(self, function: Callable[[Any], Any], num_objectives: int, options: RunOptions) -> EvaluationSlots:
        """One slot per process of the pool; a two-phase objective's builds fill the free
        processes and its measurements run one at a time, as in :meth:`evaluate`."""
        pool = self._ensure_pool(int(options.num_workers or os.cpu_count() or 1))
        return _PoolSlots(self, pool, function, num_objectives, options.task_timeout)

    def _outcome(
        self, future: Future[Any], param_id: int | str, params: Any, num_objectives: int, started: float, timeout: float | None
    ) -> Any:
        elapsed = time.perf_counter() - started
        try:
            return future.result()
        except FutureTimeout:
            assert timeout is not None
            self._kill_leftovers()
            return invalid_score(param_id, params, num_objectives, timeout_reason(timeout), elapsed, worker=self.name)
        except ProcessExpired as err:
            kill_group(err.pid)
            self._kill_leftovers()
            return invalid_score(param_id, params, num_objectives, crash_reason(err.exitcode), elapsed, worker=self.name)
        except BrokenProcessPool as err:  # no process could start: no candidate can be evaluated
            raise broken_pool_error(err, self._start_method or get_settings().process_start_method) from None  # the cause is in the message

    def __getstate__(self) -> dict[str, Any]:
        # A live pool stays with its process; a restored worker starts its own.
        return {**self.__dict__, "_pool": None, "_pool_size": 0, "_groups": None}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.stop()  # type: ignore[no-untyped-call]  # SIGTERM: each process kills its group
            self._pool.join()
            self._pool = None
        if self._groups is not None:
            self._kill_leftovers()  # also of those that ignored SIGTERM (a hung C call)
            shutil.rmtree(self._groups, ignore_errors=True)
            self._groups = None


class _PoolSlots(EvaluationSlots):
    """The pool's processes as evaluation slots (``schedule="steady"``)."""

    def __init__(
        self, worker: MultiProcessWorker, pool: ProcessPool, function: Callable[[Any], Any], num_objectives: int, timeout: float | None
    ) -> None:
        self.capacity = worker._pool_size
        self._worker = worker
        self._pool = pool
        self._num_objectives = num_objectives
        self._timeout = timeout
        self._token, self._blob = pack(function)
        self._two_phase = isinstance(function, MeasuredObjective) and function.two_phase
        self._quiet = isinstance(function, MeasuredObjective) and function.quiet
        # Plain evaluations run in ``building`` (one phase); two-phase ones move on to ``measuring``.
        self._state = _Phases(deque())

    def submit(self, param_id: int | str, params: Any) -> None:
        if not self._two_phase:
            args = (self._token, self._blob, param_id, params, self._num_objectives, self._worker.name)
            future = self._pool.schedule(_evaluate_pickled, args=args, timeout=self._timeout)
            self._state.building[future] = (param_id, params, time.perf_counter())
            return
        self._state.todo.append((param_id, params))
        self._schedule()

    def _schedule(self) -> None:
        """Starts a measurement when none runs, and builds on the other processes (the rules of
        ``MultiProcessWorker._evaluate_two_phase``)."""
        state, quiet, name = self._state, self._quiet, self._worker.name
        if not state.measuring and state.ready and not (quiet and state.building):
            param_id, params, built = state.ready.popleft()
            args = (self._token, self._blob, param_id, params, built, self._num_objectives, name)
            state.measuring[self._pool.schedule(_measure_pickled, args=args, timeout=self._timeout)] = (param_id, params, time.perf_counter())
        while (
            state.todo
            and len(state.building) + len(state.measuring) < self.capacity
            and len(state.ready) + len(state.building) < self.capacity
            and not (quiet and (state.measuring or state.ready))
        ):
            param_id, params = state.todo.popleft()
            build_args = (self._token, self._blob, param_id, params, self._num_objectives, name)
            state.building[self._pool.schedule(_build_pickled, args=build_args, timeout=self._timeout)] = (param_id, params, time.perf_counter())

    def wait(self, timeout: float | None = None) -> list[Score]:
        state = self._state
        deadline = None if timeout is None else time.perf_counter() + timeout
        while state.building or state.measuring:
            left = None if deadline is None else max(0.0, deadline - time.perf_counter())
            done, _ = wait([*state.building, *state.measuring], timeout=left, return_when=FIRST_COMPLETED)
            scores: list[Score] = []
            for future in done:
                phase = state.building if future in state.building else state.measuring
                param_id, params, started = phase.pop(future)
                outcome = self._worker._outcome(future, param_id, params, self._num_objectives, started, self._timeout)
                if isinstance(outcome, BuildOutcome):
                    state.ready.append((param_id, params, outcome))
                else:
                    scores.append(outcome)
            if self._worker.tasks_per_process:
                self._worker._kill_leftovers()  # what the processes that ended left running
            if self._two_phase:
                self._schedule()
            if scores or (deadline is not None and time.perf_counter() >= deadline):
                return scores
        return []

    @property
    def in_flight(self) -> int:
        state = self._state
        return len(state.todo) + len(state.ready) + len(state.building) + len(state.measuring)

    def close(self) -> None:
        state = self._state
        for future in [*state.building, *state.measuring]:
            future.cancel()
        state.todo.clear()
        state.ready.clear()
        state.building.clear()
        state.measuring.clear()


class IsolatedWorker(MultiProcessWorker):
    """A fresh process for every evaluation (at most ``num_workers`` at once): nothing leaks from
    one evaluation to the next (CUDA contexts, global state, leaked memory)."""

    tasks_per_process: ClassVar[int] = 1


#: CompileIQ's name for the isolated worker.
IsoMultiProcessWorker = IsolatedWorker
