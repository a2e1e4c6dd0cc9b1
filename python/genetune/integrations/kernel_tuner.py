"""Kernel Tuner users: genetune as a Kernel Tuner strategy, Kernel Tuner spaces and cache files
in genetune.

* ``tune_kernel(..., strategy=GenetuneStrategy())`` runs genetune's default engine over Kernel
  Tuner's search space: one argument changes, caches, observers and ``store_results`` stay.
* ``space, constraints = space_from_kernel_tuner(tune_params, restrictions)`` tunes the same kernel
  through ``Search``, the Prefect flow and MLflow.
* ``replay_objective(cache_file)`` serves a cache file's measured times (recorded data in seconds).

Kernel Tuner (``pip install genetune[kernel-tuner]``) is imported only when one of these runs.
"""

from __future__ import annotations

import ast
import math
import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

import genetune.search_spaces as ss
from genetune.config import SearchConfiguration
from genetune.engine import Constraint, Engine
from genetune.exceptions import ConfigurationError, InvalidCandidate, SearchSpaceError, SearchSpaceExhaustedWarning

__all__ = ["GenetuneStrategy", "KernelTunerRestrictions", "ReplayObjective", "replay_objective", "space_from_kernel_tuner"]

#: Kernel Tuner's default names of the thread-block dimensions (``max_threads`` bounds their product).
BLOCK_SIZE_NAMES = ("block_size_x", "block_size_y", "block_size_z")
#: strategy_options keys every Kernel Tuner strategy accepts.
_STRATEGY_OPTIONS = frozenset({"max_fevals", "time_limit", "x0", "searchspace_construction_options"})
#: Search settings the strategy owns: Kernel Tuner already turns every objective into a cost to minimize.
_OWNED_SETTINGS = ("num_objectives", "problem_type", "directions")


# ----- spaces ------------------------------------------------------------------------------------


def _values(tune_params: Mapping[str, Any]) -> dict[str, list[Any]]:
    if not isinstance(tune_params, Mapping) or not tune_params:
        raise SearchSpaceError(f"tune_params must be a non-empty dict of parameter name -> list of values, got {tune_params!r}")
    out: dict[str, list[Any]] = {}
    for name, values in tune_params.items():
        if not isinstance(name, str):
            raise SearchSpaceError(f"tune_params: parameter names must be strings, got {name!r}")
        if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray) or len(values) == 0:
            raise SearchSpaceError(f"tune_params[{name!r}] must be a non-empty list of values, got {values!r}")
        out[name] = [v.item() if isinstance(v, np.generic) else v for v in values]
    return out


def _arithmetic_ints(values: list[Any]) -> tuple[int, int, int] | None:
    """``(start, end, step)`` when ``values`` are increasing ints on one grid (an ordered range)."""
    if len(values) < 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return None
    step = values[1] - values[0]
    if step <= 0 or any(b - a != step for a, b in zip(values, values[1:])):
        return None
    return values[0], values[-1], step


def _parameter(name: str, values: list[Any]) -> ss.Parameter:
    grid = _arithmetic_ints(values)
    try:
        return ss.range(*grid) if grid is not None else ss.choice(values)
    except SearchSpaceError as err:
        raise SearchSpaceError(f"tune_params[{name!r}]: {err}") from None


_EXPRESSION_NODES = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.BinOp, ast.Add, ast.Sub, ast.Mult,
    ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.Compare, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In,
    ast.NotIn, ast.Name, ast.Load, ast.Constant, ast.List, ast.Tuple,
)  # fmt: skip


def _as_expression(restriction: str, names: set[str]) -> str | None:
    """The restriction when genetune's expression language reads it as Python does (operators,
    comparisons, ``in``, literals and parameter names only); None otherwise (function calls,
    attributes, names that are not parameters): those are judged by Kernel Tuner itself."""
    try:
        tree = ast.parse(restriction.strip(), mode="eval")
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if not isinstance(node, _EXPRESSION_NODES):
            return None
        if isinstance(node, ast.Name) and node.id not in names:
            return None
        if isinstance(node, ast.Constant) and not isinstance(node.value, bool | int | float | str):
            return None
    return restriction.strip()


