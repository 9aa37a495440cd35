"""Training-time data augmentation: label-preserving transforms of normalised input batches.

Each transform is registered where it is defined with the modalities it applies to and
whether it belongs to that modality's "auto" set; `make_augmenter` turns `refine.augment`
(a strength in [0, 1]) and `refine.augment_ops` ("auto" or a "+"-joined list of names) into
an `Augmenter` that the refine stage applies to training batches only. Every transform draws
per-sample parameters from a passed `torch.Generator` (so a seeded run repeats exactly),
keeps the batch's shape and dtype, and never sees labels. The series transforms follow
Um et al. 2017 and Iwana & Uchida 2021 (jitter, scaling, magnitude and time warping) and
Le Guennec et al. 2016 (window slicing).

Dense tasks are refused: their target is a field aligned with the input, so moving positions
changes the label, and jitter or scaling change what a regression of that field should output.

Example:
    >>> import torch
    >>> from orca_automl.tasks import load_task
    >>> augmenter = make_augmenter(load_task("gunpoint"), 0.5, "jitter+time_warp")
    >>> augmenter.names
    ('jitter', 'time_warp')
    >>> x = torch.randn(4, 1, 150)
    >>> augmenter(x, torch.Generator().manual_seed(0)).shape
    torch.Size([4, 1, 150])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from orca_automl.errors import OrcaInputError
from orca_automl.registry import Registry
from orca_automl.tasks import MODALITIES, TableEncoding, Task


@dataclass(frozen=True)
class AugmentationInfo:
    """What is known of a registered transform without building it.

    Attributes:
        modalities: task modalities whose inputs it transforms.
        auto: whether `augment_ops: auto` applies it (a flip changes what a digit or a
            letter means, so it is available by name only).
    """

    modalities: tuple[str, ...]
    auto: bool

    def __post_init__(self) -> None:
        if not self.modalities or not set(self.modalities) <= set(MODALITIES):
            raise ValueError(f"augmentation modalities {self.modalities}: give some of {MODALITIES}")


class Augmentation(ABC):
    """One transform at a strength in [0, 1] (0: identity) for one task's input batches.

    Subclasses read what they need from the task once, at construction.
    """

    def __init__(self, task: Task, strength: float) -> None:
        self.strength = strength

    @abstractmethod
    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A transformed copy of the batch x (same shape and dtype)."""


AUGMENTATIONS: Registry[type[Augmentation], AugmentationInfo] = Registry(
    "augmentation", AugmentationInfo
)


