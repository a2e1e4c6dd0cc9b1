"""`SearchConfiguration`: CompileIQ's fields, defaults and derivation rules, plus genetune's own."""

from __future__ import annotations

import math
import warnings
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["EngineKind", "ProblemType", "Schedule", "SearchConfiguration", "as_search_configuration"]


class ProblemType(StrEnum):
    MIN = "min"
    MAX = "max"


class Schedule(StrEnum):
    STEADY = "steady"
    GENERATIONAL = "generational"


class EngineKind(StrEnum):
    AUTO = "auto"
    GA = "ga"
    NSGA2 = "nsga2"
    NSGA3 = "nsga3"


def _derived_pool_size(num_objectives: int) -> int:
    target = 2 * num_objectives + 1
    p = max(math.ceil(target / 0.25), 32)
    return p + p % 2


def _derived_cull_size(pool_size: int, num_objectives: int) -> int:
    c = int(pool_size * 0.75)
    c -= c % 2
    max_cull = pool_size - (1 + 2 * num_objectives)
    max_cull -= max_cull % 2
    return max(2, min(c, max_cull))


def _reference_direction_count(num_objectives: int, survivors: int) -> int:
    """CompileIQ's lower bound on pool_size for its reference directions."""
    m = num_objectives
    remaining = survivors - m - 1
    if remaining <= 0:
        return m
    inner = m
    for p in range(1, survivors + 1):
        count = math.comb(m + p - 1, p)
        if count > remaining:
            break
        inner = count
    return m if inner == m else m + inner


