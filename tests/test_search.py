"""The Search API: CompileIQ-shaped searches, workers, failures, normalization, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import genetune as gt
import genetune.search_spaces as ss
from genetune.scores import Score
from tests_support import config as small_config
from tests_support import table

import objectives as obj

WORKERS = ["sequential", "native", "isolated"]


def config(**kw: Any) -> gt.SearchConfiguration:
    return small_config(**{"seed": 11, **kw})


def search(objective: Any = obj.quadratic, space: Any = None, worker: Any = "sequential", tmp: Path | None = None, **kw: Any) -> gt.Search:
    cfg = kw.pop("cfg", None) or config()
    return gt.Search(objective, space or obj.SPACE, cfg, worker_type=worker, cache_folder=tmp, disable_progress_bar=True, **kw)


# ----- CompileIQ's example shapes, imports changed only -------------------------------------------


def test_single_objective_example(tmp_path: Path) -> None:
    result = search(tmp=tmp_path).start()
    df = result.get_results()
    assert list(df.columns[:4]) == ["generation", "id", "params", "score_1"]
    assert len(df) == 3 * 8
    best = result.get_best_result()
    assert best["score_1"] == df["score_1"].min()
    assert obj.quadratic(best["params"]) == best["score_1"]


def test_multi_objective_example_with_two_workers(tmp_path: Path) -> None:
    cfg = config(num_objectives=2, generations=3, pool_size=12)
    result = search(obj.two_objectives, worker="native", tmp=tmp_path, cfg=cfg).start(num_workers=2)
    front = result.pareto_front()
    assert front
    scores = np.array([[r["score_1"], r["score_2"]] for r in front])
    for a in scores:
        assert not any(np.all(b <= a) and np.any(b < a) for b in scores)


def test_nested_space_shapes_reach_the_objective(tmp_path: Path) -> None:
    seen: list[Any] = []

    def objective(params: dict[str, Any]) -> float:
        seen.append(params)
        return obj.quadratic(params)

    search(objective, tmp=tmp_path).start()
    assert seen and all(isinstance(p["opt"], dict) and "level" in p["opt"] for p in seen)
    assert any("unroll" not in p["opt"] for p in seen) and any("flag" not in p for p in seen)


def test_list_search_space(tmp_path: Path) -> None:
    space = [{"a": ss.range(0, 3)}, {"b": ss.choice(["u", "v"])}]
    result = search(lambda p: p[0]["a"] + (p[1]["b"] == "u"), space=space, tmp=tmp_path, cfg=config(pool_size=6, generations=2)).start()
    assert all(isinstance(p, list) and len(p) == 2 for p in result.get_results()["params"])


def test_normalization_example(tmp_path: Path) -> None:
    result = search(obj.with_baseline, tmp=tmp_path, cfg=config(normalize=True)).start()
    df = result.get_results()
    baseline = df[df["status"] == "baseline"]
    assert len(baseline) == 1 and baseline.iloc[0]["params"] == {} and baseline.iloc[0]["score_1"] == 10.0
    evaluated = df[df["status"] != "baseline"]
    np.testing.assert_allclose(evaluated["norm_score_1"], evaluated["score_1"] / 10.0)
    assert result.get_best_result()["status"] != "baseline"


def test_failed_baseline_aborts(tmp_path: Path) -> None:
    with pytest.raises(gt.SearchFailedError, match="Baseline"):
        search(obj.quadratic, tmp=tmp_path, cfg=config(normalize=True)).start()


class DoubleWorker(gt.BaseWorker):
    """CompileIQ's custom-worker shape: run() returns one Score per candidate."""

    respects_num_workers = False
    supports_timeout = False

    def run(self, function: Any, params_pool: Any, params_ids: Any, num_function_returns: int = 1, **kwargs: Any) -> list[Score]:
        assert kwargs["dummy_arg"] == 42
        return [Score(param_id=i, params=p, score=2 * function(p)) for i, p in zip(params_ids, params_pool, strict=True)]


