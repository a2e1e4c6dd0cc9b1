"""`MLflowTracker`: one MLflow run per search, with per-generation metrics and result artifacts.

What a search leaves in MLflow:

* one run per search (optionally one child run per generation, never one per evaluation), in the
  experiment ``experiment_name`` (created when missing);
* params: the configuration (``config.<field>``), ``seed``, ``engine``, and a summary of the
  search space (``space.parameters`` and, up to ``max_space_params`` parameters, one
  ``space.<key path>`` description each, e.g. ``range[0,10] step 1, knockout 0.2``);
* tags: ``genetune.engine``, ``genetune.seed``, ``genetune.status`` (running, then finished,
  stopped or failed), ``genetune.stop_reason``, ``genetune.host``, ``genetune.version``, ...;
* metrics at ``step=generation``, sent in one ``log_batch`` per generation: ``best`` (one
  objective) or ``best_1..best_M``, ``hypervolume``, ``pareto_size``, ``invalid_rate``,
  ``invalid``, ``evaluations``, ``generation_evaluations``, ``throughput``,
  ``generation_wall_time_s`` and ``user.<name>`` (means of the user's metrics); the final summary
  as ``summary.<name>``;
* artifacts at the end: ``config.json``, ``search_space.json``, ``search_space_parameters.json``,
  ``manifest.json``, ``summary.json``, ``results.csv`` and ``results.parquet``,
  ``convergence.png`` and (several objectives) ``pareto_front.png``.

Every MLflow call goes through one helper that retries transient failures with exponential
backoff, then raises, so the tracker bus counts the failure (and disables the tracker after
repeated ones) while the search goes on; until a call succeeds again, later calls are tried once.
Metrics that could not be sent are kept and go with the next batch that succeeds.

MLflow's own HTTP retries are turned off and its request timeout shortened for the tracker's calls
(``MLFLOW_HTTP_REQUEST_MAX_RETRIES=0``, ``MLFLOW_HTTP_REQUEST_TIMEOUT=request_timeout_s``,
``MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT=true``): a dead or hung server costs seconds, not the
minutes of MLflow's defaults. These variables are process-wide: they are set only while one of the
tracker's calls runs and restored after it (MLflow calls made by other threads at that moment, or
processes started then, see them too).

The tracker never touches MLflow's fluent "active run" state, so it does not clash with the
user's own ``mlflow.start_run()``. ``genetune.trackers`` loads this module (and MLflow with it)
only when the tracker is used, not when ``genetune`` is imported.
"""

from __future__ import annotations

import getpass
import json
import math
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

import mlflow
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from genetune._core import __version__
from genetune.jsonable import strict_jsonable
from genetune.results import SearchResult, pareto_mask
from genetune.settings import get_settings
from genetune.trackers.base import BaseTracker
from genetune.trackers.summary import search_summary_markdown

__all__ = ["MLflowTracker"]

_T = TypeVar("_T")

# MLflow's limits (mlflow/utils/validation.py).
_MAX_PARAM_VAL_LENGTH = 6000
_MAX_TAG_VAL_LENGTH = 8000
_MAX_KEY_LENGTH = 250
_MAX_PARAMS_TAGS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000
_MAX_BATCH_CHARS = 900_000  # under MLflow's 1 MB per log_batch request
_MAX_PENDING_METRICS = 200_000  # metrics kept for a later retry while the server is unreachable

_KEY_CHARS = re.compile(r"[^\w.\- ]")
_RUN_STATUS = {"completed": "FINISHED", "exhausted": "FINISHED", "budget": "FINISHED", "stopped": "KILLED", "error": "FAILED"}
_STATUS_TAG = {"FINISHED": "finished", "KILLED": "stopped", "FAILED": "failed"}
_GENERATION_METRICS = (
    "hypervolume", "pareto_size", "invalid_rate", "invalid", "evaluations", "generation_evaluations", "throughput",
)  # fmt: skip
_SUMMARY_METRICS = (
    "evaluations", "invalid", "generations", "pareto_size", "hypervolume", "wall_time_s",
    "remeasured_best_mean", "remeasured_best_ci_low", "remeasured_best_ci_high", "remeasured_best_n",
)  # fmt: skip
_NOT_TRANSIENT = (TypeError, ValueError, KeyError, AttributeError, NotImplementedError, AssertionError)