class SearchConfiguration(BaseModel):
    """How a search runs. Unknown keys are rejected; ``pool_size``/``cull_size`` are derived from
    ``num_objectives`` when left out, with CompileIQ's rules."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    generations: int = Field(gt=0, lt=2**32, description="Number of generations to run.")
    pool_size: int | None = Field(default=None, gt=5, description="Candidates per generation (derived when None).")
    cull_size: int | None = Field(
        default=None, gt=1, multiple_of=2, description="Mating-pool size: the best cull_size survivors breed (derived when None)."
    )
    mutate_rate: float = Field(
        default=0.5,
        gt=0,
        lt=1,
        description="Probability that an offspring is mutated (CompileIQ's meaning; genetune's default 0.5 measured best, "
        "CompileIQ's is 0.25).",
    )
    problem_type: ProblemType = Field(default=ProblemType.MIN, description="Direction of every objective unless `directions` is set.")
    num_objectives: int = Field(default=1, gt=0, le=64)
    normalize: bool = Field(default=False, description="Divide scores by the baseline's (BASELINE_CONFIG) before selection.")
    objective_weights: list[float] | None = Field(
        default=None, description="NSGA-III: pull the reference directions toward these weights (must sum to 1)."
    )
    init_with_true_random_threshold: float = Field(
        default=0.9, ge=0, le=1, description="Share of the first generation drawn from the ranges' seed_low/seed_high."
    )
    enable_large_fail_pool: bool = Field(default=True, description="Accepted for CompileIQ compatibility; has no effect.")
    # genetune's own fields.
    seed: int | None = Field(default=None, ge=0, lt=2**64, description="Seed of the engine's RNG (drawn and recorded when None).")
    engine: EngineKind | None = Field(
        default=None,
        description="'auto' (default): the model-assisted engine, with GA selection for one objective, NSGA-II for two, NSGA-III for more; "
        "'ga', 'nsga2', 'nsga3': the plain genetic engines. None means 'auto'.",
    )
    schedule: Schedule = Field(
        default=Schedule.STEADY,
        description="'steady' (default): whenever a worker slot frees, the next candidate is chosen from every result so far "
        "(no generation barrier; a generation is a cohort of pool_size results). 'generational': whole generations are "
        "evaluated, then the next is bred (the behaviour before steady-state scheduling, bit for bit).",
    )
    directions: list[ProblemType] | None = Field(default=None, description="Per-objective 'min'/'max'; defaults to problem_type for all.")
    crossover_prob: float | None = Field(
        default=None, ge=0, le=1, description="Probability that a pair of parents is crossed (default 0.9; 1.0 for nsga3)."
    )
    crossover_eta: float | None = Field(
        default=None, ge=0, description="SBX distribution index, larger = children closer to parents (default 15; 30 for nsga3)."
    )
    mutation_eta: float = Field(default=20.0, ge=0, description="Polynomial-mutation distribution index.")
    gene_mutate_rate: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Probability that each parameter of a mutated offspring changes (default: 1 / the number of "
        "mutable parameters); at least one always changes.",
    )
    oversampling: int = Field(
        default=24, ge=1, le=1024, description="engine='auto': offspring bred and screened by the model per evaluated candidate."
    )
    model_evaluations: int = Field(
        default=2000,
        ge=0,
        lt=2**64,
        description="engine='auto': the model screens offspring until this many candidates are evaluated; plain "
        "breeding follows (long runs gain less from the model than it costs).",
    )

    # Noisy measurements (genetune's own; the defaults keep every candidate measured once).
    repeats: int = Field(
        default=1, ge=1, le=10_000, description="Measurements per candidate; its score is their median (the row keeps them all)."
    )
    remeasure_top: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="When the search ends: re-measure this many best distinct candidates (one in five, at least one, by its own "
        "measurement, the others by their score smoothed over their nearest evaluated neighbours; several objectives: up to this many of "
        "the Pareto front), and the baseline when normalize=True, in interleaved rounds; get_best_result() then picks by the "
        "re-measured mean. 0: no re-measurement.",
    )
    remeasure_repeats: int = Field(default=10, ge=2, le=10_000, description="Interleaved rounds of the re-measurement (remeasure_top > 0).")
    quiet_measurements: bool = Field(
        default=False,
        description="Two-phase objectives: a measurement also waits for the builds of its host (or GPU) to finish and holds new "
        "ones back (never benchmark while compiling); steadier timings, less parallelism.",
    )
    racing: bool = Field(
        default=False,
        description="One objective: a candidate that would displace the best so far is measured again (doubling) until it wins "
        "significantly or falls back; the extra measurements count toward the budget (generations * pool_size).",
    )

    @model_validator(mode="after")
    def _derive_and_check(self) -> SearchConfiguration:
        m = self.num_objectives
        pool = self.pool_size if self.pool_size is not None else _derived_pool_size(m)
        cull = self.cull_size if self.cull_size is not None else _derived_cull_size(pool, m)
        if cull >= pool:
            raise ValueError(f"cull_size ({cull}) must be less than pool_size ({pool})")
        survivors = pool - cull
        if survivors < 1 + 2 * m:
            raise ValueError(f"Number of survivors (pool_size - cull_size = {survivors}) is too small. Need at least {1 + 2 * m}.")
        needed = _reference_direction_count(m, survivors)
        if pool < needed:
            raise ValueError(f"pool_size ({pool}) is too small. Needs to be at least {needed} for {m} objectives.")
        if self.objective_weights is not None:
            w = self.objective_weights
            if len(w) != m:
                raise ValueError(f"objective_weights has {len(w)} entries; it must be equal to num_objectives ({m})")
            if any(x < 0 for x in w):
                raise ValueError("objective_weights must be non-negative")
            if not math.isclose(math.fsum(w), 1.0, rel_tol=0, abs_tol=1e-9):
                raise ValueError(f"Objective Weights must add up to 1.0 (they add up to {math.fsum(w)})")
        if self.racing and m > 1:
            raise ValueError(f"racing compares one objective; it cannot be used with num_objectives={m}")
        engine = self.engine or EngineKind.AUTO
        if engine == EngineKind.GA and m > 1:
            raise ValueError(f"engine 'ga' optimizes one objective; use 'nsga2' or 'nsga3' for num_objectives={m}")
        directions = self.directions or [self.problem_type] * m
        if len(directions) != m:
            raise ValueError(f"directions has {len(directions)} entries; it must be equal to num_objectives ({m})")
        if not self.enable_large_fail_pool:
            warnings.warn(
                "enable_large_fail_pool has no effect in genetune: invalid candidates simply lose to valid ones",
                FutureWarning,
                stacklevel=2,
            )
        # The model is frozen; derived values are filled in once, here.
        # NSGA-III's own operator defaults (Deb & Jain 2014): SBX with eta 30, always crossed.
        object.__setattr__(self, "engine", engine)
        nsga3 = self.algorithm == EngineKind.NSGA3
        crossover_prob = self.crossover_prob if self.crossover_prob is not None else (1.0 if nsga3 else 0.9)
        crossover_eta = self.crossover_eta if self.crossover_eta is not None else (30.0 if nsga3 else 15.0)
        for name, value in (
            ("pool_size", pool),
            ("cull_size", cull),
            ("directions", list(directions)),
            ("crossover_prob", crossover_prob),
            ("crossover_eta", crossover_eta),
        ):
            object.__setattr__(self, name, value)
        return self

    @property
    def algorithm(self) -> EngineKind:
        """The selection scheme: the engine itself, or what 'auto' selects with (GA for one
        objective, NSGA-II for two, NSGA-III for more: what measured best in benches/)."""
        if self.engine not in (None, EngineKind.AUTO):
            return self.engine
        return {1: EngineKind.GA, 2: EngineKind.NSGA2}.get(self.num_objectives, EngineKind.NSGA3)

    def engine_config(self) -> dict[str, Any]:
        """The configuration the Rust engine takes."""
        assert self.pool_size is not None and self.cull_size is not None and self.directions is not None
        return {
            "schedule": str(self.schedule),
            "generations": self.generations,
            "pool_size": self.pool_size,
            "cull_size": self.cull_size,
            "mutate_rate": self.mutate_rate,
            "directions": [str(d) for d in self.directions],
            "algorithm": str(self.algorithm),
            "surrogate": self.engine == EngineKind.AUTO,
            "gene_mutate_rate": self.gene_mutate_rate,
            "oversampling": self.oversampling,
            "model_evaluations": self.model_evaluations,
            "init_seed_share": self.init_with_true_random_threshold,
            "objective_weights": self.objective_weights,
            "crossover_prob": self.crossover_prob,
            "crossover_eta": self.crossover_eta,
            "mutation_eta": self.mutation_eta,
        }


def as_search_configuration(config: SearchConfiguration | dict[str, Any]) -> SearchConfiguration:
    """Accepts a `SearchConfiguration` or a dict of its fields."""
    if isinstance(config, SearchConfiguration):
        return config
    if isinstance(config, dict):
        return SearchConfiguration.model_validate(config)
    raise TypeError(f"search_config must be a SearchConfiguration or a dict, got {type(config).__name__}")
