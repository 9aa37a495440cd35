"""Search spaces: parsing, refusal of malformed spaces (naming the key), conditions, binding."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from orca_automl.errors import OrcaInputError
from orca_automl.search import SearchSpace, load_space, parse_space
from tests.search.fakes import KNOWN_NAMES, SPACES, fake_toolkit

TINY = yaml.safe_load((SPACES / "tiny.yaml").read_text())


def _space(params: dict, **sections: object) -> SearchSpace:
    return parse_space({"params": params, **sections}, name="t", path=Path("t.yaml"),
                                 known_names=KNOWN_NAMES)


def _refusal(params: dict, **sections: object) -> str:
    with pytest.raises(OrcaInputError) as info:
        _space(params, **sections)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"refine.lrr": {"float": [1e-5, 1e-3]}}, ["params.refine.lrr", "unknown config key"]),
        ({"refine.lr": {"float": [1e-3, 1e-5]}}, ["params.refine.lr", "above high"]),
        ({"refine.lr": {"float": [0.0, 1e-3], "log": True}}, ["params.refine.lr", "log range"]),
        ({"refine.lr": {"float": ["a", 1]}}, ["params.refine.lr", "not a number"]),
        ({"refine.lr": [1e-5, 1e-3]}, ["params.refine.lr", "mapping"]),
        ({"refine.lr": {"float": [1e-5, 1e-3], "int": [1, 2]}}, ["params.refine.lr", "exactly one"]),
        ({"refine.lr": {"float": [1e-5, 1e-3], "logg": True}}, ["params.refine.lr", "'logg'"]),
        ({"refine.steps": {"int": [10.5, 20]}}, ["params.refine.steps", "whole numbers"]),
        ({"refine.optimizer": {"choices": ["adamw", "rmsprop"]}}, ["params.refine.optimizer", "rmsprop"]),
        ({"refine.optimizer": {"choices": []}}, ["params.refine.optimizer", "non-empty"]),
        ({"refine.batch_size": {"choices": [8, 8]}}, ["params.refine.batch_size", "repeat"]),
        ({"refine.warmup": {"float": [0.0, 1.5]}}, ["params.refine.warmup", "1.5"]),
        ({"model.backbone": {"choices": ["minilm", "gpt9"]}}, ["params.model.backbone", "gpt9"]),
        ({"align.metric": {"choices": ["mmd", "cosine"]}}, ["params.align.metric", "cosine"]),
        ({"model.backbone": {"int": [1, 2]}}, ["params.model.backbone", "choices"]),
        (
            {"align.steps": {"int": [10, 20], "unless": {"align.metric": "none"}}},
            ["params.align.steps", "align.metric", "not a parameter declared above"],
        ),
        (
            {"align.metric": {"choices": ["mmd", "none"]},
             "align.steps": {"int": [10, 20], "unless": {"align.metric": "otdd"}}},
            ["params.align.steps", "'otdd'", "not among the choices"],
        ),
        (
            {"refine.lr": {"float": [1e-5, 1e-3]},
             "align.steps": {"int": [10, 20], "when": {"refine.lr": 1e-4}}},
            ["params.align.steps", "not a choices parameter"],
        ),
        (
            {"model.embedder": {"choices": ["conv1d"]}, "model.backbone": {"choices": ["minilm"]}},
            ["params.model.backbone", "above model.embedder"],
        ),
    ],
)
def test_malformed_params_are_refused_naming_the_key(params: dict, words: list[str]) -> None:
    message = _refusal(params)
    assert message.startswith("search space t: ")
    for word in words:
        assert word in message


def test_malformed_sections_are_refused() -> None:
    assert "unknown section 'parms'" in _refusal({"refine.lr": {"float": [1e-5, 1e-3]}}, parms={})
    assert "base: unknown config key 'refine.stepz'" in _refusal(
        {"refine.lr": {"float": [1e-5, 1e-3]}}, base={"refine": {"stepz": 3}})
    assert "promotion.share" in _refusal({"refine.lr": {"float": [1e-5, 1e-3]}},
                                         promotion={"share": 1.5})
    with pytest.raises(OrcaInputError, match="params"):
        parse_space({"base": {}}, name="t", path=Path("t.yaml"), known_names={})


def test_unknown_space_name_and_bad_yaml_are_refused(tmp_path: Path) -> None:
    with pytest.raises(OrcaInputError, match="unknown search space 'nope'.*cpu-small"):
        load_space("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("params: {refine.lr: [1, 2\n")
    with pytest.raises(OrcaInputError, match=r"not valid YAML \(line"):
        load_space(str(bad))
    with pytest.raises(OrcaInputError, match="does not exist"):
        load_space(str(tmp_path / "missing.yaml"))


def test_hash_ignores_comments_but_not_content(tmp_path: Path) -> None:
    text = (SPACES / "tiny.yaml").read_text()
    (tmp_path / "a.yaml").write_text("# a comment\n" + text)
    (tmp_path / "b.yaml").write_text(text.replace("[16, 32]", "[16, 64]"))
    original = load_space(str(SPACES / "tiny.yaml"), KNOWN_NAMES).sha256
    assert load_space(str(tmp_path / "a.yaml"), KNOWN_NAMES).sha256 == original
    assert load_space(str(tmp_path / "b.yaml"), KNOWN_NAMES).sha256 != original


def test_the_recorded_content_rebuilds_the_same_space_in_the_same_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from orca_automl.search._space_file import is_packaged, resolve_space

    space = load_space(str(SPACES / "tiny.yaml"), KNOWN_NAMES)
    again = parse_space(json.loads(space.content), name=space.name, path=space.path,
                        known_names=KNOWN_NAMES)  # conditions need the file's order
    assert again.sha256 == space.sha256 and again.params == space.params
    monkeypatch.chdir(tmp_path)
    shipped = resolve_space("cpu-small")
    assert is_packaged(shipped)
    (tmp_path / "search_spaces").mkdir()  # a user's own cpu-small shadows the shipped one
    (tmp_path / "search_spaces" / "cpu-small.yaml").write_text(shipped.read_text())
    assert not is_packaged(resolve_space("cpu-small"))


def test_conditional_parameters_appear_only_when_active() -> None:
    space = load_space(str(SPACES / "tiny.yaml"), KNOWN_NAMES).for_task(
        "tabular", fake_toolkit().embedder_fits("tabular"))
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    seen_metrics, seen_embedders = set(), set()
    for _ in range(40):
        trial = study.ask()
        overrides = space.sample(trial)
        config = space.config(overrides, seed=3)
        assert config.seed == 3
        seen_metrics.add(overrides["align.metric"])
        seen_embedders.add(overrides["model.embedder"])
        has_align = {"align.steps", "align.lr"} <= set(trial.params)
        assert has_align == (overrides["align.metric"] != "none")
        assert ("model.embedder_args.target_seq_len" in trial.params) == (
            overrides["model.embedder"] == "conv1d")
        study.tell(trial, [0.5, 1.0])
    assert seen_metrics == {"otdd_gaussian", "none"}
    assert seen_embedders == {"conv1d", "tabular_linear"}  # patch_mlp does not take tabular data


def test_binding_splits_the_embedder_per_backbone_and_drops_what_does_not_fit() -> None:
    space = _space({
        "model.backbone": {"choices": ["minilm", "efficientnet_lite0"]},
        "model.embedder": {"choices": ["conv1d", "patch_tokens", "stem_conv"]},
        "model.embedder_args.target_seq_len": {"choices": [16, 32],
                                               "when": {"model.embedder": ["conv1d", "patch_tokens"]}},
    })
    image = space.for_task("2d", fake_toolkit().embedder_fits("2d"))
    names = [p.name for p in image.params]
    assert names[:3] == ["model.backbone", "model.embedder[minilm]", "model.embedder[efficientnet_lite0]"]
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=1))
    pairs = set()
    for _ in range(30):
        overrides = image.sample(study.ask())
        pairs.add((overrides["model.backbone"], overrides["model.embedder"]))
        assert ("model.embedder_args.target_seq_len" in overrides) == (
            overrides["model.embedder"] == "patch_tokens")
    assert pairs == {("minilm", "patch_tokens"), ("efficientnet_lite0", "stem_conv")}
    series = space.for_task("1d", fake_toolkit().embedder_fits("1d"))
    assert [getattr(p.distribution, "choices", None) for p in series.params[:2]] == [
        ("minilm",), ("conv1d",)]
    with pytest.raises(OrcaInputError, match="takes a tabular task"):
        _space({"model.embedder": {"choices": ["stem_conv"]}}).for_task(
            "tabular", fake_toolkit().embedder_fits("tabular"))


@pytest.mark.parametrize("name", ["default", "cpu-small"])
@pytest.mark.parametrize("modality", ["1d", "2d", "tabular"])
def test_shipped_spaces_validate_against_the_real_registries(name: str, modality: str) -> None:
    from orca_automl.search import cycle_toolkit

    toolkit = cycle_toolkit()
    space = load_space(name, toolkit.known_names()).for_task(modality, toolkit.embedder_fits(modality))
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(10):
        config = space.config(space.sample(study.ask()), seed=0)
        assert config.model.backbone in toolkit.known_names()["model.backbone"]


@pytest.mark.parametrize(("modality", "backbone", "embedder"),
                         [("1d", "minilm", "conv1d"), ("2d", "efficientnet_lite0", "stem_conv"),
                          ("tabular", "minilm", "tabular_linear")])
def test_engine_defaults_are_the_first_trial_of_the_shipped_space(
    modality: str, backbone: str, embedder: str
) -> None:
    """The default point is exactly orca-train's configuration, OrcaConfig() with "auto"
    resolved: the space's base must not change anything a trial does not choose (eval_every
    40 in the base once made the "default" winner select a different checkpoint)."""
    from orca_automl.config import OrcaConfig
    from orca_automl.search import cycle_toolkit

    toolkit = cycle_toolkit()
    space = load_space("cpu-small", toolkit.known_names()).for_task(
        modality, toolkit.embedder_fits(modality))
    params = space.engine_defaults({"model.backbone": backbone, "model.embedder": embedder,
                                    "model.embedder_args.target_seq_len": 64})
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.enqueue_trial(params)
    config = space.config(space.sample(study.ask()), seed=0)
    # "auto" and empty embedder_args resolve to these (64 tokens: the embedders' own default)
    args = {"target_seq_len": 64} if modality == "1d" else {}
    resolved = {"backbone": backbone, "embedder": embedder, "embedder_args": args}
    assert config.to_dict() == OrcaConfig().with_overrides({"model": resolved}).to_dict()


def test_defaults_outside_the_space_are_left_to_the_sampler() -> None:
    space = _space({"refine.lr": {"float": [1e-3, 1e-2]}, "refine.steps": {"int": [100, 350], "step": 50},
                    "align.metric": {"choices": ["mmd", "none"]}})
    assert space.engine_defaults({}) == {}  # lr 1e-4, 400 steps and otdd_gaussian are all outside


def test_dense_tasks_search_no_augmentation() -> None:
    """A dense task refuses augmentation, so its trials never sample it; other tasks do."""
    space = load_space("default")
    fits = fake_toolkit().embedder_fits("1d")
    names = {p.name for p in space.for_task("1d", fits, "classification").params}
    dense = {p.name for p in space.for_task("1d", fits, "dense").params}
    assert {"refine.augment", "refine.scope", "refine.bridge"} <= names
    assert names - dense == {"refine.augment"}
