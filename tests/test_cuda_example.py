"""The nvcc flag tuning example (examples/cuda_nvcc): skipping, search space, flags, shipping.

Without an NVIDIA GPU (CI, laptops) only what needs no GPU runs: the script's skip paths, the
space and the exact nvcc command lines, pickling the objective by value and the one-worker-per-GPU
Dask cluster (its pinning is an environment variable, no GPU involved). Nothing here fakes nvcc:
``test_nvcc_accepts_every_flag`` needs a real nvcc and the tests marked ``gpu`` a real GPU; they
are skipped where those are missing.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import cloudpickle
import numpy as np
import pytest

import genetune as gt
from genetune.flows import load_search_space
from genetune.search_spaces import ChoiceParam, LiteralParam, RangeParam
from genetune.shipping import pack

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "cuda_nvcc"
SCRIPT = EXAMPLE / "tune_nvcc.py"


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tune_nvcc", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses, pickling by value and mypy-style lookups need it
    spec.loader.exec_module(module)
    return module


tn = _load_example()
SKIP_REASON: str | None = tn.skip_reason()
needs_gpu = pytest.mark.skipif(SKIP_REASON is not None, reason=f"needs an NVIDIA GPU and nvcc ({SKIP_REASON})")

PTXAS_LEVELS = {"-O0", "-O1", "-O2", "-O3"}
PTXAS_OPTIONS = PTXAS_LEVELS | {"--allow-expensive-optimizations=true"}
NVCC_SWITCHES = {"--use_fast_math", "--extra-device-vectorization"}
MAXRREGCOUNT = re.compile(r"--maxrregcount=(\d+)")
BLOCK_SIZES = {64, 128, 256, 512, 1024}
REASON_PREFIXES = ("compile failed:", "launch failed:", "wrong result:", "timeout:", "crashed:")


def run_script(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=EXAMPLE.parent.parent
    )


def stub(folder: Path, name: str, body: str) -> None:
    """An executable shell script ``folder/name`` (a stand-in for nvidia-smi, or an nvcc that is
    only ever looked up on PATH, never run)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def isolated_env(path: Path, **extra: str) -> dict[str, str]:
    """This environment with PATH = ``path`` only and no CUDA_VISIBLE_DEVICES (unless given)."""
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env["PATH"] = str(path)
    env.update(extra)
    return env


# ----- (a) skipping cleanly without a GPU ------------------------------------------------------------


@pytest.mark.skipif(SKIP_REASON is None, reason="this machine has an NVIDIA GPU and nvcc: the script would run")
def test_script_skips_here_without_a_gpu() -> None:
    done = run_script()
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("skipped: "), done.stdout
    assert lines[0] == f"skipped: {SKIP_REASON}"


@pytest.mark.parametrize(
    ("tools", "extra", "expected"),
    [
        ({}, {}, "skipped: no NVIDIA GPU (nvidia-smi not found)"),
        (
            {"nvidia-smi": "echo 'No devices were found'; exit 6", "nvcc": "exit 0"},
            {},
            "skipped: no NVIDIA GPU (nvidia-smi lists none)",
        ),
        ({"nvidia-smi": "exit 0", "nvcc": "exit 0"}, {}, "skipped: no NVIDIA GPU (nvidia-smi lists none)"),
        ({"nvidia-smi": "echo 'GPU 0: NVIDIA H100 (UUID: GPU-0)'"}, {}, "skipped: nvcc not found"),
        (
            {"nvidia-smi": "echo 'GPU 0: NVIDIA H100 (UUID: GPU-0)'", "nvcc": "exit 0"},
            {"CUDA_VISIBLE_DEVICES": ""},
            "skipped: no NVIDIA GPU (CUDA_VISIBLE_DEVICES hides them all)",
        ),
    ],
    ids=["no-nvidia-smi", "no-devices", "empty-list", "no-nvcc", "all-hidden"],
)
def test_script_skip_paths(tmp_path: Path, tools: dict[str, str], extra: dict[str, str], expected: str) -> None:
    """Whatever this machine has: PATH holds only stand-ins for nvidia-smi (and an nvcc that is
    only looked up, never run), so each skip path is taken for sure."""
    for name, body in tools.items():
        stub(tmp_path / "bin", name, body)
    (tmp_path / "bin").mkdir(exist_ok=True)
    done = run_script(env=isolated_env(tmp_path / "bin", **extra))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == [expected]