@pytest.mark.parametrize("as_class", [True, False])
def test_custom_worker(tmp_path: Path, as_class: bool) -> None:
    worker = DoubleWorker if as_class else DoubleWorker()
    result = search(worker=worker, tmp=tmp_path).start(dummy_arg=42)
    df = result.get_results()
    assert all(row.score_1 == 2 * obj.quadratic(row.params) for row in df.itertuples())


# ----- workers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("worker", [*WORKERS, "async"])
def test_every_recorded_score_is_the_objective_on_its_params(tmp_path: Path, worker: str) -> None:
    objective = obj.async_quadratic if worker == "async" else obj.quadratic
    result = search(objective, worker=worker, tmp=tmp_path).start(num_workers=None if worker == "sequential" else 2)
    df = result.get_results()
    assert len(df) == 24
    for row in df.itertuples():
        assert row.score_1 == obj.quadratic(row.params)
        assert row.status == "valid"
        assert row.metadata["pid"] > 0 and row.metadata["worker"]


@pytest.mark.slow
def test_one_or_many_workers_give_the_identical_table(tmp_path: Path) -> None:
    """The generational schedule: bit for bit whatever the number of workers."""
    cfg = config(schedule="generational")
    runs = [("sequential", None), ("native", 1), ("native", 2), ("isolated", 2)]
    tables = [table(search(worker=w, tmp=tmp_path, cfg=cfg).start(num_workers=n)) for w, n in runs]
    assert all(t == tables[0] for t in tables[1:])


@pytest.mark.parametrize("worker", ["sequential", "native", "isolated"])
def test_failures_are_invalid_with_reasons_and_the_search_goes_on(tmp_path: Path, worker: str) -> None:
    space = {"x": ss.range(-3, 5)}
    objective = (lambda p: obj.flaky(p) if p["x"] != 5 else 1.0) if worker == "sequential" else obj.flaky
    result = search(objective, space=space, worker=worker, tmp=tmp_path, cfg=config(pool_size=9, generations=1)).start()
    df = result.get_results().set_index("id")
    reasons = {row.params["x"]: row.reason for row in df.itertuples()}
    assert len(reasons) == 9
    assert all(reasons[x].startswith("exception: RuntimeError: negative x") for x in (-3, -2, -1))
    assert reasons[4] == "objective returned '*'"
    if worker != "sequential":
        assert reasons[5] == "crashed: exit code 3"
    assert all(reasons[x] == "" for x in (0, 1, 2, 3))
    assert df["score_1"].isna().sum() == (4 if worker == "sequential" else 5)


def test_wrong_return_type_aborts_naming_the_candidate(tmp_path: Path) -> None:
    with pytest.raises(gt.ObjectiveReturnError, match=r"candidate \d+ .*'fast'") as info:
        search(obj.wrong_type, tmp=tmp_path).start()
    assert info.value.run_folder is not None


@pytest.mark.parametrize("worker", ["sequential", "native"])
def test_wrong_return_count_aborts(tmp_path: Path, worker: str) -> None:
    with pytest.raises(gt.ObjectiveReturnError, match="num_objectives=2"):
        search(obj.wrong_count, worker=worker, tmp=tmp_path, cfg=config(num_objectives=2, pool_size=12)).start(num_workers=2 if worker == "native" else None)


def test_all_failing_first_generation_stops_but_keeps_results(tmp_path: Path) -> None:
    with pytest.raises(gt.SearchFailedError, match="All 8 objective evaluations of the first generation failed") as info:
        search(obj.always_fails, tmp=tmp_path).start()
    assert info.value.result is not None and len(info.value.result.get_results()) == 8
    rows = [json.loads(line) for line in (Path(str(info.value.run_folder)) / "evaluations.jsonl").read_text().splitlines()]
    assert len(rows) == 8
    result = search(obj.always_fails, tmp=tmp_path, exit_on_failure=False).start()
    assert len(result.get_results()) == 24
    with pytest.raises(ValueError, match="invalid"):
        result.get_best_result()


