"""The bundled gcc flag tuning job (genetune.jobs.gcc): kernels, space, objective, statistics.

Everything runs the real gcc on the kernels' small size (a few ms per run).
"""

from __future__ import annotations

import math
import pickle
import shutil
import statistics
import subprocess
import threading
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from pydantic import ValidationError

import genetune as gt
import genetune.search_spaces as ss
from genetune.evaluation import evaluate
from genetune.exceptions import InvalidCandidate
from genetune.objectives import MeasuredObjective
from genetune.flows import load_search_space
from genetune.jobs.gcc import (
    BASE_CFLAGS,
    KERNEL_DIR,
    KERNELS,
    SPACE_PATH,
    VALUED_FLAGS,
    GccObjective,
    SpeedupReport,
    flags_from_params,
    load_space,
    measure_speedups,
)
from genetune.jobs.gcc import search_config as gcc_search_config
from genetune.jobs.gcc import space as space_module

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

FAST_MATH = {"opt_level": "-O3", "tree_vectorize": "-ftree-vectorize", "fast_math": "-ffast-math"}
REASON_PREFIXES = ("wrong result:", "compile failed:", "timeout:", "crashed:")


def small(**kw: Any) -> GccObjective:
    """An objective on the small size, one timed run, no warmup."""
    return GccObjective(**{"size": "small", "repeats": 1, "warmup": 0, **kw})


def reason_of(objective: GccObjective, params: dict[str, Any]) -> str:
    with pytest.raises(InvalidCandidate) as info:
        objective(params)
    return info.value.reason


# ----- kernels ------------------------------------------------------------------------------------


def test_kernels_and_space_are_bundled() -> None:
    assert KERNELS == ("matmul", "stencil", "hashsort")
    for kernel in KERNELS:
        assert (KERNEL_DIR / f"{kernel}.c").is_file()
    assert SPACE_PATH.is_file()


@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel_output_format_and_checksum_stable_across_opt_levels(kernel: str, tmp_path: Path) -> None:
    checksums = set()
    for level in ("-O0", "-O2", "-O3"):
        exe = tmp_path / f"{kernel}{level}"
        source = KERNEL_DIR / f"{kernel}.c"
        argv = ["gcc", *BASE_CFLAGS, level, "-Wall", "-Wextra", "-Werror", "-o", str(exe), str(source), "-lm"]
        subprocess.run(argv, check=True)
        lines = subprocess.run([str(exe), "small"], check=True, capture_output=True, text=True).stdout.splitlines()
        assert len(lines) == 2, lines
        assert lines[0].startswith("checksum ") and len(lines[0].split()) == 2
        name, seconds = lines[1].split()
        assert name == "time" and 0 <= float(seconds) < 5
        checksums.add(lines[0])
    assert len(checksums) == 1, f"{kernel}: the checksum changes with the -O level: {checksums}"


# ----- flags --------------------------------------------------------------------------------------


def test_flags_from_params_baseline_and_explicit_candidates() -> None:
    assert flags_from_params(gt.BASELINE_CONFIG) == ["-O2"]
    assert flags_from_params({}) == ["-O2"]
    assert flags_from_params({"opt_level": "-O3"}) == ["-O3"]
    assert flags_from_params({"unroll_loops": "-funroll-loops"}) == ["-O2", "-funroll-loops"]  # no level: -O2
    params = {
        "march": "-march=x86-64-v2",
        "unroll_loops": "-funroll-loops",
        "opt_level": "-O3",
        "max_unroll_times": 4,
        "align_loops": 32,
        "--param=max-peeled-insns=": 100,  # a key naming its own flag prefix
        "two": "-fno-tree-pre -ftracer",
    }
    assert flags_from_params(params) == [
        "-O3",
        "-march=x86-64-v2",
        "-funroll-loops",
        "--param=max-unroll-times=4",
        "-falign-loops=32",
        "--param=max-peeled-insns=100",
        "-fno-tree-pre",
        "-ftracer",
    ]
    with pytest.raises(ValueError, match="mystery"):
        flags_from_params({"mystery": 3})
    with pytest.raises(ValueError, match="on"):
        flags_from_params({"on": True})


