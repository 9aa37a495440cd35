"""The align-then-refine cycle on small tasks with a tiny BERT loaded from disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from orca_automl.config import ModelConfig, OrcaConfig
from orca_automl.cycle import (
    CycleCallback,
    build_model,
    evaluate,
    load_model,
    run_cycle,
    save_model,
)
from orca_automl.cycle._model import resolve_backbone_name
from orca_automl.errors import OrcaInputError


def tiny_config(bert: Path, **sections: dict) -> OrcaConfig:  # type: ignore[type-arg]
    base = {
        "model": {"backbone": "hf", "backbone_args": {"name_or_path": str(bert)},
                  "embedder_args": {"target_seq_len": 8}},
        "align": {"metric": "otdd_gaussian", "steps": 10, "source_samples": 200, "batch_size": 32},
        "refine": {"steps": 60, "batch_size": 8, "eval_every": 20, "lr": 1e-3, "new_lr": 3e-3},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}
    return OrcaConfig.from_dict(base)


def test_cycle_learns_and_aligns(tiny_bert_dir: Path, toy_task) -> None:  # type: ignore[no-untyped-def]
    task = toy_task()
    steps: list[float] = []

    class Record(CycleCallback):
        def on_align_step(self, step: int, loss: float) -> None:
            steps.append(loss)

    result = run_cycle(task, tiny_config(tiny_bert_dir, align={"lr": 1e-2, "steps": 30}),
                       callback=Record())
    assert len(result.align_curve) == 30 and steps == result.align_curve
    assert result.final_align_loss < 0.8 * result.initial_align_loss  # the distance falls
    assert result.val.value >= 0.8  # three well-separated classes
    assert evaluate(result.model, task, "test").value >= 0.8
    assert result.cost > 0 and result.device_seconds > 0
    assert result.stopped is None and result.notes == []
    # the steps' share of the run: something, not all (building, evaluating are the rest)
    assert 0 < result.step_seconds < result.device_seconds


def test_same_seed_same_result(tiny_bert_dir: Path, toy_task) -> None:  # type: ignore[no-untyped-def]
    task = toy_task()
    cfg = tiny_config(tiny_bert_dir, refine={"steps": 20})
    a, b = run_cycle(task, cfg), run_cycle(task, cfg)
    assert a.align_curve == b.align_curve
    assert a.val.loss == b.val.loss
    c = run_cycle(task, cfg.with_overrides({"seed": 1}))
    assert c.val.loss != a.val.loss


def test_callback_stops_after_alignment(tiny_bert_dir: Path, toy_task) -> None:  # type: ignore[no-untyped-def]
    class Prune(CycleCallback):
        def on_align_end(self, curve: list[float]) -> bool:
            return False

    result = run_cycle(toy_task(), tiny_config(tiny_bert_dir), callback=Prune())
    assert result.stopped == "align" and np.isnan(result.val.score)
    assert result.final_align_loss is not None
    assert 0 < result.step_seconds < result.device_seconds  # the align steps only


def test_short_schedule_and_no_alignment(tiny_bert_dir: Path, toy_task) -> None:  # type: ignore[no-untyped-def]
    cfg = tiny_config(tiny_bert_dir, align={"metric": "none"})
    result = run_cycle(toy_task(), cfg, schedule="short")
    assert result.align_curve == [] and result.final_align_loss is None
    assert result.refine_steps == 15  # 60 x 0.25


@pytest.mark.parametrize("task_type", ["regression", "multilabel", "dense"])
def test_other_task_types(tiny_bert_dir: Path, toy_task, task_type: str) -> None:  # type: ignore[no-untyped-def]
    task = toy_task(task_type)
    result = run_cycle(task, tiny_config(tiny_bert_dir, align={"metric": "mmd"}))
    assert np.isfinite(result.val.score)
    if task_type == "regression":
        assert result.val.metric == "r2" and result.val.value > 0.5
    if task_type == "dense":
        assert result.val.metric == "relative_l2" and result.val.score == -result.val.value


def test_selection_rule(tiny_bert_dir: Path, toy_task) -> None:  # type: ignore[no-untyped-def]
    task = toy_task(n=40)  # 20 validation samples < min_val_for_best (50): final checkpoint
    auto = run_cycle(task, tiny_config(tiny_bert_dir, align={"metric": "none"}))
    assert auto.selection == "final" and auto.selected_step == 60
    best = run_cycle(task, tiny_config(tiny_bert_dir, align={"metric": "none"},
                                       refine={"select": "best"}))
    assert best.selection == "best"
    assert best.val.score == max(s for _, s in best.val_history)


def test_save_and_load_roundtrip(tiny_bert_dir: Path, toy_task, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    task = toy_task()
    cfg = tiny_config(tiny_bert_dir, refine={"steps": 20})
    result = run_cycle(task, cfg)
    folder = save_model(result.model, task, cfg, tmp_path / "model", scores={"val": 1.0})
    saved = load_model(folder)
    raw = task.test.X * 1.0  # normaliser here is the identity
    expected = result.model.eval()(torch.from_numpy(raw)).argmax(1).numpy()
    np.testing.assert_array_equal(saved.predict(raw), expected)
    assert saved.predict_proba(raw).sum(axis=1) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(OrcaInputError, match="per-sample shape"):
        saved.predict(raw[:, :1])
    bad = raw.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(OrcaInputError, match="NaN"):
        saved.predict(bad)
    with pytest.raises(OrcaInputError, match="not a saved model folder"):
        load_model(tmp_path)


def test_image_model_saves_and_loads_by_name(toy_task, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An image body is rebuilt from its timm name: no backbone/ folder, same predictions."""
    task = toy_task(modality="2d", shape=(1, 8, 8))
    cfg = OrcaConfig.from_dict({"model": {"backbone_args": {"image_size": 32}}})
    model = build_model(task, cfg.model, seed=0).eval()
    folder = save_model(model, task, cfg, tmp_path / "model")
    assert not (folder / "backbone").exists()
    saved = load_model(folder)
    rebuild = saved.meta["rebuild"]
    assert (rebuild["backbone"], rebuild["backbone_args"], rebuild["pretrained"]) == (
        "timm", {"name": "tf_efficientnet_lite0", "image_size": 32}, False
    )
    expected = model(torch.from_numpy(task.test.X)).argmax(1).numpy()
    np.testing.assert_array_equal(saved.predict(task.test.X), expected)


