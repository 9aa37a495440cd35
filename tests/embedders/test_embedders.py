"""Embedders and heads: shapes, ORCA's initialisation rules, and refusal of misfits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from orca_automl.backbones import create_backbone
from orca_automl.embedders import (
    EMBEDDERS,
    HeadSpec,
    TokenLayout,
    compatible_embedders,
    create_embedder,
    create_head,
    default_embedder,
)
from orca_automl.embedders._image import StemConvEmbedder
from orca_automl.embedders._sequence import Conv1dEmbedder, patch_size
from orca_automl.errors import OrcaInputError


@pytest.fixture(scope="module")
def bert(tiny_bert_dir: Path):  # type: ignore[no-untyped-def]
    return create_backbone("hf", {"name_or_path": str(tiny_bert_dir)})


@pytest.fixture(scope="module")
def effnet():  # type: ignore[no-untyped-def]
    return create_backbone("efficientnet_lite0", {"image_size": 32})


def test_patch_size_rule() -> None:
    assert patch_size(150, 64, 512) == 3  # GunPoint: 50 tokens
    assert patch_size(127, 64, 512) == 2  # prime length still gives 64 tokens, not 1
    assert patch_size(10, 64, 512) == 1
    assert patch_size(1000, 600, 512) == 2  # capped by the backbone's positions


@pytest.mark.parametrize("name", ["conv1d", "patch_mlp"])
def test_sequence_embedders_match_token_scale(bert, name: str) -> None:  # type: ignore[no-untyped-def]
    emb = create_embedder(name, "1d", (3, 150), bert, {"target_seq_len": 16})
    out = emb(torch.randn(4, 3, 150))
    assert out.shape == (4, 15, 32)  # k = ceil(150 / 16) = 10
    # vectors have the norm of the backbone's own word embeddings, not sqrt(width)
    assert out.norm(dim=-1).mean().item() == pytest.approx(bert.token_norm(), rel=0.15)


def test_registered_defaults_apply_under_user_args(bert, effnet) -> None:  # type: ignore[no-untyped-def]
    default = create_embedder("patch_mlp", "1d", (1, 640), bert)
    assert default.tokens == 64 and default.mlp[0].out_features == 256  # target_seq_len 64
    mixed = create_embedder("patch_mlp", "1d", (1, 640), bert, {"hidden": 8})
    assert mixed.tokens == 64 and mixed.mlp[0].out_features == 8
    adapter = create_embedder("conv_adapter", "2d", (1, 8, 8), effnet)
    assert adapter.adapter[0].out_channels == 16


def test_tabular_embedder_one_token_per_feature(bert) -> None:  # type: ignore[no-untyped-def]
    emb = create_embedder("tabular_linear", "tabular", (7,), bert)
    assert emb(torch.randn(5, 7)).shape == (5, 7, 32)
    conv = create_embedder("conv1d", "tabular", (7,), bert, {"target_seq_len": 7})
    assert conv(torch.randn(5, 7)).shape == (5, 7, 32)


def test_patch_tokens_for_grids(bert) -> None:  # type: ignore[no-untyped-def]
    emb = create_embedder("patch_tokens", "2d", (1, 8, 8), bert, {"target_seq_len": 16})
    assert emb(torch.randn(2, 1, 8, 8)).shape == (2, 16, 32)


def test_stem_conv_tiles_pretrained_kernel(effnet) -> None:  # type: ignore[no-untyped-def]
    emb = create_embedder("stem_conv", "2d", (6, 8, 8), effnet)
    w_new, w_old = emb.conv.weight, effnet.stem.weight
    assert w_new.shape[1] == 6
    # timm's rule: the RGB kernel repeated over channels, rescaled by 3 / C
    expected = w_old.repeat(1, 2, 1, 1) * 3 / 6
    torch.testing.assert_close(w_new, expected)
    out = emb(torch.randn(2, 6, 8, 8))
    assert out.shape == (2, 32, 16, 16)  # resized to 32 px, stride-2 stem
    assert effnet.stem.weight.shape[1] == 3  # the backbone's own stem is untouched


def test_conv_adapter_keeps_pretrained_stem(effnet) -> None:  # type: ignore[no-untyped-def]
    emb = create_embedder("conv_adapter", "2d", (1, 8, 8), effnet)
    torch.testing.assert_close(emb.conv.weight, effnet.stem.weight)
    assert emb(torch.randn(2, 1, 8, 8)).shape == (2, 32, 16, 16)


def test_incompatible_embedders_are_refused(bert, effnet) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(OrcaInputError, match="does not fit 2d inputs"):
        create_embedder("conv1d", "2d", (1, 8, 8), bert)
    with pytest.raises(OrcaInputError, match="does not fit 1d inputs with a image"):
        create_embedder("stem_conv", "1d", (1, 100), effnet)
    with pytest.raises(OrcaInputError, match="unknown embedder"):
        create_embedder("nope", "1d", (1, 100), bert)
    with pytest.raises(OrcaInputError, match="bad embedder_args"):
        create_embedder("conv1d", "1d", (1, 100), bert, {"stride": 3})
    with pytest.raises(OrcaInputError, match="no embedder turns tabular inputs into a image"):
        create_embedder("auto", "tabular", (5,), effnet)


def test_embedders_refuse_a_body_of_the_wrong_type(bert, effnet) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(OrcaInputError, match="is not a SequenceBackbone"):
        Conv1dEmbedder.from_backbone(effnet, (1, 100), target_seq_len=8)
    with pytest.raises(OrcaInputError, match="is not an ImageBackbone"):
        StemConvEmbedder.from_backbone(bert, (1, 8, 8))


def test_compatibility_table() -> None:
    assert compatible_embedders("1d") == ["conv1d", "patch_mlp"]
    assert compatible_embedders("tabular") == ["conv1d", "tabular_linear"]
    assert compatible_embedders("2d", "image") == ["conv_adapter", "stem_conv"]
    assert set(EMBEDDERS.names()) >= {"conv1d", "stem_conv", "tabular_linear"}
    assert [default_embedder(m, "sequence") for m in ("1d", "tabular", "2d")] == [
        "conv1d", "tabular_linear", "patch_tokens"
    ]
    assert default_embedder("2d", "image") == "stem_conv"
    assert default_embedder("1d", "image") is None


def test_dense_tokens_head_reassembles_positions() -> None:
    """Each token's values land on the samples its patch came from (1D and 2D)."""
    lay = TokenLayout("1d", patch=4, length=10)
    head = create_head("auto", HeadSpec("dense", "sequence", 8, 2, (2, 10), lay))
    h = torch.randn(3, 3, 8)
    out = head(h)
    assert out.shape == (3, 2, 10)
    direct = head.linear(h[:, 1]).reshape(3, 2, 4)  # token 1 -> samples 4..7
    torch.testing.assert_close(out[:, :, 4:8], direct)

    lay2 = TokenLayout("2d", patch=2, height=3, width=4)
    head2 = create_head("dense_tokens", HeadSpec("dense", "sequence", 8, 1, (1, 3, 4), lay2))
    h2 = torch.randn(1, 4, 8)  # 2 x 2 grid of patches
    out2 = head2(h2)
    assert out2.shape == (1, 1, 3, 4)
    top_right = head2.linear(h2[:, 1]).reshape(1, 2, 2)
    torch.testing.assert_close(out2[0, :, 0:2, 2:4], top_right)


def test_heads_refuse_wrong_task() -> None:
    lay = TokenLayout("none")
    with pytest.raises(OrcaInputError, match="cannot predict dense"):
        create_head("pool_linear", HeadSpec("dense", "sequence", 8, 1, (1, 4), lay))
    with pytest.raises(OrcaInputError, match="patches"):
        create_head("auto", HeadSpec("dense", "sequence", 8, 1, (1, 4), lay))
    grid = create_head("auto", HeadSpec("dense", "image", 16, 2, (2, 12, 12), lay))
    assert grid(torch.randn(2, 16, 3, 3)).shape == (2, 2, 12, 12)
    pool = create_head("auto", HeadSpec("classification", "image", 16, 5, (5,), lay))
    assert pool(torch.randn(2, 16, 3, 3)).shape == (2, 5)
