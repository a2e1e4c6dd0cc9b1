"""MLflowTracker against real MLflow stores: a SQLite file and a local `mlflow server` (no mocks).

Events are driven through `TrackerBus` by a synthetic search (the payload shapes `Search` emits),
then read back with `MlflowClient`. The server is started once for the module; the outage tests
freeze it (SIGSTOP) and stop it (SIGTERM) in the middle of a search.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
import pytest

import genetune as gt
import genetune.search_spaces as ss
from genetune.results import SearchResult, hypervolume, pareto_mask
from genetune.trackers import BaseTracker, JsonlTracker, MLflowTracker, TrackerBus
from tests_support import free_port

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

SPACE = {
    "a": ss.range(0, 10),
    "b": {"c": ss.choice(["x", "y", "z"], knockout_prob=0.2)},
    "flag": ss.literal("-O3"),
}
ARTIFACTS = {
    "config.json",
    "search_space.json",
    "search_space_parameters.json",
    "manifest.json",
    "summary.json",
    "generations.json",
    "results.csv",
    "results.parquet",
    "convergence.png",
}
MLFLOW_ENV = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT")
QUIET_FAILURES = pytest.mark.filterwarnings("ignore:tracker MLflowTracker:RuntimeWarning")


# ----- a synthetic search: the events Search emits, with their payload shapes ------------------------


class SyntheticSearch:
    """Emits a search's events into ``bus``: ``per_gen`` evaluations per generation (the last one
    of every odd generation invalid), a results CSV in ``folder`` and a summary at the end."""

    def __init__(self, bus: TrackerBus, folder: Path, m: int = 1, per_gen: int = 4, seed: int = 7, space: Any = None) -> None:
        self.bus, self.folder, self.m, self.per_gen, self.seed = bus, folder, m, per_gen, seed
        self.space = SPACE if space is None else space
        self.directions = ["min"] if m == 1 else ["min", "max"]
        self.engine = "ga" if m == 1 else "nsga2"
        self.rows: list[dict[str, Any]] = []
        self.stats: list[dict[str, Any]] = []
        self.t0 = time.time()
        folder.mkdir(parents=True, exist_ok=True)

    def manifest(self) -> dict[str, Any]:
        config = gt.SearchConfiguration(
            generations=3, pool_size=8, seed=self.seed, num_objectives=self.m, engine=self.engine, directions=self.directions
        ).model_dump(mode="json")
        space = ss.compile_space(self.space)
        return {
            "config": config,
            "search_space": space,
            "parameter_names": ["search_space['a']", "search_space['b']['c']", "search_space['flag']"],
            "seed": self.seed,
            "engine": self.engine,
            "versions": {"genetune": gt.__version__, "python": sys.version.split()[0]},
            "host": socket.gethostname(),
            "environment": {"fingerprint": "ab" * 32, "packages": 42},
            "run_folder": str(self.folder),
            "started_at": "2025-01-01T00:00:00+00:00",
            "num_objectives": self.m,
            "directions": self.directions,
            "normalized": False,
        }

    def start(self) -> None:
        self.bus.emit("search_starts", self.manifest())

    def scores(self, g: int, i: int) -> list[float]:
        f1 = (i + 1) / (g + 1) + 0.01 * g
        if self.m == 1:
            return [f1]
        return [f1, math.sqrt(f1) - (0.3 if i == 2 else 0.0)]  # i == 2 is dominated

    def valid(self) -> np.ndarray:
        rows = [r["scores"] for r in self.rows if r["status"] == "valid"]
        return np.array(rows, dtype=np.float64).reshape(-1, self.m)

    def generation(self, g: int) -> None:
        self.bus.emit("generation_starts", g)
        t = time.time()
        invalid = 0
        sizes = []
        for i in range(self.per_gen):
            candidate = {"id": g * self.per_gen + i, "generation": g, "params": {"a": i, "b": {"c": "xyz"[i % 3]}, "flag": "-O3"}}
            self.bus.emit("pre_objective", candidate)
            bad = g % 2 == 1 and i == self.per_gen - 1
            invalid += bad
            sizes.append(100 + i)
            row = {
                **candidate,
                "scores": [math.nan] * self.m if bad else self.scores(g, i),
                "norm_scores": None,
                "status": "invalid" if bad else "valid",
                "reason": "failed to compile" if bad else "",
                "duration_s": 0.01,
                "metadata": {"worker": "w0", "pid": os.getpid(), "node": "n0", "gpu": None, "metrics": {"size": 100 + i}},
            }
            self.rows.append(row)
            self.bus.emit("post_objective", candidate, row)
        x = self.valid()
        evaluations = len(self.rows)
        if self.m == 1:
            best: list[float] = [float(x[:, 0].min())]
            pareto_size = hv = None
        else:
            best = [float(x[:, 0].min()), float(x[:, 1].max())]
            pareto_size = int(pareto_mask(x, self.directions).sum())
            hv = hypervolume(x, [10.0, 0.0], self.directions)
        stats = {
            "generation": g,
            "evaluations": evaluations,
            "generation_evaluations": self.per_gen,
            "invalid": invalid,
            "invalid_rate": invalid / self.per_gen,
            "best": best,
            "pareto_size": pareto_size,
            "hypervolume": hv,
            "wall_time_s": time.time() - t + 0.5,
            "throughput": self.per_gen / 0.5,
            "user_metrics": {"size": float(np.mean(sizes)), "not a number": math.nan},
        }
        self.stats.append(stats)
        self.bus.emit("generation_ends", g, stats)

    def end(self, reason: str = "completed") -> dict[str, Any]:
        csv = SearchResult.from_rows(self.rows, self.directions, self.m).save(self.folder / "results.csv")
        last = self.stats[-1]
        summary = {
            "reason": reason,
            "evaluations": len(self.rows),
            "invalid": sum(r["status"] == "invalid" for r in self.rows),
            "generations": len(self.stats),
            "best": last["best"],
            "pareto_size": last["pareto_size"],
            "hypervolume": last["hypervolume"],
            "wall_time_s": time.time() - self.t0,
            "run_folder": str(self.folder),
            "result_csv": str(csv),
        }
        self.bus.emit("search_ends", reason, summary)
        return summary

    def run(self, generations: int = 3, reason: str = "completed") -> dict[str, Any]:
        self.start()
        for g in range(generations):
            self.generation(g)
        return self.end(reason)


def event_counts(generations: int, per_gen: int) -> dict[str, int]:
    n = generations * per_gen
    return {
        "search_starts": 1, "generation_starts": generations, "pre_objective": n,
        "post_objective": n, "generation_ends": generations, "search_ends": 1,
    }  # fmt: skip


class Gate(BaseTracker):
    """Placed after another tracker on a bus: ``reached`` is set once ``generation_ends(n)`` has
    been delivered, so the trackers before it have handled it too."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.reached = threading.Event()

    def generation_ends(self, generation: int, stats: dict[str, Any]) -> None:
        if generation == self.generation:
            self.reached.set()


