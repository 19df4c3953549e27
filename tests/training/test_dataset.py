"""Tests of the mixture Dataset: geometry, prompts, context, augmentation, splits, workers and pickling."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

from pipelines.mixtures import MixtureConfig, make_mixture
from pipelines.prompt_sets import make_prompt_set
from samdata.case import Case, CaseMeta, Geometry, Normalisation, Provenance
from samdata.errors import ConfigError, RegistryError, StoreError, ValidationError
from samdata.prompts import Prompt, columns_to_prompts
from storage import SliceStore
from training.augment import AUGMENTS, Augment, resize_pad, resize_pad_mask
from training.dataset import DatasetConfig, MixtureDataset, PackedBatch, SliceCache, collate_items, mixture_loader

SIZE = 64
JITTER = 3
NAMES = {1: "liver", 2: "kidney"}


def _case(case_id: str, seed: int, depth: int, height: int, width: int, origin: str = "real") -> Case:
    """A seeded case: smooth-ish uint8 image and a liver block over slices 1..Z-2 plus a small kidney."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (depth, height, width), dtype=np.uint8)
    label = np.zeros((depth, height, width), dtype=np.uint8)
    y0, x0 = int(rng.integers(1, height // 2)), int(rng.integers(1, width // 2))
    label[max(depth - 4, 0) : max(depth - 1, 1), y0 : y0 + 7, x0 : x0 + 9] = 1
    label[depth // 2, height - 5 : height - 1, width - 5 : width - 1] = 2  # 16 px
    label[0, 0, 0] = 2 if depth > 1 else 0  # 1 px object, below min_area
    eye = tuple(tuple(float(v) for v in row) for row in np.eye(4))
    provenance = Provenance(
        origin, f"/data/{case_id}", f"sha256:{case_id}", generator="gan" if origin == "synthetic" else None
    )
    meta = CaseMeta(
        case_id=case_id,
        modality="CT",
        label_names=NAMES,
        geometry=Geometry(eye, (1.0, 1.0, 1.0), eye, (width, height, depth), ("R", "A", "S")),
        normalisation=Normalisation("none", 0.0, 255.0),
        provenance=provenance,
    )
    return Case(meta=meta, image=image, label=label)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store with 6 real 5x24x32 cases, a synthetic 2D case, a box prompt set and mixture 'mix'."""
    path = tmp_path_factory.mktemp("dataset") / "store"
    with SliceStore.open(path, create=True).writer("cases") as writer:
        for i in range(6):
            writer.write_case(_case(f"real{i}", i, 5, 24, 32))
        writer.write_case(_case("synth2d", 99, 1, 20, 20, origin="synthetic"))
    make_prompt_set(path, f"box:jitter={JITTER}", "boxes", seed=7)
    make_mixture(path, "mix", MixtureConfig(real=1.0, synthetic=0.5, prompt_set="boxes", seed=1))
    make_mixture(path, "plain", MixtureConfig(seed=1))
    return str(path)


@pytest.fixture(scope="module")
def val(store: str) -> MixtureDataset:
    return MixtureDataset(store, "mix", "val", DatasetConfig(size=SIZE, dtype="float32"))


def _tight(mask: torch.Tensor) -> tuple[int, int, int, int]:
    """Inclusive-exclusive box of a (1, S, S) mask."""
    ys, xs = np.nonzero(mask[0].numpy())
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _assert_box_bounds(item: dict, jitter_px: float) -> None:
    """The item's box holds its mask's tight box and exceeds it by at most jitter_px + 1 per side."""
    tight = np.array(_tight(item["mask"]), dtype=np.float32)
    box = item["box"].numpy()
    assert (box[:2] <= tight[:2] + 1).all() and (box[2:] >= tight[2:] - 1).all(), (box, tight)
    assert (tight[:2] - box[:2] <= jitter_px + 1).all() and (box[2:] - tight[2:] <= jitter_px + 1).all(), (box, tight)


def test_item_shapes_dtypes_and_padding(store: str, val: MixtureDataset):
    assert DatasetConfig().dtype == "uint8"  # the default: what the trainer and evaluation load
    default = MixtureDataset(store, "mix", "val", DatasetConfig(size=SIZE))[0]
    assert default["image"].dtype == torch.uint8 and default["mask"].dtype == torch.uint8
    item = val[0]
    assert item["image"].shape == (3, SIZE, SIZE) and item["image"].dtype == torch.float32
    assert item["mask"].shape == (1, SIZE, SIZE) and item["mask"].dtype == torch.float32
    assert item["box"].shape == (4,) and item["box"].dtype == torch.float32
    assert item["points"].shape == (8, 2) and item["points"].dtype == torch.float32
    assert item["point_labels"].shape == (8,) and item["point_labels"].dtype == torch.int64
    assert item["valid"].shape == (SIZE, SIZE) and item["valid"].dtype == torch.bool
    assert float(item["image"].min()) >= 0.0 and float(item["image"].max()) <= 1.0
    assert set(torch.unique(item["mask"]).tolist()) == {0.0, 1.0}
    # 24x32 slices: longest side 32 -> 64, so rows 48.. are padding
    assert item["scale"] == 2.0 and item["input_size"].tolist() == [48, 64] and item["pad"].tolist() == [16, 0]
    assert item["original_size"].tolist() == [24, 32]
    assert item["valid"][:48].all() and not item["valid"][48:].any()
    assert not item["image"][:, 48:].any() and not item["mask"][:, 48:].any()
    assert (item["point_labels"] == -1).all()  # box scheme: no points
    assert isinstance(item["case_id"], str) and item["origin"] == "real"


def test_image_is_the_resized_slice(store: str, val: MixtureDataset):
    item = val[3]
    image, label = SliceStore.open(store, snapshot=val.snapshot_id).read_slice(item["case_id"], item["z"])
    expected = resize_pad(image[None], SIZE)
    assert torch.equal(expected, resize_pad(np.stack([image] * 3), SIZE))
    assert torch.equal(item["image"], expected)
    assert torch.equal(item["mask"], resize_pad_mask(label == item["label"], SIZE))


def test_val_prompts_are_the_stored_prompt_set(store: str, val: MixtureDataset):
    columns, _attrs = SliceStore.open(store).read_table("prompt_sets/boxes")
    stored = dict(
        zip(
            zip(columns["case_id"].tolist(), columns["z"].tolist(), columns["label"].tolist()),
            columns_to_prompts(columns),
        )
    )
    for i in range(len(val)):
        item = val[i]
        prompt: Prompt = stored[(item["case_id"], item["z"], item["label"])]
        assert item["box"].tolist() == list(prompt.to_frame((24, 32), SIZE).box)
        _assert_box_bounds(item, JITTER * item["scale"])
        assert torch.equal(val[i]["box"], item["box"])  # fixed, not redrawn


def test_train_prompts_are_fresh_and_bound_the_mask(store: str):
    torch.manual_seed(0)
    ds = MixtureDataset(store, "mix", "train", DatasetConfig(size=SIZE, scheme="box:jitter=4"), seed=3)
    boxes = [ds[0]["box"] for _ in range(8)]
    assert any(not torch.equal(boxes[0], b) for b in boxes[1:])
    for i in range(len(ds)):
        _assert_box_bounds(ds[i], 4 * ds[i]["scale"])
    torch.manual_seed(0)
    again = MixtureDataset(store, "mix", "train", DatasetConfig(size=SIZE, scheme="box:jitter=4"), seed=3)
    assert all(torch.equal(a, again[0]["box"]) for a in boxes)  # same seeds: the same sequence of draws


def test_point_prompts_lie_on_the_mask(store: str):
    ds = MixtureDataset(store, "mix", "train", DatasetConfig(size=SIZE, scheme="points:n=3,neg=2", max_points=6))
    for i in range(len(ds)):
        item = ds[i]
        labels = item["point_labels"]
        assert labels.tolist()[:5] == [1, 1, 1, 0, 0] and labels[5] == -1
        for (x, y), lab in zip(item["points"][:5].tolist(), labels[:5].tolist()):
            assert item["mask"][0, round(y), round(x)] == float(lab), (x, y, lab)
    with pytest.raises(ValidationError, match="max_points"):
        MixtureDataset(store, "mix", "train", DatasetConfig(scheme="points:n=3", max_points=2))[0]


def test_mask_and_hybrid_schemes_collate(store: str):
    ds = MixtureDataset(store, "mix", "train", DatasetConfig(size=SIZE, scheme="mask:size=32,px=1"))
    item = ds[0]
    assert item["mask_prompt"].shape == (1, 32, 32) and not item["has_box"] and (item["box"] == -1).all()
    hybrid = MixtureDataset(store, "mix", "train", DatasetConfig(size=SIZE, scheme="hybrid:box=0.5,points=0.5"))
    batch = collate_items([hybrid[i % len(hybrid)] for i in range(12)])
    assert batch["has_box"].any() and not batch["has_box"].all()
    assert ((batch["point_labels"] == 1).sum(1) == (~batch["has_box"]).long()).all()


def test_augmented_prompts_follow_the_augmented_mask(store: str):
    torch.manual_seed(1)
    config = DatasetConfig(size=SIZE, scheme="box:jitter=0", augment=("flip", "affine", "noise"))
    ds = MixtureDataset(store, "mix", "train", config)
    plain = MixtureDataset(store, "mix", "train", DatasetConfig(size=SIZE, scheme="box:jitter=0"))
    moved = 0
    for i in range(len(ds)):
        item, ref = ds[i], plain[i]
        _assert_box_bounds(item, 0)
        moved += not torch.equal(item["mask"], ref["mask"])
        assert not torch.equal(item["image"], ref["image"])  # noise at least
    assert moved > 0


def test_flip_moves_image_and_mask_together(store: str):
    torch.manual_seed(2)
    ds = MixtureDataset(store, "mix", "train", DatasetConfig(size=32, scheme="box:jitter=0", augment=("flip",)))
    plain = MixtureDataset(store, "mix", "train", DatasetConfig(size=32, scheme="box:jitter=0"))
    flips = [(), (-1,), (-2,), (-2, -1)]
    seen = set()
    for i in range(len(ds)):
        item, ref = ds[i], plain[i]
        rows, cols = item["input_size"].tolist()  # compare inside the unpadded region; atol: the plain
        # image is resized as uint8, the augmented one as float (the 2D case is 20x20 → 32x32)
        same = [
            f
            for f in flips
            if torch.allclose(item["image"][:, :rows, :cols], ref["image"][:, :rows, :cols].flip(f), atol=1.5 / 255)
            and torch.equal(item["mask"][:, :rows, :cols], ref["mask"][:, :rows, :cols].flip(f))
        ]
        assert same, i
        view = {(): 0, (-2,): 1, (-1,): 2, (-2, -1): 3}  # bit 0: rows flipped, bit 1: columns
        assert item["view"] in [view[f] for f in same] and ref["view"] == 0, i  # the prefix cache's key
        seen.add(same[0])
    assert len(seen) > 1
    noisy = MixtureDataset(store, "mix", "train", DatasetConfig(size=32, augment=("flip", "noise")))
    assert noisy[0]["view"] == -1  # not one of a few fixed views: never cached


@pytest.mark.parametrize("name", list(AUGMENTS))
def test_every_augmentation_keeps_shape_dtype_and_labels(name: str):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (3, 64, 96), dtype=np.uint8)
    label = np.zeros((64, 96), np.uint8)
    label[10:40, 16:60] = 2
    out_image, out_label = Augment((name,))(image, label, np.random.default_rng(1))
    again, _ = Augment((name,))(image, label, np.random.default_rng(1))
    assert out_image.shape == (3, 64, 96) and out_image.dtype == np.float32
    assert out_label.shape == (64, 96) and set(np.unique(out_label)) <= {0, 2}
    assert 0.0 <= out_image.min() and out_image.max() <= 1.0
    np.testing.assert_array_equal(out_image, again)  # same generator state, same augmentation


def test_context_channels_are_neighbour_slices(store: str):
    ds = MixtureDataset(store, "mix", "train", DatasetConfig(size=SIZE, context=True))
    reader = SliceStore.open(store, snapshot=ds.snapshot_id)
    objects = ds.objects()
    for i in range(len(ds)):
        item = ds[i]
        case, z = item["case_id"], item["z"]
        depth = 1 if case == "synth2d" else 5
        zs = [max(z - 1, 0), z, min(z + 1, depth - 1)]
        expected = resize_pad(np.stack([reader.read_slice(case, k)[0] for k in zs]), SIZE, dtype=torch.uint8)
        assert torch.equal(item["image"], expected)
        if case == "synth2d":
            assert torch.equal(item["image"][0], item["image"][1]) and torch.equal(item["image"][2], item["image"][1])
    assert "synth2d" in set(objects["case_id"])  # synthetic cases train only


def test_splits_do_not_leak_and_filters_apply(store: str):
    columns, _ = SliceStore.open(store).read_table("mixtures/mix")
    split_of = dict(zip(columns["case_id"].tolist(), columns["split"].tolist()))
    seen: dict[str, set[str]] = {}
    for split in ("train", "val", "test"):
        ds = MixtureDataset(store, "mix", split, DatasetConfig(size=SIZE))
        objects = ds.objects()
        seen[split] = set(objects["case_id"])
        assert {split_of[c] for c in seen[split]} == {split}
        assert (objects["area"] >= 10).all() and len(ds) == len(objects)
        assert {ds[i]["case_id"] for i in range(len(ds))} == seen[split]
    assert not (seen["train"] & seen["val"]) and not (seen["train"] & seen["test"]) and not (seen["val"] & seen["test"])
    kidney = MixtureDataset(store, "mix", "train", DatasetConfig(labels=("kidney",)))
    assert set(kidney.objects()["label_name"]) == {"kidney"}
    tiny = MixtureDataset(store, "mix", "train", DatasetConfig(min_area=1))
    assert (tiny.objects()["area"] == 1).any()


def test_sample_weights_spread_case_weights(store: str):
    ds = MixtureDataset(store, "mix", "train", DatasetConfig(size=SIZE))
    columns, _ = SliceStore.open(store).read_table("mixtures/mix")
    weight = dict(zip(columns["case_id"].tolist(), columns["weight"].tolist()))
    w = ds.sample_weights()
    per_case = ds.objects().assign(w=w).groupby("case_id")["w"].sum()
    for case, total in per_case.items():
        assert total == pytest.approx(weight[case])
    sampler = WeightedRandomSampler(w, num_samples=4, generator=torch.Generator().manual_seed(0))
    batch = next(iter(DataLoader(ds, batch_size=4, sampler=sampler)))
    assert batch["image"].shape == (4, 3, SIZE, SIZE) and len(batch["case_id"]) == 4


def test_errors_name_the_problem(store: str):
    with pytest.raises(ConfigError, match="'training'"):
        MixtureDataset(store, "mix", "training", DatasetConfig())
    with pytest.raises(ConfigError, match="'nope'.*mix"):
        MixtureDataset(store, "nope", "train", DatasetConfig())
    with pytest.raises(ValidationError, match="'mix'.*'val'.*min_area=100000"):
        MixtureDataset(store, "mix", "val", DatasetConfig(min_area=100_000))
    with pytest.raises(RegistryError, match="elastic"):
        DatasetConfig(augment=("twist",))
    with pytest.raises(ConfigError):
        DatasetConfig(size=0)
    with pytest.raises(ConfigError, match="float16"):
        DatasetConfig(dtype="float16")
    with pytest.raises(IndexError):
        MixtureDataset(store, "mix", "val", DatasetConfig())[10_000]


def test_pixels_come_from_the_mixture_snapshot(store: str):
    head = SliceStore.open(store)
    _, attrs = head.read_table("mixtures/plain")
    ds = MixtureDataset(store, "plain", "val", DatasetConfig(size=SIZE))
    assert ds.snapshot_id == attrs["snapshot_id"] and ds.mixture_snapshot_id == head.snapshot_id
    pinned = MixtureDataset(store, "plain", "val", DatasetConfig(size=SIZE), snapshot=attrs["snapshot_id"])
    assert pinned.snapshot_id == attrs["snapshot_id"] and torch.equal(pinned[0]["image"], ds[0]["image"])
    # no prompt set: eval prompts are seeded per object, identical across instances
    again = MixtureDataset(store, "plain", "val", DatasetConfig(size=SIZE))
    assert all(torch.equal(ds[i]["box"], again[i]["box"]) for i in range(len(ds)))


def test_pickle_round_trip_reopens_lazily(val: MixtureDataset):
    first = val[1]
    clone = pickle.loads(pickle.dumps(val))
    assert clone._store is None
    item = clone[1]
    assert clone._store is not None and clone._pid == os.getpid()
    for key in ("image", "mask", "box", "points", "point_labels", "valid"):
        assert torch.equal(item[key], first[key])


@pytest.mark.timeout(120)
def test_dataloader_workers_match_single_process(val: MixtureDataset):
    single = list(DataLoader(val, batch_size=3, num_workers=0))
    multi = list(mixture_loader(val, 3, num_workers=2))  # forkserver: each worker unpickles and opens
    assert len(single) == len(multi)
    for a, b in zip(single, multi):
        assert a["case_id"] == b["case_id"]
        for key in ("image", "mask", "box", "points", "point_labels", "valid", "z"):
            assert torch.equal(a[key], b[key])


@pytest.mark.timeout(60)
def test_forked_worker_fails_fast_instead_of_hanging(val: MixtureDataset):
    loader = DataLoader(val, batch_size=2, num_workers=1, multiprocessing_context="fork", timeout=50)
    with pytest.raises(StoreError, match="forkserver"):
        next(iter(loader))


def test_packed_batch_round_trip_keeps_every_field(val: MixtureDataset):
    batch = collate_items([val[0], val[1]])
    again = pickle.loads(pickle.dumps(batch))
    assert isinstance(again, PackedBatch) and set(again) == set(batch)
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            assert again[key].dtype == value.dtype and torch.equal(again[key], value), key
        else:
            assert again[key] == value


def test_grey_image_is_collated_and_sent_as_one_channel(val: MixtureDataset):
    items = [val[i] for i in range(4)]
    assert items[0]["image"].stride(0) == 0  # one channel repeated as a view, not copied
    batch = collate_items(items)
    stacked = torch.stack([it["image"].contiguous() for it in items])
    assert batch["image"].shape == stacked.shape and torch.equal(batch["image"], stacked)
    sent = stacked[:, :1].nbytes + batch["mask"].nbytes + 4096  # one image channel, the mask, the small tensors
    assert batch["image"].stride(1) == 0 and batch["image"].untyped_storage().nbytes() <= sent
    assert torch.equal(batch["valid"], torch.stack([it["valid"] for it in items])) and batch.derived_valid
    data = pickle.dumps(batch)
    assert len(data) <= sent + 4096  # one buffer: no 3-channel image, no valid
    again = pickle.loads(data)
    assert torch.equal(again["image"], stacked) and again["image"].stride(1) == 0
    assert again["image"].untyped_storage().nbytes() <= sent
    assert torch.equal(again["valid"], batch["valid"]) and again.derived_valid


def test_a_worker_batch_is_one_shared_segment(val: MixtureDataset, monkeypatch: pytest.MonkeyPatch):
    import training.collate as collate

    monkeypatch.setattr(collate, "_in_worker", lambda: True)
    items = [val[i] for i in range(4)]
    batch = collate_items(items)
    storages = {v.untyped_storage().data_ptr() for v in batch.values() if isinstance(v, torch.Tensor)}
    assert len(storages) == 1 and batch["image"].is_shared() and "valid" not in batch  # rebuilt on arrival
    again = pickle.loads(pickle.dumps(batch))
    monkeypatch.setattr(collate, "_in_worker", lambda: False)
    reference = collate_items(items)
    assert set(again) == set(reference) and again.derived_valid
    for key, value in reference.items():
        if isinstance(value, torch.Tensor):
            assert again[key].dtype == value.dtype and torch.equal(again[key], value), key
        else:
            assert again[key] == value, key
    batch["box"] = batch["box"] + 1  # replaced after collation: sent by the general path, still exact
    moved = pickle.loads(pickle.dumps(batch))
    assert torch.equal(moved["box"], reference["box"] + 1) and torch.equal(moved["image"], reference["image"])


def test_a_changed_valid_region_is_sent_as_it_is(val: MixtureDataset):
    items = [val[i] for i in range(3)]
    items[1]["valid"] = items[1]["valid"].clone()
    items[1]["valid"][0, 0] = False  # no longer the region of its input_size
    batch = collate_items(items)
    assert not batch.derived_valid and not bool(batch["valid"][1, 0, 0]) and bool(batch["valid"][0, 0, 0])
    again = pickle.loads(pickle.dumps(batch))
    assert torch.equal(again["valid"], batch["valid"])
    contexts = [dict(it, image=it["image"].contiguous()) for it in items]  # three real channels: stacked as is
    assert collate_items(contexts)["image"].is_contiguous()


def test_uint8_and_float_frames_reach_the_model_alike(store: str, val: MixtureDataset):
    from training.augment import pixel_frames

    small = MixtureDataset(store, "mix", "val", DatasetConfig(size=SIZE, dtype="uint8"))
    u8, f32 = collate_items([small[0], small[1]])["image"], collate_items([val[0], val[1]])["image"]
    assert pixel_frames(u8) is u8
    assert torch.allclose(pixel_frames(f32), u8.float(), atol=1e-4)


def test_uint8_items_match_float_items(store: str, val: MixtureDataset):
    small = MixtureDataset(store, "mix", "val", DatasetConfig(size=SIZE, dtype="uint8"))
    a, b = small[2], val[2]
    assert a["image"].dtype == torch.uint8 and a["mask"].dtype == torch.uint8
    assert torch.allclose(a["image"].float() / 255, b["image"]) and torch.equal(a["mask"].float(), b["mask"])
    assert torch.equal(a["box"], b["box"])


def test_slice_cache_evicts_least_recent(store: str):
    reader = SliceStore.open(store)
    one = sum(a.nbytes for a in reader.read_slice("real0", 0))
    cache = SliceCache(2 * one)
    for z in (0, 1, 0, 2):
        cache.get(reader, "real0", z)
    assert (cache.hits, cache.misses) == (1, 3)
    assert list(cache._items) == [("real0", 0), ("real0", 2)] and cache.nbytes == 2 * one
    assert SliceCache(0).get(reader, "real0", 1)[0].shape == (24, 32)
