"""Tests of adapter specs, insertion, freezing, zero-init identity, LoRA merging and encoder splitting."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from samdata.errors import ConfigError, RegistryError, ValidationError
from training.adapters import (
    ADAPTERS,
    AdapterConfig,
    DecoderParams,
    LoraParams,
    LoRAQKV,
    ParallelParams,
    RefineParams,
    SerialParams,
    apply_adapters,
    first_adapted_block,
    merge_lora,
    parse_adapter,
)
from training.models import SamModel, build_model

# one spec per registered adapter, plus mixed designs
# full: tests/training/test_unet.py; depth reads slice stacks: tests/training/test_depth.py
SPECS = {name: name for name in ADAPTERS if name not in ("full", "depth")} | {
    "mixed": "serial:ratio=0.5,blocks=2,3+lora:r=2+decoder",
    "parallel_learn": "parallel:scale=learn,blocks=1-3",
    "serial_refine": "serial:blocks=2,3+decoder+refine:width=4",
}
ADAPTER_NAMES = ("a_q", "a_v", "b_q", "b_v", ".adapter.", ".scale", "refiner.")


def _images(n: int, size: int) -> torch.Tensor:
    rng = np.random.default_rng(0)
    return torch.from_numpy(rng.integers(0, 255, size=(n, 3, size, size), dtype=np.uint8))


@pytest.fixture(scope="module")
def tiny() -> SamModel:
    return build_model("tiny")


@pytest.fixture(scope="module")
def batch(tiny):
    return tiny.preprocess(_images(2, 128)), torch.tensor([[20.0, 20, 90, 80], [10, 30, 60, 110]])


def _randomise_adapters(model: SamModel) -> None:
    """Move every zero-initialised adapter weight off zero so the adapters change the output."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(key in name for key in ADAPTER_NAMES):
                p.add_(0.05 * torch.randn(p.shape, generator=g))


def test_parse_examples():
    assert parse_adapter("lora:r=8,blocks=all") == AdapterConfig((LoraParams(r=8, alpha=8.0),))
    assert LoraParams(r=8) == LoraParams(r=8, alpha=8.0)  # alpha defaults to r, spelt out
    assert parse_adapter("serial:ratio=0.25,blocks=0,1,10,11").parts == (SerialParams(blocks=(0, 1, 10, 11)),)
    assert parse_adapter("parallel:scale=0.5").parts == (ParallelParams(scale=0.5),)
    assert parse_adapter("parallel:scale=learn").parts[0].scale is None
    mixed = parse_adapter("serial+lora:r=4")
    assert mixed.kinds == ("serial", "lora")
    assert parse_adapter("lora+serial").kinds == ("lora", "serial")  # encoder adapters go in as given
    assert parse_adapter("decoder") == AdapterConfig((DecoderParams(),))
    plus = parse_adapter("lora:r=4,alpha=1,blocks=8-9+decoder")
    assert plus.parts == (LoraParams(blocks=(8, 9), r=4, alpha=1.0), DecoderParams())
    refined = parse_adapter("refine+serial:blocks=8-9+decoder")
    assert refined.parts == (SerialParams(blocks=(8, 9)), RefineParams(), DecoderParams())
    assert refined == AdapterConfig((DecoderParams(), RefineParams(), SerialParams(blocks=(8, 9))))
    assert refined.to_spec() == "serial:ratio=0.25,blocks=8,9+refine:width=16,lr_scale=5+decoder"
    assert parse_adapter("refine:width=8").parts == (RefineParams(width=8),)
    assert parse_adapter("refine:lr_scale=2.5").parts[0].lr_scale == 2.5
    assert parse_adapter("serial:").to_spec() == "serial:ratio=0.25,blocks=all"
    for spec in [*SPECS.values(), "serial:blocks=3,1,1-2"]:
        cfg = parse_adapter(spec)
        assert parse_adapter(cfg.to_spec()) == cfg


