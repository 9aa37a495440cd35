"""Modality bridging during refine (PaRe-style, Cai et al., ICML 2024).

Early in refine a share of the embedded target's tokens is replaced by tokens of the body's
own pretraining modality (`Backbone.reference_tokens`: word embeddings for a text body,
first-conv pixels for an image body), so the body first sees inputs between the two
modalities and the gap closes gradually. Which tokens are replaced is chosen by a learned
gate: each token's replacement probability is share(t) * 2 * sigmoid(gate(token)) (capped
at 1, so share(t) on average at the start), sampled as a hard 0/1 mask whose gradient
reaches the gate through the probability (straight-through). share(t) falls linearly from
`refine.bridge` to zero at the fraction `refine.bridge_until` of the steps; after that, and
always at evaluation, the model sees the target alone. The bridge is a training device
only: it is not part of the saved model.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from orca_automl.config import RefineConfig
from orca_automl.cycle._model import OrcaModel


class ModalityBridge(nn.Module):
    """The gate and the reference token pool for one refine run.

    Args:
        reference: (n, width) reference-modality token vectors.
        share: the share of tokens replaced at step 0, in [0, 1).
        until: the step at which the share reaches zero (exclusive: share(until) == 0).
    """

    reference: torch.Tensor

    def __init__(self, reference: torch.Tensor, share: float, until: int) -> None:
        super().__init__()
        self.register_buffer("reference", reference.float())
        self.gate = nn.Linear(reference.shape[1], 1)
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)  # sigmoid(0) = 1/2: every token starts at share(t)
        self.share, self.until = share, max(1, until)

    def share_at(self, step: int) -> float:
        """The share of tokens replaced at optimizer step `step` (0-based)."""
        return self.share * max(0.0, 1.0 - step / self.until)

    def forward(self, tokens: torch.Tensor, step: int, generator: torch.Generator) -> torch.Tensor:
        """Tokens (B, T, width) or an image embedder's map (B, width, h, w), with a share of
        positions replaced by random reference tokens."""
        share = self.share_at(step)
        if share == 0.0:
            return tokens
        image = tokens.ndim == 4
        seq = tokens.flatten(2).transpose(1, 2) if image else tokens  # (B, T, width)
        b, t, _ = seq.shape
        prob = (share * 2.0 * torch.sigmoid(self.gate(seq).squeeze(-1))).clamp(max=1.0)
        draw = torch.rand(b, t, generator=generator).to(seq.device)
        hard = (draw < prob.detach()).unsqueeze(-1)
        pick = torch.randint(len(self.reference), (b, t), generator=generator).to(seq.device)
        ref = self.reference[pick].to(seq.dtype)
        # exactly the reference token where replaced; the gate's gradient flows through
        # the probability (straight-through: prob - prob.detach() is zero in value)
        mixed = torch.where(hard, ref, seq) + (prob - prob.detach()).unsqueeze(-1) * (ref - seq)
        if image:
            return mixed.transpose(1, 2).reshape(tokens.shape)
        return mixed


def make_bridge(
    model: OrcaModel, config: RefineConfig, seed: int, device: torch.device,
    reference_samples: int = 500, max_tokens: int = 50_000,
) -> ModalityBridge | None:
    """The bridge `config` asks for (None when refine.bridge is 0); its pool keeps at most
    `max_tokens` reference tokens (an image body gives one per first-conv pixel)."""
    if config.bridge == 0.0:
        return None
    tokens = model.backbone.reference_tokens(reference_samples, seed)
    if len(tokens) > max_tokens:
        tokens = tokens[np.random.default_rng(seed).choice(len(tokens), max_tokens, replace=False)]
    until = int(round(config.bridge_until * config.steps))
    return ModalityBridge(torch.from_numpy(tokens), config.bridge, until).to(device)


def bridged_forward(
    model: OrcaModel, bridge: ModalityBridge, x: torch.Tensor, step: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """The model's forward pass with the bridge between embedder and body."""
    return model.head(model.backbone(bridge(model.embedder(x), step, generator)))
