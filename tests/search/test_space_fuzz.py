"""Fuzzing the search-space loader: any file handed as --search-space either loads as a
space or raises the project's one-line error, and nothing is written."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from orca_automl.errors import OrcaInputError
from orca_automl.search import SearchSpace, load_space
from orca_automl.search._toolkit import cycle_toolkit

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KNOWN = cycle_toolkit().known_names()
#: Keys a space may name, right and wrong ones, and the values they may take.
KEYS = ["model.backbone", "model.embedder", "model.head_dropout", "align.metric", "align.steps",
        "align.lr", "refine.lr", "refine.steps", "refine.batch_size", "refine.optimizer",
        "refine.scope", "seed", "short_fraction", "model", "refine.nope", "", "a.b.c.d"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                    st.sampled_from(["minilm", "conv1d", "none", "mmd", "adamw", "full", "1e-3"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)),
    max_leaves=12)


#: Plausible values of each key, so that many drawn spaces get past the first checks.
POOLS: dict[str, list[Any]] = {
    "model.backbone": ["minilm", "efficientnet_lite0", "hf", "bert9"],
    "model.embedder": ["conv1d", "patch_mlp", "tabular_linear", "stem_conv", "nope"],
    "model.head_dropout": [0.0, 0.1, 0.5, 1.5, -0.1],
    "align.metric": ["otdd_gaussian", "mmd", "none", "l2", "euclid"],
    "align.steps": [0, 10, 60, -5],
    "align.lr": [1e-4, 3e-2, 0.0],
    "refine.lr": [1e-5, 3e-4, 1.0, -1.0],
    "refine.steps": [1, 100, 0],
    "refine.batch_size": [1, 8, 32, 0],
    "refine.optimizer": ["adamw", "adam", "sgd", "lion"],
    "refine.scope": ["full", "frozen", "lora", "head"],
}


@st.composite
def params(draw: st.DrawFn) -> dict[str, Any]:
    """Parameters: mostly plausible specs over the keys above, in an order that lets later
    ones refer to earlier ones, with wrong kinds, bounds and conditions mixed in."""
    keys = draw(st.lists(st.sampled_from([*POOLS, *KEYS]), unique=True, max_size=6))
    out: dict[str, Any] = {}
    for key in keys:
        pool = st.sampled_from(POOLS.get(key, [1, "x"])) | SCALARS
        condition = st.dictionaries(st.sampled_from([*out, *KEYS]) if out else st.sampled_from(KEYS),
                                    st.lists(st.sampled_from(
                                        [v for spec in out.values() if isinstance(spec, dict)
                                         for v in spec.get("choices", []) or ["x"]] or ["x"]))
                                    | SCALARS, min_size=1, max_size=2)
        extra = {"when": condition, "unless": condition}
        out[key] = draw(st.one_of(
            st.fixed_dictionaries({"choices": st.lists(pool, min_size=1, max_size=4, unique_by=repr)},
                                  optional=extra),
            *(st.fixed_dictionaries({kind: st.lists(pool, min_size=2, max_size=2)},
                                    optional={"log": st.booleans() | SCALARS,
                                              "step": pool, **extra})
              for kind in ("int", "float")),
            VALUES,
        ))
    return out


SPACES = st.fixed_dictionaries(
    {"params": params()},
    optional={"description": SCALARS, "base": VALUES | st.just({"refine": {"steps": 40}}),
              "promotion": VALUES | st.fixed_dictionaries({}, optional={
                  "top_k": SCALARS, "share": st.floats(0, 1)}),
              "junk": VALUES},
)


def load_or_refuse(text: str) -> SearchSpace | None:
    """The property: a space, or `OrcaInputError` with one line; nothing written beside it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "space.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            space = load_space(str(path), KNOWN)
            event("loaded")
            return space
        except OrcaInputError as exc:
            assert "\n" not in str(exc).strip()
            event("refused")
            return None
        finally:
            assert [p.name for p in Path(tmp).iterdir()] == ["space.yaml"]


@FUZZ
@given(SPACES)
def test_any_space_loads_or_is_one_line(data: dict[str, Any]) -> None:
    load_or_refuse(yaml.safe_dump(data, allow_unicode=True))


@FUZZ
@given(st.text(max_size=300))
def test_any_text_loads_or_is_one_line(text: str) -> None:
    load_or_refuse(text)


def test_the_shipped_spaces_load() -> None:
    """The fuzz's property holds of real spaces too (it is not vacuous)."""
    for name in ("cpu-small", "default"):
        assert load_space(name, KNOWN).params
