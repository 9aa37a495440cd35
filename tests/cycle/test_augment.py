"""Training-time augmentation: every transform keeps shape and dtype, is reproducible from its
generator, does what it says at a measured size, and bad requests are one clear line."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import make_task

from orca_automl.cycle import AUGMENTATIONS, Augmenter, augmentation_names, make_augmenter
from orca_automl.cycle._augment import rotate
from orca_automl.errors import OrcaInputError
from orca_automl.tasks import Normalizer, Split, TableEncoding, Task

SHAPES = {"1d": (3, 64), "2d": (2, 12, 16), "tabular": (7,)}


def _task(modality: str, task_type: str = "classification") -> Task:
    return make_task(task_type, modality, n=8, shape=SHAPES[modality])


def _batch(modality: str, seed: int = 0, n: int = 6) -> torch.Tensor:
    return torch.randn((n, *SHAPES[modality]), generator=torch.Generator().manual_seed(seed))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


CASES = [(name, modality) for name in AUGMENTATIONS.names()
         for modality in AUGMENTATIONS.info(name).modalities]


@pytest.mark.parametrize(("name", "modality"), CASES)
def test_every_transform_keeps_shape_dtype_and_repeats_from_its_seed(name: str,
                                                                     modality: str) -> None:
    task = _task(modality)
    x = _batch(modality)
    before = x.clone()
    transform = AUGMENTATIONS.get(name)(task, 1.0)
    out = transform(x, _gen(1))
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    torch.testing.assert_close(x, before)  # the input batch is not modified in place
    torch.testing.assert_close(transform(x, _gen(1)), out, rtol=0, atol=0)
    assert not torch.equal(transform(x, _gen(2)), out)
    assert not torch.equal(out, x)
    # strength 0 is the identity
    torch.testing.assert_close(AUGMENTATIONS.get(name)(task, 0.0)(x, _gen(1)), x,
                               rtol=0, atol=1e-5)


def test_auto_sets_and_order() -> None:
    assert augmentation_names("1d", auto_only=True) == [
        "jitter", "magnitude_warp", "scaling", "time_warp", "window_slice"]
    assert augmentation_names("2d", auto_only=True) == ["crop", "rotate"]  # flip by name only
    assert augmentation_names("2d") == ["crop", "flip", "rotate"]
    assert augmentation_names("tabular", auto_only=True) == ["noise"]
    augmenter = make_augmenter(_task("2d"), 0.5, "flip + auto")
    assert augmenter is not None and augmenter.names == ("flip", "crop", "rotate")


def test_augmenter_applies_its_transforms_in_turn_reproducibly() -> None:
    task = _task("1d")
    augmenter = make_augmenter(task, 0.7, "scaling+jitter")
    assert isinstance(augmenter, Augmenter) and augmenter.names == ("scaling", "jitter")
    x = _batch("1d")
    # one generator threads through both transforms, so compare with one shared stream
    shared = _gen(3)
    by_hand = augmenter.transforms[1](augmenter.transforms[0](x, shared), shared)
    torch.testing.assert_close(augmenter(x, _gen(3)), by_hand, rtol=0, atol=0)
    assert not augmenter(x, _gen(3)).requires_grad
    assert make_augmenter(task, 0.0, "no_such_transform") is None  # off: ops are not read


@pytest.mark.parametrize("strength", [0.25, 0.5, 1.0])
def test_jitter_noise_std_scales_with_strength_and_series_std(strength: float) -> None:
    x = _batch("1d", n=64) * 3.0  # series std ~3: the noise follows it
    noise = AUGMENTATIONS.get("jitter")(_task("1d"), strength)(x, _gen(0)) - x
    measured = (noise.std(dim=-1) / x.std(dim=-1)).mean().item()
    assert measured == pytest.approx(0.1 * strength, rel=0.05)


def test_scaling_factor_spread_is_measured() -> None:
    x = torch.ones(4000, 1, 8)
    out = AUGMENTATIONS.get("scaling")(_task("1d"), 0.5)(x, _gen(0))
    factors = out[:, 0, 0]
    assert torch.equal(out, factors[:, None, None].expand_as(out))  # one factor per series
    assert factors.mean().item() == pytest.approx(1.0, abs=0.01)
    assert factors.std().item() == pytest.approx(0.1, rel=0.05)


def test_magnitude_warp_is_a_smooth_curve_around_one() -> None:
    x = torch.ones(200, 2, 64)
    curve = AUGMENTATIONS.get("magnitude_warp")(_task("1d"), 1.0)(x, _gen(0))
    assert not torch.equal(curve[:, 0], curve[:, 1])  # each channel its own curve
    assert curve.mean().item() == pytest.approx(1.0, abs=0.02)
    step = curve.diff(dim=-1).abs().max().item()
    assert 0 < step < 0.2 * (curve.max() - curve.min()).item()  # smooth, not white noise


@pytest.mark.parametrize("name", ["time_warp", "window_slice"])
def test_time_transforms_keep_a_ramp_monotone(name: str) -> None:
    ramp = torch.linspace(0, 1, 64).expand(32, 3, 64).contiguous()
    out = AUGMENTATIONS.get(name)(_task("1d"), 1.0)(ramp, _gen(0))
    assert (out.diff(dim=-1) >= 0).all() and (out.diff(dim=-1) > 0).any(dim=-1).all()
    assert not torch.allclose(out, ramp, atol=1e-3)
    # every channel of a sample is warped alike (a ramp per channel stays the same ramp)
    torch.testing.assert_close(out[:, 0], out[:, 2])
    if name == "time_warp":  # the warp maps [0, L-1] onto itself: the ends stay put
        torch.testing.assert_close(out[..., 0], ramp[..., 0])
        torch.testing.assert_close(out[..., -1], ramp[..., -1])
    else:  # a window of round(0.8 * 64) = 51 samples spans 50 of the ramp's 63 steps
        span = out[..., -1] - out[..., 0]
        torch.testing.assert_close(span, torch.full_like(span, 50 / 63), atol=1e-5, rtol=0)


def test_crop_shifts_by_whole_pixels_within_the_padding() -> None:
    x = torch.arange(12 * 16, dtype=torch.float32).reshape(1, 1, 12, 16).repeat(40, 2, 1, 1)
    out = AUGMENTATIONS.get("crop")(_task("2d"), 1.0)(x, _gen(0))  # pads 2 rows, 2 columns
    centre = out[:, 0, 6, 8]  # away from the edges: value = 16 * row + column of the source
    dy, dx = torch.div(centre, 16, rounding_mode="floor") - 6, centre % 16 - 8
    assert dy.abs().max() <= 2 and dx.abs().max() <= 2 and (dy != 0).any() and (dx != 0).any()
    for i in range(len(x)):  # the whole image is that one shift (edges repeated), each channel
        rows = (torch.arange(12) + int(dy[i])).clamp(0, 11)
        cols = (torch.arange(16) + int(dx[i])).clamp(0, 15)
        torch.testing.assert_close(out[i], x[i][:, rows][:, :, cols])


def test_flip_twice_with_the_same_draws_is_identity() -> None:
    flip = AUGMENTATIONS.get("flip")(_task("2d"), 1.0)
    x = _batch("2d", n=64)
    once = flip(x, _gen(5))
    flipped = (once != x).flatten(1).any(dim=1)
    assert 16 < flipped.sum() < 48  # each image with probability 0.5
    torch.testing.assert_close(once[flipped], x[flipped].flip(-1))
    torch.testing.assert_close(once[~flipped], x[~flipped])
    torch.testing.assert_close(flip(once, _gen(5)), x, rtol=0, atol=0)


def test_rotate_turns_by_the_given_angle_in_pixel_units() -> None:
    x = torch.zeros(2, 1, 9, 15)
    x[:, 0, 1, 7] = 1.0  # 3 rows above the centre (4, 7)
    turned = rotate(x, torch.tensor([90.0, -90.0]))
    # counter-clockwise as displayed: above -> left; clockwise: above -> right, 3 pixels away
    assert turned[0, 0].argmax().item() == 4 * 15 + 4
    assert turned[1, 0].argmax().item() == 4 * 15 + 10
    square = torch.randn(3, 2, 8, 8, generator=_gen(0))
    torch.testing.assert_close(rotate(square, torch.full((3,), 90.0)),
                               torch.rot90(square, 1, dims=(-2, -1)), atol=1e-5, rtol=0)


def _centroid_angles(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Angle (degrees, counter-clockwise as displayed) and distance of each image's centre of
    mass from the image centre."""
    h, w = images.shape[-2:]
    rows = torch.arange(h, dtype=torch.float32)[:, None] - (h - 1) / 2
    cols = torch.arange(w, dtype=torch.float32)[None, :] - (w - 1) / 2
    mass = images[:, 0].clamp(min=0)
    total = mass.sum(dim=(-2, -1))
    y = -(mass * rows).sum(dim=(-2, -1)) / total  # up is positive
    x = (mass * cols).sum(dim=(-2, -1)) / total
    return torch.rad2deg(torch.atan2(y, x)), torch.hypot(x, y)


