"""Sample datasets written in the MSD layout: the real MNI152 template and seeded CT-like phantoms.

The MNI152 files are the ICBM152 2009a symmetric T1, WM and GM maps that nilearn bundles
(``nilearn/datasets/data/mni_icbm152_*_tal_nlin_sym_09a_converted.nii.gz``, 197x233x189, 1 mm,
uint8 0..255); nothing is downloaded. The phantoms are written here because no installed library
makes labelled abdominal CT phantoms: ellipsoid organs in Hounsfield units with seeded geometry,
spacing, noise and on-disk orientation (RAS, LPS, LAS and the FreeSurfer-like LIA cycle by case).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from samdata.errors import ConfigError
from samdata.extras import require
from samdata.io.readers import write_nifti

MNI152_LABELS = {0: "background", 1: "white_matter", 2: "grey_matter", 3: "other_brain"}
PHANTOM_LABELS = {
    0: "background",
    1: "liver",
    2: "spleen",
    3: "kidney_left",
    4: "kidney_right",
    5: "spine",
    6: "lesion",
}
PHANTOM_ORIENTATIONS = ("RAS", "LPS", "LAS", "LIA")
_HU = {"air": -1000, "fat": -100, "soft": 40, 1: 60, 2: 50, 3: 30, 4: 30, 5: 700, 6: 20}
_DEFAULT_SHAPE = (128, 128, 48)


def _write_dataset_json(
    dest: Path, name: str, description: str, modality: str, labels: dict[int, str], cases: list[str]
) -> None:
    """Write an MSD dataset.json listing the training cases."""
    doc: dict[str, Any] = {
        "name": name,
        "description": description,
        "tensorImageSize": "3D",
        "modality": {"0": modality},
        "labels": {str(k): v for k, v in labels.items()},
        "numTraining": len(cases),
        "numTest": 0,
        "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in cases],
        "test": [],
    }
    (dest / "dataset.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def _probabilities(path: Path) -> np.ndarray:
    """A bundled probability map as float32 in [0, 1] (the files store 0..255 uint8)."""
    raw = np.asarray(nib.load(path).dataobj).astype(np.float32)
    return raw / 255.0 if raw.max() > 1.0 else raw


def mni152_labels(wm: np.ndarray, gm: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Label map (X, Y, Z) uint8 from WM/GM probabilities in [0, 1] and a brain mask (1 WM, 2 GM, 3 other).

    A voxel is WM or GM where its probability is >= 0.5 (both: the larger wins, ties go to WM);
    other brain is the rest of the brain mask.
    """
    is_wm = (wm >= 0.5) & (wm >= gm)
    is_gm = (gm >= 0.5) & ~is_wm
    label = np.where(brain > 0, 3, 0).astype(np.uint8)
    label[is_gm] = 2
    label[is_wm] = 1
    return label


#: MR contrasts :func:`write_mni152` can write; all but ``t1`` are drawn here from the tissue maps, so a
#: model can be tested on the same anatomy in a contrast it never saw.
CONTRASTS: tuple[str, ...] = ("t1", "t2", "flair", "t1inv")
#: (white matter, grey matter, CSF) intensities 0..255 of the contrasts rendered from tissue maps
_TISSUE_LEVELS = {"t2": (70.0, 115.0, 230.0), "flair": (110.0, 165.0, 25.0)}


def mni152_contrast(
    t1: np.ndarray, wm: np.ndarray, gm: np.ndarray, brain: np.ndarray, contrast: str, seed: int = 0
) -> np.ndarray:
    """(X, Y, Z) uint8 image of the MNI152 anatomy in ``contrast``: ``t1`` as bundled; ``t2`` / ``flair`` drawn
    from the WM / GM probabilities and CSF = the brain mask's rest (partial volume, mild noise); ``t1inv``
    the T1 inverted inside the brain (its texture, the opposite tissue order)."""
    if contrast not in CONTRASTS:
        raise ConfigError(f"unknown MNI152 contrast {contrast!r}; expected one of {', '.join(CONTRASTS)}")
    t1 = np.asarray(t1, dtype=np.float32)
    if contrast == "t1":
        return np.clip(np.rint(t1), 0, 255).astype(np.uint8)
    inside = brain > 0
    if contrast == "t1inv":
        top = float(np.percentile(t1[inside], 99.5))
        return np.where(inside, np.clip(top - t1, 0, None) / top * 255.0, 0.0).round().astype(np.uint8)
    csf = np.clip(inside.astype(np.float32) - wm - gm, 0.0, 1.0)
    level_wm, level_gm, level_csf = _TISSUE_LEVELS[contrast]
    image = wm * level_wm + gm * level_gm + csf * level_csf
    noise = np.random.default_rng(seed).normal(0.0, 4.0, image.shape).astype(np.float32)
    return np.clip(np.rint(np.where(inside, image + noise, 0.0)), 0, 255).astype(np.uint8)