def _flag_texts(param: Any, key: str) -> set[str]:
    """Every flag a space parameter can produce (a prefix for numeric ones)."""
    if isinstance(param, ss.LiteralParam):
        return {param.value} if isinstance(param.value, str) else set()
    if isinstance(param, ss.ChoiceParam) and all(isinstance(v, str) for v in param.values):
        return {str(v) for v in param.values}
    return {VALUED_FLAGS[key].split("{}")[0]}


def test_flags_from_params_on_sampled_candidates_knockouts_add_nothing() -> None:
    space = load_space(machine_check=False)
    assert isinstance(space, dict)
    search = gt.Search(lambda p: 0.0, space, {"generations": 1, "pool_size": 6, "seed": 5}, disable_progress_bar=True)
    candidates = search.sample(60)
    knocked_out = 0
    for params in candidates:
        flags = flags_from_params(params)
        assert flags[0] == params["opt_level"]
        assert len(flags) == len(params)  # one flag per present parameter, none for absent ones
        for key, param in space.items():
            texts = _flag_texts(param, key)
            produced = [f for f in flags if any(f == t or (t.endswith("=") and f.startswith(t)) for t in texts)]
            if key in params:
                assert len(produced) == 1, (key, flags)
            else:
                knocked_out += 1
                assert not produced, (key, flags)
    assert knocked_out > 0


# ----- space --------------------------------------------------------------------------------------


def test_load_space_reads_the_yaml_like_the_flows_do() -> None:
    space = load_space(machine_check=False)
    assert space == load_search_space(SPACE_PATH)
    assert isinstance(space, dict)
    assert space["opt_level"].values == ("-O1", "-O2", "-O3", "-Os", "-Ofast")
    assert space["march"].values == ("-march=x86-64", "-march=x86-64-v2", "-march=x86-64-v3", "-march=x86-64-v4", "-march=native")
    assert space["unroll_loops"] == ss.literal("-funroll-loops", knockout_prob=0.5)
    assert space["fast_math"].value == "-ffast-math"
    assert isinstance(space["max_unroll_times"], ss.RangeParam)
    for key, param in space.items():  # every numeric parameter has a flag template
        if isinstance(param, ss.RangeParam) or (isinstance(param, ss.ChoiceParam) and not isinstance(param.values[0], str)):
            assert key in VALUED_FLAGS
    gt.Engine(space, gt.SearchConfiguration(generations=1, seed=1))  # the engine compiles it


def test_load_space_machine_check_drops_unusable_march(monkeypatch: pytest.MonkeyPatch) -> None:
    checked = load_space()
    assert isinstance(checked, dict)
    for march in checked["march"].values:
        assert space_module.march_supported(march)
    assert not space_module.march_supported("-march=not-a-cpu")

    monkeypatch.setattr(space_module, "march_supported", lambda march, cc="gcc": march == "-march=x86-64")
    only_base = load_space()
    assert isinstance(only_base, dict)
    assert only_base["march"].values == ("-march=x86-64",)
    monkeypatch.setattr(space_module, "march_supported", lambda march, cc="gcc": False)
    none = load_space()
    assert isinstance(none, dict)
    assert "march" not in none and "opt_level" in none


# ----- the objective ------------------------------------------------------------------------------


def test_baseline_is_a_positive_time_with_metrics() -> None:
    objective = small()
    value = objective(gt.BASELINE_CONFIG)
    assert isinstance(value, float) and math.isfinite(value) and value > 0
    score = evaluate(objective, 0, {}, 1, "test")
    assert not score.failed and score.reason == ""
    assert isinstance(score.metadata, dict)
    metrics = score.metadata["metrics"]
    for kernel in KERNELS:
        assert metrics[f"time_s.{kernel}"] > 0
        assert metrics[f"compile_s.{kernel}"] > 0
    assert score.values()[0] == pytest.approx(sum(metrics[f"time_s.{k}"] for k in KERNELS))


def test_fast_math_is_a_wrong_result() -> None:
    objective = small()
    reason = reason_of(objective, FAST_MATH)
    assert reason.startswith("wrong result: stencil checksum"), reason
    assert "!=" in reason
    score = evaluate(objective, 1, FAST_MATH, 1, "test")
    assert score.score == gt.INVALID_SCORE and score.failed
    assert score.reason == reason


