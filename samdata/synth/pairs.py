"""Image/mask pairs between the store's frame and a GAN's frame.

* :class:`RealPairs`: the real slices a generator learns from (or that the gate compares to), with
  where they came from.
* :func:`to_model` maps store pairs ((N, H, W) uint8 images, (N, K, H, W) bool masks) to the
  GAN's square frame, a (N, 1 + K, S, S) float tensor in [-1, 1]; :func:`to_store_grid` maps
  generated pairs back onto the store's (H, W) grid: image to uint8 0..255 (the store's range),
  masks to one integer label map (the label with the highest probability where it exceeds 0.5).
  Resizing is anisotropic (H, W → S, S and back), so a round trip keeps the slice's extent.
* :func:`grey_uint8` / :func:`binary_mask` bring other generators' outputs (medigan: RGB, float,
  {0, 255} masks) to the same types.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from samdata.errors import ValidationError

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as samdata.io.raster


@dataclass(frozen=True, eq=False)
class RealPairs:
    """Real training pairs: ``images`` (N, H, W) uint8, ``masks`` (N, K, H, W) bool, one channel per label.

    ``label_values`` / ``label_names``: the K store labels; ``spacing``: (X, Y, Z) mm of the slices;
    ``keys``: (case_id, z) of each slice; ``source`` / ``snapshot_id``: the store and snapshot read.
    ``full_labels``: (N, H, W) the slices' whole label maps (every label of the case, values of
    ``all_labels`` = ((value, name), ...)); None = only the K chosen labels are known.
    """

    images: np.ndarray
    masks: np.ndarray
    label_values: tuple[int, ...]
    label_names: tuple[str, ...]
    spacing: tuple[float, float, float]
    modality: str
    keys: tuple[tuple[str, int], ...] = ()
    source: str = ""
    snapshot_id: str = ""
    full_labels: np.ndarray | None = None
    all_labels: tuple[tuple[int, str], ...] = ()

    def __post_init__(self) -> None:
        images, masks = np.asarray(self.images), np.asarray(self.masks)
        if images.ndim != 3 or images.dtype != np.uint8 or len(images) < 1:
            raise ValidationError(f"real pairs need images (N >= 1, H, W) uint8; got {images.shape} {images.dtype}")
        expected = (images.shape[0], len(self.label_values), *images.shape[1:])
        if masks.shape != expected:
            raise ValidationError(
                f"real pairs need masks (N, K, H, W) = {expected} for {len(self.label_values)} "
                f"label(s); got {masks.shape}"
            )
        if len(self.label_names) != len(self.label_values):
            raise ValidationError(f"label names {self.label_names} and values {self.label_values} differ in length")
        if self.full_labels is not None and np.shape(self.full_labels) != images.shape:
            raise ValidationError(
                f"real pairs need full label maps shaped like the images {images.shape}; "
                f"got {np.shape(self.full_labels)}"
            )

    @property
    def grid(self) -> tuple[int, int]:
        """(H, W) of the slices."""
        return int(self.images.shape[1]), int(self.images.shape[2])

    def label_map(self) -> np.ndarray:
        """(N, H, W) label maps: the full maps when known, else the K chosen labels' values (later win overlaps)."""
        if self.full_labels is not None:
            return np.asarray(self.full_labels)
        out = np.zeros((self.images.shape[0], *self.grid), dtype=np.uint16)
        for channel, value in enumerate(self.label_values):
            out[self.masks[:, channel]] = value
        return out

    def label_table(self) -> dict[int, str]:
        """Label value → name of every label the maps of :meth:`label_map` hold (0 = background)."""
        table = (
            dict(self.all_labels) if self.full_labels is not None else dict(zip(self.label_values, self.label_names))
        )
        return {0: table.get(0, "background"), **{v: n for v, n in sorted(table.items()) if v}}


def to_model(images: np.ndarray, masks: np.ndarray, size: int) -> torch.Tensor:
    """(N, H, W) uint8 images and (N, K, H, W) bool masks → (N, 1 + K, size, size) float32 in [-1, 1]."""
    x = torch.cat(
        [
            torch.from_numpy(np.asarray(images, dtype=np.float32) / 255.0)[:, None],
            torch.from_numpy(np.asarray(masks, dtype=np.float32)),
        ],
        dim=1,
    )
    x = F.interpolate(x, size=(size, size), mode="area" if size <= x.shape[-1] else "bilinear")
    return x.clamp(0, 1) * 2 - 1


def to_store_grid(
    output: torch.Tensor, grid: tuple[int, int], label_values: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Generator output (N, 1 + K, S, S) (image in [-1, 1], mask logits) → ((N, H, W) uint8 image,
    (N, H, W) uint8|uint16 label map with ``label_values``) on the store grid ``grid`` = (H, W)."""
    out = output.detach().float().cpu()
    image = F.interpolate(out[:, :1], size=grid, mode="bilinear", align_corners=False)[:, 0]
    image_u8 = torch.round((image.clamp(-1, 1) + 1) * 127.5).to(torch.uint8).numpy()
    probs = torch.sigmoid(F.interpolate(out[:, 1:], size=grid, mode="bilinear", align_corners=False)).numpy()
    best = probs.argmax(axis=1)
    dtype = np.uint8 if max(label_values, default=0) < 256 else np.uint16
    values = np.asarray(label_values, dtype=dtype)
    labels = np.where(probs.max(axis=1) > 0.5, values[best], 0).astype(dtype)
    return image_u8, labels


def grey_uint8(image: np.ndarray) -> np.ndarray:
    """A (H, W), (H, W, 3|4) or (3|4, H, W) image of any range → (H, W) uint8 grey (luma; floats in
    [0, 1] or [-1, 1] are scaled to 0..255, other ranges are min-max scaled)."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[-1] not in (3, 4):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = arr[..., :3].astype(np.float64) @ np.asarray(LUMA)
    elif arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise ValidationError(
            f"generated image has shape {np.shape(image)}; expected (H, W), (H, W, 3|4) or (3|4, H, W)"
        )
    if np.asarray(image).dtype == np.uint8:
        return np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    arr = arr.astype(np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    if lo >= -1.0 and hi <= 1.0:
        scaled = (arr + 1) * 127.5 if lo < 0 else arr * 255.0
    elif lo >= 0 and hi <= 255:
        scaled = arr
    else:
        scaled = (arr - lo) / max(hi - lo, 1e-12) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def binary_mask(mask: np.ndarray) -> np.ndarray:
    """A generated mask (any channels, {0,1}, {0,255} or soft) → (H, W) bool, foreground above half range."""
    grey = grey_uint8(mask) if np.asarray(mask).ndim == 3 else np.asarray(mask)
    arr = np.asarray(grey, dtype=np.float64)
    top = 255.0 if arr.max() > 1.0 else 1.0
    return arr > top / 2


def resize_pair(
    image: np.ndarray, mask: np.ndarray | None, grid: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Resize a (h, w) uint8 image (bilinear) and (h, w) bool mask (nearest) to ``grid`` = (H, W)."""
    if image.shape == grid:
        return image, mask
    img = torch.from_numpy(image.astype(np.float32))[None, None]
    out = F.interpolate(img, size=grid, mode="bilinear", align_corners=False)[0, 0]
    resized = torch.round(out).clamp(0, 255).to(torch.uint8).numpy()
    if mask is None:
        return resized, None
    m = torch.from_numpy(mask.astype(np.float32))[None, None]
    return resized, (F.interpolate(m, size=grid, mode="bilinear", align_corners=False)[0, 0] > 0.5).numpy()
