"""Processes an objective starts die with its evaluation: at a timeout, after a crash and when
the search stops, on every worker that runs evaluations in processes."""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import Any

import pytest

import genetune as gt
from genetune.loading import CommandObjective

import group_objectives as gobj


def _wait_dead(pids: list[int], within: float = 10.0) -> list[int]:
    deadline = time.monotonic() + within
    while (left := [p for p in pids if gobj.alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _search(objective: object, worker: object, tmp: Path) -> gt.Search:
    cfg = gt.SearchConfiguration(generations=1, pool_size=6, seed=1)
    return gt.Search(objective, gobj.SPACE, cfg, worker_type=worker, cache_folder=tmp / "runs", disable_progress_bar=True, exit_on_failure=False)


WORKERS = ["native", "isolated", pytest.param("dask", marks=pytest.mark.slow)]


@pytest.mark.parametrize("worker", WORKERS)
@pytest.mark.parametrize("objective", [gobj.hangs, gobj.crashes], ids=["timeout", "crash"])
def test_the_processes_an_evaluation_started_die_with_it(tmp_path: Path, worker: str, objective: Any) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    kwargs = {"task_timeout": 1.5} if objective is gobj.hangs else {"task_timeout": 60.0}
    if worker == "dask":
        worker_obj: object = gt.DaskWorker(n_workers=2)
    else:
        worker_obj = worker
    result = _search(functools.partial(objective, str(pids)), worker_obj, tmp_path).start(num_workers=2, **kwargs)
    reasons = set(result.get_results()["reason"])
    assert len(reasons) == 1 and next(iter(reasons)).startswith("timeout" if objective is gobj.hangs else "crashed")
    started = [int(p.name) for p in pids.iterdir()]
    assert len(started) == 6
    assert _wait_dead(started) == []


def test_a_command_template_and_its_background_jobs_die_at_the_timeout(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    template = f"sleep 4321 & echo $! > {pids}/a-{{x}}; sleep 4322 & echo $! > {pids}/b-{{x}}; wait"
    result = _search(CommandObjective(template), "isolated", tmp_path).start(num_workers=2, task_timeout=1.5)
    assert set(result.get_results()["reason"]) == {"timeout: killed after 1.5 s"}
    started = [int(p.read_text()) for p in pids.iterdir()]
    assert len(started) == 12
    assert _wait_dead(started) == []


def test_the_pool_keeps_its_processes_between_evaluations(tmp_path: Path) -> None:
    """Leading a group changes nothing for a normal evaluation: the pool's processes stay."""
    def pid(params: dict[str, int]) -> float:
        return float(os.getpid())

    result = _search(pid, "native", tmp_path).start(num_workers=2)
    assert len(set(result.get_results()["score_1"])) <= 2