def test_bogus_flags_fail_to_compile() -> None:
    objective = small(kernels=["matmul"])
    reason = reason_of(objective, {"opt_level": "-O2", "march": "-march=not-a-cpu"})
    assert reason.startswith("compile failed: matmul:") and "not-a-cpu" in reason, reason
    reason = reason_of(objective, {"opt_level": "-O2", "extra": "-fno-such-flag"})
    assert reason.startswith("compile failed:") and "-fno-such-flag" in reason, reason


def test_timeouts() -> None:
    small(kernels=["hashsort"])({})  # the -O2 reference, cached per process, with normal timeouts
    reason = reason_of(small(kernels=["hashsort"], run_timeout=1e-4), {"opt_level": "-O3"})
    assert reason.startswith("timeout: hashsort ran longer than run_timeout"), reason
    reason = reason_of(small(kernels=["hashsort"], compile_timeout=1e-4), {"opt_level": "-O3"})
    assert reason.startswith("timeout: compiling hashsort"), reason


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("__builtin_trap();", "crashed: matmul killed by SIGILL (illegal instruction"),
        ("_Exit(3);", "crashed: matmul exited with status 3"),
    ],
)
def test_crashes(tmp_path: Path, body: str, expected: str) -> None:
    # A compiler wrapper whose -O3 builds get a constructor that crashes before main.
    (tmp_path / "crash.c").write_text(f"#include <stdlib.h>\n__attribute__((constructor)) static void crash(void) {{ {body} }}\n")
    cc = tmp_path / "cc"
    cc.write_text(f'#!/bin/sh\nfor a in "$@"; do [ "$a" = "-O3" ] && exec gcc "$@" {tmp_path / "crash.c"}; done\nexec gcc "$@"\n')
    cc.chmod(0o755)
    objective = small(kernels=["matmul"], cc=str(cc))
    assert objective({}) > 0
    reason = reason_of(objective, {"opt_level": "-O3"})
    assert reason.startswith(expected), reason


def test_a_missing_compiler_is_an_error_not_an_invalid_candidate() -> None:
    with pytest.raises(RuntimeError, match="cc"):
        small(cc="/nonexistent/gcc")({})