@pytest.mark.parametrize(
    "spec,match",
    [
        ("", "empty"),
        ("lora+", "empty"),
        ("lora:r=0", "out of range"),
        ("lora:r=2.5", "not an integer"),
        ("serial:ratio=x", "not a number"),
        ("refine:width=2.5", "not an integer"),
        ("refine:width=0", "out of range"),
        ("refine:r=4", "refine takes no option 'r'"),
        ("full+refine", "stands alone"),
        ("serial:r=4", "serial takes no option 'r'"),
        ("decoder:blocks=1", "takes no option"),
        ("lora+lora", "once"),
        ("serial:blocks=a", "bad block"),
        ("serial:blocks=3-1", "empty range '3-1'"),
        ("serial:ratio=0.5,0.25", "not key=value"),
        ("lora:r=4,r=8", "twice"),
        ("serial:ratio=5", "out of range"),
        ("parallel:scale=0", "out of range"),
        ("lora:alpha=-1", "out of range"),
        ("serial:blocks=8-9:2", "bad block"),
        ("serial:ratio=nan", "not a finite number"),
    ],
)
def test_bad_specs_are_config_errors(spec, match):
    with pytest.raises(ConfigError, match=match):
        parse_adapter(spec)


def test_params_are_checked_without_a_spec():
    with pytest.raises(ConfigError, match="ratio=0 out of range"):
        SerialParams(ratio=0)
    with pytest.raises(ConfigError, match="r=2.5 out of range"):
        LoraParams(r=2.5)
    with pytest.raises(ConfigError, match="blocks=\\(3, 1\\)"):
        SerialParams(blocks=(3, 1))
    with pytest.raises(ConfigError, match="'full' stands alone"):
        AdapterConfig((DecoderParams(), *parse_adapter("full").parts))
    with pytest.raises(ConfigError, match="not the params of a registered adapter"):
        AdapterConfig((object(),))


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_every_adapter_has_a_round_tripping_default(name):
    kind = ADAPTERS[name]
    cfg = AdapterConfig((kind.params(),))
    assert cfg.kinds == (name,) and parse_adapter(name) == cfg == parse_adapter(cfg.to_spec())


def test_unknown_adapter_lists_valid_names():
    with pytest.raises(RegistryError) as info:
        parse_adapter("serial+prefix_tuning")
    assert all(name in str(info.value) for name in ADAPTERS)


def test_blocks_that_do_not_exist(tiny):
    cfg = parse_adapter("serial:ratio=0.25,blocks=0,1,10,11")
    model = copy.deepcopy(tiny)
    with pytest.raises(ConfigError, match=r"serial:ratio=0.25,blocks=0,1,10,11.*\[10, 11\].*valid blocks are 0..3"):
        apply_adapters(model, cfg)
    assert all(p.requires_grad for p in model.parameters())  # nothing was touched


@pytest.mark.parametrize("key", list(SPECS))
def test_adapter_starts_as_identity_and_trains_only_itself(tiny, batch, key):
    x, boxes = batch
    model = copy.deepcopy(tiny)
    with torch.no_grad():
        before = model(x, boxes)
    cfg = parse_adapter(SPECS[key])
    report = apply_adapters(model, cfg, seed=0)
    with torch.no_grad():
        after = model(x, boxes)
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])

    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    decoder = {n for n, _ in model.named_parameters() if n.startswith("mask_decoder.")}
    prompt = {n for n, _ in model.named_parameters() if n.startswith("prompt_encoder.")}
    assert (decoder <= trainable) if "decoder" in cfg.kinds else not (decoder & trainable)
    assert (prompt <= trainable) if "prompt" in cfg.kinds else not (prompt & trainable)
    assert all(any(k in n for k in ADAPTER_NAMES) for n in trainable - decoder - prompt)
    assert report.trainable == sum(p.numel() for n, p in model.named_parameters() if n in trainable)
    assert report.total == sum(p.numel() for p in model.parameters())
    assert 0 < report.fraction < 1 and report.spec == cfg.to_spec() and cfg.to_spec() in report.describe()
    assert sum(n for _, n in report.per_part) == report.trainable

    model.train()
    logits, iou = model(x, boxes)
    (logits.mean() + iou.mean()).backward()
    for name, p in model.named_parameters():  # a box decode uses only some prompt-encoder weights
        assert (p.grad is not None) == (name in trainable) or (name in prompt and p.grad is None), name
    assert any(p.grad.abs().sum() > 0 for p in model.parameters() if p.grad is not None)