def test_skip_paths_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listing = "echo 'GPU 0: A (UUID: GPU-a)'; echo '  MIG 1g.10gb Device 0: (UUID: MIG-x)'; echo 'GPU 1: B (UUID: GPU-b)'"
    stub(tmp_path, "nvidia-smi", listing)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert tn.detect_gpus() == ["0", "1"]
    assert tn.local_gpus() == ["0", "1"]
    assert tn.skip_reason() == "nvcc not found"
    assert tn.skip_reason("/opt/cuda/bin/nvcc") == "nvcc not found ('/opt/cuda/bin/nvcc')"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,GPU-b,-1,0")
    assert tn.local_gpus() == ["1", "GPU-b"]  # CUDA stops at the first invalid entry
    stub(tmp_path, "nvcc", "exit 0")
    assert tn.skip_reason() is None


def test_bad_arguments_fail_before_detection() -> None:
    done = run_script("--pool-size", "3")
    assert done.returncode == 2
    assert "pool_size" in done.stderr


# ----- (b) the search space and the nvcc command lines -----------------------------------------------


def test_space_loads_with_its_parameters() -> None:
    space = load_search_space(tn.SPACE_PATH)
    assert isinstance(space, dict)
    assert space == tn.load_space()
    assert list(space) == [
        "block_size",
        "ptxas_opt_level",
        "maxrregcount",
        "use_fast_math",
        "allow_expensive_optimizations",
        "extra_device_vectorization",
    ]
    assert isinstance(space["block_size"], ChoiceParam) and space["block_size"].knockout_prob is None
    assert sorted(space["block_size"].values) == sorted(BLOCK_SIZES)
    assert isinstance(space["ptxas_opt_level"], ChoiceParam) and space["ptxas_opt_level"].knockout_prob is None
    assert isinstance(space["maxrregcount"], RangeParam) and space["maxrregcount"].knockout_prob == 0.5
    for name in ("use_fast_math", "allow_expensive_optimizations", "extra_device_vectorization"):
        assert isinstance(space[name], LiteralParam) and space[name].knockout_prob == 0.5


def check_argv(params: dict[str, Any]) -> list[str]:
    """Asserts that ``params`` gives a well-formed nvcc command line; returns its flags."""
    argv = tn.nvcc_argv(params, "src/kernel.cu", "out/kernel")
    assert argv[:2] == ["nvcc", "-arch=native"]
    assert argv[-3:] == ["-o", "out/kernel", "src/kernel.cu"]
    assert all(isinstance(a, str) and a and a.strip() == a for a in argv)
    flags: list[str] = argv[2:-3]
    assert flags == tn.nvcc_flags(params)
    rest = list(flags)
    ptxas: list[str] = []
    while rest:
        flag = rest.pop(0)
        if flag == "-Xptxas":
            ptxas.append(rest.pop(0))
        elif (m := MAXRREGCOUNT.fullmatch(flag)) is not None:
            assert int(m.group(1)) in range(32, 129, 8)
            assert "maxrregcount" in params
        else:
            assert flag in NVCC_SWITCHES, flag
    assert set(ptxas) <= PTXAS_OPTIONS
    assert [o for o in ptxas if o in PTXAS_LEVELS] == [params["ptxas_opt_level"].split()[1]]
    assert ("--allow-expensive-optimizations=true" in ptxas) == ("allow_expensive_optimizations" in params)
    assert ("--use_fast_math" in flags) == ("use_fast_math" in params)
    assert ("--extra-device-vectorization" in flags) == ("extra_device_vectorization" in params)
    plain = [f for f in flags if f != "-Xptxas"]
    assert len(plain) == len(set(plain))  # no flag twice
    assert tn.block_size_of(params) == params["block_size"] and params["block_size"] in BLOCK_SIZES
    return flags


