"""genetune on Prefect: a search as a Prefect flow whose generations run on Dask.

* :class:`PrefectDaskWorker`: a worker for :class:`genetune.Search` that evaluates each generation
  as one Prefect *mapped* task over **chunks** of candidates, on the flow's task runner (a
  ``prefect_dask.DaskTaskRunner``). A Prefect task costs about 120 ms on Dask, so candidates are
  grouped: by default about 3 chunks per Dask worker slot. Must be used inside a running flow.
* :func:`load_objective`: an objective from an import path (``"pkg.module:function"``) or a shell
  command template (``"./bench --unroll {unroll}"``).
* :func:`genetune_search`: the flow ``genetune-search`` (deployable; see ``flows/genetune_search.py``).

Run it with a Prefect API: ``PREFECT_API_URL`` exported (a ``prefect server start``), or inside
``prefect.testing.utilities.prefect_test_harness``. Without one every Dask worker process starts
its own ephemeral Prefect server (slow, and they compete for one SQLite file).
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture
from prefect.utilities.annotations import unmapped

from genetune.evaluation import evaluate, invalid_score, placement
from genetune.exceptions import ObjectiveReturnError
from genetune.metrics import log_metric, parse_metric_lines
from genetune.scores import BASELINE_CONFIG, Score
from genetune.shipping import pack, unpack
from genetune.search_spaces import Parameter, SearchSpace, space_from_spec
from genetune.workers.base import BASELINE_ID, BaseWorker

__all__ = [
    "CommandObjective",
    "PrefectDaskWorker",
    "evaluate_chunk",
    "genetune_search",
    "load_objective",
    "load_search_space",
]

#: At most this many chunks per Dask worker slot when ``chunk_size`` is None.
CHUNKS_PER_SLOT = 4
#: What one Prefect task costs on Dask (≈110-120 ms measured on 2 cores; see benches/README.md).
TASK_OVERHEAD_S = 0.12
#: Automatic chunking keeps Prefect's per-task cost under this share of a generation's compute.
OVERHEAD_SHARE = 0.1


# ----- objectives --------------------------------------------------------------------------------


def _flatten(params: Any, prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Nested params as one level: ``{"opt": {"unroll": 4}}`` gives ``opt.unroll`` and ``unroll``
    (the leaf name alone too, unless two leaves share it)."""
    out = {} if out is None else out
    if isinstance(params, Mapping):
        for key, value in params.items():
            _flatten(value, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(params, list):
        for i, value in enumerate(params):
            _flatten(value, f"{prefix}.{i}" if prefix else str(i), out)
    else:
        out[prefix] = params
    return out


def _format_fields(params: Any) -> dict[str, Any]:
    flat = _flatten(params)
    leaves: dict[str, list[Any]] = {}
    for path, value in flat.items():
        leaves.setdefault(path.rsplit(".", 1)[-1], []).append(value)
    fields = {leaf: values[0] for leaf, values in leaves.items() if len(values) == 1}
    fields.update(flat)
    return fields


_SCORE_LINE = re.compile(r"^GENETUNE_SCORE\s*=\s*(\S+)\s*$", re.MULTILINE)
_FLOAT = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:inf|nan)", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class CommandObjective:
    """A shell command as an objective (picklable: it travels to Dask workers).

    ``template`` is formatted with the candidate's flattened params: ``{unroll}`` or
    ``{opt.unroll}`` for nested keys (a leaf name alone works when it is unique). A key the
    candidate lacks (knocked out) formats as an empty string. The score is the value of a line
    ``GENETUNE_SCORE=value`` on stdout, else the last number printed; ``GENETUNE_METRIC name=value``
    lines become metrics. A non-zero exit status raises (the candidate becomes INVALID).
    """

    def __init__(self, template: str, timeout: float | None = None, cwd: str | None = None) -> None:
        self.template = template
        self.timeout = timeout
        self.cwd = cwd

    def __repr__(self) -> str:
        return f"CommandObjective({self.template!r})"

    def command(self, params: Any) -> str:
        fields = _format_fields(params)

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            value = fields.get(name, "")
            return shlex.quote(str(value)) if isinstance(value, str) and value else str(value)

        return _PLACEHOLDER.sub(replace, self.template)

    def __call__(self, params: Any) -> float:
        command = self.command(params)
        done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=self.timeout, cwd=self.cwd)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip()[-300:]
            raise RuntimeError(f"command exited with status {done.returncode}: {command}: {tail}")
        for name, value in parse_metric_lines(done.stdout).items():
            log_metric(name, value)
        explicit = _SCORE_LINE.findall(done.stdout)
        if explicit:
            return float(explicit[-1])
        text = "\n".join(line for line in done.stdout.splitlines() if not line.startswith("GENETUNE_METRIC"))
        numbers = _FLOAT.findall(text)
        if not numbers:
            raise ValueError(f"command printed no number: {command}")
        return float(numbers[-1])