def test_pickle_round_trip_concurrency_and_cleanup(tmp_path: Path) -> None:
    objective = small(kernels=["hashsort", "matmul"], repeats=2, work_dir=str(tmp_path))
    clone = cloudpickle.loads(cloudpickle.dumps(objective))
    assert clone == objective and repr(clone) == repr(objective)
    assert pickle.loads(pickle.dumps(objective)) == objective
    assert clone({"opt_level": "-O3"}) > 0
    results: list[float] = []
    threads = [threading.Thread(target=lambda: results.append(clone({"opt_level": "-O1"}))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3 and all(r > 0 for r in results)
    assert list(tmp_path.iterdir()) == []  # every private build directory was removed


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"kernels": ["nope"]}, "kernels"),
        ({"kernels": []}, "kernels"),
        ({"kernels": "matmul"}, "kernels"),
        ({"kernels": ["matmul", "matmul"]}, "kernels"),
        ({"size": "huge"}, "size"),
        ({"repeats": 0}, "repeats"),
        ({"repeats": 1.5}, "repeats"),
        ({"repeats": True}, "repeats"),
        ({"warmup": -1}, "warmup"),
        ({"compile_timeout": 0}, "compile_timeout"),
        ({"run_timeout": float("nan")}, "run_timeout"),
        ({"run_timeout": "1"}, "run_timeout"),
        ({"cc": ""}, "cc"),
        ({"work_dir": 3}, "work_dir"),
    ],
)
def test_bad_constructor_arguments_name_the_parameter(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises((TypeError, ValueError), match=name):
        GccObjective(**kwargs)


# ----- a search and the statistics ----------------------------------------------------------------


def test_search_over_the_real_space(tmp_path: Path) -> None:
    search = gt.Search(
        small(),
        load_space(),
        {"generations": 1, "pool_size": 6, "seed": 1},
        cache_folder=tmp_path,
        disable_progress_bar=True,
    )
    result = search.start(num_workers=2, task_timeout=120)
    assert isinstance(result, gt.SearchResult)
    df = result.get_results()
    assert len(df) == 6
    valid = df[df["status"] == "valid"]
    assert len(valid) >= 1 and (valid["score_1"] > 0).all()
    for reason in df.loc[df["status"] == "invalid", "reason"]:
        assert reason.startswith(REASON_PREFIXES), reason
    best = result.get_best_result()
    assert isinstance(best, dict) and flags_from_params(best["params"])[0].startswith("-O")


def test_measure_speedups() -> None:
    objective = small(kernels=["matmul"])
    report = measure_speedups(objective, {"opt_level": "-O3"}, rounds=4, seed=1)
    assert report.flags == ["-O3"] and report.kernels == ["matmul"] and report.rounds == 4
    for times in (report.times_flags, report.times_O2, report.times_O3):
        assert len(times) == 4 and all(t > 0 for t in times)
    geo = statistics.geometric_mean
    assert report.vs_O2.speedup == pytest.approx(geo(report.times_O2) / geo(report.times_flags))
    for comparison, name in ((report.vs_O2, "-O2"), (report.vs_O3, "-O3")):
        assert comparison.baseline == name
        assert comparison.ci_low <= comparison.speedup <= comparison.ci_high
        assert 0 <= comparison.p_value <= 1
        # one method for both: the interval excludes 1.0 exactly when p < 0.05
        assert (not comparison.ci_low <= 1.0 <= comparison.ci_high) == (comparison.p_value < 0.05)
    summary = report.summary()
    assert summary.startswith("best flags are ") and "than -O2 (95% CI " in summary and "than -O3 (95% CI " in summary
    table = report.to_markdown()
    assert "| -O2 |" in table and "| -O3 |" in table and "`-O3`" in table
    with pytest.raises(ValidationError):
        report.rounds = 5  # type: ignore[misc]
    with pytest.raises(ValidationError):
        SpeedupReport(**report.model_dump(), extra=1)
    assert SpeedupReport.model_validate_json(report.model_dump_json()) == report


def test_two_phases_build_then_measure_and_release(tmp_path: Path) -> None:
    objective = small(kernels=["matmul", "hashsort"], work_dir=tmp_path)
    built = objective.build({"opt_level": "-O3"})
    assert built.flags == ("-O3",) and set(built.exes) == {"matmul", "hashsort"}
    assert pickle.loads(pickle.dumps(built)) == built  # a process pool measures it elsewhere
    assert all(Path(exe).is_file() for exe in built.exes.values())
    assert objective.measure(built) > 0
    objective.release(built)
    assert not Path(built.folder).exists()
    score = evaluate(MeasuredObjective(objective), 1, {"opt_level": "-O2"}, 1, "test")
    meta = score.metadata_dict()
    assert not score.failed and meta["build_s"] > 0 and len(meta["measurements"]) == 1
    assert set(meta["metrics"]) >= {"compile_s.matmul", "time_s.matmul"}
    failed = evaluate(MeasuredObjective(small(kernels=["stencil"], work_dir=tmp_path)), 2, FAST_MATH | {"opt_level": "-O3"}, 1, "test")
    assert failed.failed and failed.reason.startswith(REASON_PREFIXES)
    assert not any(p.name.startswith("genetune-gcc-") for p in tmp_path.iterdir())  # released, even after a wrong result


def test_job_config_remeasures_the_top_by_default() -> None:
    from genetune.jobs.gcc.space import REMEASURE_TOP

    config = gt.SearchConfiguration(**gcc_search_config(load_space(), 2, 8, 1))
    assert config.remeasure_top == REMEASURE_TOP > 0 and config.normalize


def test_measure_speedups_rejects_wrong_results_and_bad_arguments() -> None:
    objective = small(kernels=["stencil"])
    with pytest.raises(InvalidCandidate, match="^wrong result: stencil"):
        measure_speedups(objective, FAST_MATH, rounds=2)
    with pytest.raises(ValueError, match="rounds"):
        measure_speedups(objective, {}, rounds=1)
    with pytest.raises(ValueError, match="seed"):
        measure_speedups(objective, {}, seed=-1)
