"""The worker contract (CompileIQ's): evaluate a batch of candidates, return one Score each."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from types import TracebackType
from typing import Any, ClassVar

from genetune.scores import BASELINE_CONFIG, Score

__all__ = ["BASELINE_ID", "BaseWorker", "ResultCallback"]

#: The candidate id of the baseline measurement (``normalize=True``); per-placement baselines
#: are ``baseline@<placement>``.
BASELINE_ID = "baseline"

#: Called by a worker with each Score as soon as it is known (the search persists it at once).
ResultCallback = Callable[[Score], None]


class BaseWorker(ABC):
    """Subclass this for a custom worker and pass the class (or an instance) as ``worker_type``.

    ``run`` receives the objective, the candidates' params and ids, the number of objectives and
    every keyword of ``Search.start`` (``num_workers``, ``task_timeout``, ``on_result``, and any
    extra ``**worker_kwargs``). It must return one :class:`Score` per candidate with the given
    ``param_id``; an objective that raises should give an INVALID score (``"*"``), not an error.
    Calling ``on_result(score)`` as each result arrives (optional) lets the search checkpoint
    it immediately.
    """

    #: Whether ``num_workers`` means something to this worker (the search warns otherwise).
    respects_num_workers: ClassVar[bool] = True
    #: Whether ``task_timeout`` actually stops a hung evaluation (the search warns otherwise).
    supports_timeout: ClassVar[bool] = True
    #: Whether baselines (``normalize=True``) are measured and applied per placement: each
    #: result is normalized by the baseline of its ``metadata["placement"]`` (host, GPU).
    baselines_per_placement: ClassVar[bool] = False

    @abstractmethod
    def run(
        self,
        function: Callable[[Any], Any],
        params_pool: Sequence[Any],
        params_ids: Sequence[int | str],
        num_function_returns: int = 1,
        **kwargs: Any,
    ) -> list[Score]:
        """Evaluates ``function`` on every params of the pool."""

    def measure_baselines(
        self,
        function: Callable[[Any], Any],
        num_function_returns: int,
        known: Collection[str],
        **kwargs: Any,
    ) -> list[Score]:
        """Measures ``BASELINE_CONFIG`` where the search has no baseline yet (``known``: the
        placements it has one for). By default once (id ``"baseline"``), applied to every result;
        a worker with ``baselines_per_placement`` measures it on every placement not in ``known``
        (id ``baseline@<placement>``, ``metadata["placement"]`` set)."""
        if known:
            return []
        return self.run(function, [dict(BASELINE_CONFIG)], [BASELINE_ID], num_function_returns, **kwargs)

    def close(self) -> None:
        """Releases processes or connections; called when a search ends."""

    def __enter__(self) -> BaseWorker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @property
    def name(self) -> str:
        return type(self).__name__