# ----- stores ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """One SQLite store for the module (its first use runs MLflow's migrations, ~7 s)."""
    root = tmp_path_factory.mktemp("mlflow-sqlite")
    return f"sqlite:///{root}/mlflow.db", root / "artifacts"


class Server:
    """A local ``mlflow server`` (SQLite backend, proxied artifacts), in its own process group."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ensure_running(self) -> Server:
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.port = free_port()
        log = open(self.root / f"server-{self.port}.log", "wb")  # noqa: SIM115 - owned by the process
        cmd = [
            sys.executable, "-m", "mlflow", "server",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--backend-store-uri", f"sqlite:///{self.root}/server.db",
            "--artifacts-destination", str(self.root / "server-artifacts"),
            "--workers", "1",
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.root)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(self.root / f'server-{self.port}.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError("mlflow server did not answer /health within 90 s")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGCONT)
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def server_handle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    handle = Server(tmp_path_factory.mktemp("mlflow-server"))
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def server(server_handle: Server) -> Server:
    return server_handle.ensure_running()


# ----- checks ----------------------------------------------------------------------------------------


def _download(client: MlflowClient, run_id: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, "", str(dest)))


def check_run(
    client: MlflowClient, tracker: MLflowTracker, search: SyntheticSearch, experiment: str, tmp: Path, nested: bool = False
) -> None:
    """What one synthetic 3-generation search must leave in MLflow."""
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None and exp.experiment_id == tracker.experiment_id
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1
    run = parents[0]
    assert run.info.run_id == tracker.run_id
    assert run.info.status == "FINISHED"
    if nested:
        assert len(children) == 3
        assert {r.data.tags["mlflow.parentRunId"] for r in children} == {tracker.run_id}
        assert sorted(int(r.data.tags["genetune.generation"]) for r in children) == [0, 1, 2]
        assert all(r.info.status == "FINISHED" for r in children)
        for child in children:
            g = int(child.data.tags["genetune.generation"])
            history = client.get_metric_history(child.info.run_id, "best" if search.m == 1 else "best_1")
            assert [(h.step, h.value) for h in history] == [(g, search.stats[g]["best"][0])]
    else:
        assert children == []

    # Metrics: one point per generation, at step = generation.
    best_keys = ["best"] if search.m == 1 else ["best_1", "best_2"]
    for j, key in enumerate(best_keys):
        history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda h: h.step)
        assert [h.step for h in history] == [0, 1, 2]
        assert [h.value for h in history] == pytest.approx([s["best"][j] for s in search.stats])
    same = ["evaluations", "invalid", "invalid_rate", "throughput"]
    for key, stat in [*zip(same, same, strict=True), ("generation_wall_time_s", "wall_time_s")]:
        history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda h: h.step)
        assert [h.step for h in history] == [0, 1, 2], key
        assert [h.value for h in history] == pytest.approx([s[stat] for s in search.stats]), key
    user = sorted(client.get_metric_history(run.info.run_id, "user.size"), key=lambda h: h.step)
    assert [h.value for h in user] == pytest.approx([101.5, 101.5, 101.5])
    metrics = run.data.metrics
    assert not any("not a number" in k for k in metrics)  # NaN user metric skipped
    assert metrics["summary.evaluations"] == 12 and metrics["summary.invalid"] == 1 and metrics["summary.generations"] == 3
    if search.m == 1:
        assert "hypervolume" not in metrics and "pareto_size" not in metrics and "best_1" not in metrics
    else:
        assert "best" not in metrics
        for key in ("hypervolume", "pareto_size"):
            history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda h: h.step)
            assert [h.step for h in history] == [0, 1, 2]
            assert [h.value for h in history] == pytest.approx([s[key] for s in search.stats])

    # Params and tags.
    params = run.data.params
    assert params["config.generations"] == "3" and params["config.pool_size"] == "8"
    assert params["config.seed"] == "7" and params["seed"] == "7" and params["engine"] == search.engine
    assert json.loads(params["config.directions"]) == search.directions
    assert params["space.parameters"] == "3"
    assert params["space.a"] == "range[0,10] step 1"
    assert params["space.b.c"] == 'choice(3): ["x", "y", "z"], knockout 0.2'
    assert params["space.flag"] == 'literal("-O3")'
    tags = run.data.tags
    assert tags["genetune.engine"] == search.engine and tags["genetune.seed"] == "7"
    assert tags["genetune.status"] == "finished" and tags["genetune.stop_reason"] == "completed"
    assert tags["genetune.host"] == socket.gethostname() and tags["genetune.version"] == gt.__version__
    assert tags["genetune.environment"] == "ab" * 32

    # Artifacts: present and loadable.
    names = {f.path for f in client.list_artifacts(run.info.run_id)}
    expected = ARTIFACTS | ({"pareto_front.png"} if search.m > 1 else set())
    assert names == expected
    local = _download(client, run.info.run_id, tmp / f"download-{run.info.run_id}")
    assert json.loads((local / "config.json").read_text())["generations"] == 3
    assert json.loads((local / "search_space.json").read_text()) == json.loads(json.dumps(ss.compile_space(SPACE)))
    manifest = json.loads((local / "manifest.json").read_text())
    assert manifest["engine"] == search.engine and manifest["seed"] == 7
    summary = json.loads((local / "summary.json").read_text())
    assert summary["evaluations"] == 12 and summary["trackers"] == {"MLflowTracker": "ok"}
    assert [g["generation"] for g in json.loads((local / "generations.json").read_text())] == [0, 1, 2]
    parameters = json.loads((local / "search_space_parameters.json").read_text())
    assert [p["keys"] for p in parameters] == [["a"], ["b", "c"], ["flag"]]
    csv = pd.read_csv(local / "results.csv")
    parquet = pd.read_parquet(local / "results.parquet")
    assert len(csv) == len(parquet) == 12
    assert list(parquet["status"]).count("invalid") == 1
    back = SearchResult.from_parquet(local / "results.parquet", directions=search.directions)
    assert back.num_objectives == search.m and back.get_results()["params"][0] == search.rows[0]["params"]
    from PIL import Image

    for png in ("convergence.png", "pareto_front.png") if search.m > 1 else ("convergence.png",):
        with Image.open(local / png) as image:
            image.load()
            assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100


def _experiment(client: MlflowClient, name: str, artifacts: Path) -> None:
    client.create_experiment(name, artifact_location=artifacts.as_uri())


def _run_sqlite(
    sqlite_store: tuple[str, Path], tmp_path: Path, name: str, m: int = 1, **options: Any
) -> tuple[MlflowClient, MLflowTracker, SyntheticSearch]:
    uri, artifacts = sqlite_store
    location = (artifacts / name).as_uri()
    tracker = MLflowTracker(
        experiment_name=name, tracking_uri=uri, description="a test search", artifact_location=location, **options
    )
    bus = TrackerBus([tracker])
    search = SyntheticSearch(bus, tmp_path / "run", m=m)
    search.run()
    report = bus.close()
    assert report == {"MLflowTracker": "ok"}
    return MlflowClient(tracking_uri=uri), tracker, search


# ----- tests -----------------------------------------------------------------------------------------


def test_importing_genetune_does_not_import_mlflow() -> None:
    code = "import sys, genetune, genetune.trackers; assert 'mlflow' not in sys.modules, 'mlflow imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tracker_pickles_before_setup(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/x.db"
    tracker = MLflowTracker(experiment_name="pickled", tracking_uri=uri, nested_generation_runs=True, retries=2, backoff_s=0.1)
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, cloudpickle.loads)):
        copy = loads(dumps(tracker))
        assert isinstance(copy, MLflowTracker)
        assert (copy.experiment_name, copy.tracking_uri, copy.nested_generation_runs, copy.retries, copy.backoff_s) == (
            "pickled", uri, True, 2, 0.1,
        )  # fmt: skip
        assert copy.run_id is None and copy.experiment_id is None


def test_tracking_uri_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert MLflowTracker(tracking_uri="sqlite:///rel/m.db").tracking_uri == f"sqlite:///{tmp_path}/rel/m.db"
    assert MLflowTracker(tracking_uri="mlruns").tracking_uri == (tmp_path / "mlruns").as_uri()
    assert MLflowTracker(tracking_uri="http://127.0.0.1:5000").tracking_uri == "http://127.0.0.1:5000"
    assert MLflowTracker().tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"  # MLflow's default, absolute
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///env.db")
    assert MLflowTracker().tracking_uri == f"sqlite:///{tmp_path}/env.db"


def test_sqlite_single_objective(sqlite_store: tuple[str, Path], tmp_path: Path) -> None:
    before = {k: os.environ.get(k) for k in MLFLOW_ENV}
    client, tracker, search = _run_sqlite(sqlite_store, tmp_path, "genetune-sqlite-one")
    check_run(client, tracker, search, "genetune-sqlite-one", tmp_path)
    run = client.get_run(tracker.run_id or "")
    assert re.fullmatch(r"ga-seed7-\d{8}-\d{6}", run.info.run_name)
    # The description, then the search's markdown summary (the run page says what happened).
    note = run.data.tags["mlflow.note.content"]
    assert note.startswith("a test search\n\n# genetune search\n") and "* stop reason: **completed**" in note, note
    exp = client.get_experiment_by_name("genetune-sqlite-one")
    assert exp is not None and exp.artifact_location == (sqlite_store[1] / "genetune-sqlite-one").as_uri()
    assert (sqlite_store[1] / "genetune-sqlite-one" / tracker.run_id / "artifacts" / "results.parquet").is_file()
    # The tracker's HTTP settings were only set during its calls; the fluent API was not touched.
    assert {k: os.environ.get(k) for k in MLFLOW_ENV} == before
    assert mlflow.active_run() is None
    # Still picklable after a search.
    assert pickle.loads(pickle.dumps(tracker)).run_id == tracker.run_id


def test_sqlite_nested_generation_runs(sqlite_store: tuple[str, Path], tmp_path: Path) -> None:
    name = "genetune-sqlite-nested"
    client, tracker, search = _run_sqlite(sqlite_store, tmp_path, name, nested_generation_runs=True, run_name="nested")
    check_run(client, tracker, search, name, tmp_path, nested=True)
    assert client.get_run(tracker.run_id or "").info.run_name == "nested"


def test_sqlite_multi_objective(sqlite_store: tuple[str, Path], tmp_path: Path) -> None:
    client, tracker, search = _run_sqlite(sqlite_store, tmp_path, "genetune-sqlite-multi", m=2)
    check_run(client, tracker, search, "genetune-sqlite-multi", tmp_path)
    assert search.stats[-1]["pareto_size"] < len(search.valid())  # the dominated points are off the front


@pytest.mark.parametrize(
    ("reason", "status", "tag"),
    [("stopped", "KILLED", "stopped"), ("error", "FAILED", "failed"), ("budget", "FINISHED", "finished")],
)
def test_stop_reason_sets_run_status(sqlite_store: tuple[str, Path], tmp_path: Path, reason: str, status: str, tag: str) -> None:
    uri, _ = sqlite_store
    name = f"genetune-sqlite-{reason}"
    tracker = MLflowTracker(experiment_name=name, tracking_uri=uri, artifact_location=(sqlite_store[1] / name).as_uri())
    bus = TrackerBus([tracker])
    search = SyntheticSearch(bus, tmp_path / "run")
    search.start()
    search.generation(0)
    search.end(reason)
    assert bus.close() == {"MLflowTracker": "ok"}
    run = MlflowClient(tracking_uri=uri).get_run(tracker.run_id or "")
    assert run.info.status == status
    assert run.data.tags["genetune.status"] == tag and run.data.tags["genetune.stop_reason"] == reason


def test_run_closed_when_search_ends_never_arrives(sqlite_store: tuple[str, Path], tmp_path: Path) -> None:
    uri, _ = sqlite_store
    name = "genetune-sqlite-no-end"
    tracker = MLflowTracker(experiment_name=name, tracking_uri=uri, artifact_location=(sqlite_store[1] / name).as_uri())
    bus = TrackerBus([tracker])
    search = SyntheticSearch(bus, tmp_path / "run")
    search.start()
    search.generation(0)
    assert bus.close() == {"MLflowTracker": "ok"}
    run = MlflowClient(tracking_uri=uri).get_run(tracker.run_id or "")
    assert run.info.status == "FAILED" and run.data.tags["genetune.status"] == "failed"


@pytest.mark.parametrize("size", [3, 150])
def test_space_params_are_valid_keys_and_capped(sqlite_store: tuple[str, Path], tmp_path: Path, size: int) -> None:
    weird = {
        "-O3 flag/x['y']": ss.literal(True),
        "ünï cödé": {"../up": ss.choice([1, 2]), "a:b": ss.range(0.5, 1.5, step=None)},
    }
    space = weird if size == 3 else {f"p{i}": ss.range(0, i + 1) for i in range(size)}
    uri, artifacts = sqlite_store
    name = f"genetune-sqlite-space-{size}"
    tracker = MLflowTracker(experiment_name=name, tracking_uri=uri, artifact_location=(artifacts / name).as_uri())
    bus = TrackerBus([tracker])
    search = SyntheticSearch(bus, tmp_path / "run", space=space)
    search.start()
    search.generation(0)
    search.end()
    assert bus.close() == {"MLflowTracker": "ok"}
    client = MlflowClient(tracking_uri=uri)
    params = client.get_run(tracker.run_id or "").data.params
    space_params = {k: v for k, v in params.items() if k.startswith("space.")}
    if size == 3:
        assert space_params == {
            "space.parameters": "3",
            "space.-O3 flag_x__y__": "literal(true)",
            "space.ünï cödé..._up": "choice(2): [1, 2]",
            "space.ünï cödé.a_b": "range[0.5,1.5] continuous",
        }
    else:
        assert space_params == {"space.parameters": "150"}
    local = _download(client, tracker.run_id or "", tmp_path / "download")
    described = json.loads((local / "search_space_parameters.json").read_text())
    assert len(described) == size


@QUIET_FAILURES
def test_unreachable_server_fails_fast_and_is_disabled(tmp_path: Path) -> None:
    # Nothing listens on the port: every call is refused at once, retried twice (0.05 + 0.1 s).
    tracker = MLflowTracker(tracking_uri=f"http://127.0.0.1:{free_port()}", retries=2, backoff_s=0.05)
    t = time.monotonic()
    with pytest.raises(RuntimeError, match=r"after 3 attempt\(s\)"):
        tracker.search_starts(SyntheticSearch(TrackerBus([]), tmp_path / "direct").manifest())
    assert 0.15 <= time.monotonic() - t < 10
    # Until a call succeeds again, the next calls are tried once; the run is still being created.
    with pytest.raises(RuntimeError, match=r"get_experiment_by_name failed after 1 attempt\(s\)"):
        tracker.generation_ends(0, {"best": [1.0], "evaluations": 4})
    assert tracker.run_id is None

    jsonl = JsonlTracker(tmp_path / "log.jsonl")
    bus = TrackerBus([tracker, jsonl])
    t = time.monotonic()
    SyntheticSearch(bus, tmp_path / "run").run()
    report = bus.close()
    assert time.monotonic() - t < 20
    assert report["MLflowTracker"].startswith("disabled after 3 failures")
    assert report["JsonlTracker"] == "ok"
    events = Counter(json.loads(line)["event"] for line in (tmp_path / "log.jsonl").read_text().splitlines())
    assert events == event_counts(generations=3, per_gen=4)


@pytest.mark.slow
def test_server_single_objective(server: Server, tmp_path: Path) -> None:
    tracker = MLflowTracker(experiment_name="genetune-http-one", tracking_uri=server.uri, nested_generation_runs=True)
    bus = TrackerBus([tracker])
    search = SyntheticSearch(bus, tmp_path / "run")
    search.run()
    assert bus.close() == {"MLflowTracker": "ok"}
    client = MlflowClient(tracking_uri=server.uri)
    check_run(client, tracker, search, "genetune-http-one", tmp_path, nested=True)
    assert client.get_experiment(tracker.experiment_id or "").artifact_location.startswith("mlflow-artifacts:")


@pytest.mark.slow
def test_server_multi_objective(server: Server, tmp_path: Path) -> None:
    tracker = MLflowTracker(experiment_name="genetune-http-multi", tracking_uri=server.uri)
    bus = TrackerBus([tracker])
    search = SyntheticSearch(bus, tmp_path / "run", m=2)
    search.run()
    assert bus.close() == {"MLflowTracker": "ok"}
    check_run(MlflowClient(tracking_uri=server.uri), tracker, search, "genetune-http-multi", tmp_path)


def _outage(server: Server, tmp_path: Path, name: str, sig: int, **options: Any) -> tuple[dict[str, str], float, MLflowTracker]:
    """Generations 0-1 reach the server, then ``sig`` goes to it, then generations 2-4 and the end
    are emitted. Returns the bus report, the seconds from the outage to ``close``, the tracker."""
    tracker = MLflowTracker(experiment_name=name, tracking_uri=server.uri, **options)
    gate = Gate(1)
    jsonl = JsonlTracker(tmp_path / "log.jsonl")
    bus = TrackerBus([tracker, gate, jsonl])
    search = SyntheticSearch(bus, tmp_path / "run")
    search.start()
    search.generation(0)
    search.generation(1)
    assert gate.reached.wait(60), "generation 1 was not delivered"
    history = MlflowClient(tracking_uri=server.uri).get_metric_history(tracker.run_id or "", "best")
    assert sorted(h.step for h in history) == [0, 1]
    server.signal(sig)
    if sig == signal.SIGTERM and server.proc is not None:
        # A stopping server drains gracefully and may still answer a request or two: the outage
        # starts once it has exited.
        server.proc.wait(60)
    t = time.monotonic()
    for g in range(2, 5):
        search.generation(g)
    search.end()
    report = bus.close(timeout=120)
    elapsed = time.monotonic() - t
    events = Counter(json.loads(line)["event"] for line in (tmp_path / "log.jsonl").read_text().splitlines())
    assert events == event_counts(generations=5, per_gen=4)
    assert report["JsonlTracker"] == "ok" and report["Gate"] == "ok"
    return report, elapsed, tracker


@pytest.mark.slow
@QUIET_FAILURES
def test_server_hung_mid_search_times_out(server: Server, tmp_path: Path) -> None:
    # A frozen server accepts connections but never answers: each call waits request_timeout_s.
    try:
        options = {"retries": 1, "backoff_s": 0.1, "request_timeout_s": 1}
        report, elapsed, _ = _outage(server, tmp_path, "genetune-http-hung", signal.SIGSTOP, **options)
    finally:
        server.signal(signal.SIGCONT)
    assert report["MLflowTracker"].startswith("disabled after 3 failures")
    assert "timeout" in report["MLflowTracker"].lower() or "timed out" in report["MLflowTracker"].lower()
    assert elapsed < 30  # 2 attempts x 1 s + 0.1 s, then 1 attempt per event: ~4 s


@pytest.mark.slow
@QUIET_FAILURES
def test_server_back_after_a_failure_gets_the_missed_metrics(server: Server, tmp_path: Path) -> None:
    options = {"retries": 1, "backoff_s": 0.1, "request_timeout_s": 1}
    tracker = MLflowTracker(experiment_name="genetune-http-recovers", tracking_uri=server.uri, **options)
    gate1, gate2 = Gate(1), Gate(2)
    bus = TrackerBus([tracker, gate1, gate2])
    search = SyntheticSearch(bus, tmp_path / "run")
    search.start()
    search.generation(0)
    search.generation(1)
    assert gate1.reached.wait(60)
    server.signal(signal.SIGSTOP)
    try:
        search.generation(2)
        assert gate2.reached.wait(60)  # generation 2's batch has failed
    finally:
        server.signal(signal.SIGCONT)
    search.generation(3)
    search.generation(4)
    search.end()
    report = bus.close()
    assert report["MLflowTracker"].startswith("1 failure(s), last: generation_ends")
    client = MlflowClient(tracking_uri=server.uri)
    run = client.get_run(tracker.run_id or "")
    assert run.info.status == "FINISHED" and run.data.tags["genetune.status"] == "finished"
    history = sorted(client.get_metric_history(run.info.run_id, "best"), key=lambda h: h.step)
    assert [h.step for h in history] == [0, 1, 2, 3, 4]  # generation 2 sent with generation 3, once
    assert [h.value for h in history] == pytest.approx([s["best"][0] for s in search.stats])


@pytest.mark.slow
@QUIET_FAILURES
def test_server_stopped_mid_search(server: Server, tmp_path: Path) -> None:
    try:
        report, elapsed, _ = _outage(server, tmp_path, "genetune-http-stopped", signal.SIGTERM, retries=3, backoff_s=0.2)
    finally:
        server.stop()
    assert report["MLflowTracker"].startswith("disabled after 3 failures")
    assert elapsed < 60


def _quadratic(params: dict[str, Any]) -> float:
    return float((params["a"] - 3) ** 2)


def test_real_search(sqlite_store: tuple[str, Path], tmp_path: Path) -> None:
    uri, artifacts = sqlite_store
    name = "genetune-real-search"
    tracker = MLflowTracker(experiment_name=name, tracking_uri=uri, artifact_location=(artifacts / name).as_uri())
    search = gt.Search(
        _quadratic,
        {"a": ss.range(0, 100), "b": ss.choice(["x", "y"])},
        gt.SearchConfiguration(generations=3, pool_size=8, seed=1),
        worker_type="sequential",
        trackers=[tracker],
        cache_folder=tmp_path,
        disable_progress_bar=True,
    )
    result = search.start()
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(name)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1 and runs[0].info.run_id == tracker.run_id
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.tags["genetune.status"] == "finished"
    assert run.data.params["config.generations"] == "3" and run.data.params["seed"] == "1"
    history = sorted(client.get_metric_history(run.info.run_id, "best"), key=lambda h: h.step)
    assert [h.step for h in history] == [0, 1, 2]
    best = result.get_best_result()
    assert isinstance(best, dict) and history[-1].value == pytest.approx(best["score_1"])
    # No description given: the run's description is the search's markdown summary, best configuration included.
    note = run.data.tags["mlflow.note.content"]
    assert note.startswith("# genetune search\n") and "## Best configurations" in note and f"| {best['id']} |" in note, note
    names = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "manifest.json", "summary.json", "results.csv", "results.parquet", "convergence.png"} <= names
    local = _download(client, run.info.run_id, tmp_path / "download")
    assert len(pd.read_parquet(local / "results.parquet")) == len(result.get_results())


def test_artifacts_beside_a_sqlite_store_by_default(sqlite_store: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without artifact_location, a new experiment keeps its artifacts beside the database, not in
    ./mlruns of whatever directory the search runs in."""
    uri, _ = sqlite_store
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    tracker = MLflowTracker(experiment_name="beside the store", tracking_uri=uri)
    gt.Search(_quadratic, {"a": ss.range(0, 9)}, {"generations": 1, "pool_size": 6, "seed": 2}, worker_type="sequential",
              trackers=[tracker], cache_folder=tmp_path / "runs", disable_progress_bar=True).start()  # fmt: skip
    store = Path(uri[len("sqlite:///") :]).parent
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("beside the store")
    assert exp is not None and exp.artifact_location == (store / "mlartifacts" / "beside_the_store").as_uri()
    assert (store / "mlartifacts" / "beside_the_store" / (tracker.run_id or "") / "artifacts" / "results.csv").is_file()
    assert list(cwd.iterdir()) == []