def load_objective(spec: str | Callable[[Any], Any], kwargs: Mapping[str, Any] | None = None) -> Callable[[Any], Any]:
    """An objective from ``"pkg.module:function"`` (or ``"pkg.module:Class.attr"``), or from a
    shell command template (a string with ``{placeholders}``, see :class:`CommandObjective`).
    A callable is returned as is. With ``kwargs`` (or when the path names a class), the target is
    a factory: the objective is ``target(**kwargs)``, e.g.
    ``load_objective("genetune.jobs.gcc:GccObjective", {"size": "small"})``."""
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise TypeError(f"objective_kwargs must be a mapping of keyword arguments, got {type(kwargs).__name__}")
    if callable(spec) and not isinstance(spec, type):
        if kwargs:
            raise ValueError("objective_kwargs apply to an import path or a class, not to a callable objective")
        return spec
    if isinstance(spec, type):
        return _build_objective(spec, kwargs, spec.__name__)
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"objective must be 'pkg.module:function' or a command template, got {spec!r}")
    if "{" in spec:
        if kwargs:
            raise ValueError("objective_kwargs do not apply to a command template")
        return CommandObjective(spec)
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr or " " in spec:
        raise ValueError(
            f"objective {spec!r} is neither an import path 'pkg.module:function' nor a command template with {{placeholders}}"
        )
    import importlib

    value: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        value = getattr(value, part)
    if not callable(value):
        raise TypeError(f"objective {spec!r} is not callable ({type(value).__name__})")
    if isinstance(value, type) or kwargs is not None:
        return _build_objective(value, kwargs, spec)
    function: Callable[[Any], Any] = value
    return function


def _build_objective(factory: Callable[..., Any], kwargs: Mapping[str, Any] | None, name: str) -> Callable[[Any], Any]:
    try:
        built = factory(**dict(kwargs or {}))
    except TypeError as err:
        raise TypeError(f"objective {name!r} with objective_kwargs {dict(kwargs or {})!r}: {err}") from err
    if not callable(built):
        raise TypeError(f"objective {name!r} called with objective_kwargs gave {type(built).__name__}, which is not callable")
    function: Callable[[Any], Any] = built
    return function


# ----- search spaces and configurations from files -------------------------------------------------

_PARAM_TYPES = {"range", "choice", "literal"}


def _read_document(path: str | os.PathLike[str]) -> Any:
    file = Path(path).expanduser()
    text = file.read_text()
    if file.suffix.lower() in (".yaml", ".yml"):
        import importlib

        yaml: Any = importlib.import_module("yaml")  # PyYAML comes with Prefect
        return yaml.safe_load(text)
    return json.loads(text)


def _is_spec(node: Any) -> bool:
    return isinstance(node, Mapping) and len(node) == 1 and (
        (isinstance(node.get("dict"), list) and all(isinstance(i, list | tuple) and len(i) == 2 for i in node["dict"]))
        or isinstance(node.get("list"), list)
    )


def _friendly(node: Any, path: str) -> Any:
    from pydantic import TypeAdapter, ValidationError

    from genetune.exceptions import SearchSpaceError

    if isinstance(node, Mapping) and node.get("type") in _PARAM_TYPES and not isinstance(node.get("type"), Mapping):
        try:
            return TypeAdapter(Parameter).validate_python(dict(node))
        except ValidationError as err:
            raise SearchSpaceError(f"search_space{path}: {err}") from None
    if isinstance(node, Mapping):
        return {str(k): _friendly(v, f"{path}[{k!r}]") for k, v in node.items()}
    raise SearchSpaceError(f"search_space{path}: expected a parameter {{'type': 'range'|'choice'|'literal', ...}} or a dict, got {node!r}")