def _normal(shape: tuple[int, ...], generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """Standard normal draws on the generator's device, moved to `like`'s device and dtype
    (a generator on the batch's device avoids the copy)."""
    draws = torch.randn(shape, generator=generator, device=generator.device)
    return draws.to(device=like.device, dtype=like.dtype)


def _uniform(shape: tuple[int, ...], generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """Uniform draws in [0, 1), as `_normal`."""
    draws = torch.rand(shape, generator=generator, device=generator.device)
    return draws.to(device=like.device, dtype=like.dtype)


def _smooth_curves(
    batch: int, channels: int, length: int, sigma: float, generator: torch.Generator,
    like: torch.Tensor, knots: int = 4,
) -> torch.Tensor:
    """(batch, channels, length) random smooth curves around 1: `knots` + 2 evenly spaced
    values ~ N(1, sigma) joined by cubic-convolution interpolation (Um et al.'s spline)."""
    values = 1.0 + sigma * _normal((batch, channels, 1, knots + 2), generator, like)
    curves = F.interpolate(values, size=(1, length), mode="bicubic", align_corners=True)
    return curves[:, :, 0, :]


def _resample(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """x (B, C, L) read at fractional time positions (B, L) in [0, L - 1], by linear
    interpolation between the neighbouring samples."""
    last = x.shape[-1] - 1
    positions = positions.clamp(0, last)
    low = positions.floor().long().clamp(max=last)
    high = (low + 1).clamp(max=last)
    weight = (positions - low).unsqueeze(1).to(x.dtype)
    index_shape = (x.shape[0], x.shape[1], x.shape[2])
    below = x.gather(-1, low.unsqueeze(1).expand(index_shape))
    above = x.gather(-1, high.unsqueeze(1).expand(index_shape))
    return below + (above - below) * weight


@AUGMENTATIONS.register("jitter", AugmentationInfo(("1d",), auto=True))
class Jitter(Augmentation):
    """Additive Gaussian noise of std 0.1 * strength times each series' own std (per channel)."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        sigma = 0.1 * self.strength * x.std(dim=-1, keepdim=True, unbiased=False)
        return x + sigma * _normal(tuple(x.shape), generator, x)


@AUGMENTATIONS.register("scaling", AugmentationInfo(("1d",), auto=True))
class Scaling(Augmentation):
    """Each series (per channel) times a factor ~ N(1, 0.2 * strength)."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        factors = 1.0 + 0.2 * self.strength * _normal((x.shape[0], x.shape[1], 1), generator, x)
        return x * factors


@AUGMENTATIONS.register("magnitude_warp", AugmentationInfo(("1d",), auto=True))
class MagnitudeWarp(Augmentation):
    """Each series (per channel) times a smooth random curve through knots ~ N(1, 0.2 *
    strength): the scale drifts along the series."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, c, length = x.shape
        return x * _smooth_curves(b, c, length, 0.2 * self.strength, generator, x)


@AUGMENTATIONS.register("time_warp", AugmentationInfo(("1d",), auto=True))
class TimeWarp(Augmentation):
    """A smooth monotone warp of the time axis, the same for all channels of a sample: the
    local speed is a smooth random curve through knots ~ N(1, 0.2 * strength) (kept >= 0.1
    so time never runs backwards), its running sum maps [0, L - 1] onto itself, and the
    series is read at the warped times by linear interpolation."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, _, length = x.shape
        if length < 2:
            return x
        speed = _smooth_curves(b, 1, length, 0.2 * self.strength, generator, x)[:, 0, :]
        elapsed = torch.cumsum(speed.clamp(min=0.1), dim=-1)
        elapsed = elapsed - elapsed[:, :1]
        positions = elapsed / elapsed[:, -1:] * (length - 1)
        return _resample(x, positions)


@AUGMENTATIONS.register("window_slice", AugmentationInfo(("1d",), auto=True))
class WindowSlice(Augmentation):
    """A random window of (1 - 0.2 * strength) of the length, stretched back to the full
    length by linear interpolation."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, _, length = x.shape
        window = max(2, round((1.0 - 0.2 * self.strength) * length))
        if window >= length:
            return x
        offsets = torch.floor(_uniform((b, 1), generator, x) * (length - window + 1))
        steps = torch.linspace(0, window - 1, length, device=x.device, dtype=x.dtype)
        return _resample(x, offsets + steps)


@AUGMENTATIONS.register("crop", AugmentationInfo(("2d",), auto=True))
class Crop(Augmentation):
    """Pad each side by round(0.125 * strength * size) pixels, repeating the edge (normalised
    backgrounds are rarely 0), and crop a random window of the original size back: a random
    shift of up to that many pixels per axis."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, _, height, width = x.shape
        pad_h = round(0.125 * self.strength * height)
        pad_w = round(0.125 * self.strength * width)
        if pad_h == 0 and pad_w == 0:
            return x
        padded = F.pad(x, (pad_w, pad_w, pad_h, pad_h), mode="replicate")
        shifts = torch.floor(
            _uniform((b, 2), generator, x) * torch.tensor([2 * pad_h + 1, 2 * pad_w + 1],
                                                          device=x.device, dtype=x.dtype)
        ).long()
        rows = shifts[:, :1] + torch.arange(height, device=x.device)  # (B, H)
        cols = shifts[:, 1:] + torch.arange(width, device=x.device)  # (B, W)
        batch = torch.arange(b, device=x.device)[:, None, None]
        # advanced indices around a slice put their (B, H, W) dimensions first
        return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


@AUGMENTATIONS.register("flip", AugmentationInfo(("2d",), auto=False))
class Flip(Augmentation):
    """Horizontal flip of each image with probability 0.5 * strength."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        flip = _uniform((x.shape[0],), generator, x) < 0.5 * self.strength
        return torch.where(flip[:, None, None, None], x.flip(-1), x)


def rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Images x (B, C, H, W) rotated counter-clockwise (as displayed, rows downwards) about
    their centre by `degrees` (B,), bilinear, the edge repeated where the rotation uncovers
    pixels. Non-square images rotate in pixel units, not in [-1, 1] coordinates."""
    _, _, height, width = x.shape
    angle = torch.deg2rad(degrees.to(torch.float32))
    cos, sin = torch.cos(angle), torch.sin(angle)
    aspect = height / width
    # output pixel (u, v) from the centre reads the input at R(-angle) (u, v), in pixel units
    theta = torch.stack([
        torch.stack([cos, -sin * aspect, torch.zeros_like(cos)], dim=-1),
        torch.stack([sin / aspect, cos, torch.zeros_like(cos)], dim=-1),
    ], dim=1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    rotated = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border",
                            align_corners=False)
    return rotated.to(x.dtype)


@AUGMENTATIONS.register("rotate", AugmentationInfo(("2d",), auto=True))
class Rotate(Augmentation):
    """Rotation of each image by an angle uniform in +-30 * strength degrees."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        limit = 30.0 * self.strength
        degrees = (2.0 * _uniform((x.shape[0],), generator, x) - 1.0) * limit
        return rotate(x, degrees)


def numeric_features(task: Task) -> torch.Tensor:
    """(F,) bool: which features of a tabular task are numeric. Tables encode their numeric
    columns first and then the one-hot groups of their categorical ones
    (`extras["table_encoding"]`); a task without an encoding has numeric features only."""
    features = task.input_shape[-1]
    encoding = task.extras.get("table_encoding")
    if not isinstance(encoding, dict):
        return torch.ones(features, dtype=torch.bool)
    table = TableEncoding.from_dict(encoding)
    if len(table.feature_names) != features:
        raise OrcaInputError(
            f"task {task.name!r}: its table encoding names {len(table.feature_names)} features "
            f"but its rows have {features}; rebuild the task from its table"
        )
    mask = torch.zeros(features, dtype=torch.bool)
    mask[: len(table.numeric)] = True
    return mask


@AUGMENTATIONS.register("noise", AugmentationInfo(("tabular",), auto=True))
class FeatureNoise(Augmentation):
    """Gaussian noise of std 0.1 * strength (features are normalised to unit std) on the
    numeric features only: a one-hot column with noise no longer names a category."""

    def __init__(self, task: Task, strength: float) -> None:
        super().__init__(task, strength)
        self.numeric = numeric_features(task)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        mask = self.numeric.to(device=x.device, dtype=x.dtype)
        return x + 0.1 * self.strength * mask * _normal(tuple(x.shape), generator, x)


@dataclass(frozen=True)
class Augmenter:
    """The transforms one run applies, in order, to each training batch.

    Call it as `augmenter(x, generator)` on a normalised input batch (never on validation or
    test batches); labels are not needed and stay as they are.
    """

    names: tuple[str, ...]
    transforms: tuple[Augmentation, ...]

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        with torch.no_grad():
            for transform in self.transforms:
                x = transform(x, generator)
        return x


def augmentation_names(modality: str, auto_only: bool = False) -> list[str]:
    """Registered transforms for `modality` inputs (only those of its "auto" set, if asked)."""
    return [
        name for name in AUGMENTATIONS.names()
        if modality in AUGMENTATIONS.info(name).modalities
        and (AUGMENTATIONS.info(name).auto or not auto_only)
    ]


def make_augmenter(task: Task, strength: float, ops: str = "auto") -> Augmenter | None:
    """The augmenter for `task` at `strength` (refine.augment) with `ops` (refine.augment_ops:
    "auto" for the modality's own set, or names joined by "+", where "auto" may appear too,
    e.g. "auto+flip"). None when strength is 0 (off: `ops` is then not read).

    Raises OrcaInputError (one line) for a strength outside [0, 1], a dense task, an unknown
    name or a transform of another modality.
    """
    if not 0.0 <= strength <= 1.0:
        raise OrcaInputError(f"refine.augment must be a strength in [0, 1], got {strength}")
    if strength == 0.0:
        return None
    if task.task_type == "dense":
        raise OrcaInputError(
            f"refine.augment {strength}: dense task {task.name!r} has targets aligned with its "
            "inputs, which the transforms would change; set refine.augment to 0"
        )
    known = augmentation_names(task.modality)
    choices = f"choose from auto, {', '.join(known)} joined by '+'"
    names: list[str] = []
    for part in ops.split("+"):
        name = part.strip()
        if name == "auto":
            names += augmentation_names(task.modality, auto_only=True)
        elif name not in AUGMENTATIONS:
            raise OrcaInputError(
                f"refine.augment_ops {ops!r}: unknown transform {name!r}; {choices}"
            )
        elif name not in known:
            modalities = "/".join(AUGMENTATIONS.info(name).modalities)
            raise OrcaInputError(
                f"refine.augment_ops {ops!r}: {name!r} transforms {modalities} inputs, not "
                f"{task.modality}; {choices}"
            )
        else:
            names.append(name)
    if not names:
        raise OrcaInputError(f"refine.augment_ops {ops!r} names no transform; {choices}")
    transforms = tuple(AUGMENTATIONS.get(name)(task, strength) for name in names)
    return Augmenter(tuple(names), transforms)
