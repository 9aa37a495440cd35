"""The network one run trains: embedder -> pretrained body -> head, as one nn.Module."""

from __future__ import annotations

import torch
from torch import nn

from orca_automl.backbones import Backbone, create_backbone, default_backbone
from orca_automl.config import ModelConfig
from orca_automl.embedders import Embedder, HeadSpec, create_embedder, create_head
from orca_automl.errors import OrcaInputError
from orca_automl.tasks import Task


class OrcaModel(nn.Module):
    """The assembled model. `new_parameters` (embedder + head) get their own learning rate."""

    def __init__(self, embedder: Embedder, backbone: Backbone, head: nn.Module) -> None:
        super().__init__()
        self.embedder, self.backbone, self.head = embedder, backbone, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(self.embedder(x)))

    def align_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features the body receives for input x (the alignment's target side)."""
        return self.backbone.align_features(self.embedder(x))

    def new_parameters(self) -> list[nn.Parameter]:
        return list(self.embedder.parameters()) + list(self.head.parameters())

    def body_parameters(self) -> list[nn.Parameter]:
        """Pretrained body weights, excluding the unused original input layers (the word
        embedding table gets no gradient through inputs_embeds; the image stem is bypassed)."""
        skip = {id(p) for p in self.backbone.unused_input_layer().parameters()}
        return [p for p in self.backbone.parameters() if id(p) not in skip]


def resolve_backbone_name(config: ModelConfig, modality: str) -> str:
    if config.backbone != "auto":
        return config.backbone
    name = default_backbone(modality)
    if name is None:
        raise OrcaInputError(
            f"no default backbone for {modality} tasks: name one in model.backbone"
        )
    return name


def build_model(task: Task, config: ModelConfig, seed: int) -> OrcaModel:
    """Build the model for a task; every incompatibility is an OrcaInputError."""
    backbone = create_backbone(
        resolve_backbone_name(config, task.modality), config.backbone_args, config.pretrained, seed
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        embedder = create_embedder(
            config.embedder, task.modality, task.input_shape, backbone, config.embedder_args
        )
        spec = HeadSpec(
            task_type=task.task_type,
            backbone_kind=backbone.kind,
            in_features=backbone.out_features,
            outputs=task.num_outputs,
            output_shape=task.output_shape,
            layout=embedder.layout,
            dropout=config.head_dropout,
        )
        return OrcaModel(embedder, backbone, create_head(config.head, spec))