class StopServerAfter:
    """Listed after the MLflow tracker, so MLflow has logged ``generation`` when the server stops."""

    def __init__(self, server: Server, generation: int) -> None:
        self.server, self.generation = server, generation

    def generation_ends(self, generation: int, stats: dict[str, Any]) -> None:
        if generation == self.generation:
            self.server.stop()


@pytest.mark.slow
@QUIET_FAILURES
def test_real_search_completes_when_the_server_stops(server: Server, tmp_path: Path) -> None:
    tracker = MLflowTracker(experiment_name="genetune-real-outage", tracking_uri=server.uri, retries=2, backoff_s=0.1)
    log = tmp_path / "events.jsonl"
    search = gt.Search(
        _quadratic,
        {"a": ss.range(0, 100), "b": ss.choice(["x", "y"])},
        gt.SearchConfiguration(generations=5, pool_size=8, seed=2),
        worker_type="sequential",
        trackers=[tracker, StopServerAfter(server, 1), JsonlTracker(log)],
        cache_folder=tmp_path,
        disable_progress_bar=True,
    )
    started = time.monotonic()
    result = search.start()
    assert time.monotonic() - started < 90
    assert len(result.get_results()) == 40
    assert search.tracker_report["MLflowTracker"].startswith(("disabled", "1 failure", "2 failure"))
    events = Counter(json.loads(line)["event"] for line in log.read_text().splitlines())
    assert events == {"search_starts": 1, "generation_starts": 5, "pre_objective": 40, "post_objective": 40, "generation_ends": 5, "search_ends": 1}
