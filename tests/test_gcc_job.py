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
    KERNEL_SPACE_PATH,
    KERNELS,
    SPACE_PATH,
    VALUED_FLAGS,
    WARM_START,
    GccObjective,
    SpeedupReport,
    flags_from_params,
    is_macro,
    kernel_defaults,
    kernel_params,
    load_job_space,
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
    assert SPACE_PATH.is_file() and KERNEL_SPACE_PATH.is_file()


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


# ----- the joint space: the kernels' own parameters beside the gcc flags ---------------------------

# Which kernel reads a macro: its prefix.
_KERNEL_OF = {"MM": "matmul", "ST": "stencil", "HS": "hashsort"}


def _values(param: Any) -> list[Any]:
    if isinstance(param, ss.ChoiceParam):
        return list(param.values)
    assert isinstance(param, ss.RangeParam) and param.step is not None
    grid = list(range(int(param.start), int(param.end) + 1, int(param.step)))
    return sorted({grid[0], grid[1], grid[len(grid) // 2], grid[-1]})  # the ends, a neighbour and the middle


def _checksum(tmp_path: Path, kernel: str, flags: list[str]) -> str:
    exe = tmp_path / f"{kernel}-{abs(hash(tuple(flags)))}"
    argv = ["gcc", *BASE_CFLAGS, *flags, "-Wall", "-Wextra", "-Werror", "-o", str(exe), str(KERNEL_DIR / f"{kernel}.c"), "-lm"]
    subprocess.run(argv, check=True, capture_output=True)
    out = subprocess.run([str(exe), "small"], check=True, capture_output=True, text=True).stdout
    return out.splitlines()[0]


@pytest.mark.slow
def test_every_value_of_every_kernel_parameter_keeps_the_reference_checksum(tmp_path: Path) -> None:
    job = load_job_space("joint", machine_check=False)
    assert isinstance(job.space, dict)
    macros = {name: param for name, param in job.space.items() if is_macro(name)}
    assert {name.split("_")[0] for name in macros} == set(_KERNEL_OF)  # every kernel has parameters
    reference = {kernel: _checksum(tmp_path, kernel, ["-O2"]) for kernel in KERNELS}
    # Each value with the other parameters at their defaults, plus the combinations a when= or a
    # constraint ties together (unrolled rows in small tiles, prefetching in both layouts).
    candidates: list[dict[str, Any]] = [{name: value} for name, param in macros.items() for value in _values(param)]
    candidates += [
        {"MM_ORDER": "ijk", "MM_BLOCK_I": 12, "MM_BLOCK_K": 8, "MM_BLOCK_J": 448},
        {"MM_UNROLL_I": 8, "MM_BLOCK_I": 8, "MM_BLOCK_K": 256, "MM_BLOCK_J": 16},
        {"MM_UNROLL_I": 4, "MM_BLOCK_I": 4, "MM_BLOCK_K": 448, "MM_BLOCK_J": 128},
        {"ST_FUSE": 2, "ST_UNROLL": 8},
        {"HS_RADIX_BITS": 11, "HS_PREFETCH": 64, "HS_PREFETCH_WRITE": 1, "HS_LAYOUT": "paired"},
        {"HS_RADIX_BITS": 16, "HS_PREFETCH": 4, "HS_PREFETCH_WRITE": 0, "HS_LAYOUT": "split"},
    ]
    for candidate in candidates:
        kernel = _KERNEL_OF[next(iter(candidate)).split("_")[0]]
        flags = flags_from_params({"opt_level": "-O3", **candidate})
        assert _checksum(tmp_path, kernel, flags) == reference[kernel], flags


def test_a_rule_the_kernel_cannot_build_is_a_compile_failure_with_its_reason() -> None:
    # The constraint keeps the search away from it; by hand it fails to compile, with the kernel's #error.
    reason = reason_of(small(kernels=["matmul"]), {"MM_BLOCK_I": 12, "MM_UNROLL_I": 8})
    assert reason.startswith("compile failed: matmul") and "MM_UNROLL_I must divide MM_BLOCK_I" in reason


def test_joint_space_rules_hold_on_sampled_candidates() -> None:
    job = load_job_space("joint", machine_check=False)
    assert job.constraints == (
        "MM_UNROLL_I is None or MM_BLOCK_I % MM_UNROLL_I == 0",
        "MM_BLOCK_K * MM_BLOCK_J * 8 <= 524288",
    )
    search = gt.Search(lambda p: 0.0, job.space, {"generations": 1, "pool_size": 6, "seed": 3}, constraints=list(job.constraints), disable_progress_bar=True)
    candidates = search.sample(300)
    for params in candidates:
        assert ("MM_UNROLL_I" in params) == (params["MM_ORDER"] == "ikj")  # only with its variant
        assert "HS_PREFETCH_WRITE" not in params or "HS_PREFETCH" in params
        assert "MM_UNROLL_I" not in params or params["MM_BLOCK_I"] % params["MM_UNROLL_I"] == 0
        assert params["MM_BLOCK_K"] * params["MM_BLOCK_J"] * 8 <= 524288
        assert set(params) >= {"opt_level", "march", "MM_ORDER", "MM_BLOCK_I", "ST_FUSE", "HS_RADIX_BITS", "HS_LAYOUT"}
    # The rules bind: without them some sampled candidates break each of them.
    free = gt.Search(lambda p: 0.0, job.space, {"generations": 1, "pool_size": 6, "seed": 3}, disable_progress_bar=True).sample(300)
    assert any(p.get("MM_UNROLL_I") and p["MM_BLOCK_I"] % p["MM_UNROLL_I"] for p in free)
    assert any(p["MM_BLOCK_K"] * p["MM_BLOCK_J"] * 8 > 524288 for p in free)


def test_warm_start_is_what_the_user_had_the_kernels_defaults_at_O3() -> None:
    defaults = kernel_defaults()
    assert defaults["MM_ORDER"] == "ikj" and defaults["MM_BLOCK_K"] == 64 and defaults["HS_RADIX_BITS"] == 8
    joint = load_job_space("joint", machine_check=False)
    starts = joint.warm_start()
    assert [{k: v for k, v in c.items() if not is_macro(k)} for c in starts] == [dict(c) for c in WARM_START]
    for candidate in starts:
        tuned = kernel_params(candidate)
        # every always-present parameter at its source default; the knocked-out ones absent (= default)
        assert tuned == {k: defaults[k] for k in ("MM_ORDER", "MM_BLOCK_I", "MM_BLOCK_K", "MM_BLOCK_J", "MM_UNROLL_I", "ST_FUSE", "HS_RADIX_BITS", "HS_LAYOUT")}
    # flags-only: today's warm start, no kernel parameter anywhere
    flags = load_job_space("flags", machine_check=False)
    assert flags.warm_start() == [dict(c) for c in WARM_START] and flags.constraints == ()
    assert isinstance(flags.space, dict) and not any(is_macro(k) for k in flags.space)
    assert flags.space == load_space(machine_check=False)


def test_the_defaults_at_O3_build_exactly_what_plain_O3_builds(tmp_path: Path) -> None:
    """The warm start's -D defaults change nothing: its binaries equal plain -O3's, byte for byte
    (so the search's "defaults" are the report's comparison point)."""
    (start, _) = load_job_space("joint", machine_check=False).warm_start()
    for kernel in KERNELS:
        objects = []
        for flags in (["-O3"], flags_from_params(start)):
            out = tmp_path / f"{kernel}{len(objects)}.o"
            subprocess.run(["gcc", *BASE_CFLAGS, *flags, "-c", "-o", str(out), str(KERNEL_DIR / f"{kernel}.c")], check=True)
            objects.append(out.read_bytes())
        assert objects[0] == objects[1], kernel


def test_kernel_macros_become_D_flags_and_bad_values_name_the_parameter() -> None:
    params = {"opt_level": "-O3", "MM_ORDER": "ijk", "MM_BLOCK_K": 32, "unroll_loops": "-funroll-loops", "ST_UNROLL": 4.0}
    assert flags_from_params(params) == ["-O3", "-DMM_ORDER=ijk", "-DMM_BLOCK_K=32", "-funroll-loops", "-DST_UNROLL=4"]
    assert kernel_params(params) == {"MM_ORDER": "ijk", "MM_BLOCK_K": 32, "ST_UNROLL": 4.0}
    with pytest.raises(ValueError, match="MM_ORDER"):
        flags_from_params({"MM_ORDER": "ikj; rm -rf /"})
    with pytest.raises(ValueError, match="ST_FUSE"):
        flags_from_params({"ST_FUSE": True})


def test_load_job_space_names_and_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="joint"):
        load_job_space("jiont")
    own = tmp_path / "own.yaml"
    own.write_text("constraints: ['MM_BLOCK_K <= 64']\nMM_BLOCK_K: {type: choice, values: [16, 64, 256]}\n")
    job = load_job_space(own, machine_check=False)
    assert job.constraints == ("MM_BLOCK_K <= 64",) and set(job.space) == {"MM_BLOCK_K"}  # type: ignore[arg-type]
    bad = tmp_path / "bad.yaml"
    bad.write_text("constraints: 'MM_BLOCK_K <= 64'\n")
    with pytest.raises(gt.SearchSpaceError, match="constraints must be a list"):
        load_job_space(bad)


def test_report_names_the_kernel_parameters_and_the_flags() -> None:
    objective = small(kernels=["matmul"])
    candidate = {"opt_level": "-O3", "march": "-march=x86-64", "MM_ORDER": "ikj", "MM_BLOCK_I": 32, "MM_UNROLL_I": 4, "unroll_loops": "-funroll-loops"}
    report = measure_speedups(objective, candidate, rounds=2, seed=0)
    assert report.kernel_params == {"MM_ORDER": "ikj", "MM_BLOCK_I": 32, "MM_UNROLL_I": 4}
    assert report.flags == flags_from_params(candidate)
    assert report.gcc_flags() == ["-O3", "-march=x86-64", "-funroll-loops"]
    line = report.summary()
    assert "\n" not in line
    assert line.startswith("best MM_ORDER=ikj MM_BLOCK_I=32 MM_UNROLL_I=4 with -O3 -march=x86-64 -funroll-loops: ")
    assert "than the defaults at -O3 (95% CI " in line and "than the defaults at -O2 (95% CI " in line
    assert "Kernel parameters: `MM_ORDER=ikj MM_BLOCK_I=32 MM_UNROLL_I=4`" in report.to_markdown()
    assert SpeedupReport.model_validate_json(report.model_dump_json()) == report


@pytest.mark.slow
@pytest.mark.parametrize("space", ["joint", "flags"])
def test_search_over_each_job_space_with_its_rules_and_warm_start(space: str, tmp_path: Path) -> None:
    job = load_job_space(space)
    search = gt.Search(
        small(),
        job.space,
        gcc_search_config(job.space, 1, 6, 2, remeasure_top=0),
        constraints=list(job.constraints),
        warm_start=job.warm_start(),
        cache_folder=tmp_path,
        disable_progress_bar=True,
        worker_type="sequential",
    )
    df = search.start().get_results()
    rows = df[df["status"].isin(["valid", "invalid"])]
    assert len(rows) == 6
    assert list(rows.sort_values("id")["params"])[:2] == job.warm_start()  # evaluated first
    for params, status, reason in zip(rows["params"], rows["status"], rows["reason"], strict=True):
        assert bool(kernel_params(params)) == (space == "joint")
        if status == "invalid":
            assert reason.startswith(REASON_PREFIXES), reason
            assert not reason.startswith("wrong result") or any(f in ("-ffast-math", "-Ofast") for f in flags_from_params(params))