def write_mni152(dest: str | Path, contrast: str = "t1") -> Path:
    """Write the bundled MNI152 anatomy in ``contrast`` (default the T1 template itself) with its WM/GM/other-brain
    label map as a one-case MSD dataset (case ``mni152``, or ``mni152_<contrast>`` for the drawn contrasts)."""
    datasets = require("nilearn.datasets", "sample", "the MNI152 sample data")  # slow import: only when asked

    if contrast not in CONTRASTS:
        raise ConfigError(f"unknown MNI152 contrast {contrast!r}; expected one of {', '.join(CONTRASTS)}")
    dest = Path(dest)
    case = "mni152" if contrast == "t1" else f"mni152_{contrast}"
    for sub in ("imagesTr", "labelsTr"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    t1 = nib.load(datasets.MNI152_FILE_PATH)
    brain = np.asarray(datasets.load_mni152_brain_mask(resolution=1).dataobj)
    wm, gm = _probabilities(datasets.WM_MNI152_FILE_PATH), _probabilities(datasets.GM_MNI152_FILE_PATH)
    label = mni152_labels(wm, gm, brain)
    if contrast == "t1":
        fd, tmp = tempfile.mkstemp(dir=dest / "imagesTr", prefix=".mni152.", suffix=".nii.gz")
        os.close(fd)
        shutil.copyfile(datasets.MNI152_FILE_PATH, tmp)  # the template as bundled, bytes unchanged
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest / "imagesTr" / f"{case}.nii.gz")
        description = "ICBM152 2009a symmetric T1 template (bundled with nilearn), WM/GM maps thresholded at 0.5"
    else:
        image = mni152_contrast(np.asarray(t1.dataobj), wm, gm, brain, contrast)
        write_nifti(image, t1.affine, dest / "imagesTr" / f"{case}.nii.gz")
        description = (
            f"MNI152 anatomy in a {contrast} contrast drawn from the ICBM152 2009a tissue maps "
            "(bundled with nilearn); labels as the T1 template's"
        )
    write_nifti(label, t1.affine, dest / "labelsTr" / f"{case}.nii.gz")
    _write_dataset_json(dest, "MNI152", description, "MR", MNI152_LABELS, [case])
    return dest


def _ellipsoid(grid: tuple[np.ndarray, ...], centre: np.ndarray, radii: np.ndarray, angle: float) -> np.ndarray:
    """Boolean mask of an ellipsoid rotated by ``angle`` about z, on a grid of normalised coordinates."""
    x, y, z = (g - c for g, c in zip(grid, centre, strict=True))
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = cos * x + sin * y, -sin * x + cos * y
    return (u / radii[0]) ** 2 + (v / radii[1]) ** 2 + (z / radii[2]) ** 2 <= 1.0


