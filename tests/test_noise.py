"""Noisy measurements: repeats, the re-measurement phase and its best, bad settings, resume."""

from __future__ import annotations

import json
import statistics
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

import genetune as gt
from genetune.objectives import MeasuredObjective, TwoPhase
from genetune.remeasure import own_share, select
from genetune.smoothing import neighbour_count, smoothed
from genetune.trackers import JsonlTracker

from noise_objectives import SPACE, Counting, MeasureOnly, noisy, true_value
from tests_support import config


def _search(tmp_path: Path, objective: Any, worker: Any = "sequential", **fields: Any) -> gt.Search:
    fields.setdefault("seed", 3)
    return gt.Search(objective, SPACE, config(**fields), worker_type=worker, cache_folder=tmp_path, disable_progress_bar=True)


def test_plain_search_is_unchanged_by_the_new_defaults(tmp_path: Path) -> None:
    search = _search(tmp_path, true_value)
    assert search._shipped_objective() is true_value  # shipped as is: today's behaviour exactly
    result = search.start()
    assert set(result.get_results()["status"]) == {"valid"}
    assert "remeasured_mean" not in result.get_best_result()
    assert result.remeasured().empty


def test_repeats_score_is_the_median_and_the_row_keeps_every_measurement(tmp_path: Path) -> None:
    result = _search(tmp_path, noisy, repeats=5).start()
    df = result.get_results()
    for record in df.to_dict("records"):
        measured = record["metadata"]["measurements"]
        assert len(measured) == 5
        assert record["score_1"] == pytest.approx(statistics.median(measured))
        assert record["metadata"]["stdev"] == pytest.approx(statistics.stdev(measured))
        assert record["metadata"]["repeats"] == 5


def test_repeats_with_an_invalid_measurement_make_the_candidate_invalid(tmp_path: Path) -> None:
    calls = {"n": 0}

    def sometimes(params: dict[str, Any]) -> Any:
        calls["n"] += 1
        return "*" if calls["n"] % 3 == 2 else 1.0

    search = gt.Search(
        sometimes, SPACE, config(generations=1, repeats=3, seed=1), worker_type="sequential",
        cache_folder=tmp_path, disable_progress_bar=True, exit_on_failure=False,
    )
    result = search.start()
    df = result.get_results()
    assert (df["status"] == "invalid").all()
    assert df["reason"].iloc[0] == "objective returned '*' (measurement 2 of 3)"


@pytest.mark.parametrize(
    ("field", "value"),
    [("repeats", 0), ("repeats", -1), ("remeasure_top", -1), ("remeasure_repeats", 1), ("repeats", 1.5)],
)
def test_bad_noise_settings_are_rejected_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValidationError, match=field):
        gt.SearchConfiguration(generations=2, **{field: value})


def test_racing_needs_one_objective() -> None:
    with pytest.raises(ValidationError, match="racing compares one objective"):
        gt.SearchConfiguration(generations=2, num_objectives=2, racing=True)


def test_measure_without_build_is_rejected() -> None:
    with pytest.raises(TypeError, match="has measure\\(\\) but no build\\(\\)"):
        gt.Search(MeasureOnly(), SPACE, config())


def test_build_without_measure_is_rejected() -> None:
    class BuildOnly:
        def build(self, params: Any) -> Any:
            return params

    with pytest.raises(TypeError, match="has build\\(\\) but no measure\\(\\)"):
        gt.Search(BuildOnly(), SPACE, config())
    with pytest.raises(TypeError, match="measure must be callable"):
        TwoPhase(lambda p: p, 3)  # type: ignore[arg-type]


