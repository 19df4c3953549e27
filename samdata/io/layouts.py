"""Discover the cases of a source dataset on disk: which image goes with which label, and in which split.

Layouts (``SourceDataset.layout``): ``msd`` / ``nnunet_v2`` (``dataset.json`` + ``imagesTr/`` +
``labelsTr/``, unlabelled ``imagesTs/`` as split ``test``; channel 0 of nnU-Net's ``_0000`` names),
``plain`` (``images/`` + ``labels/`` or ``masks/`` matched by stem, label stems may add ``_mask``,
``_label``, ``_seg``, ``_segmentation`` or ``_gt``), ``dicom`` (the plain layout with a DICOM folder per
image) and ``single`` (one unlabelled image). Nothing here reads pixels; files that do not fit are reported
in ``problems`` and left out, and hidden files (macOS ``._`` copies in the MSD archives) are skipped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from samdata.errors import CaseNotFoundError, InputFileError
from samdata.io.registry import DICOM_SUFFIXES, is_supported_file, stem_of, suffix_of
from samdata.names import case_id_for_name

_CHANNEL = re.compile(r"^(.+)_(\d{4})$")
_LABEL_SUFFIXES = ("", "_mask", "_label", "_seg", "_segmentation", "_gt")
_IMAGE_DIRS = ("images", "image", "imgs")
_LABEL_DIRS = ("labels", "label", "masks", "mask")
_EXPECTED = (
    "expected the MSD/nnU-Net layout (dataset.json, imagesTr/, labelsTr/, optional imagesTs/), "
    "the plain layout (images/ and labels/ matched by file name, or images/<case>/ DICOM folders "
    "with labels/<case>.nii.gz), or a single image file"
)


@dataclass(frozen=True)
class SourceItem:
    """One case of a source dataset: its case id, image (file or DICOM folder), label (None if unlabelled),
    split, and ``name``: the case's name on disk when the id had to be derived from it (:mod:`samdata.names`)."""

    case_id: str
    image: Path
    label: Path | None
    split: str  # "train" | "test"
    name: str = ""


@dataclass(frozen=True)
class SourceDataset:
    """A discovered dataset: its cases, modality and label names (from dataset.json), and problems found."""

    root: Path
    layout: str
    items: tuple[SourceItem, ...]
    modality: str | None
    label_names: dict[int, str]
    problems: tuple[str, ...]


@dataclass(frozen=True)
class _Description:
    """What a dataset.json says (all optional)."""

    flavour: str
    modality: str | None
    channels: tuple[str, ...]
    label_names: dict[int, str]
    file_ending: str | None
    num_training: int | None


_NO_DESCRIPTION = _Description("single", None, (), {}, None, None)


def _bad_json(path: Path, what: str) -> InputFileError:
    """The error for a malformed dataset.json."""
    return InputFileError(f"{path}: malformed dataset.json: {what}")


def _parse_labels(raw: Any, path: Path, problems: list[str]) -> dict[int, str]:
    """MSD ``{"1": "liver"}`` or nnU-Net v2 ``{"liver": 1}`` labels as {id: name}; regions are noted."""
    if not isinstance(raw, dict):
        raise _bad_json(path, f'"labels" is {type(raw).__name__}; expected an object')
    names: dict[int, str] = {}
    for key, value in raw.items():
        if isinstance(value, bool):
            raise _bad_json(path, f"label {key!r}: {value!r} is not a label id")
        if isinstance(value, int):
            names[value] = str(key)
        elif isinstance(value, list):
            problems.append(f"{path}: region label {key!r} = {value} (nnU-Net regions) not used")
        elif isinstance(value, str) and str(key).strip().isdigit():
            names[int(key)] = value
        else:
            raise _bad_json(path, f'label entry {key!r}: {value!r}; expected "id": "name" or "name": id')
    return names