class KernelTunerRestrictions:
    """A callable constraint: the configurations Kernel Tuner's own ``Searchspace`` accepts under
    the restrictions genetune's expressions cannot state (callables, python-constraint objects,
    strings with function calls). Built once, it pickles as the set of accepted configurations."""

    def __init__(
        self, tune_params: Mapping[str, list[Any]], restrictions: list[Any], max_threads: int, block_size_names: Sequence[str]
    ) -> None:
        from kernel_tuner.searchspace import Searchspace

        space = Searchspace(dict(tune_params), list(restrictions), max_threads, block_size_names=list(block_size_names))
        self.names = tuple(tune_params)
        self.accepted = frozenset(tuple(c) for c in space.list)

    def __call__(self, params: Mapping[str, Any]) -> bool:
        return tuple(params[n] for n in self.names) in self.accepted

    def __repr__(self) -> str:
        return f"KernelTunerRestrictions({len(self.accepted)} accepted configurations of {', '.join(self.names)})"


def space_from_kernel_tuner(
    tune_params: Mapping[str, Sequence[Any]],
    restrictions: Sequence[Any] | str | Callable[..., Any] | None = None,
    *,
    max_threads: int | None = None,
    block_size_names: Sequence[str] = BLOCK_SIZE_NAMES,
) -> tuple[dict[str, ss.Parameter], list[Constraint]]:
    """A genetune search space and constraints from Kernel Tuner's ``tune_params`` and ``restrictions``.

    Each parameter keeps its values: increasing ints on one grid become ``ss.range`` (ordered),
    any other list ``ss.choice``. A string restriction in operators, comparisons and ``in`` over
    parameter names becomes a genetune expression (checked while candidates are bred); any other
    restriction (callables, python-constraint objects, strings with function calls) is judged by
    Kernel Tuner's own ``Searchspace`` as one callable constraint. ``max_threads`` bounds the
    product of the thread-block dimensions present (``block_size_names``), as Kernel Tuner does
    with the device's limit; None: no bound.

    Use: ``space, constraints = space_from_kernel_tuner(tune_params, restrictions)`` then
    ``gt.Search(objective, space, config, constraints=constraints)``.
    """
    values = _values(tune_params)
    space = {name: _parameter(name, v) for name, v in values.items()}
    if restrictions is None:
        items: list[Any] = []
    elif isinstance(restrictions, str) or callable(restrictions):
        items = [restrictions]
    elif isinstance(restrictions, Sequence):
        items = list(restrictions)
    else:
        raise SearchSpaceError(f"restrictions must be a list of strings or callables, got {type(restrictions).__name__}")
    constraints: list[Constraint] = []
    rest: list[Any] = []
    for restriction in items:
        expression = _as_expression(restriction, set(values)) if isinstance(restriction, str) else None
        (constraints if expression is not None else rest).append(expression if expression is not None else restriction)
    if max_threads is not None:
        if isinstance(max_threads, bool) or not isinstance(max_threads, int) or max_threads < 1:
            raise SearchSpaceError(f"max_threads must be a positive int, got {max_threads!r}")
        dims = [n for n in block_size_names if n in values]
        if dims:
            constraints.append(f"{' * '.join(dims)} <= {max_threads}")
    if rest:
        constraints.append(KernelTunerRestrictions(values, rest, sys.maxsize, block_size_names))
    return space, constraints


# ----- cache files -------------------------------------------------------------------------------