def test_rotate_draws_angles_within_thirty_degrees_times_strength() -> None:
    x = torch.zeros(200, 1, 33, 33)
    x[:, 0, 5:8, 15:18] = 1.0  # a blob 10 pixels above the centre (16, 16): angle 90
    angles, radius = _centroid_angles(AUGMENTATIONS.get("rotate")(_task("2d"), 0.5)(x, _gen(0)))
    turn = angles - 90.0
    assert turn.abs().max() <= 15.5 and turn.abs().max() > 12  # within +-15 degrees, and uses it
    assert turn.mean().abs() < 2.0 and (turn > 0).any() and (turn < 0).any()
    torch.testing.assert_close(radius, torch.full_like(radius, 10.0), atol=0.3, rtol=0)


def _table_task() -> Task:
    """Rows of 2 numeric features then one-hot groups of 3 and 2 categories, as tables encode."""
    encoding = TableEncoding(("age", "income"), (("city", ("a", "b", "c")), ("pet", ("n", "y"))))
    X = np.random.default_rng(0).standard_normal((8, 7)).astype(np.float32)
    split = Split(X, np.zeros(8, np.int64))
    return Task("table", "classification", "tabular", split, split, split, 2,
                Normalizer(np.zeros(7, np.float32), np.ones(7, np.float32)),
                extras={"table_encoding": encoding.to_dict()})