def test_every_sampled_candidate_maps_to_a_valid_nvcc_command_line() -> None:
    search = gt.Search(lambda params: 0.0, tn.load_space(), {"generations": 1, "seed": 3})
    samples = search.sample(50)
    assert len(samples) == 50
    for params in samples:
        check_argv(params)
    # Knockouts happen: some candidates lack each optional flag, some have it.
    for name in ("maxrregcount", "use_fast_math", "allow_expensive_optimizations", "extra_device_vectorization"):
        assert 0 < sum(name in p for p in samples) < 50, name


def test_bred_candidates_map_to_valid_command_lines_too() -> None:
    """Crossover and mutation (later generations) keep every candidate well-formed."""
    engine = gt.Engine(tn.load_space(), gt.SearchConfiguration(generations=6, pool_size=16, seed=5))
    rng = np.random.default_rng(0)
    seen = 0
    while not engine.done:
        batch = engine.ask()
        for cand in batch:
            check_argv(cand.params)
        engine.tell([c.id for c in batch], rng.random(len(batch)).tolist())
        seen += len(batch)
    assert seen == 6 * 16


def test_exact_command_lines() -> None:
    src, exe = Path("/w/kernel.cu"), Path("/w/kernel")
    assert tn.nvcc_argv({}, src, exe) == ["nvcc", "-arch=native", "-o", "/w/kernel", "/w/kernel.cu"]  # the baseline
    assert tn.block_size_of({}) == tn.DEFAULT_BLOCK_SIZE == 256
    everything = {
        "block_size": 1024,
        "ptxas_opt_level": "-Xptxas -O1",
        "maxrregcount": 64,
        "use_fast_math": "--use_fast_math",
        "allow_expensive_optimizations": "-Xptxas --allow-expensive-optimizations=true",
        "extra_device_vectorization": "--extra-device-vectorization",
    }
    assert tn.nvcc_argv(everything, src, exe, nvcc="/opt/cuda/bin/nvcc", arch="sm_90") == [
        "/opt/cuda/bin/nvcc",
        "-arch=sm_90",
        "-Xptxas",
        "-O1",
        "--maxrregcount=64",
        "--use_fast_math",
        "-Xptxas",
        "--allow-expensive-optimizations=true",
        "--extra-device-vectorization",
        "-o",
        "/w/kernel",
        "/w/kernel.cu",
    ]
    assert tn.block_size_of(everything) == 1024
    knocked_out = {"block_size": 64, "ptxas_opt_level": "-Xptxas -O3", "use_fast_math": "--use_fast_math"}
    expected = ["nvcc", "-arch=native", "-Xptxas", "-O3", "--use_fast_math", "-o", "/w/kernel", "/w/kernel.cu"]
    assert tn.nvcc_argv(knocked_out, src, exe) == expected
    assert tn.block_size_of(knocked_out) == 64


def test_bad_params_are_refused() -> None:
    with pytest.raises(ValueError, match="literal"):
        tn.nvcc_flags({"use_fast_math": True})
    with pytest.raises(ValueError, match="needs a flag"):
        tn.nvcc_flags({"unroll": 4})
    assert tn.nvcc_flags({"--maxrregcount=": 48.0}) == ["--maxrregcount=48"]  # a parameter named after the flag
    with pytest.raises(TypeError):
        tn.nvcc_flags({"x": object()})
    with pytest.raises(TypeError):
        tn.nvcc_flags(["-O3"])
    for bad in (48, 0, 2048, True, "256"):
        with pytest.raises(ValueError, match="block_size"):
            tn.block_size_of({"block_size": bad})
    assert tn.block_size_of({"block_size": 512.0}) == 512


