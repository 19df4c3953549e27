"""Tests of test-time mirroring: prompts and frames of a mirrored slice, and predictions that become exactly
equivariant to the mirror group they average over (SAM with its prompts, and the U-Net)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from samdata.errors import RegistryError, ValidationError
from samdata.prompts import Prompt, frame_shape
from samdata.prompts.regions import tight_box
from training.dataset import resize_pad
from training.models import build_model
from training.predict import model_input, segment_slice, segment_volume, slice_channels, to_probabilities
from training.tta import TTA_VIEWS, flip_frames, flip_prompts, mean_of_views, tta_views, unflip


def _blob(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A lopsided (Y, X) bool object: an ellipse plus an arm, away from the centre lines."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    cy, cx = shape[0] * rng.uniform(0.3, 0.4), shape[1] * rng.uniform(0.25, 0.35)
    body = ((yy - cy) / (0.2 * shape[0])) ** 2 + ((xx - cx) / (0.15 * shape[1])) ** 2 <= 1.0
    arm = (np.abs(yy - cy - 0.1 * shape[0]) < 2) & (xx > cx) & (xx < cx + 0.4 * shape[1])
    return body | arm


@pytest.mark.parametrize(("flip_x", "flip_y"), [(True, False), (False, True), (True, True)])
def test_a_mirrored_prompt_is_the_prompt_of_the_mirrored_object(flip_x: bool, flip_y: bool):
    obj = _blob((37, 52), 0)
    ys, xs = np.nonzero(obj)
    points = np.stack([xs[::40], ys[::40]], axis=1).astype(np.float32)
    prompt = Prompt(tight_box(obj), points, np.ones(len(points), np.int8), mask=obj)
    seen = obj[:: -1 if flip_y else 1, :: -1 if flip_x else 1]
    mirrored = prompt.mirrored(obj.shape, x=flip_x, y=flip_y)
    assert mirrored.box == tight_box(seen)
    px, py = mirrored.points[:, 0].astype(int), mirrored.points[:, 1].astype(int)
    assert np.array_equal(mirrored.points, np.stack([px, py], axis=1))  # still pixel centres
    assert seen[py, px].all()  # each click lands on the same pixel of the object
    np.testing.assert_array_equal(mirrored.mask, seen)
    assert mirrored.mirrored(obj.shape, x=flip_x, y=flip_y) == prompt  # an involution


def test_a_frame_mask_prompt_is_mirrored_inside_its_unpadded_part_and_boxes_are_clipped():
    frame = np.zeros((8, 8), dtype=bool)
    frame[1, 0:2] = True  # content is the top-left 4 x 6; the rest is padding
    frame[6, 7] = True  # a padding pixel: never moved
    out = Prompt(box=(1, 0, 9, 3), mask=frame).mirrored((4, 6), x=True)
    assert out.box == (0, 0, 5, 3)  # (1, 6) clipped to the image, then 6 - 6 .. 6 - 1
    assert out.mask[1, 4:6].all() and not out.mask[1, 0:2].any() and out.mask[6, 7]
    with pytest.raises(ValidationError, match="smaller than the image"):
        Prompt(mask=np.zeros((3, 3), dtype=bool)).mirrored((4, 6), x=True)
    with pytest.raises(ValidationError, match="positive image shape"):
        Prompt(box=(0, 0, 2, 2)).mirrored((0, 6), x=True)


@pytest.mark.parametrize("view", [(True, False), (False, True), (True, True)])
def test_a_flipped_frame_is_the_frame_of_the_flipped_slice(view: tuple[bool, bool]):
    image = np.random.default_rng(1).integers(0, 256, (1, 37, 52), dtype=np.uint8)
    size = 64
    flipped = np.ascontiguousarray(image[:, :: -1 if view[1] else 1, :: -1 if view[0] else 1])
    expected = resize_pad(flipped, size)
    frames = torch.stack([resize_pad(image, size), resize_pad(image, size)])
    out = flip_frames(frames, [frame_shape(image.shape[1:], size)] * 2, view)
    torch.testing.assert_close(out[0], expected, atol=1e-5, rtol=0)
    h, w = frame_shape(image.shape[1:], size)
    assert (out[:, :, h:] == 0).all() and (out[:, :, :, w:] == 0).all()  # padding stays bottom/right
    assert flip_frames(frames, [(h, w)] * 2, (False, False)) is frames


def test_unknown_mode_lists_the_valid_ones_and_views_average():
    with pytest.raises(RegistryError, match="flip, lr, none"):
        tta_views("mirror")
    assert [len(v) for v in TTA_VIEWS.values()] == [1, 2, 4]
    probs = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    assert np.array_equal(unflip(unflip(probs, (True, True)), (True, True)), probs)
    np.testing.assert_allclose(mean_of_views([probs, unflip(probs, (True, False))]), (probs + probs[..., ::-1]) / 2)
    prompts = [Prompt(box=(1, 2, 3, 4))]
    assert flip_prompts(prompts, (8, 8), (False, False)) is prompts


@pytest.mark.parametrize("mode", ["lr", "flip"])
def test_sam_with_mirroring_is_equivariant_to_the_mirrors_it_averages(mode: str):
    """Averaging over a mirror group makes the prediction commute with every mirror of the group: segmenting the
    mirrored slice with the mirrored prompt gives the mirrored probabilities (frames scale exactly: 48x64 -> 96x128)."""
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    rng = np.random.default_rng(2)
    obj = _blob((48, 64), 3)
    channels = (rng.integers(0, 60, (1, 48, 64)) + 150 * obj[None]).astype(np.uint8)
    prompt = Prompt(tight_box(obj), np.array([[20.0, 17.0]], np.float32), np.array([1], np.int8))
    base = segment_slice(model, channels, [prompt], size=128, tta=mode)
    plain = segment_slice(model, channels, [prompt], size=128)
    assert np.abs(base - plain).max() > 1e-3  # the views do change the answer of an untrained model
    for flip_x, flip_y in TTA_VIEWS[mode][1:]:
        seen = np.ascontiguousarray(channels[:, :: -1 if flip_y else 1, :: -1 if flip_x else 1])
        out = segment_slice(model, seen, [prompt.mirrored((48, 64), x=flip_x, y=flip_y)], size=128, tta=mode)
        np.testing.assert_allclose(unflip(out, (flip_x, flip_y)), base, atol=2e-5)


def test_the_unet_with_mirroring_is_equivariant_too():
    model = build_model("unet", labels=("wm",), seed=3).eval()
    volume = np.random.default_rng(4).integers(0, 256, (3, 40, 52), dtype=np.uint8)
    size = 64
    frame = frame_shape(volume.shape[1:], size)
    with torch.no_grad():

        def probs(vol: np.ndarray, view: tuple[bool, bool]) -> np.ndarray:
            frames = torch.stack([resize_pad(slice_channels(vol, z, False), size) for z in range(3)])
            logits = model(model_input(model, flip_frames(frames, [frame] * 3, view)))  # the U-Net resizes 64 -> 256
            return np.stack(
                [unflip(to_probabilities(model, logits[z][:, None], frame, vol.shape[1:]), view) for z in range(3)]
            )

        mean = mean_of_views([probs(volume, v) for v in TTA_VIEWS["flip"]])
        mirrored = volume[:, ::-1, ::-1].copy()
        again = mean_of_views([probs(mirrored, v) for v in TTA_VIEWS["flip"]])
    np.testing.assert_allclose(again[..., ::-1, ::-1], mean, atol=2e-5)
    labels = segment_volume(model, volume, size=size, tta="flip")
    np.testing.assert_array_equal(labels, np.where(mean.max(1) > 0.5, mean.argmax(1) + 1, 0))