# The process-wide MLflow HTTP settings, overridden while any tracker call runs (see _request_env).
_ENV_LOCK = threading.Lock()
_env_depth = 0
_env_saved: dict[str, str | None] = {}


@contextmanager
def _request_env(overrides: Mapping[str, str]) -> Iterator[None]:
    """Sets ``overrides`` in ``os.environ`` while the body runs; nested and concurrent users share
    one override (the first one in sets it, the last one out restores the previous values)."""
    global _env_depth
    with _ENV_LOCK:
        if _env_depth == 0:
            _env_saved.clear()
            for key, value in overrides.items():
                _env_saved[key] = os.environ.get(key)
                os.environ[key] = value
        _env_depth += 1
    try:
        yield
    finally:
        with _ENV_LOCK:
            _env_depth -= 1
            if _env_depth == 0:
                for key, old in _env_saved.items():
                    if old is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = old
                _env_saved.clear()


def _absolute_uri(uri: str) -> str:
    """``uri`` with a local path made absolute (sqlite and file stores), so a later ``chdir`` does
    not move the store."""
    if uri.startswith("sqlite:///"):
        path = unquote(uri[len("sqlite:///") :])
        if path and path != ":memory:" and not path.startswith("/") and not re.match(r"^[A-Za-z]:[\\/]", path):
            return "sqlite:///" + os.path.abspath(path)
        return uri
    parsed = urlparse(uri)
    if parsed.scheme == "" or re.match(r"^[A-Za-z]$", parsed.scheme):  # a plain path (or a Windows drive)
        return Path(os.path.abspath(uri)).as_uri()
    if parsed.scheme == "file" and not parsed.netloc and not parsed.path.startswith("/"):
        return Path(os.path.abspath(unquote(parsed.path))).as_uri()
    return uri


def beside_local_store(tracking_uri: str, experiment_name: str) -> str | None:
    """Where a new experiment of a local SQLite store keeps its artifacts: ``mlartifacts/<name>``
    beside the database file (MLflow's own default, ``./mlruns``, is relative to the current
    directory, wherever that is). None for other stores (a server decides for itself)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    path = unquote(tracking_uri[len("sqlite:///") :])
    if not path or path == ":memory:":
        return None
    return (Path(path).parent / "mlartifacts" / _key(experiment_name).replace(" ", "_")).as_uri()


def _key(text: str) -> str:
    """A valid MLflow param/metric/tag key: letters, digits, ``_ - . space``, at most 250 chars."""
    key = _KEY_CHARS.sub("_", text).strip() or "_"
    if len(key) > _MAX_KEY_LENGTH:
        digest = uuid.uuid5(uuid.NAMESPACE_OID, key).hex[:10]
        key = key[: _MAX_KEY_LENGTH - 11] + "_" + digest
    return key


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _param_value(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, Mapping | list | tuple):
        text = json.dumps(strict_jsonable(value), sort_keys=isinstance(value, Mapping))
    else:
        text = str(value)
    return _truncate(text, _MAX_PARAM_VAL_LENGTH)


def _finite(value: Any) -> float | None:
    """``value`` as a finite float, or None (None, NaN, infinities, non-numbers)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) or hasattr(value, "__float__"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        return number if math.isfinite(number) else None
    return None


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(strict_jsonable(value), indent=2, allow_nan=False) + "\n")


def _describe(param: Mapping[str, Any]) -> str:
    """A short description of one compiled parameter: ``range[0,10] step 1``, ``choice(3): [...]``,
    ``literal("-O3")``, with ``, knockout p`` when it may be knocked out."""
    kind = param.get("type")
    if kind == "range":
        step = param.get("step")
        text = f"range[{param.get('start')},{param.get('end')}] " + ("continuous" if step is None else f"step {step}")
    elif kind == "choice":
        values = list(param.get("values") or [])
        listed = json.dumps(values)
        text = f"choice({len(values)})" + (f": {listed}" if len(listed) <= 200 else "")
    elif kind == "literal":
        text = f"literal({_truncate(json.dumps(param.get('value')), 200)})"
    else:
        text = str(kind)
    knockout = param.get("knockout_prob")
    if knockout:
        text += f", knockout {knockout}"
    return _truncate(text, _MAX_PARAM_VAL_LENGTH)