@pytest.mark.slow
@pytest.mark.parametrize("worker", ["native", "isolated", "async"])
def test_timeout_stops_a_hung_evaluation(tmp_path: Path, worker: str) -> None:
    objective = obj.async_hangs if worker == "async" else obj.hangs_in_c
    space = {"x": ss.range(-1, 2)}
    started = time.monotonic()
    result = search(objective, space=space, worker=worker, tmp=tmp_path, cfg=config(pool_size=6, generations=1, init_with_true_random_threshold=0.0)).start(
        num_workers=4, task_timeout=1
    )
    assert time.monotonic() - started < 15
    df = result.get_results()
    hung = df[df["params"].map(lambda p: p["x"] <= 0)]
    assert len(hung) == 2 and all(r.startswith("timeout") for r in hung["reason"])
    assert df[df["params"].map(lambda p: p["x"] > 0)]["status"].eq("valid").all()


def test_unsupported_options_warn(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="task_timeout is not supported by SequentialWorker"):
        search(tmp=tmp_path).start(task_timeout=5)
    with pytest.warns(UserWarning, match="num_workers is not supported"):
        search(tmp=tmp_path).start(num_workers=3)
    with pytest.raises(ValueError, match="num_workers"):
        search(tmp=tmp_path).start(num_workers=0)


def test_worker_type_forms(tmp_path: Path) -> None:
    for form in [gt.WorkerTypes.SEQUENTIAL, "sequential", gt.SequentialWorker, gt.SequentialWorker()]:
        assert isinstance(search(worker=form, tmp=tmp_path).worker, gt.SequentialWorker)
    assert isinstance(search(worker="isolated", tmp=tmp_path).worker, gt.IsoMultiProcessWorker)
    with pytest.raises(ValueError, match="worker_type"):
        search(worker="ray", tmp=tmp_path)


# ----- sample, start twice, settings, imports -----------------------------------------------------


def test_sample_shapes_without_evaluating(tmp_path: Path) -> None:
    calls: list[Any] = []
    s = search(lambda p: calls.append(p) or 0.0, tmp=tmp_path)
    samples = s.sample(5)
    assert len(samples) == 5 and not calls
    assert all(isinstance(p, dict) and "opt" in p for p in samples)
    assert len(s.sample(40)) == 40


def test_start_twice_gives_the_same_seeded_result(tmp_path: Path) -> None:
    s = search(tmp=tmp_path)
    assert table(s.start()) == table(s.start())


def test_cache_folder_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENETUNE_CACHE_FOLDER", str(tmp_path / "from-env"))
    s = search()
    s.start()
    assert s.run_folder is not None and s.run_folder.parent == tmp_path / "from-env"
    s2 = search(tmp=tmp_path / "from-arg")
    s2.start()
    assert s2.run_folder is not None and s2.run_folder.parent == tmp_path / "from-arg"


