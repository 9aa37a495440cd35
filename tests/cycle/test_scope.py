"""Fine-tuning scopes, layer-wise learning-rate decay and LoRA adapters (cycle/_scope.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from orca_automl.config import OrcaConfig
from orca_automl.cycle import build_model, inference_gflops, load_model, run_cycle, save_model
from orca_automl.cycle._scope import frozen_base_keys, param_groups
from orca_automl.errors import OrcaInputError
from tests.tiny_bert import cycle_config as config


def gradients(bert: Path, task, **refine: object) -> dict[str, bool]:  # type: ignore[no-untyped-def]
    """After one backward pass under `refine`'s scope: which parameters got a gradient."""
    cfg = config(bert, **refine)
    model = build_model(task, cfg.model, 0)
    param_groups(model, cfg.refine)
    out = model(torch.from_numpy(task.train.X[:8]))
    F.cross_entropy(out, torch.from_numpy(task.train.y[:8])).backward()
    return {n: p.grad is not None for n, p in model.named_parameters()}


def body(grads: dict[str, bool]) -> dict[str, bool]:
    """Body weights that learn in some scope (the bypassed word table and the pooler, which
    the forward pass does not use, never get a gradient)."""
    skip = ("word_embeddings", "pooler")
    return {n: g for n, g in grads.items() if n.startswith("backbone.") and not any(s in n for s in skip)}


@pytest.mark.parametrize("scope", ["full", "top", "norms", "frozen"])
def test_frozen_parameters_receive_no_gradient(scope: str, tiny_bert_dir: Path, toy_task) -> None:  # type: ignore[no-untyped-def]
    grads = gradients(tiny_bert_dir, toy_task(), scope=scope, top_blocks=1)
    new = [g for n, g in grads.items() if n.startswith(("embedder.", "head."))]
    assert new and all(new)  # embedder and head always learn
    learned = {n for n, g in body(grads).items() if g}
    everything = set(body(grads))
    if scope == "full":
        assert learned == everything
    elif scope == "frozen":
        assert learned == set()
    elif scope == "norms":
        assert learned == {n for n in everything if "LayerNorm" in n or n.endswith("bias")}
    else:  # the top block (layer 1 of 2) and every norm layer
        assert learned == {n for n in everything if ".layer.1." in n or "LayerNorm" in n}
        assert any(".layer.0.attention.self.query.weight" in n for n in everything - learned)


def test_layer_decay_scales_each_block_below_the_top(tiny_bert_dir: Path, toy_task) -> None:  # type: ignore[no-untyped-def]
    cfg = config(tiny_bert_dir, layer_decay=0.5)
    model = build_model(toy_task(), cfg.model, 0)
    rate = {id(p): g["lr"] for g in param_groups(model, cfg.refine) for p in g["params"]}
    names = dict(model.named_parameters())

    def lr(name: str) -> float:
        return float(rate[id(names[name])])

    layer = "backbone.model.encoder.layer.{}.attention.self.query.weight"
    assert lr(layer.format(1)) == pytest.approx(1e-3 * 0.5)  # the top block: one step below
    assert lr(layer.format(0)) == pytest.approx(1e-3 * 0.25)
    assert lr("backbone.model.embeddings.position_embeddings.weight") == pytest.approx(1e-3 * 0.125)
    assert all(lr(n) == pytest.approx(3e-3) for n in names if n.startswith(("head.", "embedder.")))


def test_lora_leaves_the_base_untouched_and_saves_only_adapters(
    tiny_bert_dir: Path, toy_task, tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    task = toy_task()
    cfg = config(tiny_bert_dir, scope="lora", lora_rank=4, lora_alpha=8)
    result = run_cycle(task, cfg)
    fresh = build_model(task, cfg.model, 0).backbone.state_dict()
    tuned = result.model.backbone.state_dict()
    adapters = [k for k in tuned if "lora_" in k]
    assert adapters
    for key, value in fresh.items():  # every base weight, now under base_layer where wrapped
        wrapped = key.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        assert torch.equal(value, tuned[wrapped] if wrapped in tuned else tuned[key]), key
    assert any(tuned[k].abs().sum() > 0 for k in adapters if "lora_B" in k)  # they learned
    base_cost = inference_gflops(build_model(task, cfg.model, 0), task.train.X[0], torch.device("cpu"))
    assert result.cost > base_cost  # the adapters' own FLOPs are counted (they are not merged)

    save_model(result.model, task, cfg, tmp_path / "lora")
    state = torch.load(tmp_path / "lora" / "model.pt", weights_only=True)
    assert not set(state) & frozen_base_keys(result.model)
    buffers = {f"backbone.{n}" for n, _ in result.model.backbone.named_buffers()}
    assert {k for k in state if k.startswith("backbone.") and "lora_" not in k} <= buffers
    cfg_full = config(tiny_bert_dir)
    save_model(build_model(task, cfg_full.model, 0), task, cfg_full, tmp_path / "full")
    small, big = ((tmp_path / f / "model.pt").stat().st_size for f in ("lora", "full"))
    assert small < big / 3
    loaded = load_model(tmp_path / "lora")
    raw = task.test.X
    expected = result.model.eval()(torch.from_numpy(task.normalizer.normalize_x(raw))).detach().numpy()
    np.testing.assert_allclose(loaded.predict_raw(raw), expected, atol=1e-5)


def test_lora_folder_refuses_another_base(tiny_bert_dir: Path, toy_task, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import json

    task = toy_task()
    cfg = config(tiny_bert_dir, scope="lora", steps=2)
    save_model(run_cycle(task, cfg).model, task, cfg, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    meta["adapters"]["base"] = "hf:other:pretrained"
    (tmp_path / "m" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(OrcaInputError, match="LoRA adapters for hf:other"):
        load_model(tmp_path / "m")


def test_older_configs_with_train_body_still_load() -> None:
    assert OrcaConfig.from_dict({"refine": {"train_body": False}}).refine.scope == "frozen"
    assert OrcaConfig.from_dict({"refine": {"train_body": True}}).refine.scope == "full"
    with pytest.raises(OrcaInputError, match="scope must be one of"):
        OrcaConfig.from_dict({"refine": {"scope": "half"}})