def _read_description(path: Path, problems: list[str]) -> _Description:
    """Parse dataset.json (MSD or nnU-Net v2 flavour)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _bad_json(path, " ".join(str(err).split())) from err
    if not isinstance(raw, dict):
        raise _bad_json(path, f"top level is {type(raw).__name__}; expected an object")
    flavour = "nnunet_v2" if ("channel_names" in raw or "file_ending" in raw) else "msd"
    channels_raw = raw.get("channel_names", raw.get("modality", {}))
    if not isinstance(channels_raw, dict) or not all(str(k).isdigit() for k in channels_raw):
        raise _bad_json(path, f'channels {channels_raw!r}; expected an object like {{"0": "CT"}}')
    channels = tuple(str(channels_raw[k]) for k in sorted(channels_raw, key=int))
    if len(channels) > 1:
        problems.append(f"{path}: {len(channels)} channels {channels}; channel 0 ({channels[0]}) is used")
    ending = raw.get("file_ending")
    if ending is not None and not isinstance(ending, str):
        raise _bad_json(path, f'file_ending {ending!r}; expected a string like ".nii.gz"')
    num = raw.get("numTraining")
    return _Description(
        flavour=flavour,
        modality=channels[0] if channels else None,
        channels=channels,
        label_names=_parse_labels(raw.get("labels", {}), path, problems),
        file_ending=ending,
        num_training=num if isinstance(num, int) else None,
    )


def _scan(folder: Path, ending: str | None, allow_dirs: bool, problems: list[str]) -> dict[str, Path]:
    """Files of a folder as {stem: path}, skipping hidden, unsupported and duplicate-stem entries."""
    found: dict[str, Path] = {}
    hidden: list[str] = []
    other: list[str] = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            hidden.append(p.name)
            continue
        if p.is_dir():
            stem = p.name if allow_dirs else None
        elif ending is not None:
            stem = p.name[: -len(ending)] if p.name.endswith(ending) and p.name != ending else None
        else:
            stem = stem_of(p) if is_supported_file(p) else None
        if stem is None:
            other.append(p.name)
        elif stem in found:
            problems.append(f"{p}: same case name {stem!r} as {found[stem].name}; using {found[stem].name}")
        else:
            found[stem] = p
    if hidden:
        problems.append(f"{folder}: skipped {len(hidden)} hidden file(s), e.g. {hidden[0]}")
    if other:
        problems.append(f"{folder}: skipped {len(other)} file(s) of unsupported type, e.g. {other[0]}")
    return found


def _strip_channels(images: dict[str, Path], suffixed: bool, problems: list[str]) -> dict[str, Path]:
    """Map nnU-Net channel files ``case_XXXX`` to {case: channel-0 file}; note multi-channel cases."""
    if not suffixed:
        return images
    groups: dict[str, dict[int, Path]] = {}
    for stem, path in images.items():
        match = _CHANNEL.match(stem)
        if match is None:
            problems.append(f"{path}: no nnU-Net channel suffix _XXXX; not used")
            continue
        groups.setdefault(match[1], {})[int(match[2])] = path
    cases: dict[str, Path] = {}
    for case, channels in sorted(groups.items()):
        if 0 not in channels:
            problems.append(f"{case}: channels {sorted(channels)} but no _0000 file; not used")
            continue
        cases[case] = channels[0]
        if len(channels) > 1:
            problems.append(f"{case}: {len(channels)} channels (_0000.._{max(channels):04d}); channel 0 used")
    return cases


def _is_suffixed(images: dict[str, Path], label_stems: set[str], forced: bool) -> bool:
    """Whether image stems carry channel suffixes: forced (nnU-Net v2) or all do and none is a label stem."""
    if forced:
        return True
    return bool(images) and all(_CHANNEL.match(s) for s in images) and not (set(images) & label_stems)


def _pair(images: dict[str, Path], labels: dict[str, Path], labels_dir: Path, problems: list[str]) -> list[SourceItem]:
    """Training items: each image with its label (by stem, or stem + _mask/_label/...); report leftovers."""
    items: list[SourceItem] = []
    used: set[str] = set()
    for case, image in sorted(images.items()):
        match = next((case + s for s in _LABEL_SUFFIXES if case + s in labels), None)
        if match is None:
            problems.append(f"{image}: no label {case}.* in {labels_dir}; not used")
            continue
        used.add(match)
        items.append(SourceItem(case_id=case, image=image, label=labels[match], split="train"))
    for stem in sorted(set(labels) - used):
        problems.append(f"{labels[stem]}: label without an image; not used")
    return items


def _decathlon(root: Path, problems: list[str]) -> SourceDataset:
    """The MSD / nnU-Net raw layout."""
    json_path = root / "dataset.json"
    if json_path.is_file():
        desc = _read_description(json_path, problems)
    else:
        problems.append(f"{json_path}: missing; modality and label names unknown")
        desc = _Description("msd", None, (), {}, None, None)
    labels_dir = root / "labelsTr"
    if not labels_dir.is_dir():
        problems.append(f"{labels_dir}: missing; training images have no labels")
    labels = _scan(labels_dir, desc.file_ending, False, problems) if labels_dir.is_dir() else {}
    raw_tr = _scan(root / "imagesTr", desc.file_ending, False, problems)
    suffixed = _is_suffixed(raw_tr, set(labels), desc.flavour == "nnunet_v2")
    items = _pair(_strip_channels(raw_tr, suffixed, problems), labels, labels_dir, problems)
    if desc.num_training is not None and desc.num_training != len(items):
        problems.append(f"{json_path}: numTraining {desc.num_training} but {len(items)} labelled cases found")
    if (root / "imagesTs").is_dir():
        raw_ts = _scan(root / "imagesTs", desc.file_ending, False, problems)
        for case, image in sorted(_strip_channels(raw_ts, suffixed, problems).items()):
            items.append(SourceItem(case_id=case, image=image, label=None, split="test"))
    return _finish(root, desc.flavour, items, desc, problems)


def _plain(root: Path, images_dir: Path, problems: list[str]) -> SourceDataset:
    """The plain layout: images/ + labels/ (files matched by stem, or DICOM case folders)."""
    desc = _Description("plain", None, (), {}, None, None)
    if (root / "dataset.json").is_file():
        desc = _read_description(root / "dataset.json", problems)
    raw = _scan(images_dir, None, True, problems)
    labels_dir = next((root / d for d in _LABEL_DIRS if (root / d).is_dir()), None)
    labels = _scan(labels_dir, None, False, problems) if labels_dir else {}
    images = _strip_channels(raw, _is_suffixed(raw, set(labels), False), problems)
    layout = "dicom" if images and all(p.is_dir() for p in images.values()) else "plain"
    if labels_dir is None:
        problems.append(f"{root}: no labels/ folder; {len(images)} image(s) taken as unlabelled test cases")
        items = [SourceItem(case, image, None, "test") for case, image in sorted(images.items())]
    else:
        items = _pair(images, labels, labels_dir, problems)
    return _finish(root, layout, items, desc, problems)


def safe_items(items: list[SourceItem], problems: list[str]) -> list[SourceItem]:
    """Items with case ids safe for the store: a free-form name (spaces, accents) gets a stable derived id and
    keeps its name; a name with nothing usable in it is reported in ``problems`` and left out."""
    out = []
    for item in items:
        case_id = case_id_for_name(item.case_id)
        if case_id is None:
            problems.append(
                f"{item.image}: case name {item.case_id!r} cannot be a case id (it has no letter or "
                "digit); rename the file; not used"
            )
        else:
            out.append(replace(item, case_id=case_id, name="" if case_id == item.case_id else item.case_id))
    return out


def _finish(root: Path, layout: str, items: list[SourceItem], desc: _Description, problems: list[str]) -> SourceDataset:
    """Build the SourceDataset (case ids made safe), refusing one with no usable case."""
    items = safe_items(items, problems)
    if not items:
        shown = "; ".join(problems[:3]) or "no image files found"
        raise InputFileError(f"{root}: {layout} layout but no usable case ({shown}); {_EXPECTED}")
    return SourceDataset(root, layout, tuple(items), desc.modality, desc.label_names, tuple(problems))


def _looks_like_dicom_folder(folder: Path) -> bool:
    """Whether a folder directly holds DICOM files (``*.dcm`` or a DICOMDIR)."""
    return any(p.is_file() and (suffix_of(p) in DICOM_SUFFIXES or p.name == "DICOMDIR") for p in folder.iterdir())


def discover(source: str | Path) -> SourceDataset:
    """Find the cases of a dataset folder (MSD/nnU-Net or plain layout), an image file or a DICOM folder."""
    src = Path(source)
    if not src.exists():
        raise CaseNotFoundError(f"{src}: no such file or folder")
    problems: list[str] = []
    if src.is_file():
        if src.name == "dataset.json":
            return discover(src.parent)
        if not is_supported_file(src):
            raise InputFileError(f"{src}: not an image file of a supported type; {_EXPECTED}")
        return _finish(src, "single", [SourceItem(stem_of(src), src, None, "test")], _NO_DESCRIPTION, problems)
    if (src / "imagesTr").is_dir():
        return _decathlon(src, problems)
    images_dir = next((src / d for d in _IMAGE_DIRS if (src / d).is_dir()), None)
    if images_dir is not None:
        return _plain(src, images_dir, problems)
    if (src / "dataset.json").is_file():
        raise InputFileError(f"{src}: dataset.json but no imagesTr/ folder; {_EXPECTED}")
    if _looks_like_dicom_folder(src):
        return _finish(src, "single", [SourceItem(src.name, src, None, "test")], _NO_DESCRIPTION, problems)
    what = "the folder is empty" if not any(src.iterdir()) else "unknown layout"
    raise InputFileError(f"{src}: {what}; {_EXPECTED}")
