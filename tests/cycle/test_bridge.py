"""Modality bridging in refine (cycle/_bridge.py): the annealed share, the gate, the refine run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from orca_automl.cycle import build_model, run_cycle
from orca_automl.cycle._bridge import ModalityBridge, make_bridge
from tests.tiny_bert import cycle_config


def test_share_anneals_linearly_to_zero_and_stays_there() -> None:
    bridge = ModalityBridge(torch.randn(50, 4), share=0.4, until=100)
    shares = [bridge.share_at(s) for s in range(300)]
    assert shares[0] == pytest.approx(0.4) and shares[50] == pytest.approx(0.2)
    assert all(a >= b for a, b in zip(shares, shares[1:], strict=False))
    assert shares[100:] == [0.0] * 200
    tokens = torch.randn(4, 16, 4)
    assert bridge(tokens, 100, torch.Generator().manual_seed(0)) is tokens  # the target alone


def test_replaced_tokens_are_reference_tokens_at_the_share() -> None:
    reference = torch.randn(64, 8) + 10.0  # far from the target tokens
    bridge = ModalityBridge(reference, share=0.3, until=10)
    tokens = torch.randn(64, 32, 8)
    out = bridge(tokens, 0, torch.Generator().manual_seed(0))
    replaced = (out != tokens).any(-1)
    assert replaced.float().mean().item() == pytest.approx(0.3, abs=0.03)  # gate starts neutral
    rows = out[replaced]
    assert ((rows[:, None] == reference[None]).all(-1).any(-1)).all()  # each is a reference row
    assert torch.equal(out[~replaced], tokens[~replaced])


def test_gate_learns_from_the_task_loss() -> None:
    bridge = ModalityBridge(torch.randn(64, 8), share=0.5, until=10)
    tokens = torch.randn(16, 12, 8, requires_grad=True)
    bridge(tokens, 0, torch.Generator().manual_seed(0)).square().sum().backward()
    assert bridge.gate.weight.grad is not None and bridge.gate.weight.grad.abs().sum() > 0
    assert tokens.grad is not None


def test_image_maps_keep_their_shape() -> None:
    bridge = ModalityBridge(torch.randn(30, 3), share=0.5, until=10)
    maps = torch.randn(2, 3, 5, 7)
    out = bridge(maps, 0, torch.Generator().manual_seed(1))
    assert out.shape == maps.shape
    changed = (out != maps).any(1)  # per position: all channels come from one reference token
    assert 0 < changed.float().mean() < 1


def test_refine_with_bridge_runs_and_the_saved_model_has_no_bridge(
    tiny_bert_dir: Path, toy_task,  # type: ignore[no-untyped-def]
) -> None:
    task = toy_task()
    cfg = cycle_config(tiny_bert_dir, steps=40, eval_every=20, bridge=0.5)
    bridge = make_bridge(build_model(task, cfg.model, 0), cfg.refine, 0, torch.device("cpu"))
    assert bridge is not None and bridge.until == 20  # bridge_until 0.5 of 40 steps
    assert bridge.reference.shape[1] == 32  # the tiny BERT's word embeddings
    bridged, plain = run_cycle(task, cfg), run_cycle(task, cfg.with_overrides({"refine.bridge": 0.0}))
    assert bridged.val.loss != plain.val.loss  # the bridge changed training
    assert bridged.val.value >= 0.6  # and the model still learns the task
    assert not any("gate" in k or "reference" in k for k in bridged.model.state_dict())