def _space_parameters(spec: Any) -> list[tuple[list[str], str, Mapping[str, Any]]]:
    """``(key path, display path, parameter)`` of every parameter of a compiled search space."""
    out: list[tuple[list[str], str, Mapping[str, Any]]] = []

    def walk(node: Any, keys: list[str]) -> None:
        if not isinstance(node, Mapping):
            return
        if "param" in node:
            out.append((keys, str(node.get("path", "")), node["param"]))
        elif "dict" in node:
            for entry in node["dict"]:
                walk(entry[1], [*keys, str(entry[0])])
        elif "list" in node:
            for i, child in enumerate(node["list"]):
                walk(child, [*keys, str(i)])

    walk(spec, [])
    return out


def _transient(err: BaseException) -> bool:
    """Whether retrying may help: server errors (5xx), rate limits (429), connection errors and
    timeouts; not a rejected request (4xx) nor a programming error."""
    if isinstance(err, MlflowException):
        status = int(err.get_http_status_code())  # type: ignore[no-untyped-call]
        return status >= 500 or status == 429
    response = getattr(err, "response", None)
    status_code = getattr(response, "status_code", None)
    if isinstance(status_code, int):
        return status_code >= 500 or status_code == 429
    return not isinstance(err, _NOT_TRANSIENT)


def _chunks(items: Sequence[_T], size: int, chars: Callable[[_T], int] | None = None) -> Iterator[list[_T]]:
    chunk: list[_T] = []
    total = 0
    for item in items:
        n = chars(item) if chars is not None else 0
        if chunk and (len(chunk) >= size or total + n > _MAX_BATCH_CHARS):
            yield chunk
            chunk, total = [], 0
        chunk.append(item)
        total += n
    if chunk:
        yield chunk