def test_prompt_encoder_trains_only_with_the_prompt_part(tiny, batch):
    from training.loop import Segmenter

    x, boxes = batch
    assert parse_adapter("decoder+prompt").to_spec() == "decoder+prompt"
    assert parse_adapter("prompt").kinds == ("prompt",)
    with pytest.raises(ConfigError, match="stands alone"):
        parse_adapter("full+prompt")
    model = copy.deepcopy(tiny)
    report = apply_adapters(model, parse_adapter("decoder+prompt"))
    prompt = {n: p for n, p in model.named_parameters() if n.startswith("prompt_encoder.")}
    assert dict(report.per_part)["prompt"] == sum(p.numel() for p in prompt.values()) > 0
    assert all(p.requires_grad for p in prompt.values())
    model.train()
    segmenter = Segmenter(model, len(model.encoder_blocks()))
    features = model.encode(x).detach()
    n = len(boxes)
    no_points, no_labels = torch.zeros((n, 1, 2)), torch.full((n, 1), -1)
    logits, _ = segmenter(features, boxes, torch.ones(n, dtype=torch.bool), no_points, no_labels, torch.empty(0))
    with torch.no_grad():  # the zero term that keeps unused prompt weights in the graph changes no value
        assert torch.equal(
            logits, segmenter(features, boxes, torch.ones(n, dtype=torch.bool), no_points, no_labels, torch.empty(0))[0]
        )
    logits.mean().backward()
    assert all(p.grad is not None for p in prompt.values())  # every weight in the graph (DDP needs it)
    assert not prompt["prompt_encoder.point_embeddings.1.weight"].grad.any()  # a box decode: no point gradient
    assert prompt["prompt_encoder.point_embeddings.2.weight"].grad.any()  # the box's top-left corner
    model.zero_grad()
    points, labels = torch.tensor([[[50.0, 50.0]], [[30.0, 60.0]]]), torch.ones((n, 1), dtype=torch.long)
    logits, _ = segmenter(features, boxes, torch.ones(n, dtype=torch.bool), points, labels, torch.empty(0))
    logits.mean().backward()
    assert prompt["prompt_encoder.point_embeddings.1.weight"].grad.any()  # a positive click now trains


def test_refine_head_reads_the_image_and_needs_it(tiny, batch):
    x, boxes = batch
    model = copy.deepcopy(tiny)
    report = apply_adapters(model, parse_adapter("decoder+refine:width=4"), seed=0)
    assert ("refine", sum(p.numel() for p in model.refiner.parameters())) in report.per_part
    embeddings = model.encode(x)
    with pytest.raises(ValidationError, match="refinement head: decode needs the preprocessed images"):
        model.decode(embeddings, boxes)
    with pytest.raises(ValidationError, match="1 images for 2 embeddings"):
        model.decode(embeddings, boxes, images=x[:1])
    with torch.no_grad():
        model.refiner.out.weight.fill_(0.1)
        plain, _ = tiny.decode(embeddings, boxes)
        refined, _ = model.decode(embeddings, boxes, images=x)
        other, _ = model.decode(embeddings, boxes, images=x.flip(-1))
        shared, _ = model.decode(embeddings[:1], boxes, images=x[:1])  # one image, many prompts
        single, _ = model.decode(embeddings[:1], boxes[1:], images=x[:1])
    assert refined.shape == plain.shape and not torch.allclose(refined, plain)
    assert not torch.allclose(refined, other)  # the correction depends on the image
    assert torch.allclose(shared[1:], single, atol=1e-5)


def test_adapter_parameter_counts(tiny):
    blocks, dim = len(tiny.encoder_blocks()), 64
    expected = {
        "serial": blocks * (2 * dim * 16 + 16 + dim),
        "lora": blocks * 2 * (dim * 4 + 4 * dim),
        "parallel:ratio=0.5,scale=learn": blocks * (2 * dim * 32 + 32 + dim + 1),
    }
    for spec, count in expected.items():
        assert apply_adapters(copy.deepcopy(tiny), parse_adapter(spec)).trainable == count


def test_report_lists_parts_in_canonical_order(tiny):
    spec = "prompt+decoder+refine:width=4+lora:r=2+serial:blocks=1"
    report = apply_adapters(copy.deepcopy(tiny), parse_adapter(spec))
    assert [k for k, _ in report.per_part] == ["lora", "serial", "refine", "decoder", "prompt"]
    assert report.blocks == (0, 1, 2, 3) and report.first_block == 0
    assert report.describe().startswith(f"tiny [{report.spec}]: {report.trainable:,} / {report.total:,} trainable (")
    full = apply_adapters(copy.deepcopy(tiny), parse_adapter("full"))
    assert [k for k, _ in full.per_part] == ["encoder", "decoder"] and full.blocks == (0, 1, 2, 3)
    decoder = apply_adapters(copy.deepcopy(tiny), parse_adapter("decoder"))
    assert decoder.blocks == () and "no encoder blocks; frozen prefix ends at block 4" in decoder.describe()


