"""Reference (source) data for alignment, available offline.

ORCA aligns target features with labelled data of the backbone's pretraining modality
(CIFAR-10 for Swin, CoNLL-2003 for RoBERTa). Offline, we use what the install already has:
English sentences from Python's own documentation (`pydoc_data.topics`) for text backbones
and random crops of the natural photos scikit-image and scikit-learn ship for image
backbones. Neither has class labels, so labels are k-means pseudo-labels on the features
(k = 10), as ORCA does for unlabelled targets. Users can give their own reference data.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans

from orca_automl.errors import OrcaInputError

#: Natural photographs shipped by scikit-image (grey ones are repeated over RGB).
_SKIMAGE_PHOTOS = (
    "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "camera", "coins",
    "moon", "grass", "gravel", "brick", "clock", "stereo_motorcycle",
)


def english_sentences(num: int, seed: int, path: str | Path | None = None) -> list[str]:
    """`num` sentences: from a user's text file (one per line) or Python's documentation."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise OrcaInputError(f"reference text file {path} does not exist: give a .txt file")
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines()]
        sentences = [ln for ln in lines if len(ln.split()) >= 3]
    else:
        from pydoc_data.topics import topics

        text = " ".join(topics.values())
        text = re.sub(r"\s+", " ", re.sub(r"[*`>|=_~^-]{2,}", " ", text))
        parts = re.split(r"(?<=[.!?])\s+(?=[A-Z])", text)
        sentences = [p for p in parts if 5 <= len(p.split()) <= 60 and not p.startswith(">>>")]
    if not sentences:
        raise OrcaInputError("the reference text has no sentences: give a file with English text")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(sentences), size=num, replace=len(sentences) < num)
    return [sentences[i] for i in idx]


def natural_photos() -> list[np.ndarray]:
    """The offline photos as float32 (H, W, 3) arrays in [0, 1]."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    photos = []
    for name in _SKIMAGE_PHOTOS:
        img = getattr(data, name)()
        img = img[0] if isinstance(img, tuple) else img
        photos.append(np.asarray(img))
    photos.extend(load_sample_images().images)
    out = []
    for img in photos:
        img = img.astype(np.float32)
        img = img / 255.0 if img.max() > 1.0 else img
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        out.append(img[:, :, :3])
    return out


def image_crops(
    num: int, size: int, seed: int, images: list[np.ndarray] | None = None
) -> np.ndarray:
    """`num` random square crops (side 1/8 .. 1 of the shorter edge) resized to `size`:
    (num, 3, size, size) float32 in [0, 1]."""
    import torch
    import torch.nn.functional as F

    images = images if images is not None else natural_photos()
    rng = np.random.default_rng(seed)
    out = np.empty((num, 3, size, size), dtype=np.float32)
    for i in range(num):
        img = images[rng.integers(len(images))]
        h, w = img.shape[:2]
        side = int(rng.uniform(0.125, 1.0) * min(h, w))
        side = max(side, 8)
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = torch.from_numpy(np.ascontiguousarray(img[top : top + side, left : left + side]))
        crop = crop.permute(2, 0, 1)[None]
        out[i] = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True)[0].numpy()
    return out


def user_images(path: str | Path) -> list[np.ndarray]:
    """A user's reference photos: an .npz with `images` (N, H, W, 3) (uint8 or [0, 1] float)."""
    path = Path(path)
    if not path.is_file() or path.suffix != ".npz":
        raise OrcaInputError(
            f"reference images {path} not found: give an .npz file with an 'images' array (N, H, W, 3)"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            images = data["images"] if "images" in data.files else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise OrcaInputError(
            f"cannot read reference images {path} as .npz ({type(exc).__name__}): save them "
            "with numpy.savez and no object arrays"
        ) from None
    if images is None:
        raise OrcaInputError(f"{path} has no 'images' array: save images as (N, H, W, 3)")
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise OrcaInputError(f"{path}: 'images' must have shape (N, H, W, 3), got {images.shape}")
    images = images.astype(np.float32)
    images = images / 255.0 if images.max() > 1.0 else images
    return [np.repeat(im, 3, axis=2) if im.shape[2] == 1 else im for im in images]


def kmeans_labels(features: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Pseudo-labels for unlabelled reference data (k capped by the sample count)."""
    k = max(1, min(k, len(features)))
    km = KMeans(n_clusters=k, n_init=4, random_state=seed)
    return km.fit_predict(features.astype(np.float64)).astype(np.int64)