def test_objective_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="n must"):
        tn.NvccObjective(n=16)
    with pytest.raises(ValueError, match="arch"):
        tn.NvccObjective(arch="sm_90; rm -rf /")
    with pytest.raises(ValueError, match="compile_timeout"):
        tn.NvccObjective(compile_timeout=0)
    with pytest.raises(ValueError, match="rtol"):
        tn.NvccObjective(rtol=-1)


def test_a_missing_nvcc_is_the_machines_fault_not_the_candidates(tmp_path: Path) -> None:
    objective = tn.NvccObjective(nvcc=str(tmp_path / "no-nvcc"), work_dir=tmp_path / "work")
    with pytest.raises(RuntimeError, match="cannot run nvcc"):
        objective({})


# ----- shipping the objective to Dask workers -----------------------------------------------------


def test_objective_is_shipped_by_value(tmp_path: Path) -> None:
    """A Dask worker needs neither this directory nor the module: the objective (with the kernel
    source inside) unpickles in a fresh interpreter that has never seen examples/cuda_nvcc."""
    tn._ship_by_value()
    objective = tn.NvccObjective(n=512, reps=3)
    _, blob = pack(objective)  # what DaskWorker sends (its lock and reference cache stay behind)
    code = (
        "import sys, cloudpickle\n"
        "assert not any('cuda_nvcc' in p for p in sys.path)\n"
        "o = cloudpickle.loads(sys.stdin.buffer.read())\n"
        "assert 'tune_nvcc' not in sys.modules\n"
        "print(type(o).__name__, o.n, o.reps, o._references, type(o._lock).__name__)\n"
        "print(o.source.count('sgemm_tiled'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    lines = done.stdout.decode().splitlines()
    assert lines[0] == "NvccObjective 512 3 {} lock"
    assert int(lines[1]) == tn.KERNEL_PATH.read_text().count("sgemm_tiled") >= 2


# ----- the one-worker-per-GPU local cluster (no GPU needed: pinning is an environment variable) ----


@pytest.mark.slow
def test_local_gpu_cluster_pins_one_worker_per_gpu(tmp_path: Path) -> None:
    def score(params: dict[str, Any]) -> float:  # local: pickled by value, the workers need no tests/
        return float(params.get("x", 50)) + 1.0  # the baseline is {}

    client = tn.local_gpu_cluster(["0", "1"])
    try:
        info = client.scheduler_info(n_workers=-1)["workers"]
        assert sorted(w["name"] for w in info.values()) == ["gpu0", "gpu1"]
        assert all(w["resources"] == {"GPU": 2} and w["nthreads"] == 2 for w in info.values())
        assert sorted(client.run(os.getenv, "CUDA_VISIBLE_DEVICES").values()) == ["0", "1"]
        space = {"x": gt.search_spaces.range(0, 100)}
        config = {"generations": 2, "pool_size": 8, "seed": 1, "normalize": True}
        worker = gt.DaskWorker(address=client, resources={"GPU": 1})
        result = gt.Search(score, space, config, worker_type=worker, cache_folder=tmp_path, disable_progress_bar=True).start()
    finally:
        cluster = client.cluster
        client.close()
        assert cluster is not None
        cluster.close()
    table = result.get_results()
    baselines = table[table["status"] == "baseline"]
    assert sorted(m["gpu"] for m in baselines["metadata"]) == ["0", "1"]  # one baseline per GPU
    assert {m["gpu"] for m in table["metadata"]} == {"0", "1"}
    assert {m["dask_worker_name"] for m in table["metadata"]} == {"gpu0", "gpu1"}
    assert all(m["placement"].endswith(f"/gpu{m['gpu']}") for m in table["metadata"])


def test_objective_is_two_phase_and_the_script_remeasures_by_default() -> None:
    objective = tn.NvccObjective()
    assert isinstance(objective, gt.TwoPhaseObjective)
    assert callable(objective.release)
    assert gt.Search(objective, tn.load_space(), {"generations": 1})._shipped_objective().two_phase
    args = tn._parser().parse_args([])
    assert args.remeasure_top == tn.REMEASURE_TOP > 0 and args.remeasure_repeats == tn.REMEASURE_REPEATS >= 2
    built = tn.NvccBuild(folder="/tmp/x", exe="/tmp/x/kernel", block_size=256)
    assert cloudpickle.loads(cloudpickle.dumps(built)) == built  # travels to the measuring process


def test_bad_remeasure_settings_fail_before_detection() -> None:
    done = run_script("--remeasure-repeats", "1")
    assert done.returncode == 2
    assert "remeasure_repeats" in done.stderr


# ----- with real CUDA tools ------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc (no GPU needed: compile only)")
def test_nvcc_accepts_every_flag(tmp_path: Path) -> None:
    """All the space's flags at once, and each ptxas level, build kernel.cu with the real nvcc
    (for sm_80, so that no GPU is needed)."""
    source = tmp_path / "kernel.cu"
    source.write_text(tn.KERNEL_PATH.read_text())
    for level in ("-O0", "-O1", "-O2", "-O3"):
        params = {
            "block_size": 256,
            "ptxas_opt_level": f"-Xptxas {level}",
            "maxrregcount": 64,
            "use_fast_math": "--use_fast_math",
            "allow_expensive_optimizations": "-Xptxas --allow-expensive-optimizations=true",
            "extra_device_vectorization": "--extra-device-vectorization",
        }
        argv = tn.nvcc_argv(params, source, tmp_path / f"kernel{level}", arch="sm_80")
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert done.returncode == 0, (argv, done.stderr)
        assert (tmp_path / f"kernel{level}").is_file()


@needs_gpu
def test_objective_on_the_gpu(tmp_path: Path) -> None:
    objective = tn.NvccObjective(n=256, reps=3, work_dir=tmp_path)
    baseline = objective({})
    assert 0 < baseline < 1
    everything = {
        "block_size": 128,
        "ptxas_opt_level": "-Xptxas -O2",
        "maxrregcount": 64,
        "use_fast_math": "--use_fast_math",
        "allow_expensive_optimizations": "-Xptxas --allow-expensive-optimizations=true",
        "extra_device_vectorization": "--extra-device-vectorization",
    }
    assert 0 < objective(everything) < 1
    # 1024 threads at ptxas -O0 (~118 registers per thread): "launch failed", or valid on a GPU
    # whose register file allows it.
    try:
        assert objective({"block_size": 1024, "ptxas_opt_level": "-Xptxas -O0"}) > 0
    except gt.InvalidCandidate as err:
        assert err.reason.startswith("launch failed:"), err.reason
    with pytest.raises(gt.InvalidCandidate, match="^compile failed:"):
        objective({"block_size": 256, "bogus": "--no-such-nvcc-flag"})
    assert list(tmp_path.iterdir()) == []  # every scratch directory removed


@needs_gpu
@pytest.mark.slow
def test_tiny_search_on_the_gpu(tmp_path: Path) -> None:
    done = run_script(
        "--generations", "2", "--pool-size", "6", "--seed", "1", "--n", "512", "--reps", "5", "--confirm-rounds", "1",
        "--cache-folder", str(tmp_path), timeout=1800,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "best: block_size=" in done.stdout and "speedup" in done.stdout
    folders = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(folders) == 1 and str(folders[0]) in done.stdout
    result = gt.SearchResult.from_csv(folders[0] / "results.csv")
    table = result.get_results()
    assert (table["status"] == "baseline").sum() >= 1
    assert (table["status"] != "baseline").sum() == 12
    assert all(m.get("gpu") for m in table["metadata"])  # placed on a pinned GPU worker
    for reason in table.loc[table["status"] == "invalid", "reason"]:
        assert str(reason).startswith(REASON_PREFIXES), reason
    assert result.summary()["best"] is not None
