"""Configurations and search spaces over the tests' tiny BERT (conftest's `tiny_bert_dir`),
written once for the tests that train it for real."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from orca_automl.config import OrcaConfig


def cycle_config(bert: Path, **refine: object) -> OrcaConfig:
    """A refine-only cycle (no alignment) over 8 tokens; `refine` overrides refine's keys."""
    return OrcaConfig.from_dict({
        "model": {"backbone": "hf", "backbone_args": {"name_or_path": str(bert)},
                  "embedder_args": {"target_seq_len": 8}},
        "align": {"metric": "none"},
        "refine": {"steps": 30, "batch_size": 8, "eval_every": 10, "lr": 1e-3, "new_lr": 3e-3,
                   **refine},
    })


def search_space(path: Path, bert: Path, metrics: Sequence[str] = ("mmd", "l2")) -> Path:
    """A small real search space written to `path`: two embedders, two lengths, `metrics`,
    a short align and a 40-step refine; one configuration is promoted."""
    steps: dict[str, object] = {"int": [10, 20], "step": 10}
    if "none" in metrics:
        steps["unless"] = {"align.metric": "none"}
    path.write_text(yaml.safe_dump({
        "base": {
            "short_fraction": 0.5,
            "model": {"backbone": "hf", "backbone_args": {"name_or_path": str(bert)}},
            "align": {"source_samples": 200, "batch_size": 32},
            "refine": {"steps": 40, "batch_size": 8, "eval_every": 10, "new_lr": 3e-3},
        },
        "promotion": {"top_k": 1, "share": 0.5},
        "params": {
            "model.embedder": {"choices": ["conv1d", "patch_mlp"]},
            "model.embedder_args.target_seq_len": {"choices": [4, 8]},
            "align.metric": {"choices": list(metrics)},
            "align.steps": steps,
            "refine.lr": {"float": [3e-4, 3e-3], "log": True},
        },
    }))
    return path