def _organs(rng: np.random.Generator) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(label, centre, radii) of each organ in body-normalised RAS coordinates (x: left +, y: anterior +)."""

    def jitter(base: tuple[float, ...], scale: float) -> np.ndarray:
        return np.asarray(base) + rng.uniform(-scale, scale, size=3)

    return [
        (1, jitter((-0.35, 0.1, 0.35), 0.05), jitter((0.35, 0.45, 0.45), 0.05)),  # liver: patient right
        (2, jitter((0.5, -0.1, 0.4), 0.04), jitter((0.15, 0.22, 0.3), 0.03)),  # spleen: left
        (3, jitter((0.35, -0.45, -0.15), 0.03), jitter((0.14, 0.2, 0.32), 0.02)),  # kidney_left
        (4, jitter((-0.35, -0.45, -0.2), 0.03), jitter((0.14, 0.2, 0.32), 0.02)),  # kidney_right
        (5, jitter((0.0, -0.65, 0.0), 0.02), jitter((0.12, 0.14, 2.0), 0.01)),  # spine: posterior column
    ]


def _phantom(rng: np.random.Generator, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One RAS-ordered (X, Y, Z) phantom: int16 HU image and uint8 label map."""
    axes = [np.linspace(-1.0, 1.0, n) for n in shape]
    grid = tuple(np.meshgrid(*axes, indexing="ij", sparse=True))
    body_r = np.array([rng.uniform(0.85, 0.95), rng.uniform(0.6, 0.75), 10.0])
    body = _ellipsoid(grid, np.zeros(3), body_r, 0.0)
    inner = _ellipsoid(grid, np.zeros(3), body_r - [0.08, 0.08, 0.0], 0.0)
    image = np.full(shape, _HU["air"], dtype=np.float32)
    image[body] = _HU["fat"]
    image[inner] = _HU["soft"]
    label = np.zeros(shape, dtype=np.uint8)
    organs = _organs(rng)
    for value, centre, radii in organs:
        mask = _ellipsoid(grid, centre * [body_r[0], body_r[1], 1.0], radii, rng.uniform(-0.3, 0.3)) & inner
        label[mask] = value
    _, liver_c, liver_r = organs[0]
    lesion_c = liver_c * [body_r[0], body_r[1], 1.0] + rng.uniform(-0.3, 0.3, size=3) * liver_r
    lesion = _ellipsoid(grid, lesion_c, liver_r * rng.uniform(0.2, 0.3), 0.0) & (label == 1)
    label[lesion] = 6
    for value in range(1, 7):
        image[label == value] = _HU[value]
    image += rng.normal(0.0, 15.0, size=shape).astype(np.float32)
    return np.clip(np.rint(image), -1024, 3071).astype(np.int16), label


def _affine(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """A RAS affine with seeded spacing (0.7-0.9 mm in-plane, 2-5 mm slices) centred near the origin."""
    spacing = np.array([rng.uniform(0.7, 0.9), 0.0, rng.uniform(2.0, 5.0)])
    spacing[1] = spacing[0]
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -spacing * (np.asarray(shape) - 1) / 2 + rng.uniform(-20, 20, size=3)
    return affine


def _reorient(
    image: np.ndarray, label: np.ndarray, affine: np.ndarray, codes: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Store RAS arrays in another axis order (e.g. LPS), keeping world positions (nibabel orientations)."""
    orientations = nib.orientations
    ornt = orientations.ornt_transform(orientations.axcodes2ornt("RAS"), orientations.axcodes2ornt(tuple(codes)))
    new_affine = affine @ orientations.inv_ornt_aff(ornt, image.shape)
    return (
        np.ascontiguousarray(orientations.apply_orientation(image, ornt)),
        np.ascontiguousarray(orientations.apply_orientation(label, ornt)),
        new_affine,
    )


def write_phantoms(dest: str | Path, cases: int, seed: int, *, shape: tuple[int, int, int] | None = None) -> Path:
    """Write ``cases`` seeded CT-like phantoms (int16 HU, labels 1-6) as an MSD dataset in ``dest``.

    Case ``i`` depends only on (seed, i): its geometry, spacing and noise come from a child of
    ``SeedSequence(seed)``; its on-disk orientation is ``PHANTOM_ORIENTATIONS[i % 4]``.
    """
    if cases < 1:
        raise ConfigError(f"write_phantoms: cases={cases}; expected at least 1")
    if shape is not None and (len(shape) != 3 or min(shape) < 8):
        raise ConfigError(f"write_phantoms: shape={shape}; expected three sizes >= 8")
    dest = Path(dest)
    names = [f"phantom_{i:03d}" for i in range(cases)]
    for i, child in enumerate(np.random.SeedSequence(seed).spawn(cases)):
        rng = np.random.default_rng(child)
        size = shape or tuple(int(n + rng.integers(-d, d + 1)) for n, d in zip(_DEFAULT_SHAPE, (16, 16, 8)))
        image, label = _phantom(rng, size)
        codes = PHANTOM_ORIENTATIONS[i % len(PHANTOM_ORIENTATIONS)]
        image, label, affine = _reorient(image, label, _affine(rng, size), codes)
        write_nifti(image, affine, dest / "imagesTr" / f"{names[i]}.nii.gz")
        write_nifti(label, affine, dest / "labelsTr" / f"{names[i]}.nii.gz")
    description = f"seeded CT-like abdominal phantoms (seed {seed})"
    _write_dataset_json(dest, "samdata_phantoms", description, "CT", PHANTOM_LABELS, names)
    return dest
