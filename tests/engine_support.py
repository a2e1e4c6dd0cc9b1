"""Helpers of the engine and search-space tests: ask/tell loops with seeded scores, and checks
that a candidate fits its search space. They only drive the public API."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

import genetune as gt


def key_of(params: Any) -> str:
    """A canonical text of a candidate's params (what "the same candidate" means)."""
    return json.dumps(params, sort_keys=True)


ScoreFn = Callable[[list[gt.Candidate]], Any]


def random_scorer(seed: int, num_objectives: int = 1) -> ScoreFn:
    """Scores drawn from a seeded RNG: the same calls give the same scores."""
    rng = np.random.default_rng(seed)

    def score(cands: list[gt.Candidate]) -> Any:
        if num_objectives == 1:
            return rng.random(len(cands))
        return rng.random((len(cands), num_objectives))

    return score


def run_generations(engine: gt.Engine, score: ScoreFn, max_generations: int | None = None) -> list[list[gt.Candidate]]:
    """Runs the ask/tell loop (``pool_size`` candidates asked, then told at once) until the engine is
    done or ``max_generations`` rounds ran; returns the candidates of each round."""
    out: list[list[gt.Candidate]] = []
    while not engine.done and (max_generations is None or len(out) < max_generations):
        cands = engine.ask()
        if not cands and engine.done:
            break  # steady: the ask found the space exhausted
        assert cands, "a running engine must have candidates to ask"
        engine.tell([c.id for c in cands], score(cands))
        out.append(cands)
    return out


@contextmanager
def quietly_exhausting() -> Iterator[None]:
    """A context in which SearchSpaceExhaustedWarning is ignored (small random spaces)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gt.SearchSpaceExhaustedWarning)
        yield


def walk_pairs(space: Any, params: Any, path: str = "") -> Iterator[tuple[str, Any, bool, Any]]:
    """Walks a (dict or list) search space and one candidate's params together, checking the
    shape, and yields ``(path, parameter, present, value)`` for every leaf parameter."""
    if isinstance(space, list | tuple):
        assert isinstance(params, list), f"{path}: expected a list, got {params!r}"
        assert len(params) == len(space), f"{path}: expected {len(space)} elements, got {params!r}"
        for i, (sub, val) in enumerate(zip(space, params, strict=True)):
            assert isinstance(val, dict), f"{path}[{i}]: expected a dict, got {val!r}"
            yield from walk_pairs(sub, val, f"{path}[{i}]")
        return
    assert isinstance(params, dict), f"{path}: expected a dict, got {params!r}"
    extra = set(params) - set(space)
    assert not extra, f"{path}: unexpected keys {extra!r} in {params!r}"
    for key, sub in space.items():
        sub_path = f"{path}[{key!r}]"
        if isinstance(sub, dict):
            if key in params:
                assert params[key], f"{sub_path}: a nested dict whose leaves are all absent must be absent itself"
                yield from walk_pairs(sub, params[key], sub_path)
            else:
                for leaf_path, param, _present, _value in _leaves(sub, sub_path):
                    yield leaf_path, param, False, None
        else:
            yield sub_path, sub, key in params, params.get(key)


def _leaves(space: Any, path: str) -> Iterator[tuple[str, Any, bool, Any]]:
    for key, sub in space.items():
        sub_path = f"{path}[{key!r}]"
        if isinstance(sub, dict):
            yield from _leaves(sub, sub_path)
        else:
            yield sub_path, sub, False, None


def check_value(path: str, param: Any, value: Any) -> None:
    """Asserts that ``value`` is one the parameter can take, with the right Python type."""
    if isinstance(param, gt.search_spaces.RangeParam):
        start, end, step = param.start, param.end, param.step
        all_int = step is not None and all(type(v) is int for v in (start, end, step))
        if all_int:
            assert type(value) is int, f"{path}: int range gave {type(value).__name__} {value!r}"
            assert start <= value <= end, f"{path}: {value} outside [{start}, {end}]"
            assert (value - start) % step == 0, f"{path}: {value} is not on the grid {start} + k*{step}"
        else:
            assert type(value) is float, f"{path}: float range gave {type(value).__name__} {value!r}"
            assert math.isfinite(value), f"{path}: {value}"
            assert start <= value <= end, f"{path}: {value!r} outside [{start!r}, {end!r}]"
            if step is not None:
                k = (value - start) / step
                assert abs(k - round(k)) <= 1e-6 * max(1.0, abs(k)), f"{path}: {value!r} is not on the grid {start} + k*{step}"
                assert round(k) >= 0
    elif isinstance(param, gt.search_spaces.ChoiceParam):
        members = {(type(v), v) for v in param.values}
        assert (type(value), value) in members, f"{path}: {value!r} ({type(value).__name__}) is not one of {param.values!r}"
    elif isinstance(param, gt.search_spaces.LiteralParam):
        assert type(value) is type(param.value) and value == param.value, f"{path}: {value!r} != literal {param.value!r}"
    else:  # pragma: no cover - a test bug
        raise AssertionError(f"{path}: unknown parameter {param!r}")


def check_candidate(space: Any, params: Any) -> None:
    """Shape, membership and type of every value of one candidate; absent only if knockable."""
    for path, param, present, value in walk_pairs(space, params):
        if present:
            check_value(path, param, value)
        else:
            assert param.knockout_prob is not None and param.knockout_prob > 0, f"{path}: absent without knockout"
