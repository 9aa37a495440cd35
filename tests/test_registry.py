"""The registries: metadata round trips, refusals, plugin modules, and that what the search
reads from the registry (defaults, kinds) is what the factories actually build."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orca_automl.alignment import ALIGNMENT_METRICS
from orca_automl.backbones import (
    BACKBONES,
    Backbone,
    BackboneInfo,
    backbone_kind,
    create_backbone,
    default_backbone,
)
from orca_automl.embedders import (
    EMBEDDERS,
    HEADS,
    EmbedderInfo,
    compatible_embedders,
    create_embedder,
    default_embedder,
    embedder_defaults,
)
from orca_automl.errors import OrcaInputError
from orca_automl.registry import Registry, plugin_modules
from orca_automl.tasks import MODALITIES, TASKS

#: A per-sample input shape for each modality, small enough for every embedder.
SHAPES = {"1d": (2, 150), "tabular": (7,), "2d": (3, 8, 8)}


def _toy_builder(pretrained: bool, seed: int, **args: Any) -> Backbone:
    raise NotImplementedError("never built: only its registration is under test")


def test_info_round_trip_and_refusals() -> None:
    widgets: Registry[Callable[..., Any], str] = Registry("widget", str)
    with widgets.registered("spanner", _toy_builder, "metal"):
        assert widgets.get("spanner") is _toy_builder
        assert widgets.info("spanner") == "metal"
        assert "spanner" in widgets and list(widgets) == widgets.names() == ["spanner"]
        with pytest.raises(ValueError, match="'spanner' is registered twice"):
            widgets.register("spanner", "wood")(_toy_builder)
        with pytest.raises(OrcaInputError) as unknown:
            widgets.info("hammer")
        assert str(unknown.value) == "unknown widget 'hammer': choose one of spanner"
    with pytest.raises(TypeError, match="widget 'hammer' needs a str"):
        widgets.register("hammer")
    assert widgets.names() == []


@pytest.mark.parametrize("registry", [BACKBONES, EMBEDDERS, HEADS, ALIGNMENT_METRICS, TASKS])
def test_unknown_names_are_one_actionable_line(registry: Registry[Any, Any]) -> None:
    for lookup in (registry.get, registry.info):
        with pytest.raises(OrcaInputError) as exc:
            lookup("no_such_entry")
        message = str(exc.value)
        assert "\n" not in message and message.startswith(f"unknown {registry.concept} ")
        assert ", ".join(registry.names()) in message


def test_builtin_metadata() -> None:
    assert BACKBONES.info("minilm") == BackboneInfo("sequence", default_for=("1d", "tabular"))
    assert BACKBONES.info("timm") == BackboneInfo("image")
    assert HEADS.info("pool_linear") is None and TASKS.info("gunpoint") is None
    info = EMBEDDERS.info("patch_mlp")
    assert (info.modalities, info.backbone_kind) == (("1d",), "sequence")
    assert embedder_defaults("patch_mlp") == {"target_seq_len": 64, "hidden": 256, "instance_norm": False}
    assert embedder_defaults("conv_adapter") == {"hidden": 16}
    assert embedder_defaults("stem_conv") == {}
    embedder_defaults("conv1d")["target_seq_len"] = 1  # a copy: the registry keeps 64
    assert embedder_defaults("conv1d") == {"target_seq_len": 64, "instance_norm": False}
    with pytest.raises(TypeError):
        info.defaults["hidden"] = 1  # type: ignore[index]


def test_info_is_validated() -> None:
    with pytest.raises(ValueError, match="backbone kind 'audio'"):
        BackboneInfo("audio")
    with pytest.raises(ValueError, match="only be the default for modalities it accepts"):
        EmbedderInfo(("1d",), "sequence", {}, default_for=("2d",))
    with pytest.raises(TypeError, match="backbone 'toy' needs a BackboneInfo"):
        BACKBONES.register("toy")


def test_plugin_modules_lists_outside_registrations() -> None:
    assert all(m.split(".")[0] != "orca_automl" for m in plugin_modules())
    before = plugin_modules()
    with BACKBONES.registered("toy", _toy_builder, BackboneInfo("sequence")):
        assert __name__ in plugin_modules()
        assert backbone_kind("toy") == "sequence"
    assert "toy" not in BACKBONES and plugin_modules() == before


def test_two_defaults_for_one_modality_are_refused() -> None:
    claim = BackboneInfo("sequence", default_for=("1d",))
    with (
        BACKBONES.registered("toy", _toy_builder, claim),
        pytest.raises(OrcaInputError, match="minilm, toy all claim to be the default"),
    ):
        default_backbone("1d")
    assert default_backbone("1d") == "minilm"


# --- what the registry says agrees with what gets built, for every entry -------------------


@pytest.fixture(scope="module")
def offline_args(tiny_bert_dir: Path, tiny_timm_checkpoint: Path) -> dict[str, dict[str, Any]]:
    """backbone_args that build each registered backbone without a network."""
    return {
        "minilm": {},
        "efficientnet_lite0": {"image_size": 32},
        "hf": {"name_or_path": str(tiny_bert_dir)},
        "timm": {"name": "resnet10t", "checkpoint": str(tiny_timm_checkpoint), "image_size": 32},
    }


@pytest.fixture(scope="module")
def bodies(offline_args: dict[str, dict[str, Any]]) -> dict[str, Backbone]:
    missing = sorted(set(BACKBONES.names()) - set(offline_args))
    assert not missing, f"give backbones {missing} an offline recipe in offline_args"
    return {name: create_backbone(name, offline_args[name]) for name in BACKBONES.names()}


@pytest.mark.parametrize("name", BACKBONES.names())
def test_backbone_kind_is_what_gets_built(name: str, bodies: dict[str, Backbone]) -> None:
    assert bodies[name].kind == backbone_kind(name)


@pytest.mark.parametrize("modality", MODALITIES)
def test_auto_backbone_and_embedder(modality: str, bodies: dict[str, Backbone]) -> None:
    name = default_backbone(modality)
    assert name is not None and modality in BACKBONES.info(name).default_for
    for body_name, body in bodies.items():
        expected = default_embedder(modality, body.kind)
        if expected is None:
            with pytest.raises(OrcaInputError, match="no embedder turns"):
                create_embedder("auto", modality, SHAPES[modality], body)
            continue
        built = create_embedder("auto", modality, SHAPES[modality], body)
        assert type(built) is EMBEDDERS.get(expected), body_name
    assert default_embedder(modality, backbone_kind(name)) is not None  # auto -> auto works


@pytest.mark.parametrize("name", EMBEDDERS.names())
def test_every_embedder_builds_with_its_defaults(name: str, bodies: dict[str, Backbone]) -> None:
    info = EMBEDDERS.info(name)
    fitting = [b for b in bodies.values() if b.kind == info.backbone_kind]
    assert fitting, f"no registered backbone of kind {info.backbone_kind} for {name}"
    for modality in info.modalities:
        assert name in compatible_embedders(modality, info.backbone_kind)
        for body in fitting:
            built = create_embedder(name, modality, SHAPES[modality], body)
            assert type(built) is EMBEDDERS.get(name)
            if "target_seq_len" in info.defaults and modality == "1d":
                assert built.layout.length == 150 and built.layout.patch == 3  # 50 <= 64 tokens