class MLflowTracker(BaseTracker):
    """Records a search as one MLflow run (see the module documentation for what is logged).

    * ``experiment_name``: the experiment (default ``"genetune"``), created when missing (with
      ``artifact_location``; by default, for a SQLite store, ``mlartifacts/<experiment>`` beside
      its database file, not MLflow's ``./mlruns`` of the current directory) and restored when
      deleted.
    * ``run_name``: default ``"{engine}-seed{seed}-{YYYYmmdd-HHMMSS}"``.
    * ``tracking_uri``: default ``GENETUNE_TRACKING_URI``, else MLflow's own (``mlflow.get_tracking_uri()``: ``MLFLOW_TRACKING_URI``,
      ``mlflow.set_tracking_uri`` or ``sqlite:///<cwd>/mlflow.db``), resolved when the tracker is
      built and made absolute.
    * ``description``: the run's description (``mlflow.note.content``); at the end the
      search's markdown summary is appended to it (it is the whole description without one).
    * ``nested_generation_runs``: also one child run per generation, with that generation's
      metrics.
    * ``retries`` / ``backoff_s``: each MLflow call is retried up to ``retries`` times after
      ``backoff_s``, ``2*backoff_s``, ... seconds when it fails transiently; then it raises (and
      the next calls are tried once, until one succeeds). With the defaults, an unresponsive
      server holds an event for at most 4 x 5 s + 3.5 s, then 5 s per event.
    * ``request_timeout_s``: MLflow's HTTP timeout for this tracker's requests (MLflow's own HTTP
      retries are off: the tracker retries).
    * ``max_space_params``: up to this many parameters, each gets a ``space.<path>`` param;
      beyond, only ``space.parameters`` (the full space is in the ``search_space*.json``
      artifacts either way).

    ``run_id`` and ``experiment_id`` are set once the run exists (after ``search_starts``).
    Metrics that could not be sent are kept and sent with the next successful batch.
    """

    def __init__(
        self,
        experiment_name: str | None = None,
        run_name: str | None = None,
        tracking_uri: str | None = None,
        description: str | None = None,
        nested_generation_runs: bool = False,
        retries: int = 3,
        backoff_s: float = 0.5,
        *,
        artifact_location: str | None = None,
        request_timeout_s: int = 5,
        max_space_params: int = 100,
    ) -> None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an int >= 0, got {retries!r}")
        if not isinstance(backoff_s, int | float) or not math.isfinite(backoff_s) or backoff_s < 0:
            raise ValueError(f"backoff_s must be a finite number >= 0, got {backoff_s!r}")
        if isinstance(request_timeout_s, bool) or not isinstance(request_timeout_s, int) or request_timeout_s < 1:
            raise ValueError(f"request_timeout_s must be an int >= 1, got {request_timeout_s!r}")
        self.experiment_name = experiment_name or "genetune"
        self.run_name = run_name
        if tracking_uri is None:
            tracking_uri = get_settings().tracking_uri  # GENETUNE_TRACKING_URI, else MLflow's own default
        self.tracking_uri = _absolute_uri(str(tracking_uri) if tracking_uri is not None else str(mlflow.get_tracking_uri()))
        self.description = description
        self.nested_generation_runs = bool(nested_generation_runs)
        self.retries = retries
        self.backoff_s = float(backoff_s)
        self.artifact_location = artifact_location
        self.request_timeout_s = request_timeout_s
        self.max_space_params = max_space_params
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self._client: MlflowClient | None = None
        self._reset()

    def _reset(self) -> None:
        self.run_id = None
        self.experiment_id = None
        self._manifest: dict[str, Any] | None = None
        self._run_name: str | None = None
        self._run_started_ms = 0
        self._run_logged = False  # params and tags of search_starts sent
        self._terminated = False
        self._unreachable = False  # the last call failed transiently after all its retries
        self._final_status: str | None = None
        self._pending: list[Metric] = []
        self._generations: list[dict[str, Any]] = []
        self._generation_started_ms: dict[int, int] = {}
        self._points: list[list[float]] = []
        self._num_objectives = 1
        self._directions: list[str] = ["min"]
        self._normalized = False

    # ----- pickling: the client (and its connection pool) is rebuilt where the tracker runs ------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_client"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # ----- MLflow access --------------------------------------------------------------------------

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def _env(self) -> dict[str, str]:
        return {
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(self.request_timeout_s),
            "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
        }

    def _call(self, what: str, fn: Callable[[], _T]) -> _T:
        """``fn()`` with up to ``retries`` retries on transient failures, waiting ``backoff_s``,
        then twice as long each time; raises ``RuntimeError`` (from the last error) after that.

        After a call has used up its retries, later calls try once until one succeeds again, so
        a store that stays down costs one timeout per event rather than a full retry cycle."""
        retries = 0 if self._unreachable else self.retries
        delay = self.backoff_s
        attempt = 0
        while True:
            attempt += 1
            try:
                with _request_env(self._env()):
                    out = fn()
                self._unreachable = False
                return out
            except Exception as err:
                transient = _transient(err)
                if attempt > retries or not transient:
                    self._unreachable = transient
                    raise RuntimeError(f"MLflow {what} failed after {attempt} attempt(s): {type(err).__name__}: {err}") from err
                time.sleep(delay)
                delay *= 2

    def _log_batch(
        self, run_id: str, metrics: Sequence[Metric] = (), params: Sequence[Param] = (), tags: Sequence[RunTag] = ()
    ) -> None:
        """``log_batch`` calls within MLflow's limits (1000 metrics; 100 params and tags; 1 MB)."""
        client = self.client

        def send(metrics: Sequence[Metric] = (), params: Sequence[Param] = (), tags: Sequence[RunTag] = ()) -> None:
            self._call("log_batch", lambda: client.log_batch(run_id, metrics=metrics, params=params, tags=tags, synchronous=True))

        for chunk in _chunks(metrics, _MAX_METRICS_PER_BATCH):
            send(metrics=chunk)
        entries: list[tuple[Param | None, RunTag | None]] = [(p, None) for p in params] + [(None, t) for t in tags]

        def size(entry: tuple[Param | None, RunTag | None]) -> int:
            item = entry[0] or entry[1]
            return 16 + (len(item.key) + len(str(item.value)) if item is not None else 0)

        for group in _chunks(entries, _MAX_PARAMS_TAGS_PER_BATCH, size):
            send(params=[p for p, _ in group if p is not None], tags=[t for _, t in group if t is not None])

    def _create_run(self, experiment_id: str, run_name: str, start_ms: int, tags: dict[str, str]) -> Run:
        """Creates a run; a retry first looks for the run a timed-out attempt may have created."""
        client = self.client
        token = uuid.uuid4().hex
        tags = {**tags, "genetune.run_token": token}
        tried = False

        def create() -> Run:
            nonlocal tried
            if tried:
                found = client.search_runs([experiment_id], filter_string=f"tags.`genetune.run_token` = '{token}'", max_results=1)
                if found:
                    return found[0]
            tried = True
            return client.create_run(experiment_id, start_time=start_ms, tags=tags, run_name=run_name)

        return self._call("create_run", create)

    def _experiment(self) -> str:
        client = self.client
        name = self.experiment_name
        experiment = self._call("get_experiment_by_name", lambda: client.get_experiment_by_name(name))
        if experiment is None:
            try:
                location = self.artifact_location or beside_local_store(self.tracking_uri, name)
                return str(self._call("create_experiment", lambda: client.create_experiment(name, artifact_location=location)))
            except RuntimeError as err:
                cause = err.__cause__
                if not (isinstance(cause, MlflowException) and cause.error_code == "RESOURCE_ALREADY_EXISTS"):
                    raise
                experiment = self._call("get_experiment_by_name", lambda: client.get_experiment_by_name(name))
                if experiment is None:
                    raise
        experiment_id = str(experiment.experiment_id)
        if experiment.lifecycle_stage == "deleted":
            self._call("restore_experiment", lambda: client.restore_experiment(experiment_id))
        return experiment_id

    def _ensure_run(self) -> str:
        """The run of this search, created (and its params and tags logged) if not yet done."""
        if self._manifest is None:
            raise RuntimeError("MLflowTracker received no search_starts")
        if self.run_id is None:
            experiment_id = self._experiment()
            tags = {"genetune.status": "running"}
            run = self._create_run(experiment_id, self._run_name or "genetune", self._run_started_ms, tags)
            self.experiment_id = experiment_id
            self.run_id = str(run.info.run_id)
        if not self._run_logged:
            params, tags = self._start_params_and_tags(self._manifest)
            self._log_batch(
                self.run_id,
                params=[Param(k, v) for k, v in params.items()],
                tags=[RunTag(k, v) for k, v in tags.items()],
            )
            self._run_logged = True
        return self.run_id

    def _flush(self, extra: Sequence[Metric] = ()) -> None:
        """Sends the pending metrics (and ``extra``); kept for the next try when that fails."""
        self._pending.extend(extra)
        if len(self._pending) > _MAX_PENDING_METRICS:
            del self._pending[: len(self._pending) - _MAX_PENDING_METRICS]
        run_id = self._ensure_run()
        if self._pending:
            self._log_batch(run_id, metrics=self._pending)
            self._pending = []

    # ----- what is logged -------------------------------------------------------------------------

    def _start_params_and_tags(self, manifest: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
        params: dict[str, str] = {}
        config = manifest.get("config") or {}
        if isinstance(config, Mapping):
            for field, value in config.items():
                params[_key(f"config.{field}")] = _param_value(value)
        for field in ("seed", "engine", "num_objectives", "directions", "normalized"):
            if manifest.get(field) is not None:
                params[field] = _param_value(manifest[field])
        space = _space_parameters(manifest.get("search_space"))
        params["space.parameters"] = str(len(space))
        if len(space) <= self.max_space_params:
            seen: set[str] = set(params)
            for keys, _display, param in space:
                key = base = _key("space." + ".".join(keys))
                n = 1
                while key in seen:
                    n += 1
                    key = _key(f"{base}_{n}")
                seen.add(key)
                params[key] = _describe(param)

        versions = manifest.get("versions") or {}
        version = versions.get("genetune") if isinstance(versions, Mapping) else None
        if version is None:
            version = __version__
        environment = manifest.get("environment") or {}
        tags: dict[str, str] = {
            "genetune.status": "running",
            "genetune.engine": str(manifest.get("engine", "")),
            "genetune.seed": str(manifest.get("seed", "")),
            "genetune.host": str(manifest.get("host") or socket.gethostname()),
            "genetune.version": str(version),
        }
        if isinstance(versions, Mapping) and versions:
            tags["genetune.versions"] = json.dumps(strict_jsonable(versions), sort_keys=True)
        if isinstance(environment, Mapping) and environment.get("fingerprint"):
            tags["genetune.environment"] = str(environment["fingerprint"])
        for field in ("run_folder", "started_at"):
            if manifest.get(field):
                tags[f"genetune.{field}"] = str(manifest[field])
        if self.description:
            tags["mlflow.note.content"] = self.description
        try:
            tags["mlflow.user"] = getpass.getuser()
        except Exception:  # noqa: S110 - no user name in some containers
            pass
        return params, {k: _truncate(v, _MAX_TAG_VAL_LENGTH) for k, v in tags.items()}

    def _generation_metrics(self, stats: Mapping[str, Any]) -> dict[str, float]:
        values: dict[str, Any] = {}
        best = stats.get("best")
        if isinstance(best, list | tuple):
            if len(best) == 1:
                values["best"] = best[0]
            else:
                for j, value in enumerate(best, start=1):
                    values[f"best_{j}"] = value
        elif best is not None:
            values["best"] = best
        for name in _GENERATION_METRICS:
            values[name] = stats.get(name)
        values["generation_wall_time_s"] = stats.get("wall_time_s")
        user = stats.get("user_metrics") or {}
        if isinstance(user, Mapping):
            for name, value in user.items():
                values[_key(f"user.{name}")] = value
        return {k: v for k, value in values.items() if (v := _finite(value)) is not None}

    # ----- hooks ----------------------------------------------------------------------------------

    def setup(self) -> None:
        _ = self.client  # no network yet: the store is reached first in search_starts

    #: Where ``mlflow ui`` serves by default: run links for local stores (sqlite, files) point there.
    local_ui_url: str = "http://127.0.0.1:5000"

    def run_url(self) -> str | None:
        """The run's page in the MLflow UI (None before the run exists). For a local store the
        link assumes ``mlflow ui --backend-store-uri <store>`` on its default address."""
        if self.run_id is None or self.experiment_id is None:
            return None
        base = self.tracking_uri.rstrip("/") if self.tracking_uri.startswith(("http://", "https://")) else self.local_ui_url
        return f"{base}/#/experiments/{self.experiment_id}/runs/{self.run_id}"

    def search_starts(self, manifest: dict[str, Any]) -> None:
        self._reset()
        self._manifest = dict(manifest)
        self._run_started_ms = int(time.time() * 1000)
        self._num_objectives = int(manifest.get("num_objectives") or 1)
        directions = manifest.get("directions") or ["min"] * self._num_objectives
        self._directions = [str(d) for d in directions]
        self._normalized = bool(manifest.get("normalized"))
        engine = manifest.get("engine", "search")
        seed = manifest.get("seed")
        self._run_name = self.run_name or f"{engine}-seed{seed}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
        self._ensure_run()

    def generation_starts(self, generation: int) -> None:
        self._generation_started_ms[int(generation)] = int(time.time() * 1000)

    def post_objective(self, candidate: dict[str, Any], score: dict[str, Any]) -> None:
        # Kept in memory for the Pareto plot when there is no results table at the end.
        if self._num_objectives < 2 or score.get("status") != "valid":
            return
        vector = score.get("norm_scores") if self._normalized else score.get("scores")
        if isinstance(vector, list | tuple) and len(vector) == self._num_objectives:
            point = [_finite(v) for v in vector]
            if all(p is not None for p in point):
                self._points.append([float(p) for p in point if p is not None])

    def generation_ends(self, generation: int, stats: dict[str, Any]) -> None:
        generation = int(generation)
        self._generations.append({"generation": generation, **stats})
        now = int(time.time() * 1000)
        values = self._generation_metrics(stats)
        self._flush([Metric(k, v, now, generation) for k, v in values.items()])
        if self.nested_generation_runs and self.run_id is not None and self.experiment_id is not None:
            client = self.client
            child = self._create_run(
                self.experiment_id,
                f"{self._run_name}-gen{generation}",
                self._generation_started_ms.pop(generation, now),
                {"mlflow.parentRunId": self.run_id, "genetune.generation": str(generation), "genetune.status": "finished"},
            )
            child_id = str(child.info.run_id)
            self._log_batch(child_id, metrics=[Metric(k, v, now, generation) for k, v in values.items()])
            self._call("set_terminated", lambda: client.set_terminated(child_id, "FINISHED", end_time=int(time.time() * 1000)))

    def search_ends(self, reason: str, summary: dict[str, Any]) -> None:
        status = _RUN_STATUS.get(str(reason), "FAILED")
        self._final_status = status
        now = int(time.time() * 1000)
        step = max((g["generation"] for g in self._generations), default=0)
        final: dict[str, Any] = {f"summary.{k}": summary.get(k) for k in _SUMMARY_METRICS}
        best = summary.get("best")
        if isinstance(best, list | tuple):
            if len(best) == 1:
                final["summary.best"] = best[0]
            else:
                final.update({f"summary.best_{j}": v for j, v in enumerate(best, start=1)})
        metrics = [Metric(k, f, now, step) for k, v in final.items() if (f := _finite(v)) is not None]
        self._flush(metrics)
        run_id = self._ensure_run()
        client = self.client
        tags = [
            RunTag("genetune.stop_reason", str(reason)),
            RunTag("genetune.status", _STATUS_TAG[status]),
            RunTag("mlflow.note.content", _truncate(self._note(reason, summary), _MAX_TAG_VAL_LENGTH)),
        ]
        self._log_batch(run_id, tags=tags)
        error: BaseException | None = None
        try:
            folder = Path(tempfile.mkdtemp(prefix="genetune-mlflow-"))
            try:
                self._write_artifacts(folder, summary)
                self._call("log_artifacts", lambda: client.log_artifacts(run_id, str(folder)))
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        except Exception as err:  # the run is still terminated below
            error = err
        self._call("set_terminated", lambda: client.set_terminated(run_id, status, end_time=int(time.time() * 1000)))
        self._terminated = True
        if error is not None:
            raise error

    def _note(self, reason: str, summary: Mapping[str, Any]) -> str:
        """The run's description at the end: ``description`` (when given), then the search's
        markdown summary (as the Prefect summary artifact)."""
        markdown = search_summary_markdown(reason, summary, self._directions, top_k=5)
        return f"{self.description}\n\n{markdown}" if self.description else markdown

    def cleanup(self) -> None:
        try:
            if self.run_id is not None and not self._terminated:
                # search_ends never arrived, or failed before the end: close the run anyway.
                run_id = self.run_id
                client = self.client
                status = self._final_status or "FAILED"
                self._log_batch(run_id, tags=[RunTag("genetune.status", _STATUS_TAG[status])])
                self._call("set_terminated", lambda: client.set_terminated(run_id, status, end_time=int(time.time() * 1000)))
                self._terminated = True
        finally:
            self._client = None
            self._points = []

    # ----- artifacts ------------------------------------------------------------------------------

    def _write_artifacts(self, folder: Path, summary: Mapping[str, Any]) -> None:
        manifest = self._manifest or {}
        _write_json(folder / "config.json", manifest.get("config") or {})
        _write_json(folder / "search_space.json", manifest.get("search_space"))
        _write_json(
            folder / "search_space_parameters.json",
            [
                {"path": display, "keys": keys, "description": _describe(p), "spec": p}
                for keys, display, p in _space_parameters(manifest.get("search_space"))
            ],
        )
        _write_json(folder / "manifest.json", manifest)
        _write_json(folder / "summary.json", summary)
        _write_json(folder / "generations.json", self._generations)

        # The tables and plots are extras: one that cannot be made costs a warning, not the upload.
        points = self._points
        csv = summary.get("result_csv")
        if csv and Path(csv).is_file():
            shutil.copyfile(csv, folder / "results.csv")
            try:
                result = SearchResult.from_csv(csv, directions=self._directions, num_objectives=self._num_objectives)
                result.to_parquet(folder / "results.parquet")
                if self._num_objectives > 1:
                    points = self._valid_points(result)
            except Exception as err:
                warnings.warn(f"MLflowTracker: no results.parquet ({type(err).__name__}: {err})", RuntimeWarning, stacklevel=2)
        plots: list[tuple[str, Callable[[Path], None]]] = [("convergence.png", self._plot_convergence)]
        if self._num_objectives > 1:
            plots.append(("pareto_front.png", lambda path: self._plot_pareto(path, points)))
        for name, plot in plots:
            try:
                plot(folder / name)
            except Exception as err:
                warnings.warn(f"MLflowTracker: no {name} ({type(err).__name__}: {err})", RuntimeWarning, stacklevel=2)

    def _valid_points(self, result: Any) -> list[list[float]]:
        df = result.get_results()
        columns = result.norm_score_columns if result.is_normalized else result.score_columns
        scores = df[columns].to_numpy(dtype=np.float64)
        keep = (df["status"] == "valid").to_numpy(dtype=bool) & np.isfinite(scores).all(axis=1)
        rows: list[list[float]] = scores[keep].tolist()
        return rows

    def _plot_convergence(self, path: Path) -> None:
        m = self._num_objectives
        gens = [int(g["generation"]) for g in self._generations]
        shown = min(m, 6)
        hypervolumes = [_finite(g.get("hypervolume")) for g in self._generations]
        has_hv = any(h is not None for h in hypervolumes)
        panels = shown + (1 if has_hv else 0)
        fig = Figure(figsize=(6.4, 2.6 * panels + 0.6))
        FigureCanvasAgg(fig)
        axes = fig.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
        units = "normalized " if self._normalized else ""
        for j in range(shown):
            ys = []
            for g in self._generations:
                best = g.get("best")
                value = best[j] if isinstance(best, list | tuple) and len(best) > j else (best if j == 0 else None)
                ys.append(_finite(value))
            ax = axes[j]
            xs = [x for x, y in zip(gens, ys, strict=True) if y is not None]
            ax.plot(xs, [y for y in ys if y is not None], marker="o")
            direction = self._directions[j] if j < len(self._directions) else "min"
            ax.set_ylabel(f"best {units}objective {j + 1} ({direction})" if m > 1 else f"best {units}score ({direction})")
            ax.grid(True, alpha=0.3)
        if has_hv:
            ax = axes[-1]
            shown_hv = [(x, h) for x, h in zip(gens, hypervolumes, strict=True) if h is not None]
            ax.plot([x for x, _ in shown_hv], [h for _, h in shown_hv], marker="o", color="C2")
            ax.set_ylabel("hypervolume")
            ax.grid(True, alpha=0.3)
        axes[-1].set_xlabel("generation")
        fig.suptitle(f"Convergence: {self._run_name}")
        fig.tight_layout()
        fig.savefig(path, dpi=100)

    def _plot_pareto(self, path: Path, points: list[list[float]]) -> None:
        fig = Figure(figsize=(6.4, 5.2))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        units = "normalized " if self._normalized else ""
        ax.set_xlabel(f"{units}objective 1 ({self._directions[0]})")
        ax.set_ylabel(f"{units}objective 2 ({self._directions[1] if len(self._directions) > 1 else 'min'})")
        if points:
            x = np.asarray(points, dtype=np.float64)
            front = x[pareto_mask(x, self._directions)]
            front = front[np.argsort(front[:, 0], kind="stable")]
            ax.scatter(x[:, 0], x[:, 1], s=12, alpha=0.35, label=f"valid evaluations ({len(x)})")
            label = "Pareto front" + (f" over {self._num_objectives} objectives" if self._num_objectives > 2 else "")
            ax.plot(front[:, 0], front[:, 1], marker="o", color="C3", label=f"{label} ({len(front)})")
            ax.legend()
        else:
            ax.text(0.5, 0.5, "no valid evaluation", ha="center", va="center", transform=ax.transAxes)
        ax.grid(True, alpha=0.3)
        ax.set_title(f"Pareto front: {self._run_name}")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
