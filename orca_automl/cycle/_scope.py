"""Which body weights learn during refine (`refine.scope`), at which rate (`layer_decay`),
and the low-rank adapters of scope "lora".

On small data a fully fine-tuned body overfits; learning only part of it is the usual cure,
and a frozen weight also skips its weight-gradient computation. The embedder and the head
always learn (they are new). Whatever the scope, gradients still flow through the body to
the embedder below it, so a frozen body saves the weight gradients, not the whole backward.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from orca_automl.config import RefineConfig
from orca_automl.cycle._model import OrcaModel
from orca_automl.errors import OrcaInputError

#: The adapter name peft files LoRA weights under (`...lora_A.default.weight`).
ADAPTER = "default"


def is_norm(module: nn.Module) -> bool:
    """LayerNorm, GroupNorm, BatchNorm and the like (timm's BatchNormAct2d included)."""
    norms = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm, nn.LocalResponseNorm)
    return isinstance(module, norms) or "Norm" in type(module).__name__


def _body_named(model: OrcaModel) -> list[tuple[str, nn.Parameter]]:
    """The body's parameters that can learn, in definition order (the input side first)."""
    keep = {id(p) for p in model.body_parameters()}
    return [(n, p) for n, p in model.backbone.named_parameters() if id(p) in keep]


def _depths(model: OrcaModel) -> tuple[dict[int, int], int]:
    """Each body parameter's depth: 0 below the first block, k for block k (1-based),
    n + 1 above the last one; and n, the number of blocks."""
    blocks = model.backbone.blocks()
    owner = {id(p): k + 1 for k, block in enumerate(blocks) for p in block.parameters()}
    depths: dict[int, int] = {}
    seen_block = False
    for _, p in _body_named(model):
        if id(p) in owner:
            depths[id(p)], seen_block = owner[id(p)], True
        else:
            depths[id(p)] = len(blocks) + 1 if seen_block else 0
    return depths, len(blocks)


def _norm_parameters(model: OrcaModel) -> set[int]:
    return {id(p) for m in model.backbone.modules() if is_norm(m) for p in m.parameters(recurse=False)}


def trainable_body(model: OrcaModel, config: RefineConfig) -> set[int]:
    """ids of the body parameters that `config.scope` lets learn (adapters for "lora")."""
    named = _body_named(model)
    if config.scope == "full":
        return {id(p) for _, p in named}
    if config.scope == "frozen":
        return set()
    if config.scope == "lora":
        return {id(p) for n, p in named if "lora_" in n}
    norms = _norm_parameters(model)
    if config.scope == "norms":
        return {id(p) for n, p in named if id(p) in norms or n.endswith("bias")}
    depths, n_blocks = _depths(model)
    if n_blocks == 0:
        raise OrcaInputError(
            f"refine.scope top: backbone {model.backbone.identity} exposes no blocks; "
            "use scope full, norms, frozen or lora"
        )
    lowest = n_blocks - config.top_blocks + 1  # the lowest block that learns
    return {id(p) for _, p in named if id(p) in norms or depths[id(p)] >= lowest}


def lora_targets(model: OrcaModel) -> list[str]:
    """Module names (within the backbone) of the layers LoRA adapts: every linear layer and
    every ungrouped convolution of the body, except the bypassed input layer."""
    unused = {id(m) for m in model.backbone.unused_input_layer().modules()}
    names = []
    for name, module in model.backbone.named_modules():
        if id(module) in unused or not name:
            continue
        if isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.groups == 1):
            names.append(name)
    return names


def add_lora(model: OrcaModel, rank: int, alpha: int) -> None:
    """Wrap the body's linear layers (and ungrouped convolutions) with LoRA adapters, in place.

    The adapters start as an exact no-op (peft initialises B to zero), so the model computes
    what it computed before; the base weights are frozen.
    """
    from peft import LoraConfig, inject_adapter_in_model

    targets = lora_targets(model)
    if not targets:
        raise OrcaInputError(
            f"refine.scope lora: backbone {model.backbone.identity} has no linear or "
            "convolution layers to adapt; use another scope"
        )
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0,
                        bias="none")
    inject_adapter_in_model(config, model.backbone, adapter_name=ADAPTER)
    for name, p in model.backbone.named_parameters():
        p.requires_grad_("lora_" in name)


def has_lora(model: nn.Module) -> bool:
    return any("lora_" in name for name, _ in model.named_parameters())


def param_groups(model: OrcaModel, config: RefineConfig) -> list[dict[str, Any]]:
    """The optimizer's groups for `config`: embedder and head at new_lr, LoRA adapters at
    new_lr (they are new too), the learning part of the body at lr (times
    layer_decay ** (blocks above it)); every other body weight stops requiring gradients,
    so backward skips its weight gradient."""
    if config.scope == "lora" and not has_lora(model):
        add_lora(model, config.lora_rank, config.lora_alpha)
    learn = trainable_body(model, config)
    groups: list[dict[str, Any]] = [{"params": model.new_parameters(), "lr": config.new_lr}]
    depths, n_blocks = _depths(model) if config.layer_decay < 1.0 else ({}, 0)
    adapters: list[nn.Parameter] = []
    by_depth: dict[int, list[nn.Parameter]] = {}
    for name, p in _body_named(model):
        p.requires_grad_(id(p) in learn)
        if id(p) not in learn:
            continue
        if "lora_" in name:
            adapters.append(p)
        else:
            by_depth.setdefault(depths.get(id(p), n_blocks + 1), []).append(p)
    if adapters:
        groups.append({"params": adapters, "lr": config.new_lr})
    for depth, params in sorted(by_depth.items()):
        groups.append({"params": params, "lr": config.lr * config.layer_decay ** (n_blocks + 1 - depth)})
    return groups


def frozen_base_keys(model: OrcaModel) -> set[str]:
    """state_dict keys a LoRA model need not save: the body's frozen base weights (and its
    bypassed input layer), which the pretrained backbone provides again at load time."""
    if not has_lora(model):
        return set()
    return {f"backbone.{n}" for n, _ in model.backbone.named_parameters() if "lora_" not in n}
