"""Checking a job (``genetune run``'s parameters) and the demo's options before anything starts:
no Prefect, Dask or MLflow here. Each problem is one line naming the key or parameter path and
what was expected; the CLI prints them all and exits with status 2."""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from genetune.config import SearchConfiguration
from genetune.engine import Engine
from genetune.loading import CommandObjective, load_config, load_search_space
from genetune.search_spaces import SearchSpace

__all__ = ["JobParameters", "check_demo_options", "check_job"]


class JobParameters(BaseModel):
    """The parameters of the ``genetune-search`` flow as a job file holds them (kept in step
    with ``genetune.flows.genetune_search``: ``tests/test_job_validation.py`` compares them)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)

    objective: str = Field(min_length=1)
    search_space: dict[str, Any] | list[Any] | str
    search_config: dict[str, Any] | str
    dask_address: str | None = None
    resources: dict[str, float] | None = None
    chunk_size: int | None = Field(default=None, gt=0)
    task_timeout: float | None = Field(default=None, gt=0)
    cache_folder: str | None = None
    resume_from: str | None = None
    n_workers: int | None = Field(default=None, gt=0)
    mlflow_run_url: str | None = None
    objective_kwargs: dict[str, Any] | None = None
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str | None = None
    progress_bar: bool = False
    constraints: list[str] | None = None
    warm_start: list[Any] | dict[str, Any] | str | None = None


def _location(loc: tuple[int | str, ...], prefix: str = "") -> str:
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(the job)"


def _pydantic_problems(err: ValidationError, prefix: str = "") -> list[str]:
    problems = []
    for item in err.errors():
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p.startswith(("function-", "union["))))
        if item["type"] == "extra_forbidden":
            problems.append(f"{_location(loc, prefix)}: unknown key")
        elif item["type"] == "missing":
            problems.append(f"{_location(loc, prefix)}: missing (required)")
        else:
            problems.append(f"{_location(loc, prefix)}: {item['msg'].lower()}, got {item.get('input')!r}")
    return list(dict.fromkeys(problems))


def _check_objective(spec: str, kwargs: Mapping[str, Any] | None) -> list[str]:
    """An import path whose module exists (not imported: that is the flow's job), or a command
    template that is safe to run."""
    if "{" in spec:
        try:
            CommandObjective(spec)
        except ValueError as err:
            return [f"objective: {err}"]
        return ["objective: objective_kwargs do not apply to a command template"] if kwargs else []
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr or " " in spec:
        return [f"objective: expected an import path 'pkg.module:function' or a command template with {{placeholders}}, got {spec!r}"]
    try:
        found = importlib.util.find_spec(module)
    except ModuleNotFoundError as err:
        found, module = None, err.name or module
    except (ImportError, ValueError) as err:
        return [f"objective: cannot find module {module!r} ({type(err).__name__}: {err})"]
    if found is None:
        return [f"objective: no module named {module!r} (from {spec!r}; is it installed, or on PYTHONPATH?)"]
    return []


def _loaded(what: str, load: Callable[[], Any], problems: list[str]) -> Any:
    try:
        return load()
    except FileNotFoundError as err:
        problems.append(f"{what}: no such file {err.filename!r}")
    except (ValueError, TypeError, OSError) as err:
        message = str(err)
        problems.append(message if message.startswith(what) else f"{what}: {message}")
    return None


def check_job(params: Mapping[str, Any]) -> list[str]:
    """Every problem of a job's parameters (empty: it can start)."""
    try:
        job = JobParameters.model_validate(dict(params))
    except ValidationError as err:
        return _pydantic_problems(err)
    problems = _check_objective(job.objective, job.objective_kwargs)
    for key in ("resume_from", "warm_start"):
        value = getattr(job, key)
        if isinstance(value, str) and not Path(value).expanduser().exists():
            problems.append(f"{key}: no such file or folder {value!r}")
    if job.resources is not None and any(v <= 0 for v in job.resources.values()):
        problems.append(f"resources: expected positive amounts, got {job.resources!r}")
    space: SearchSpace | None = _loaded("search_space", lambda: load_search_space(job.search_space), problems)
    raw_config = _loaded("search_config", lambda: load_config(job.search_config), problems)
    config: SearchConfiguration | None = None
    if raw_config is not None:
        try:
            config = SearchConfiguration.model_validate(raw_config)
        except ValidationError as err:
            problems.extend(_pydantic_problems(err, "search_config"))
    if space is not None and config is not None and job.resume_from is None:
        try:  # the space, its constraints and the configuration together, as the search will check them
            Engine(space, config, seed=0, constraints=job.constraints or [])
        except Exception as err:  # noqa: BLE001 - any refusal is a problem of the job, reported as one line
            problems.append(f"search_space/search_config/constraints: {err}")
    return problems


def check_demo_options(generations: int | None, pool_size: int | None, workers: int | None) -> list[str]:
    """The demo's numeric options, checked as its search configuration will check them."""
    problems = []
    given = {k: v for k, v in {"generations": generations, "pool_size": pool_size}.items() if v is not None}
    try:
        SearchConfiguration.model_validate({"generations": 1, **given})
    except ValidationError as err:
        for item in err.errors():
            name = str(item["loc"][0]) if item["loc"] else "options"
            if name not in given:
                continue
            problems.append(f"--{name.replace('_', '-')}: {item['msg'].lower()}, got {item.get('input')!r}")
    if workers is not None and workers < 1:
        problems.append(f"--workers: should be at least 1, got {workers}")
    return problems


def flow_parameter_names() -> list[str]:
    """The names :class:`JobParameters` knows (for the test that compares them with the flow)."""
    return list(JobParameters.model_fields)


def signature_names(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)