def test_remeasure_rows_and_the_best_by_remeasured_mean(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    search = gt.Search(
        noisy, SPACE, config(seed=3, remeasure_top=3, remeasure_repeats=6), worker_type="sequential",
        cache_folder=tmp_path, disable_progress_bar=True, trackers=[JsonlTracker(log)],
    )
    result = search.start()
    df = result.get_results()
    again = df[df["status"] == "remeasure"]
    assert len(again) == 3 * 6
    of = [m["remeasure_of"] for m in again["metadata"]]
    # 3 distinct candidates of the search itself (the best by its own measurement among them), 6 rounds each
    searched = df[df["status"] == "valid"].sort_values("score_1", kind="stable")
    assert len(set(of)) == 3 and set(of) <= set(searched["id"])
    assert searched["id"].iloc[0] in set(of)
    assert sorted(m["round"] for m in again["metadata"]) == sorted(list(range(6)) * 3)
    table = result.remeasured().set_index("id")
    best = result.get_best_result()
    assert isinstance(best, dict)
    assert best["remeasured_n"] == 6
    assert best["remeasured_mean"] == pytest.approx(min(table["mean_1"]))
    mine = again[[m["remeasure_of"] == best["id"] for m in again["metadata"]]]["score_1"]
    assert best["remeasured_mean"] == pytest.approx(mine.mean())
    low, high = best["remeasured_ci95"]
    assert low < best["remeasured_mean"] < high
    # re-measurements are neither evaluations nor Pareto/best candidates of their own
    assert result.summary()["evaluations"] == 3 * 8
    # they reach the trackers, and the summary names the re-measured winner
    events = [json.loads(line) for line in log.read_text().splitlines()]
    posted = [e for e in events if e["event"] == "post_objective" and e["score"]["status"] == "remeasure"]
    assert len(posted) == 18
    end = next(e for e in events if e["event"] == "search_ends")
    assert end["summary"]["remeasured_best_id"] == best["id"]
    assert end["summary"]["remeasured_best_n"] == 6
    # and the table on disk gives the same winner
    loaded = gt.SearchResult.from_csv(Path(search.run_folder) / "results.csv")
    assert loaded.get_best_result()["id"] == best["id"]


def test_normalized_remeasure_includes_the_baseline_round_by_round(tmp_path: Path) -> None:
    result = _search(tmp_path, noisy, normalize=True, remeasure_top=2, remeasure_repeats=4).start()
    df = result.get_results()
    again = df[df["status"] == "remeasure"]
    base = again[[m["remeasure_of"] == "baseline" for m in again["metadata"]]]
    assert len(base) == 4 and (base["norm_score_1"] == 1.0).all()
    for record in again.to_dict("records"):
        r = record["metadata"]["round"]
        b = base[[m["round"] == r for m in base["metadata"]]]["score_1"].iloc[0]
        assert record["norm_score_1"] == pytest.approx(record["score_1"] / b)
    best = result.get_best_result()
    assert best["id"] != "baseline" and best["remeasured_n"] == 4


def test_remeasure_picks_the_truly_better_of_a_lucky_pair(tmp_path: Path) -> None:
    """Two candidates: one truly better, one whose single search measurement was lucky."""
    state = {"first": True}

    def lucky(params: dict[str, Any]) -> float:
        value = true_value(params)
        if params == {"x": 0, "y": 0} and state["first"]:
            state["first"] = False
            return -100.0  # the winner's curse: one lucky measurement
        return value

    plain = _search(tmp_path, lucky, generations=1).start().get_best_result()
    assert plain["params"] == {"x": 0, "y": 0} or plain["score_1"] >= 0
    state["first"] = True
    best = _search(tmp_path, lucky, generations=1, remeasure_top=8, remeasure_repeats=3).start().get_best_result()
    assert best["remeasured_mean"] == pytest.approx(true_value(best["params"]))
    assert best["params"] != {"x": 0, "y": 0} or true_value({"x": 0, "y": 0}) == best["remeasured_mean"]


def test_several_objectives_remeasure_up_to_top_of_the_front(tmp_path: Path) -> None:
    def two(params: dict[str, Any]) -> tuple[float, float]:
        return noisy(params), float(params["x"])

    search = gt.Search(
        two, SPACE, config(num_objectives=2, seed=2, remeasure_top=3, remeasure_repeats=3), worker_type="sequential",
        cache_folder=tmp_path, disable_progress_bar=True,
    )
    result = search.start()
    again = result.get_results()
    again = again[again["status"] == "remeasure"]
    assert 3 <= len(again) <= 9 and len(again) % 3 == 0
    front = result.get_best_result()
    assert isinstance(front, list) and front
    assert all(len(r["remeasured_mean"]) == 2 and r["remeasured_n"] == 3 for r in front)


def test_resume_during_the_remeasure_phase(tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    searched = 3 * 8  # generations * pool_size, one measurement each

    class StopsDuringRemeasure(Counting):
        def __call__(self, params: dict[str, Any]) -> float:
            n = len(calls.read_text().splitlines()) if calls.exists() else 0
            if n == searched + 2 and not (tmp_path / "stopped").exists():
                (tmp_path / "stopped").write_text("")
                raise KeyboardInterrupt
            return super().__call__(params)

    objective = StopsDuringRemeasure(str(calls))
    search = _search(tmp_path, objective, remeasure_top=2, remeasure_repeats=3)
    with pytest.raises(KeyboardInterrupt):
        search.start()
    assert search.run_folder is not None
    assert len(calls.read_text().splitlines()) == searched + 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = gt.Search.resume(search.run_folder, objective, worker_type="sequential", disable_progress_bar=True)
    # nothing of the search is measured again; the phase runs whole once more
    assert len(calls.read_text().splitlines()) == searched + 2 + 2 * 3
    df = result.get_results()
    assert (df["status"] == "remeasure").sum() == 6
    assert result.get_best_result()["remeasured_n"] == 3
    # a second resume re-measures nothing
    gt.Search.resume(search.run_folder, objective, worker_type="sequential", disable_progress_bar=True)
    assert len(calls.read_text().splitlines()) == searched + 2 + 2 * 3


def test_measured_objective_called_directly_gives_the_median() -> None:
    values = iter([3.0, 1.0, 2.0])
    plan = MeasuredObjective(lambda p: next(values), repeats=3)
    assert plan({}) == 2.0


# ----- racing -------------------------------------------------------------------------------------


def _raced(tmp_path: Path, objective: Any, **fields: Any) -> tuple[gt.Search, gt.SearchResult]:
    search = gt.Search(
        objective, SPACE, config(seed=4, racing=True, generations=4, **fields), worker_type="sequential",
        cache_folder=tmp_path, disable_progress_bar=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return search, search.start()


def test_racing_measures_challengers_again_within_the_budget(tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    search, result = _raced(tmp_path, Counting(str(calls)))
    df = result.get_results()
    race = df[df["status"] == "race"]
    assert len(race) > 0
    measured = len(calls.read_text().splitlines())
    budget = 4 * 8
    # every measurement is a row; racing's count toward the budget, which is never exceeded
    assert measured == len(df) <= budget
    assert measured > budget - 8  # the search stopped only when a whole generation no longer fitted
    assert result.summary()["evaluations"] == measured
    # race rows name their candidate and are numbered by measurement
    for record in race.to_dict("records"):
        of = record["metadata"]["race_of"]
        assert record["id"].startswith(f"race-{of}-")
        assert of in set(df.loc[df["status"] == "valid", "id"])
    # the doubling schedule: a raced candidate has 2, 4, 8 or 16 measurements (or its top-ups)
    best = result.get_best_result()
    assert best["race_n"] >= 2
    mine = race[[m["race_of"] == best["id"] for m in race["metadata"]]]["score_1"].tolist()
    assert best["race_mean"] == pytest.approx(statistics.fmean([best["score_1"], *mine]))


def test_racing_tells_the_engine_the_mean_and_resumes_identically(tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    search, full = _raced(tmp_path / "a", Counting(str(calls)))
    assert search.run_folder is not None
    n = len(calls.read_text().splitlines())
    # a resumed finished search replays the races from the log: nothing measured again
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = gt.Search.resume(search.run_folder, Counting(str(calls)), worker_type="sequential", disable_progress_bar=True)
    assert len(calls.read_text().splitlines()) == n
    assert again.get_best_result()["id"] == full.get_best_result()["id"]


def test_racing_with_a_noiseless_objective_settles_at_once(tmp_path: Path) -> None:
    _, result = _raced(tmp_path, true_value)
    race = result.get_results()
    race = race[race["status"] == "race"]
    # identical measurements: Welch's test is undefined, equal means never win: each race stops
    # at once (falls back) or is decided at the first extra measurement
    assert (race["score_1"].diff().abs().fillna(0) >= 0).all()
    assert result.get_best_result()["score_1"] == min(result.get_results().query("status == 'valid'")["score_1"])


def test_racing_search_killed_mid_race_resumes_to_the_identical_table(tmp_path: Path) -> None:
    from tests_support import table

    _, full = _raced(tmp_path / "a", Counting(str(tmp_path / "a.txt")))
    calls = tmp_path / "b.txt"
    assert (full.get_results()["status"] == "race").sum() > 0
    stop_at = 20  # in generation 2, after races of generation 1

    class Stops(Counting):
        def __call__(self, params: dict[str, Any]) -> float:
            n = len(calls.read_text().splitlines()) if calls.exists() else 0
            if n == stop_at and not (tmp_path / "stopped").exists():
                (tmp_path / "stopped").write_text("")
                raise KeyboardInterrupt
            return super().__call__(params)

    search = gt.Search(
        Stops(str(calls)), SPACE, config(seed=4, racing=True, generations=4), worker_type="sequential",
        cache_folder=tmp_path / "b", disable_progress_bar=True,
    )
    with pytest.raises(KeyboardInterrupt), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.start()
    assert search.run_folder is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resumed = gt.Search.resume(search.run_folder, Stops(str(calls)), worker_type="sequential", disable_progress_bar=True)
    assert table(resumed) == table(full)
    assert len(calls.read_text().splitlines()) == len(full)


def test_mlflow_receives_the_remeasurements(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from genetune.trackers.mlflow_tracker import MLflowTracker

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = MLflowTracker(experiment_name="noise", tracking_uri=uri, artifact_location=(tmp_path / "artifacts").as_uri())
    search = gt.Search(
        noisy, SPACE, config(seed=3, remeasure_top=2, remeasure_repeats=3), worker_type="sequential",
        cache_folder=tmp_path, disable_progress_bar=True, trackers=[tracker],
    )
    best = search.start().get_best_result()
    assert search.tracker_report == {"MLflowTracker": "ok"}
    run = MlflowClient(tracking_uri=uri).get_run(tracker.run_id or "")
    assert run.data.metrics["summary.remeasured_best_mean"] == pytest.approx(best["remeasured_mean"])
    assert run.data.metrics["summary.remeasured_best_n"] == 3
    low, high = best["remeasured_ci95"]
    assert run.data.metrics["summary.remeasured_best_ci_low"] == pytest.approx(low)
    assert run.data.metrics["summary.remeasured_best_ci_high"] == pytest.approx(high)
    (csv,) = (tmp_path / "artifacts").rglob("results.csv")
    assert (gt.SearchResult.from_csv(csv).get_results()["status"] == "remeasure").sum() == 6


def _row(i: int, params: dict[str, Any], score: float) -> dict[str, Any]:
    return {"generation": 0, "id": i, "params": params, "scores": [score], "norm_scores": None, "status": "valid", "reason": "", "duration_s": 0.0, "metadata": {}}


def _lucky_and_a_good_region() -> list[dict[str, Any]]:
    rows = [_row(0, {"x": 0, "y": 0}, 0.5)]  # one lucky (or narrow-peak) measurement among poor neighbours
    rows += [_row(i + 1, {"x": 1 + i % 2, "y": i // 2}, 10.0) for i in range(4)]
    rows += [_row(10 + i, {"x": 12 + i % 2, "y": 4 + i // 2}, 1.0 + 0.1 * i) for i in range(4)]  # a good region
    rows += [_row(20 + i, {"x": 6 + i, "y": 9}, 5.0 + i) for i in range(4)]  # a middling one
    return rows


def test_select_keeps_the_best_single_measurement_and_adds_good_neighbourhoods() -> None:
    rows = _lucky_and_a_good_region()
    assert [r["id"] for r in select(rows, config(remeasure_top=1))] == [0]  # remeasure_top=1: the plain winner
    chosen = [r["id"] for r in select(rows, config(remeasure_top=3))]
    assert chosen[0] == 0  # a narrow peak is never passed over
    assert set(chosen[1:]) <= {10, 11, 12, 13}  # the rest from the good region, not the next luckiest singles
    # plain order would have taken 10, 11 next too; the middling region's best single loses to the good region's worst
    chosen = [r["id"] for r in select(rows, config(remeasure_top=5))]
    assert chosen[0] == 0 and set(chosen[1:]) == {10, 11, 12, 13}
    assert own_share(5) == 1 and own_share(6) == 2 and own_share(10) == 2
    assert sorted(r["id"] for r in select(rows, config(remeasure_top=50))) == sorted(r["id"] for r in rows)
    # maximizing: the lucky-high measurement first
    flipped = [{**r, "scores": [-r["scores"][0]]} for r in rows]
    assert [r["id"] for r in select(flipped, config(remeasure_top=1, problem_type="max"))] == [0]


def test_select_counts_a_repeated_candidate_once_by_its_mean() -> None:
    rows = _lucky_and_a_good_region() + [_row(99, {"x": 0, "y": 0}, 20.5)]  # the lucky params again: mean 10.5
    chosen = [r["id"] for r in select(rows, config(remeasure_top=2))]
    assert 0 not in chosen and 99 not in chosen and len(chosen) == 2


def test_smoothed_scores_follow_the_neighbourhood() -> None:
    params = [{"a": 0, "c": "u"}, {"a": 1, "c": "u"}, {"a": 2, "c": "u"}, {"a": 1, "c": "v"}]
    smooth = smoothed(params, np.array([0.0, 0.0, 0.0, 9.0]), neighbours=3)
    assert smooth[:3].max() < 1.0 and 0.0 < smooth[3] < 9.0  # a categorical leaf counts as a distance
    nested = [{"opt": {"level": i % 3, "flags": ["-fa"] if i % 2 else []}} for i in range(12)]
    assert np.isfinite(smoothed(nested, np.arange(12.0), queries=[0, 5])).all()
    assert smoothed([{"a": 1}], np.array([2.0])).tolist() == [2.0]  # nobody to smooth with
    assert neighbour_count(10) == 8 and neighbour_count(200) == 50 and neighbour_count(10_000) == 64