def test_import_has_no_side_effects() -> None:
    code = (
        "import multiprocessing, logging; before = (multiprocessing.get_start_method(allow_none=True), "
        "len(logging.getLogger().handlers)); import genetune; "
        "after = (multiprocessing.get_start_method(allow_none=True), len(logging.getLogger().handlers)); "
        "assert before == after, (before, after)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\['x'\]"):
        search(space={"x": ss.RangeParam(start=3, end=1)}, tmp=tmp_path)
    with pytest.raises(ValueError, match="generations"):
        search(cfg={"generations": 0}, tmp=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        gt.Search(42, obj.SPACE, config())  # type: ignore[arg-type]


# ----- checkpoint and resume ---------------------------------------------------------------------


def test_checkpoint_is_written_every_generation(tmp_path: Path) -> None:
    s = search(tmp=tmp_path)
    s.start()
    assert s.run_folder is not None
    payload = json.loads((s.run_folder / "checkpoint.json").read_text())
    assert payload["generation"] == 3 and payload["seed"] == 11 and payload["versions"]["genetune"]
    assert len((s.run_folder / "evaluations.jsonl").read_text().splitlines()) == 24


def test_resume_of_a_finished_run_reevaluates_nothing(tmp_path: Path) -> None:
    s = search(tmp=tmp_path)
    first = s.start()
    calls: list[Any] = []
    again = gt.Search.resume(s.run_folder, lambda p: calls.append(p) or obj.quadratic(p), disable_progress_bar=True)  # type: ignore[arg-type]
    assert not calls and table(again) == table(first)


def test_resume_refuses_another_space_or_config(tmp_path: Path) -> None:
    s = search(tmp=tmp_path)
    s.start()
    with pytest.raises(gt.CheckpointMismatchError, match="search space"):
        gt.Search.resume(s.run_folder, obj.quadratic, search_space={"x": ss.range(0, 3)})
    with pytest.raises(gt.CheckpointMismatchError, match="configuration"):
        gt.Search.resume(s.run_folder, obj.quadratic, search_config=config(mutate_rate=0.3))
    gt.Search.resume(s.run_folder, obj.quadratic, search_config=config(mutate_rate=0.3), allow_mismatch=True, disable_progress_bar=True)
    with pytest.raises(FileNotFoundError):
        gt.Search.resume(tmp_path / "nowhere")


KILLED_AT_ONCE = textwrap.dedent(
    """
    import os, signal, sys
    import genetune as gt
    import objectives as obj
    from genetune.trackers import JsonlTracker

    def dies(params):  # the process dies during its first evaluation: nothing was ever evaluated
        os.kill(os.getpid(), signal.SIGKILL)

    if __name__ == "__main__":
        cfg = gt.SearchConfiguration(generations=3, pool_size=8, seed=11)
        gt.Search(dies, obj.SPACE, cfg, worker_type="sequential", cache_folder=sys.argv[1], trackers=[JsonlTracker(sys.argv[2])],
                  disable_progress_bar=True, exit_on_failure=False).start()
    """
)


def test_a_run_folder_killed_before_its_first_evaluation_resumes_with_its_options(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """The first checkpoint exists with the folder; resume restores the constructor's options
    (trackers, progress bar off, exit_on_failure) unless given."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    script = tmp_path / "dies.py"
    script.write_text(KILLED_AT_ONCE)
    cache, events = tmp_path / "runs", tmp_path / "events.jsonl"
    done = subprocess.run([sys.executable, str(script), str(cache), str(events)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    (folder,) = [p for p in cache.iterdir() if not p.name.startswith(".")]
    # No evaluation recorded (the steady schedule logged the engine's first ask).
    names = sorted(p.name for p in folder.iterdir())
    assert names in (["checkpoint.json", "schedule.jsonl"], ["checkpoint.json", "checkpoint.previous.json", "schedule.jsonl"])
    assert json.loads((folder / "checkpoint.json").read_text())["generation"] == 0
    capfd.readouterr()

    resumed = gt.Search.resume(folder, obj.quadratic)
    fresh = search(tmp=tmp_path / "fresh").start()
    assert table(resumed) == table(fresh)
    assert "gen 1/3" not in capfd.readouterr().err  # the progress bar stayed off, as the original search said
    kinds = [json.loads(line)["event"] for line in events.read_text().splitlines()]
    assert kinds.count("search_starts") == 2 and kinds[-1] == "search_ends"  # the JSONL tracker came back
    # Options given to resume win over the saved ones.
    again = gt.Search.resume(folder, obj.quadratic, trackers=[], disable_progress_bar=False)
    assert table(again) == table(fresh)
    assert [json.loads(line)["event"] for line in events.read_text().splitlines()].count("search_starts") == 2


def test_resume_names_the_trackers_it_could_not_keep(tmp_path: Path) -> None:
    class Unpicklable:
        lock = None

        def __init__(self) -> None:
            import threading

            self.lock = threading.Lock()

        def search_ends(self, reason: str, summary: dict[str, Any]) -> None:
            pass

    s = search(tmp=tmp_path, trackers=[Unpicklable()])
    s.start()
    with pytest.warns(UserWarning, match="without the tracker\\(s\\) Unpicklable"):
        gt.Search.resume(s.run_folder, obj.quadratic)


UNGUARDED = textwrap.dedent(
    """
    import genetune as gt
    import objectives as obj

    print("module level of the main script")
    result = gt.Search(obj.quadratic, obj.SPACE, {"generations": 2, "pool_size": 6, "seed": 1}, worker_type="native",
                       disable_progress_bar=True).start(num_workers=2)
    print("best", result.get_best_result()["score_1"])
    """
)


def test_a_search_at_the_top_of_a_script_fails_fast_with_the_fix(tmp_path: Path) -> None:
    """Process workers import the main script again: a search at its top level (no
    `if __name__ == "__main__":`) fails within seconds with one error naming the fix."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    env["GENETUNE_CACHE_FOLDER"] = str(tmp_path / "runs")
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stdout + done.stderr
    assert elapsed < 60, elapsed  # seconds (~8 s on a loaded 2-core machine), not a hang
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: the process workers died while starting") and 'if __name__ == "__main__":' in last, last
    assert str(script) in last
    # The workers stop at the search with one line each, no nested pools or tracebacks of theirs.
    assert "bootstrapping phase" not in done.stderr and "forkserver.py" not in done.stderr, done.stderr
    assert done.stderr.count("Search.start() called while a worker process imports the main script") >= 1
    # Only the real search made a run folder.
    assert len([p for p in (tmp_path / "runs").iterdir() if not p.name.startswith(".")]) == 1


KILLED_SEARCH = textwrap.dedent(
    """
    import sys
    import genetune as gt
    import objectives as obj
    cfg = gt.SearchConfiguration(generations=6, pool_size=10, seed=5, normalize=True, schedule=sys.argv[2])
    gt.Search(obj.slow_with_baseline, obj.SPACE, cfg, worker_type="native", cache_folder=sys.argv[1],
              disable_progress_bar=True).start(num_workers=int(sys.argv[3]))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize(("schedule", "workers"), [("steady", 1), ("generational", 2)])
def test_sigkilled_search_resumes_to_the_identical_table(tmp_path: Path, schedule: str, workers: int) -> None:
    """Killed mid-run, resumed on the sequential worker: the table of an uninterrupted run with
    one worker (generational: with any number of workers)."""
    cache = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    script = tmp_path / "run.py"
    script.write_text("if __name__ == '__main__':\n" + textwrap.indent(KILLED_SEARCH, "    "))
    proc = subprocess.Popen([sys.executable, str(script), str(cache), schedule, str(workers)], env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    log: Path | None = None
    while time.monotonic() < deadline:
        logs = list(cache.glob("*/evaluations.jsonl"))
        if logs and len(logs[0].read_text().splitlines()) >= 25:
            log = logs[0]
            break
        assert proc.poll() is None, "the search ended before it could be killed"
        time.sleep(0.02)
    assert log is not None, "the search made no progress"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {json.loads(line)["id"] for line in log.read_text().splitlines() if line.endswith("}")}
    assert 25 <= len(before) < 61

    evaluated: list[Any] = []

    def counting(params: Any) -> float:
        evaluated.append(params)
        return obj.slow_with_baseline(params)

    resumed = gt.Search.resume(log.parent, counting, worker_type="sequential", disable_progress_bar=True)
    assert len(evaluated) == 61 - len(before)
    fresh = gt.Search(
        obj.slow_with_baseline,
        obj.SPACE,
        gt.SearchConfiguration(generations=6, pool_size=10, seed=5, normalize=True, schedule=schedule),
        worker_type="sequential",
        cache_folder=tmp_path / "fresh",
        disable_progress_bar=True,
    ).start()
    assert table(resumed) == table(fresh)
