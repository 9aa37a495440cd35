"""One small registry class, instantiated once per concept (tasks, backbones, embedders,
heads, alignment metrics).

A registry maps a name to a builder. Unknown names raise `OrcaInputError` listing the known
ones, so every factory reports the same clear line for a typo.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from orca_automl.errors import OrcaInputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> builder, filled by the `register` decorator.

    Example:
        >>> metrics: Registry[type] = Registry("alignment metric")
        >>> @metrics.register("none")
        ... class NoAlignment: ...
        >>> metrics.get("none").__name__
        'NoAlignment'
    """

    def __init__(self, concept: str) -> None:
        self.concept = concept
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.concept} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries))
            raise OrcaInputError(
                f"unknown {self.concept} {name!r}: choose one of {known}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