def test_tabular_noise_leaves_one_hot_columns_exactly_unchanged() -> None:
    x = _batch("tabular", n=2000)
    out = AUGMENTATIONS.get("noise")(_table_task(), 0.8)(x, _gen(0))
    torch.testing.assert_close(out[:, 2:], x[:, 2:], rtol=0, atol=0)
    assert (out[:, :2] - x[:, :2]).std().item() == pytest.approx(0.08, rel=0.05)
    plain = AUGMENTATIONS.get("noise")(_task("tabular"), 0.8)(x, _gen(0))  # no encoding: all
    assert ((plain - x).abs() > 0).all()


def test_tabular_encoding_that_does_not_fit_the_rows_is_refused() -> None:
    task = _table_task()
    task.extras["table_encoding"] = TableEncoding(("age",), ()).to_dict()
    with pytest.raises(OrcaInputError, match="names 1 features but its rows have 7") as exc:
        make_augmenter(task, 0.5, "auto")
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(("modality", "task_type", "ops", "message"), [
    ("1d", "classification", "jitter+wobble", "unknown transform 'wobble'; choose from auto, "
     "jitter, magnitude_warp, scaling, time_warp, window_slice joined by '+'"),
    ("1d", "classification", "jitter+", "unknown transform ''"),
    ("2d", "classification", "crop+jitter", "'jitter' transforms 1d inputs, not 2d; choose from "
     "auto, crop, flip, rotate"),
    ("tabular", "regression", "rotate", "'rotate' transforms 2d inputs, not tabular; choose from "
     "auto, noise"),
    ("1d", "dense", "auto", "dense task 'toy-dense' has targets aligned with its inputs"),
    ("2d", "dense", "flip", "set refine.augment to 0"),
])
def test_bad_requests_are_one_line(modality: str, task_type: str, ops: str, message: str) -> None:
    with pytest.raises(OrcaInputError) as exc:
        make_augmenter(_task(modality, task_type), 0.3, ops)
    assert message in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("strength", [-0.1, 1.5, math.nan])
def test_strength_outside_zero_one_is_refused(strength: float) -> None:
    with pytest.raises(OrcaInputError, match=r"refine.augment must be a strength in \[0, 1\]"):
        make_augmenter(_task("1d"), strength, "auto")


def test_the_batch_dtype_is_kept() -> None:
    augmenter = make_augmenter(_task("1d"), 1.0, "auto")
    assert augmenter is not None
    x = _batch("1d").to(torch.float64)
    out = augmenter(x, _gen(0))
    assert out.dtype == torch.float64 and out.shape == x.shape


def test_refine_trains_on_augmented_batches_only(tiny_bert_dir, toy_task) -> None:  # type: ignore[no-untyped-def]
    """Augmentation changes what refine learns from, never what it is scored on; a bad
    transform name is refused before any training."""
    from orca_automl.cycle import evaluate, run_cycle
    from tests.tiny_bert import cycle_config

    task = toy_task()
    cfg = cycle_config(tiny_bert_dir, steps=40, eval_every=20, augment=0.5)
    augmented = run_cycle(task, cfg)
    plain = run_cycle(task, cfg.with_overrides({"refine.augment": 0.0}))
    assert augmented.val.loss != plain.val.loss
    assert evaluate(augmented.model, task, "val").loss == pytest.approx(augmented.val.loss)
    assert augmented.val.value >= 0.6
    with pytest.raises(OrcaInputError, match="crop"):
        run_cycle(task, cfg.with_overrides({"refine.augment_ops": "crop"}))
