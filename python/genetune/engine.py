"""`Engine`: the seeded ask/tell genetic search, backed by the Rust core."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import cloudpickle

import numpy as np
from numpy.typing import ArrayLike, NDArray

from genetune._core import Candidate, CoreEngine
from genetune.config import SearchConfiguration, as_search_configuration
from genetune.exceptions import ConfigurationError, SearchSpaceError, SearchSpaceExhaustedWarning, StateError, TellError
from genetune.scores import score_matrix
from genetune.jsonable import lenient_json_default
from genetune.search_spaces import SearchSpace, compile_space, space_from_spec
from genetune.warm_start import WarmStart, WarmStartPlan, plan_warm_start

__all__ = ["Candidate", "Constraint", "Engine"]

#: A constraint: an expression string (evaluated in the engine) or a callable ``params -> bool``
#: (evaluated in Python on each generation's candidates before they are handed out).
Constraint: TypeAlias = str | Callable[[Any], Any]
#: A screening pass gives up after this many rejections without one accepted candidate.
_INFEASIBLE_AFTER = 10_000
_SCREEN_ROUNDS = 1_000


def checked_constraints(constraints: Sequence[Constraint] | Constraint | None) -> list[Constraint]:
    """The constraints as a list: expression strings (the engine parses them) and callables."""
    if constraints is None:
        return []
    if isinstance(constraints, str) or callable(constraints):
        return [constraints]
    if not isinstance(constraints, Sequence):
        raise ConfigurationError(f"constraints must be a list of expression strings or callables, got {type(constraints).__name__}")
    out: list[Constraint] = []
    for i, c in enumerate(constraints):
        if not isinstance(c, str) and not callable(c):
            raise ConfigurationError(
                f"constraints[{i}] must be an expression string like 'bx * by <= 1024' or a callable params -> bool, "
                f"got {type(c).__name__} {c!r}"
            )
        out.append(c)
    return out


def _split(constraints: list[Constraint]) -> tuple[list[str], list[Callable[[Any], Any]]]:
    return [c for c in constraints if isinstance(c, str)], [c for c in constraints if not isinstance(c, str)]


def _plain_json(value: Any, what: str) -> Any:
    """Candidate params as the engine reads them (numpy scalars as Python ones; NaN refused)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, dict):
        return {k: _plain_json(v, f"{what}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_json(v, f"{what}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        raise SearchSpaceError(f"{what}: {value} is not a value of the search space")
    return value


def _candidates_json(candidates: list[Any], what: str) -> str:
    plain = [_plain_json(c, f"{what}[{i}]") for i, c in enumerate(candidates)]
    return json.dumps(plain, default=lenient_json_default)


def _count(n: int | None) -> int | None:
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise ValueError(f"n must be a non-negative int or None, got {n!r}")
    return n


class Engine:
    """A seeded ask/tell genetic search over a genetune search space.

    ``ask(n)`` hands out candidates (each with ``.id`` and ``.params``, shaped as the objective
    receives them); ``tell(ids, scores)`` records their scores, in any order and any number of
    calls. No candidate is ever proposed twice. ``ask_array()``/``tell`` with numpy arrays skip
    building Python dicts.

    Under ``schedule="steady"`` (the default) ``ask(n)`` works at any time: it returns ``n`` new
    candidates chosen with every result told so far, the pending ones (asked, not told) steering
    it away from near-duplicates; fewer only once ``generations * pool_size`` candidates were
    asked or the space is exhausted. ``generation`` counts cohorts of ``pool_size`` results.
    Under ``schedule="generational"`` ``ask()`` hands out the current generation and the next
    one is bred once every candidate of it is told (``ask`` returns ``[]`` until then).

    The same seed and the same sequence of asks and tells give the same candidates. An engine pickles (and
    ``Engine.from_bytes(engine.to_bytes())`` round-trips) with its RNG, so a restored engine
    continues the identical stream.

    ``constraints``: expressions every candidate satisfies, e.g. ``"bx * by <= 1024"`` or
    ``"unroll == 0 or vectorize"`` (see README "Constraints"); the engine never proposes a
    candidate that violates one. ``warm_start``: candidates to evaluate first and/or earlier
    results to continue from (see :mod:`genetune.warm_start`).
    """

    __slots__ = ("_config", "_core", "_exhaustion_reported", "_predicates", "_search_space")

    def __init__(
        self,
        search_space: SearchSpace,
        search_config: SearchConfiguration | dict[str, Any],
        seed: int | None = None,
        *,
        constraints: Sequence[Constraint] | Constraint | None = None,
        warm_start: WarmStart | WarmStartPlan | None = None,
    ) -> None:
        config = as_search_configuration(search_config)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64):
            raise ConfigurationError(f"seed must be an int within [0, 2**64), got {seed!r}")
        spec = compile_space(search_space)
        expressions, predicates = _split(checked_constraints(constraints))
        plan = plan_warm_start(warm_start, config.num_objectives, config.normalize, list_space="list" in spec)
        meta = json.dumps({"config": config.model_dump(mode="json"), "space": spec})
        core = CoreEngine(
            json.dumps(spec),
            json.dumps(config.engine_config()),
            config.seed if seed is None else seed,
            meta,
            expressions,
            _candidates_json(plan.candidates, "warm_start") if plan.candidates else None,
            _candidates_json([p.params for p in plan.priors], "warm_start (earlier results)") if plan.priors else None,
            plan.prior_scores(config.num_objectives) if plan.priors else None,
        )
        self._init(core, config, search_space, predicates)
        if predicates:
            # A callable no candidate satisfies fails here, not at the first ask.
            core.propose(1)
            self._screen()

    def _init(self, core: CoreEngine, config: SearchConfiguration, search_space: Any, predicates: list[Callable[[Any], Any]]) -> None:
        self._core = core
        self._config = config
        self._search_space = search_space
        self._predicates = predicates
        self._exhaustion_reported = False

    def _screen(self) -> None:
        """Callable constraints judge the not-yet-asked candidates (the rest of the generation, or
        the steady schedule's proposed ones), all at once; the engine replaces each rejected one
        (steady: with the model's next choice; generational: a repair or a fresh draw), or drops it
        when no other is left, and the new ones are judged in turn."""
        if not self._predicates:
            return
        accepted = rejected = 0
        for _ in range(_SCREEN_ROUNDS):
            positions, candidates = self._core.unscreened()
            if not positions:
                return
            ok: list[int] = []
            bad: list[int] = []
            for position, candidate in zip(positions, candidates, strict=True):
                (ok if all(f(candidate.params) for f in self._predicates) else bad).append(position)
            accepted += len(ok)
            rejected += len(bad)
            if not accepted and rejected >= _INFEASIBLE_AFTER:
                break
            self._core.screen(ok, bad)
        raise ValueError(
            f"no candidate satisfies the constraint function(s) {self._predicates!r}: {rejected} candidates were rejected "
            f"and {accepted} accepted in one screening"
        )

    # ----- the loop ----------------------------------------------------------------------------

    def ask(self, n: int | None = None) -> list[Candidate]:
        """Steady schedule: ``n`` new candidates chosen with every result so far (default:
        ``pool_size`` minus the pending ones); fewer only at the end of the budget or of the space.
        Generational: up to ``n`` (default: all remaining) not-yet-asked candidates of the current
        generation; empty once they are all out (tell them to get the next generation)."""
        n = self._prepare(_count(n))
        candidates = self._core.ask(n)
        self._report_exhaustion()
        return candidates

    def ask_array(self, n: int | None = None) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Like :meth:`ask`, as ``(ids, X)``: one column of ``X`` per parameter, in
        :attr:`parameter_names` order: the value for ranges, the index for choices, 0 for
        literals, NaN when knocked out."""
        n = self._prepare(_count(n))
        ids, x = self._core.ask_array(n)
        self._report_exhaustion()
        return ids, x

    def _prepare(self, n: int | None) -> int | None:
        """Has the callable constraints judge the candidates the next ask hands out."""
        if self._predicates and self._core.steady:
            if n is None:
                n = max(0, (self._config.pool_size or 0) - self._core.asked)
            self._core.propose(n)
        self._screen()
        return n

    def tell(self, ids: ArrayLike, scores: ArrayLike) -> None:
        """Records ``scores`` (``(len(ids), num_objectives)``; NaN, inf or ``"*"`` = INVALID) for
        asked candidates. Nothing is recorded if any id or score is rejected."""
        id_array = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))
        try:
            matrix = score_matrix(scores, len(id_array), self._core.num_objectives)
        except ValueError as err:
            raise TellError(str(err)) from None
        self._core.tell(id_array, matrix)
        self._screen()
        self._report_exhaustion()

    def pending(self) -> list[Candidate]:
        """Candidates asked but not yet told, in ask order (to re-run after a crash, say)."""
        return self._core.pending()

    def population(self) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
        """The surviving population, best first: ``(ids, X, scores)``, scores as told (NaN = INVALID)."""
        return self._core.population()

    def _report_exhaustion(self) -> None:
        if self._core.exhausted and not self._exhaustion_reported:
            self._exhaustion_reported = True
            warnings.warn(
                f"the search space is exhausted after {self._core.evaluations + self._core.batch_size} distinct "
                "candidates; the search ends early with the results so far",
                SearchSpaceExhaustedWarning,
                stacklevel=3,
            )

    # ----- state -------------------------------------------------------------------------------

    @property
    def config(self) -> SearchConfiguration:
        return self._config

    @property
    def search_space(self) -> Any:
        return self._search_space

    @property
    def seed(self) -> int:
        """The seed in use (drawn from the OS when none was given)."""
        return self._core.seed

    @property
    def generation(self) -> int:
        """Steady: the cohort counter, results told // pool_size. Generational: the index of the
        generation being evaluated (the number of finished ones once done)."""
        return self._core.generation

    @property
    def done(self) -> bool:
        return self._core.done

    @property
    def exhausted(self) -> bool:
        """True once the engine ran out of untried candidates."""
        return self._core.exhausted

    @property
    def schedule(self) -> str:
        """``"steady"`` or ``"generational"`` (see :class:`SearchConfiguration`)."""
        return "steady" if self._core.steady else "generational"

    @property
    def evaluations(self) -> int:
        """Candidates told so far."""
        return self._core.evaluations

    @property
    def num_objectives(self) -> int:
        return self._core.num_objectives

    @property
    def parameter_names(self) -> list[str]:
        """Each parameter's path (``search_space['a']['b']``), in ``ask_array`` column order."""
        return self._core.parameter_paths

    @property
    def space_size(self) -> int | None:
        """Number of distinct feasible candidates (an inactive parameter counts once, as absent),
        or None for a space with a continuous range (or, under constraints, too many to count)."""
        return self._core.space_size

    @property
    def constraints(self) -> list[Constraint]:
        """The constraints every candidate satisfies: expressions, then callables."""
        return [*self._core.constraints, *self._predicates]

    @property
    def constraint_draws(self) -> tuple[int, int]:
        """Candidates checked against the constraints so far, and how many were rejected."""
        return self._core.constraint_draws

    @property
    def prior_count(self) -> int:
        """Prior evaluations the engine was told at creation (they hold ids ``0..prior_count``)."""
        return self._core.prior_count

    def to_bytes(self) -> bytes:
        """The whole engine state (RNG included) as bytes."""
        return self._core.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes, constraint_functions: Sequence[Callable[[Any], Any]] = ()) -> Engine:
        """Restores an engine saved with :meth:`to_bytes`; it continues the identical stream.
        The bytes hold expression constraints; callable ones are passed again as
        ``constraint_functions`` (pickling an engine keeps them)."""
        core = CoreEngine.from_bytes(data)
        try:
            meta = json.loads(core.meta)
            config = SearchConfiguration.model_validate(meta["config"])
            space = space_from_spec(meta["space"])
        except (ValueError, TypeError, KeyError) as err:
            raise StateError(f"corrupt engine state: unreadable metadata ({err})") from None
        engine = cls.__new__(cls)
        engine._init(core, config, space, list(constraint_functions))
        # The saved engine already reported its exhaustion.
        engine._exhaustion_reported = core.exhausted
        return engine

    def __reduce__(self) -> tuple[Any, tuple[bytes, bytes]]:
        return (_restore, (self.to_bytes(), cloudpickle.dumps(self._predicates)))

    def __repr__(self) -> str:
        return (
            f"Engine(engine={self._config.engine!s}, schedule={self.schedule}, generation={self.generation}/{self._config.generations}, "
            f"pool_size={self._config.pool_size}, seed={self.seed}, done={self.done})"
        )


def _restore(data: bytes, predicates: bytes) -> Engine:
    """Unpickles an engine (its callable constraints travel pickled by value, lambdas too)."""
    functions: list[Callable[[Any], Any]] = cloudpickle.loads(predicates)
    return Engine.from_bytes(data, functions)