def test_apply_is_seeded_and_refuses_a_second_time(tiny):
    def lora_a(seed: int) -> torch.Tensor:
        model = copy.deepcopy(tiny)
        apply_adapters(model, parse_adapter("lora"), seed=seed)
        return model.image_encoder.blocks[0].attn.qkv.a_q.weight.detach().clone()

    assert torch.equal(lora_a(0), lora_a(0)) and not torch.equal(lora_a(0), lora_a(1))
    model = copy.deepcopy(tiny)
    apply_adapters(model, parse_adapter("lora"))
    with pytest.raises(ConfigError, match="already holds adapters"):
        apply_adapters(model, parse_adapter("serial"))


def test_merge_lora_keeps_the_output(tiny, batch):
    x, boxes = batch
    model = copy.deepcopy(tiny)
    apply_adapters(model, parse_adapter("serial+lora:r=2,alpha=3"))
    _randomise_adapters(model)
    with torch.no_grad():
        unmerged = model(x, boxes)
        assert not torch.allclose(unmerged[0], tiny(x, boxes)[0])
        assert merge_lora(model) == len(model.encoder_blocks())
        merged = model(x, boxes)
    assert not any(isinstance(m, LoRAQKV) for m in model.modules())
    assert torch.allclose(unmerged[0], merged[0], atol=1e-4) and torch.allclose(unmerged[1], merged[1], atol=1e-5)


@pytest.mark.parametrize(
    "spec,first",
    [
        ("lora", 0),
        ("serial:blocks=2,3", 2),
        ("parallel:blocks=3+decoder", 3),
        ("decoder", 4),
        ("serial:blocks=3+lora:blocks=1", 1),
    ],
)
def test_cached_prefix_plus_trainable_suffix(tiny, batch, spec, first):
    x, boxes = batch
    model = copy.deepcopy(tiny)
    cfg = parse_adapter(spec)
    assert first_adapted_block(model, cfg) == first
    assert apply_adapters(model, cfg).first_block == first
    _randomise_adapters(model)
    with torch.no_grad():
        cached = model.encode_prefix(x, first)
        full = model.encode(x)
    suffix = model.encode_suffix(cached, first)
    assert torch.allclose(suffix, full, atol=1e-6)
    logits, iou = model.decode(suffix, boxes)
    (logits.mean() + iou.mean()).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.fixture(scope="module")
def lite() -> SamModel:
    return build_model("litemedsam")


@pytest.mark.slow
def test_litemedsam_adapters_start_as_identity(lite):
    x = lite.preprocess(_images(1, 256))
    with torch.no_grad():  # every adapter sits in blocks >= 0, so the costly frozen stem is shared
        cached = lite.encode_prefix(x, 0)  # (prefix + suffix == encode is tested in test_models)
        reference = lite.encode_suffix(cached, 0)
    for name, kind in ADAPTERS.items():
        model = copy.deepcopy(lite)
        report = apply_adapters(model, parse_adapter(name))
        assert report.first_block == (0 if kind.blocks(kind.params(), 10) else 10)
        if name in ("serial", "parallel", "lora"):  # the kinds that insert layers into encoder blocks
            with torch.no_grad():
                assert torch.equal(model.encode_suffix(cached, 0), reference), name
        model.train()
        norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        if name == "full":  # full fine-tuning trains the batch norms too
            assert norms and all(m.training for m in norms)
        else:
            assert not any(m.training for m in norms)  # frozen batch norms keep their running statistics
    with pytest.raises(ConfigError, match="valid blocks are 0..9"):
        apply_adapters(copy.deepcopy(lite), parse_adapter("serial:blocks=0,1,10,11"))


def test_prefix_cache_on_cpu_encodes_slice_by_slice_as_the_batch_would(tiny):
    from training.augment import pixel_frames
    from training.cache import PrefixCache

    images = torch.randint(0, 256, (3, 1, 128, 128), dtype=torch.uint8)
    cache = PrefixCache(tiny, 2, "memory", 1 << 30, None, {})
    with torch.no_grad():
        whole = tiny.encode_prefix(tiny.preprocess(pixel_frames(images)), 2)
    assert torch.allclose(cache.compute(images), whole, atol=1e-5)
    out = cache(images, [("c", 0, 0), ("c", 1, 0), None])
    assert torch.allclose(out, whole, atol=1e-5) and len(cache) == 2 and cache.misses == 3
