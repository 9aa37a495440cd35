"""`embedder_args.instance_norm` of the 1D patch embedders: each series is scaled by its own
statistics, so the embedding ignores a per-sample level and amplitude; tabular rows are left
alone; saved models rebuild with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_task

from orca_automl.backbones import create_backbone
from orca_automl.config import OrcaConfig
from orca_automl.cycle import SavedModel, build_model, load_model, save_model
from orca_automl.embedders import create_embedder, embedder_defaults
from orca_automl.errors import OrcaInputError


@pytest.fixture(scope="module")
def bert(tiny_bert_dir: Path):  # type: ignore[no-untyped-def]
    return create_backbone("hf", {"name_or_path": str(tiny_bert_dir)})


def _affine(x: torch.Tensor, seed: int = 1) -> torch.Tensor:
    """x * a + b with a in (0.2, 5) and b in (-3, 3), drawn per sample and channel."""
    g = torch.Generator().manual_seed(seed)
    shape = (*x.shape[:-1], 1)
    scale = torch.exp(torch.empty(shape).uniform_(-1.6, 1.6, generator=g))
    shift = torch.empty(shape).uniform_(-3, 3, generator=g)
    return x * scale + shift


def _change(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative size of the difference (tokens have a small norm, ~ the backbone's)."""
    return ((a - b).norm() / b.norm()).item()


def _series(seed: int = 0) -> torch.Tensor:
    return torch.randn(4, 3, 50, generator=torch.Generator().manual_seed(seed))


def test_registered_defaults_let_the_search_sample_it() -> None:
    assert embedder_defaults("conv1d")["instance_norm"] is False
    assert embedder_defaults("patch_mlp")["instance_norm"] is False


@pytest.mark.parametrize("name", ["conv1d", "patch_mlp"])
def test_embedding_ignores_a_per_sample_affine_change_only_with_instance_norm(
    bert, name: str  # type: ignore[no-untyped-def]
) -> None:
    x = _series()
    on = create_embedder(name, "1d", (3, 50), bert, {"target_seq_len": 8, "instance_norm": True})
    assert _change(on(_affine(x)), on(x)) < 1e-4
    assert _change(on(_series(seed=1)), on(x)) > 0.3  # it still sees the shape
    off = create_embedder(name, "1d", (3, 50), bert, {"target_seq_len": 8})
    assert not off.instance_norm
    assert _change(off(_affine(x)), off(x)) > 0.3


def test_a_constant_series_embeds_to_finite_tokens(bert) -> None:  # type: ignore[no-untyped-def]
    emb = create_embedder("conv1d", "1d", (2, 20), bert, {"instance_norm": True})
    out = emb(torch.full((3, 2, 20), 7.0))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, emb(torch.zeros(3, 2, 20)))  # level removed, 0/eps = 0


def test_tabular_rows_are_left_alone(bert) -> None:  # type: ignore[no-untyped-def]
    """A row's mean and std mix features of different units: conv1d embeds rows unchanged."""
    rows = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    embedded = []
    for flag in (True, False):
        torch.manual_seed(0)
        emb = create_embedder("conv1d", "tabular", (7,), bert,
                              {"target_seq_len": 7, "instance_norm": flag})
        embedded.append(emb(rows))
    torch.testing.assert_close(embedded[0], embedded[1], rtol=0, atol=0)


def test_a_non_boolean_is_refused_in_one_line(bert) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(OrcaInputError) as exc:
        create_embedder("patch_mlp", "1d", (1, 40), bert, {"instance_norm": "yes"})
    assert str(exc.value) == "embedder_args.instance_norm must be true or false, got 'yes'"


def test_saved_models_rebuild_with_instance_norm(tiny_bert_dir: Path, tmp_path: Path) -> None:
    task = make_task(n=8, shape=(2, 32))
    config = OrcaConfig().with_overrides({
        "model.backbone": "hf", "model.backbone_args": {"name_or_path": str(tiny_bert_dir)},
        "model.embedder_args": {"target_seq_len": 8, "instance_norm": True},
    })
    model = build_model(task, config.model, seed=0).eval()
    save_model(model, task, config, tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert isinstance(loaded, SavedModel) and loaded.model.embedder.instance_norm is True
    X = task.test.X
    with torch.no_grad():
        direct = model(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(loaded.predict_raw(X), direct, atol=1e-5)
    # the raw inputs' per-sample level and amplitude do not change the predictions
    shifted = _affine(torch.from_numpy(X), seed=2).numpy()
    np.testing.assert_allclose(loaded.predict_raw(shifted), direct, atol=1e-4)