@pytest.mark.parametrize("modality, shape", [("1d", (2, 32)), ("2d", (1, 8, 8))])
def test_body_parameters_leave_out_the_bypassed_input_layer(toy_task, modality, shape) -> None:  # type: ignore[no-untyped-def]
    task = toy_task(modality=modality, shape=shape, n=8)
    args = {"image_size": 32} if modality == "2d" else {}
    model = build_model(task, ModelConfig(backbone_args=args), seed=0)
    unused = {id(p) for p in model.backbone.unused_input_layer().parameters()}
    assert unused  # the word embeddings (text) or the pretrained stem (image)
    body = {id(p) for p in model.body_parameters()}
    assert body and not body & unused
    assert body | unused == {id(p) for p in model.backbone.parameters()}


def test_auto_backbone_per_modality() -> None:
    assert resolve_backbone_name(ModelConfig(), "tabular") == "minilm"
    assert resolve_backbone_name(ModelConfig(backbone="timm"), "1d") == "timm"
    with pytest.raises(OrcaInputError, match="no default backbone for 3d tasks"):
        resolve_backbone_name(ModelConfig(), "3d")


def test_random_body_is_flagged(tiny_bert_dir: Path, toy_task) -> None:  # type: ignore[no-untyped-def]
    cfg = tiny_config(tiny_bert_dir, model={"pretrained": False}, refine={"steps": 5})
    result = run_cycle(toy_task(), cfg)
    assert any("RANDOM" in n for n in result.notes)


def test_image_backbone_on_grids(toy_task) -> None:  # type: ignore[no-untyped-def]
    task = toy_task(modality="2d", shape=(1, 8, 8))
    cfg = OrcaConfig.from_dict({
        "model": {"backbone": "efficientnet_lite0", "backbone_args": {"image_size": 32}},
        "align": {"steps": 5, "source_samples": 100},
        "refine": {"steps": 30, "batch_size": 16, "eval_every": 10, "new_lr": 3e-3, "lr": 1e-3},
    })
    result = run_cycle(task, cfg)
    assert result.final_align_loss is not None and np.isfinite(result.val.score)


def test_bf16_precision_trains_in_bfloat16_on_the_cpu(tiny_bert_dir: Path, toy_task) -> None:  # type: ignore[no-untyped-def]
    """precision bf16 autocasts the training steps (even on the CPU) and still learns."""
    from orca_automl.cycle import _refine

    dtypes: list[torch.dtype] = []
    task = toy_task()
    cfg = tiny_config(tiny_bert_dir, refine={"precision": "bf16"})
    original = _refine._autocast

    def spy(device: torch.device, precision: str = "auto"):  # type: ignore[no-untyped-def]
        context = original(device, precision)
        dtypes.append(torch.bfloat16 if context._enabled else torch.float32)
        return context

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_refine, "_autocast", spy)
        patch.setattr(_refine, "cpu_has_native_bf16", lambda: False)
        result = run_cycle(task, cfg)
    assert dtypes.count(torch.bfloat16) >= 60  # every training step (final scoring: auto)
    assert result.val.value >= 0.8
    assert any("without native bf16" in n for n in result.notes)  # emulated: said, not hidden
    fp32 = run_cycle(task, cfg.with_overrides({"refine.precision": "fp32"}))
    assert fp32.val.loss != result.val.loss  # the precision changed the arithmetic
    assert not any("bf16" in n for n in fp32.notes)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_refine, "cpu_has_native_bf16", lambda: True)
        assert _refine.precision_note(torch.device("cpu"), "bf16") is None
    with pytest.raises(OrcaInputError, match="precision must be one of"):
        cfg.with_overrides({"refine.precision": "fp16"})