class ReplayObjective:
    """A genetune objective serving a Kernel Tuner cache file's measurements: the configuration's
    ``objective`` value; INVALID (with the reason) when it is missing from the cache or failed.
    Pickles with its table, so Dask and Prefect workers need not see the file."""

    def __init__(self, cache_file: str | os.PathLike[str], objective: str | None = None) -> None:
        from kernel_tuner.util import read_cache

        path = os.fspath(cache_file)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"cache_file: no Kernel Tuner cache file at {path!r}")
        data = read_cache(path, open_cache=False)
        self.keys: tuple[str, ...] = tuple(data["tune_params_keys"])
        self.tune_params: dict[str, list[Any]] = dict(data["tune_params"])
        name = objective or data.get("objective") or "time"
        if not isinstance(name, str):
            raise ConfigurationError(f"objective: the cache records several objectives {name!r}; name one")
        self.objective = name
        self.table: dict[str, float | str] = {}
        for key, record in data["cache"].items():
            value = record.get(name)
            if "__error__" in record:
                self.table[key] = str(record["__error__"])
            elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                self.table[key] = float(value)
            else:
                self.table[key] = f"no finite {name!r} recorded"

    def key(self, params: Mapping[str, Any]) -> str:
        """The cache's key of a configuration: its values in ``tune_params_keys`` order, as Kernel Tuner writes them."""
        missing = [k for k in self.keys if k not in params]
        if missing:
            raise KeyError(f"the configuration lacks the cache's parameter(s) {missing}")
        return ",".join(str(params[k]) for k in self.keys)

    def __call__(self, params: Mapping[str, Any]) -> float:
        key = self.key(params)
        value = self.table.get(key)
        if value is None:
            raise InvalidCandidate(f"not in the cache: {key}")
        if isinstance(value, str):
            raise InvalidCandidate(f"failed in the cache: {value}")
        return value

    def __repr__(self) -> str:
        return f"ReplayObjective({len(self.table)} configurations, objective={self.objective!r})"


def replay_objective(cache_file: str | os.PathLike[str], objective: str | None = None) -> ReplayObjective:
    """An objective that serves the measured ``objective`` (default: the cache's, else ``"time"``)
    of a Kernel Tuner cache file; missing or failed configurations are INVALID."""
    return ReplayObjective(cache_file, objective)


# ----- the strategy ------------------------------------------------------------------------------


