"""One small registry class, instantiated once per concept (tasks, backbones, embedders,
heads, alignment metrics).

A registry maps a name to a builder and, where the search needs to know something about an
entry without building it (a backbone's kind, an embedder's defaults), to an info record
given at registration. Unknown names raise `OrcaInputError` listing the known ones, so every
factory reports the same clear line for a typo. Entries registered from modules outside
this package are remembered (`plugin_modules`) so that worker processes can import them too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar, cast

from orca_automl.errors import OrcaInputError

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741  (the info type; pairs with T)

#: Modules outside this package -> how many registered entries they hold.
_PLUGIN_ENTRIES: Counter[str] = Counter()
#: "<concept> <name>" of the entries registered from a script run as `__main__`.
_SCRIPT_ENTRIES: set[str] = set()


def _plugin_module(obj: object) -> str | None:
    module = getattr(obj, "__module__", None)
    if not module or module == "__main__" or module.split(".")[0] == "orca_automl":
        return None
    return str(module)


def plugin_modules() -> list[str]:
    """Modules outside `orca_automl` that registered entries in any registry, sorted.

    Importing them in another process re-creates those entries there. Entries defined in a
    script run as `__main__` are not listed: no other process can import them by name.
    """
    return sorted(_PLUGIN_ENTRIES)


def script_entries() -> list[str]:
    """Entries ("<concept> <name>") registered from a script run as `__main__`: they exist in
    this process only, so work that runs in other processes (the search's workers) cannot
    use them."""
    return sorted(_SCRIPT_ENTRIES)


class Registry(Generic[T, I]):
    """Name -> entry (a builder or class) and its info, filled by the `register` decorator.

    Args:
        concept: what the entries are, for messages ("backbone", "embedder").
        info_type: when given, every entry must be registered with an info of this type.

    Example:
        >>> metrics: Registry[type, None] = Registry("alignment metric")
        >>> @metrics.register("none")
        ... class NoAlignment: ...
        >>> metrics.get("none").__name__
        'NoAlignment'
    """

    def __init__(self, concept: str, info_type: type[I] | None = None) -> None:
        self.concept = concept
        self._info_type = info_type
        self._entries: dict[str, tuple[T, I | None]] = {}

    def register(self, name: str, info: I | None = None) -> Callable[[T], T]:
        if self._info_type is not None and not isinstance(info, self._info_type):
            raise TypeError(
                f"{self.concept} {name!r} needs a {self._info_type.__name__}: "
                f"register it with {self._info_type.__name__}(...)"
            )

        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.concept} {name!r} is registered twice")
            self._entries[name] = (obj, info)
            module = _plugin_module(obj)
            if module is not None:
                _PLUGIN_ENTRIES[module] += 1
            if getattr(obj, "__module__", None) == "__main__":
                _SCRIPT_ENTRIES.add(f"{self.concept} {name}")
            return obj

        return decorator

    @contextmanager
    def registered(self, name: str, obj: T, info: I | None = None) -> Iterator[T]:
        """Register `obj` for the duration of a `with` block (tests, experiments)."""
        self.register(name, info)(obj)
        try:
            yield obj
        finally:
            del self._entries[name]
            _SCRIPT_ENTRIES.discard(f"{self.concept} {name}")
            module = _plugin_module(obj)
            if module is not None:
                _PLUGIN_ENTRIES[module] -= 1
                if not _PLUGIN_ENTRIES[module]:
                    del _PLUGIN_ENTRIES[module]

    def _entry(self, name: str) -> tuple[T, I | None]:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries))
            raise OrcaInputError(
                f"unknown {self.concept} {name!r}: choose one of {known}"
            ) from None

    def get(self, name: str) -> T:
        return self._entry(name)[0]

    def info(self, name: str) -> I:
        """The info given at registration (None for registries that take none)."""
        return cast(I, self._entry(name)[1])

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
