"""Config files: every typo and wrong type is refused with the key's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from orca_automl.config import OrcaConfig
from orca_automl.errors import OrcaInputError


def test_defaults_and_roundtrip(tmp_path: Path) -> None:
    cfg = OrcaConfig()
    cfg.to_yaml(tmp_path / "c.yaml")
    assert OrcaConfig.from_yaml(tmp_path / "c.yaml") == cfg


def test_yaml_strings_for_floats(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("refine:\n  lr: 3e-4\n  steps: 100\n")
    cfg = OrcaConfig.from_yaml(tmp_path / "c.yaml")
    assert cfg.refine.lr == 3e-4 and cfg.refine.steps == 100


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("refine:\n  stepz: 3\n", "unknown config key 'refine.stepz'"),
        ("refine:\n  steps: many\n", "'refine.steps' must be an integer"),
        ("model:\n  pretrained: 3\n", "'model.pretrained' must be true or false"),
        ("refine:\n  optimizer: lion\n", "optimizer must be one of"),
        ("refine:\n  warmup: 2\n", "warmup must be a fraction"),
        ("align: 5\n", "must be a mapping"),
        ("refine: [\n", "not valid YAML"),
        ("- a\n- b\n", "must hold a mapping"),
    ],
)
def test_bad_configs(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(OrcaInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        OrcaConfig.from_yaml(tmp_path / "c.yaml")


def test_missing_file() -> None:
    with pytest.raises(OrcaInputError, match="does not exist"):
        OrcaConfig.from_yaml("nope.yaml")


def test_short_schedule_and_overrides() -> None:
    cfg = OrcaConfig().with_overrides({"refine.steps": 400, "align.steps": 60})
    short = cfg.schedule("short")
    assert short.refine.steps == 100 and short.align.steps == 15
    assert cfg.schedule("full") == cfg
    with pytest.raises(OrcaInputError, match="unknown config key"):
        cfg.with_overrides({"nope.lr": 1})