class GenetuneStrategy:
    """genetune's default engine as a Kernel Tuner strategy:
    ``kernel_tuner.tune_kernel(..., strategy=GenetuneStrategy())``.

    ``seed``: the engine's seed (None: drawn). ``search_config``: ``SearchConfiguration`` fields
    (``pool_size``, ``engine``, ...); ``generations`` defaults to as many as the budget needs.
    The budget is Kernel Tuner's: ``strategy_options={"max_fevals": n, "time_limit": s}``
    (``x0``: a configuration, in ``tune_params`` order, evaluated first).

    Only configurations of Kernel Tuner's search space (its restrictions and thread-block limit)
    are proposed, each once; failed ones (compile, launch, runtime errors) are INVALID to the
    engine. The results are Kernel Tuner's, as its built-in strategies return them.
    """

    def __init__(self, seed: int | None = None, **search_config: Any) -> None:
        owned = [k for k in _OWNED_SETTINGS if k in search_config]
        if owned:
            raise ConfigurationError(
                f"GenetuneStrategy: {owned} follow Kernel Tuner's objective and objective_higher_is_better; "
                "pass those to tune_kernel"
            )
        self.seed = seed
        self.search_config = dict(search_config)
        self._check_config(1, 1)  # bad settings fail here, not inside tune_kernel

    def _check_config(self, objectives: int, budget: int) -> SearchConfiguration:
        fields: dict[str, Any] = {"generations": 1, **self.search_config, "num_objectives": objectives}
        try:
            config = SearchConfiguration.model_validate(fields)
        except ValueError as err:
            raise ConfigurationError(f"GenetuneStrategy: {err}") from None
        if "generations" not in self.search_config:
            assert config.pool_size is not None
            # Kernel Tuner's budget ends the run; the engine only must not end first.
            config = config.model_copy(update={"generations": max(1, math.ceil(budget / config.pool_size) + 1)})
        return config

    def tune(self, searchspace: Any, runner: Any, tuning_options: Any) -> list[dict[str, Any]]:
        """Kernel Tuner's strategy entry point (``interface.tune_kernel`` calls it)."""
        from kernel_tuner.strategies.common import CostFunc
        from kernel_tuner.util import StopCriterionReached

        options = dict(tuning_options.strategy_options or {})
        unknown = sorted(set(options) - _STRATEGY_OPTIONS)
        if unknown:
            raise ValueError(
                f"GenetuneStrategy: unrecognized strategy_options {unknown} (allowed: {sorted(_STRATEGY_OPTIONS)}); "
                "genetune's own settings go to GenetuneStrategy(...)"
            )
        names = list(searchspace.tune_params)
        values = {n: list(searchspace.tune_params[n]) for n in names}
        objectives = tuning_options.objective
        count = len(objectives) if isinstance(objectives, list | tuple) else 1
        budget = tuning_options.budget.max_fevals or searchspace.size
        config = self._check_config(count, min(budget, searchspace.size))

        space = _strategy_space(values)

        def decode(params: Mapping[str, Any]) -> tuple[Any, ...]:
            return tuple(values[n][params[n]] for n in names)

        def in_space(params: Mapping[str, Any]) -> bool:
            return bool(searchspace.is_param_config_valid(decode(params)))

        warm_start = None
        if options.get("x0") is not None:
            x0 = tuple(options["x0"])
            if len(x0) != len(names) or not searchspace.is_param_config_valid(x0):
                raise ValueError(f"GenetuneStrategy: x0 {x0!r} is not a configuration of the search space ({', '.join(names)})")
            warm_start = {n: _index(values[n], v) for n, v in zip(names, x0)}

        cost_func = CostFunc(searchspace, tuning_options, runner, snap=False, scaling=False)
        with warnings.catch_warnings():
            # Running out of configurations is Kernel Tuner's budget too (max_fevals = the space's size).
            warnings.simplefilter("ignore", SearchSpaceExhaustedWarning)
            engine = Engine(space, config, seed=self.seed, constraints=[in_space], warm_start=warm_start)
            try:
                while not engine.done:
                    asked = engine.ask(1)
                    if not asked:
                        break  # nothing left to propose: the space is exhausted
                    candidate = asked[0]
                    cost = cost_func(decode(candidate.params), check_restrictions=False)
                    costs = list(cost) if isinstance(cost, list | tuple) else [cost]
                    # Kernel Tuner's cost of a failed configuration (compile, launch, runtime error) is the largest float.
                    failed = any(c >= sys.float_info.max for c in costs)
                    engine.tell([candidate.id], [[math.nan] * count if failed else costs])
            except StopCriterionReached as stop:
                if tuning_options.verbose:
                    print(stop)
        return list(cost_func.results)

    def __repr__(self) -> str:
        settings = "".join(f", {k}={v!r}" for k, v in self.search_config.items())
        return f"GenetuneStrategy(seed={self.seed!r}{settings})"


def _index(values: list[Any], value: Any) -> int:
    """The position of ``value`` among ``values``, type included (``True`` is not ``1`` here)."""
    return next(i for i, v in enumerate(values) if type(v) is type(value) and v == value)


def _strategy_space(values: dict[str, list[Any]]) -> dict[str, ss.Parameter]:
    """The strategy's own encoding: each parameter as the index of its value, ordered (a range of
    indices) when its values are increasing numbers (block sizes, tile sizes, unroll factors), so
    mutation and the model move to neighbouring values (measured better than unordered choices on
    the benchmark's spaces); otherwise a choice of indices. Kernel Tuner's Searchspace, which has
    applied every restriction, judges each candidate by membership."""
    space: dict[str, ss.Parameter] = {}
    for name, vals in values.items():
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals)
        increasing = numeric and all(a < b for a, b in zip(vals, vals[1:]))
        if len(vals) == 1:
            space[name] = ss.choice([0])
        elif increasing:
            space[name] = ss.range(0, len(vals) - 1)
        else:
            space[name] = ss.choice(list(range(len(vals))))
    return space
