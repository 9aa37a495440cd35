"""Backbones load through their real loading paths and behave like their pretrained selves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from orca_automl.backbones import (
    BACKBONES,
    ImageBackbone,
    SequenceBackbone,
    backbone_kind,
    create_backbone,
    default_backbone,
)
from orca_automl.backbones._reference import image_crops
from orca_automl.backbones._timm import packaged_efficientnet_lite0
from orca_automl.errors import OrcaInputError


def test_registry_names() -> None:
    assert {"minilm", "hf", "timm", "efficientnet_lite0"} <= set(BACKBONES.names())


def test_auto_picks_the_packaged_backbones() -> None:
    assert [default_backbone(m) for m in ("1d", "tabular", "2d")] == [
        "minilm", "minilm", "efficientnet_lite0"
    ]
    assert default_backbone("3d") is None
    assert [backbone_kind(n) for n in ("minilm", "hf", "timm", "efficientnet_lite0")] == [
        "sequence", "sequence", "image", "image"
    ]


def test_hf_architecture_rebuilds_without_weights(tiny_bert_dir: Path, tmp_path: Path) -> None:
    body = create_backbone("hf", {"name_or_path": str(tiny_bert_dir)})
    assert isinstance(body, SequenceBackbone) and body.max_positions == 128
    assert body.unused_input_layer() is body.model.get_input_embeddings()
    name, args = body.save_architecture(tmp_path / "arch")
    assert (name, args) == ("hf", {"name_or_path": str(tmp_path / "arch")})
    assert (tmp_path / "arch" / "config.json").is_file()
    rebuilt = create_backbone(name, args, pretrained=False)
    shapes = {k: v.shape for k, v in body.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes


def test_hf_from_local_folder(tiny_bert_dir: Path) -> None:
    body = create_backbone("hf", {"name_or_path": str(tiny_bert_dir)})
    assert body.kind == "sequence" and body.width == 32 and body.pretrained
    tokens = torch.randn(3, 10, 32)
    assert body(tokens).shape == (3, 10, 32)
    assert body.align_features(tokens).shape == (3, 32)
    ref = body.reference(64, seed=0)
    assert ref.features.shape == (64, 32) and ref.labels.shape == (64,)
    assert len(np.unique(ref.labels)) == 10
    again = body.reference(64, seed=0)  # served from the disk cache, identical
    np.testing.assert_array_equal(ref.features, again.features)


def test_hf_reference_is_the_original_embedding_path(tiny_bert_dir: Path) -> None:
    """Reference features = mean over real tokens of the model's own embedding output."""
    from transformers import AutoModel, AutoTokenizer

    from orca_automl.backbones._reference import english_sentences

    body = create_backbone("hf", {"name_or_path": str(tiny_bert_dir), "max_tokens": 16})
    ref = body.reference(8, seed=3)
    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    model = AutoModel.from_pretrained(tiny_bert_dir).eval()
    sentences = english_sentences(8, seed=3)
    enc = tok(sentences[0], truncation=True, max_length=16, return_tensors="pt")
    with torch.no_grad():
        expected = model.embeddings(input_ids=enc["input_ids"]).mean(dim=1)[0].numpy()
    np.testing.assert_allclose(ref.features[0], expected, rtol=1e-4, atol=1e-5)


def test_random_weights_are_flagged(tiny_bert_dir: Path) -> None:
    body = create_backbone("hf", {"name_or_path": str(tiny_bert_dir)}, pretrained=False, seed=1)
    assert not body.pretrained
    assert any("RANDOM" in n for n in body.notes())
    trained = create_backbone("hf", {"name_or_path": str(tiny_bert_dir)})
    assert trained.notes() == []
    w_random = body.model.encoder.layer[0].attention.self.query.weight
    w_saved = trained.model.encoder.layer[0].attention.self.query.weight
    assert not torch.allclose(w_random, w_saved)


def test_bad_backbone_inputs(tmp_path: Path) -> None:
    with pytest.raises(OrcaInputError, match="unknown backbone"):
        create_backbone("nope")
    with pytest.raises(OrcaInputError, match="name_or_path"):
        create_backbone("hf")
    with pytest.raises(OrcaInputError, match="cannot load HF backbone"):
        create_backbone("hf", {"name_or_path": str(tmp_path / "missing")})
    with pytest.raises(OrcaInputError, match="bad backbone_args"):
        create_backbone("minilm", {"colour": "red"})
    with pytest.raises(OrcaInputError, match="unknown timm model"):
        create_backbone("timm", {"name": "not_a_model"})


def test_timm_local_checkpoint(tiny_timm_checkpoint: Path) -> None:
    body = create_backbone("timm", {"name": "resnet10t", "checkpoint": str(tiny_timm_checkpoint),
                                    "image_size": 32})
    saved = torch.load(tiny_timm_checkpoint)
    first = body.model.state_dict()
    key = next(k for k in saved if k.startswith("layer1") and k.endswith("weight"))
    torch.testing.assert_close(first[key], saved[key])
    stem_out = body.stem(torch.randn(2, 3, 32, 32))
    assert body(stem_out).shape[:2] == (2, body.out_features)
    with pytest.raises(OrcaInputError, match="does not exist"):
        create_backbone("timm", {"name": "resnet10t", "checkpoint": "missing.pth"})


def test_timm_architecture_rebuilds_by_name(tiny_timm_checkpoint: Path, tmp_path: Path) -> None:
    body = create_backbone("timm", {"name": "resnet10t", "checkpoint": str(tiny_timm_checkpoint),
                                    "image_size": 32})
    assert isinstance(body, ImageBackbone) and body.image_size == 32
    assert body.unused_input_layer() is body.stem
    stem = body.fresh_stem()
    assert stem is not body.stem
    torch.testing.assert_close(stem.weight, body.stem.weight)
    name, args = body.save_architecture(tmp_path)
    assert (name, args) == ("timm", {"name": "resnet10t", "image_size": 32})
    assert list(tmp_path.iterdir()) == []  # nothing to write: timm knows the architecture
    rebuilt = create_backbone(name, args, pretrained=False)
    shapes = {k: v.shape for k, v in body.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes


@pytest.mark.integration
def test_packaged_efficientnet_recognises_photos() -> None:
    """The packaged weights, mapped into timm's layout, classify ImageNet-like photos."""
    import timm
    from skimage import data
    from skimage.transform import resize

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    model.load_state_dict(packaged_efficientnet_lite0())
    model.eval()
    expected = {"chelsea": {281, 282, 285}, "coffee": {967, 968}}  # cats; espresso/cup
    for name, classes in expected.items():
        img = resize(getattr(data, name)(), (224, 224), anti_aliasing=True).astype(np.float32)
        x = torch.from_numpy(img).permute(2, 0, 1)[None] * 2 - 1
        with torch.no_grad():
            top = int(model(x).argmax())
        assert top in classes, (name, top)


def test_efficientnet_backbone_and_reference() -> None:
    body = create_backbone("efficientnet_lite0", {"image_size": 32})
    assert body.kind == "image" and body.width == 32 and body.out_features == 1280
    ref = body.reference(40, seed=0)
    assert ref.features.shape == (40, 32)
    assert np.isfinite(ref.features).all()


def test_image_crops_are_natural_and_seeded() -> None:
    a = image_crops(5, 16, seed=0)
    b = image_crops(5, 16, seed=0)
    assert a.shape == (5, 3, 16, 16) and a.min() >= 0.0 and a.max() <= 1.0
    np.testing.assert_array_equal(a, b)
    assert a.std() > 0.05  # real photos, not constants