def load_search_space(space: Mapping[str, Any] | Sequence[Any] | str | os.PathLike[str]) -> SearchSpace:
    """A search space from a JSON/YAML file or a dict: genetune's spec form
    (``compile_space``'s ``{"dict": [[key, node], ...]}``) or the friendly form
    ``{"x": {"type": "range", "start": 0, "end": 9}, "opt": {"level": {"type": "choice", "values": [...]}}}``
    (a list of such dicts for a list space)."""
    if isinstance(space, str | os.PathLike):
        space = _read_document(space)
    if _is_spec(space):
        assert isinstance(space, Mapping)
        rebuilt: SearchSpace = space_from_spec(space)
        return rebuilt
    if isinstance(space, Mapping):
        friendly: SearchSpace = _friendly(space, "")
        return friendly
    if isinstance(space, list | tuple):
        return [_friendly(element, f"[{i}]") for i, element in enumerate(space)]
    raise TypeError(f"search_space must be a dict, a list or a path to a JSON/YAML file, got {type(space).__name__}")


def load_config(config: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    """A search configuration from a dict or a JSON/YAML file."""
    if isinstance(config, str | os.PathLike):
        config = _read_document(config)
    if not isinstance(config, Mapping):
        raise TypeError(f"search_config must be a dict or a path to a JSON/YAML file, got {type(config).__name__}")
    return dict(config)


# ----- the chunk task ------------------------------------------------------------------------------


def _evaluate_one(shipped: bytes, token: str, param_id: int | str, params: Any, num_objectives: int, worker: str, timeout: float | None) -> Score:
    from genetune.workers.dask_worker import _evaluate_in_child, _load_failed

    if timeout is not None:
        return _evaluate_in_child(token, shipped, param_id, params, num_objectives, worker, timeout)
    try:
        function = unpack(token, shipped)
    except Exception as err:
        return _load_failed(param_id, params, num_objectives, worker, err)
    return evaluate(function, param_id, params, num_objectives, worker)


_loguru_bridge: list[int] = []


def _forward_to_run_logger(message: Any) -> None:
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        run_logger = get_run_logger()
    except MissingContextError:  # outside a task run: nothing to attach the record to
        return
    record = message.record
    run_logger.log(record["level"].no, record["message"])


def install_loguru_bridge() -> None:
    """Forwards loguru records logged inside Prefect task runs (the objective's, on the Dask
    worker) to Prefect's run logs. Idempotent, once per process; genetune's own tracker records
    are left out (the flow logs those itself)."""
    if _loguru_bridge:
        return
    from loguru import logger

    _loguru_bridge.append(
        logger.add(_forward_to_run_logger, level="INFO", format="{message}", filter=lambda record: not record["extra"].get("genetune"))
    )


@task(name="genetune-evaluate-chunk", cache_policy=NO_CACHE, persist_result=False, task_run_name="evaluate-chunk-{index}")
def evaluate_chunk(
    shipped: bytes,
    token: str,
    chunk: list[tuple[int | str, Any]],
    num_objectives: int,
    worker: str,
    timeout: float | None,
    index: int,
) -> list[Score | str]:
    """Evaluates one chunk of candidates in order. Returns a Score per candidate, or stops at the
    first wrong return value with its message (a str: the search must stop)."""
    install_loguru_bridge()
    where: dict[str, Any] = {}
    try:
        import distributed

        dask_worker = distributed.get_worker()
        where = {"dask_worker": dask_worker.address, "dask_worker_name": dask_worker.name}
    except (ImportError, ValueError):  # another task runner
        pass
    out: list[Score | str] = []
    for param_id, params in chunk:
        try:
            score = _evaluate_one(shipped, token, param_id, params, num_objectives, worker, timeout)
        except ObjectiveReturnError as err:
            out.append(str(err))
            break
        metadata = score.metadata if isinstance(score.metadata, dict) else {"note": score.metadata}
        out.append(score.model_copy(update={"metadata": {"worker": worker, **where, **metadata, "chunk": index}}))
    return out


# ----- the worker ----------------------------------------------------------------------------------


def _check_resources(resources: Mapping[str, float] | None) -> dict[str, float] | None:
    if not resources:
        return None
    for name, amount in resources.items():
        if not isinstance(name, str) or isinstance(amount, bool) or not isinstance(amount, int | float) or not amount > 0:
            raise ValueError(f"resources must map names to positive amounts, got {resources!r}")
    return {name: float(amount) for name, amount in resources.items()}


class PrefectDaskWorker(BaseWorker):
    """Evaluates a generation as one Prefect mapped task over chunks of candidates.

    * ``task_runner``: the runner to submit to; by default the running flow's (give the flow a
      ``DaskTaskRunner(address=...)``). Any Prefect task runner works; Dask is the intended one.
    * ``resources``: what one chunk needs of a Dask worker, e.g. ``{"GPU": 1}`` (a chunk runs its
      candidates one after the other, so this is also what each evaluation gets). Applied with
      ``dask.annotate``; a cluster where no worker offers them is refused with ValueError (Dask
      would wait forever).
    * ``chunk_size``: candidates per Prefect task; None: about ``CHUNKS_PER_SLOT`` chunks per
      Dask worker slot (threads, or how many chunks the resources let run at once).

    ``task_timeout`` runs every evaluation in a child process killed at the timeout (as
    ``DaskWorker``). A chunk task that fails as a whole makes its candidates INVALID
    (``exception: chunk failed: ...``); the flow goes on.
    """

    respects_num_workers: ClassVar[bool] = False
    supports_timeout: ClassVar[bool] = True
    baselines_per_placement: ClassVar[bool] = True

    def __init__(
        self,
        task_runner: Any = None,
        resources: Mapping[str, float] | None = None,
        chunk_size: int | None = None,
    ) -> None:
        if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
            raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
        self.task_runner = task_runner
        self.resources = _check_resources(resources)
        self.chunk_size = chunk_size
        self.last_chunk_sizes: list[int] = []
        self._mean_duration_s: float | None = None

    def __getstate__(self) -> dict[str, Any]:  # checkpoints pickle the worker: never the runner
        state = dict(self.__dict__)
        state["task_runner"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _runner(self) -> Any:
        if self.task_runner is not None:
            return self.task_runner
        context = FlowRunContext.get()
        if context is None or context.task_runner is None:
            raise RuntimeError("PrefectDaskWorker must be used inside a running Prefect flow (or be given task_runner=)")
        return context.task_runner

    @staticmethod
    def _dask_client(runner: Any) -> Any:
        try:
            from prefect_dask.task_runners import DaskTaskRunner
        except ImportError:  # pragma: no cover - prefect-dask is a dependency of this module's use
            return None
        return runner.client if isinstance(runner, DaskTaskRunner) else None

    def _slots(self, client: Any) -> int:
        """How many chunks the cluster runs at once (checks resources first)."""
        if client is None:
            return os.cpu_count() or 1
        info = client.scheduler_info(n_workers=-1) if _accepts_n_workers(client) else client.scheduler_info()
        workers = dict(info.get("workers", {}))
        if not workers:
            try:
                client.wait_for_workers(1, timeout=10)
            except TimeoutError:
                pass
            workers = dict(client.scheduler_info().get("workers", {}))
        if not self.resources:
            return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))
        slots = 0
        for w in workers.values():
            offered = dict(w.get("resources") or {})
            slots += min(int(offered.get(k, 0) // v) for k, v in self.resources.items())
        if slots == 0:
            offered_all = {str(w.get("name", a)): dict(w.get("resources") or {}) for a, w in workers.items()}
            raise ValueError(
                f"PrefectDaskWorker: no Dask worker offers the resources {self.resources}; the workers offer "
                f"{offered_all or 'nothing (none connected)'}. Start workers with e.g. `dask worker <scheduler> --resources GPU=1`."
            )
        return slots

    def chunks(self, items: list[tuple[int | str, Any]], slots: int) -> list[list[tuple[int | str, Any]]]:
        """``chunk_size`` candidates per chunk; automatically, one chunk per slot, plus more chunks
        per slot (up to ``CHUNKS_PER_SLOT``, for load balancing) only while the previous
        generation's evaluation times say their Prefect cost stays under ``OVERHEAD_SHARE``."""
        if self.chunk_size:
            size = self.chunk_size
        else:
            per_slot = 1
            if self._mean_duration_s is not None:
                compute_per_slot = len(items) * self._mean_duration_s / max(slots, 1)
                per_slot = max(1, min(CHUNKS_PER_SLOT, int(OVERHEAD_SHARE * compute_per_slot / TASK_OVERHEAD_S)))
            size = max(1, math.ceil(len(items) / (slots * per_slot)))
        return [items[i : i + size] for i in range(0, len(items), size)]

    def run(
        self,
        function: Callable[[Any], Any],
        params_pool: Sequence[Any],
        params_ids: Sequence[int | str],
        num_function_returns: int = 1,
        **kwargs: Any,
    ) -> list[Score]:
        from dask.base import annotate

        timeout = kwargs.get("task_timeout")
        on_result = kwargs.get("on_result")
        runner = self._runner()
        slots = self._slots(self._dask_client(runner))
        items = list(zip(params_ids, params_pool, strict=True))
        chunks = self.chunks(items, slots)
        self.last_chunk_sizes = [len(c) for c in chunks]
        token, blob = pack(function)
        parameters: dict[str, Any] = {
            "shipped": unmapped(blob),
            "token": unmapped(token),
            "chunk": chunks,
            "num_objectives": unmapped(num_function_returns),
            "worker": unmapped(self.name),
            "timeout": unmapped(timeout),
            "index": list(range(len(chunks))),
        }
        with annotate(resources=self.resources) if self.resources else _nullcontext():
            futures: list[PrefectFuture[list[Score | str]]] = list(runner.map(evaluate_chunk, parameters))
        scores: list[Score] = []
        wrong: str | None = None
        for chunk, future in zip(chunks, futures, strict=True):
            try:
                outcome = future.result()
            except Exception as err:  # the chunk failed as a whole: its candidates are INVALID
                reason = f"exception: chunk failed: {type(err).__name__}: {err}"
                outcome = [invalid_score(i, p, num_function_returns, reason, worker=self.name, **placement()) for i, p in chunk]
            for value in outcome:
                if isinstance(value, str):
                    wrong = wrong or value
                    continue
                if on_result is not None:
                    on_result(value)
                scores.append(value)
        if wrong is not None:
            raise ObjectiveReturnError(wrong)
        durations = [s.duration_s for s in scores if s.duration_s > 0]
        if durations:
            self._mean_duration_s = sum(durations) / len(durations)
        return scores


    def measure_baselines(
        self,
        function: Callable[[Any], Any],
        num_function_returns: int,
        known: Collection[str],
        **kwargs: Any,
    ) -> list[Score]:
        """On Dask: once per placement (host, GPU) lacking a baseline, as plain Dask tasks pinned
        to a worker there (as ``DaskWorker``). On another task runner: once, as a chunk."""
        from genetune.workers.dask_worker import measure_pinned_baselines

        runner = self._runner()
        client = self._dask_client(runner)
        timeout = kwargs.get("task_timeout")
        if client is not None:
            self._slots(client)  # refuses resources no worker offers
            return measure_pinned_baselines(client, self.resources, function, num_function_returns, known, self.name, timeout, timeout is not None)
        if known:
            return []
        scores = self.run(function, [dict(BASELINE_CONFIG)], [BASELINE_ID], num_function_returns, **kwargs)
        return [s.model_copy(update={"param_id": f"{BASELINE_ID}@{s.metadata['placement']}"}) if isinstance(s.metadata, dict) and s.metadata.get("placement") else s for s in scores]


def _accepts_n_workers(client: Any) -> bool:
    import inspect

    try:
        return "n_workers" in inspect.signature(client.scheduler_info).parameters
    except (TypeError, ValueError):
        return False


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


# ----- the flow ------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))


@flow(name="genetune-search")
def genetune_search(
    objective: str,
    search_space: dict[str, Any] | str,
    search_config: dict[str, Any] | str,
    dask_address: str | None = None,
    resources: dict[str, float] | None = None,
    chunk_size: int | None = None,
    task_timeout: float | None = None,
    cache_folder: str | None = None,
    resume_from: str | None = None,
    n_workers: int | None = None,
    mlflow_run_url: str | None = None,
    objective_kwargs: dict[str, Any] | None = None,
    mlflow_tracking_uri: str | None = None,
    mlflow_experiment: str | None = None,
) -> dict[str, Any]:
    """A genetune search whose generations run as chunked Prefect tasks on Dask.

    ``objective``: ``"pkg.module:function"`` or a shell command template (``"./bench -u {unroll}"``).
    ``search_space`` / ``search_config``: dicts or JSON/YAML paths. ``dask_address``: a scheduler
    to use (never stopped); None starts a local cluster (127.0.0.1, no dashboard, ``n_workers``
    processes, each offering ``resources`` when given) for this run. ``resume_from``: a run
    folder to continue (``genetune.Search.resume``). ``objective_kwargs``: build the objective
    as ``objective(**objective_kwargs)`` (a class or factory path). ``mlflow_tracking_uri``:
    mirror the search to MLflow there (experiment ``mlflow_experiment``, default "genetune"),
    linked from a Prefect artifact. Returns best, result CSV, run folder (and the MLflow run).
    """
    from prefect.logging import get_run_logger
    from prefect_dask.task_runners import DaskTaskRunner

    import genetune
    from genetune.checkpoint import find_run_folder
    from genetune.trackers.jsonl import JsonlTracker
    from genetune.trackers.prefect_tracker import PrefectTracker

    logger = get_run_logger()
    function = load_objective(objective, objective_kwargs)
    resources = _check_resources(resources)
    if not os.environ.get("PREFECT_API_URL"):
        from prefect.settings import PREFECT_API_URL

        if not PREFECT_API_URL.value():
            logger.warning("PREFECT_API_URL is not set: every Dask worker process may start its own ephemeral Prefect server")
    cluster: Any = None
    address = dask_address
    if address is None:
        from distributed import LocalCluster

        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=n_workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            resources=dict(resources) if resources else None,
        )
        address = cluster.scheduler_address
    try:
        with DaskTaskRunner(address=address) as runner:
            worker = PrefectDaskWorker(task_runner=runner, resources=resources, chunk_size=chunk_size)
            mirror = None
            if mlflow_tracking_uri:
                from genetune.trackers.mlflow_tracker import MLflowTracker

                mirror = MLflowTracker(experiment_name=mlflow_experiment, tracking_uri=mlflow_tracking_uri)
            link: str | Callable[[], str | None] | None = mlflow_run_url or (mirror.run_url if mirror is not None else None)
            # The MLflow tracker first: its run exists (and has a URL) when the Prefect tracker links it.
            trackers: list[Any] = [*([mirror] if mirror is not None else []), PrefectTracker(mlflow_run_url=link), JsonlTracker()]
            if resume_from:
                folder = find_run_folder(resume_from)
                result = genetune.Search.resume(
                    folder, function, worker_type=worker, trackers=trackers, disable_progress_bar=True, task_timeout=task_timeout
                )
            else:
                search = genetune.Search(
                    function,
                    load_search_space(search_space),
                    load_config(search_config),
                    worker_type=worker,
                    trackers=trackers,
                    cache_folder=cache_folder,
                    disable_progress_bar=True,
                )
                result = search.start(task_timeout=task_timeout)
                assert search.run_folder is not None
                folder = search.run_folder
    finally:
        if cluster is not None:
            cluster.close()
    summary = result.summary()
    best = result.get_best_result()
    out: dict[str, Any] = _jsonable(
        {
            "best": best,
            "summary": summary,
            "evaluations": len(result),
            "run_folder": str(folder),
            "result_csv": str(folder / "results.csv"),
            **({"mlflow_run_id": mirror.run_id, "mlflow_tracking_uri": mirror.tracking_uri} if mirror is not None else {}),
        }
    )
    return out
