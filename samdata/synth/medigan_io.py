"""medigan model packages: run one from a local folder or zip (export is :mod:`samdata.synth.medigan_export`).

This module does file I/O although the rest of ``samdata.synth`` takes arrays: a medigan model *is* a
folder of files that medigan imports from the current directory. A package is code that runs on import, so
it is loaded only from the path the user names, never from the web: it is unpacked where medigan's
"already unpacked" check looks, so medigan never fetches. :class:`MediganModel` changes the working
directory and ``sys.path`` while open (process-wide; not thread-safe). medigan imports ``pkg_resources``:
setuptools must be < 81.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from samdata.errors import CaseNotFoundError, ConfigError, InputFileError
from samdata.extras import require

METADATA_FILE = "metadata.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy")
_ROLE = re.compile(r"^(?P<key>.*?)[_-]?(?P<role>img|image|mask|label|seg)$", re.IGNORECASE)
PUT_IT_THERE = (
    "a medigan model package: a folder (or .zip) with __init__.py (defining the generate "
    "function), the weights file <model_name><extension> and metadata.json (medigan's "
    "config entry; or pass --config FILE)"
)


@dataclass(frozen=True)
class GeneratedPair:
    """One medigan output: ``image`` as written (any size, grey or RGB), ``mask`` (H, W) uint8 index map
    (0 background, 1..K labels) or None for image-only models, and the file it came from."""

    image: np.ndarray
    mask: np.ndarray | None
    name: str


# ----------------------------------------------------------------------------------- metadata
def _read_json(text: str, where: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputFileError(f"{where} is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise InputFileError(f"{where} holds {type(data).__name__}; expected a medigan config object")
    return data


def _package_metadata(package: Path) -> tuple[dict[str, Any], str] | None:
    """metadata.json from a package folder or zip (top level or one folder down), with where it was."""
    if package.is_dir():
        for path in [package / METADATA_FILE, *sorted(package.glob(f"*/{METADATA_FILE}"))]:
            if path.is_file():
                return _read_json(path.read_text(), str(path)), str(path)
        return None
    with zipfile.ZipFile(package) as zf:
        names = sorted((n for n in zf.namelist() if Path(n).name == METADATA_FILE), key=lambda n: n.count("/"))
        if names:
            return _read_json(zf.read(names[0]).decode(), f"{package}!{names[0]}"), f"{package}!{names[0]}"
    return None


def resolve_metadata(model_id: str, package: Path, config: Path | None) -> dict[str, Any]:
    """The config entry of ``model_id`` from ``config`` or the package's metadata.json; errors say what to put where."""
    if config is not None:
        if not Path(config).is_file():
            raise CaseNotFoundError(f"medigan config file {str(config)!r} does not exist")
        found: tuple[dict[str, Any], str] | None = (_read_json(Path(config).read_text(), str(config)), str(config))
    else:
        found = _package_metadata(package)
    if found is None:
        raise CaseNotFoundError(
            f"no {METADATA_FILE} in medigan package {str(package)!r} and no --config given; "
            f"put medigan's config entry for {model_id!r} (its execution/selection/description "
            f"object from medigan's global.json) in {package}/{METADATA_FILE} "
            "or pass --config FILE"
        )
    data, where = found
    if model_id in data:
        return data[model_id]
    if "execution" in data:
        return data
    raise ConfigError(f"{where} describes model(s) {sorted(data)[:5]}, not {model_id!r}; check --medigan MODEL_ID")


# ----------------------------------------------------------------------------------- outputs
def _decode_mask(arr: np.ndarray) -> np.ndarray:
    """A mask file's pixels → (H, W) uint8 index map: {0,1}/{0,255}/soft → 0/1, small integers kept."""
    a = np.asarray(arr)
    if a.ndim == 3:
        a = a[..., :3].max(axis=-1) if a.shape[-1] in (3, 4) else a[..., 0]
    a = np.asarray(a, dtype=np.float64)
    top = float(a.max()) if a.size else 0.0
    if top <= 1.0:
        return (a > 0.5).astype(np.uint8)
    if top <= 16 and np.array_equal(a, np.round(a)):
        return a.astype(np.uint8)
    return (a > 127.5 if top > 16 else a > top / 2).astype(np.uint8)


def _load_pixels(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False)
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB") if img.mode in ("P", "CMYK", "YCbCr") else img)


def _natural(text: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def read_outputs(folder: Path) -> list[GeneratedPair]:
    """Pair the files a medigan model wrote: ``<key>_img.*`` / ``<key>_mask.*`` (also image/label/seg);
    a file without a role suffix is an image; masks without an image are ignored."""
    images: dict[str, Path] = {}
    masks: dict[str, Path] = {}
    for path in sorted(Path(folder).rglob("*")):
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        found = _ROLE.match(path.stem)
        key = found.group("key") if found else path.stem
        role = found.group("role").lower() if found else "img"
        (masks if role in ("mask", "label", "seg") else images)[str(path.parent / key)] = path
    pairs = []
    for key in sorted(images, key=_natural):
        mask = masks.get(key)
        decoded = None if mask is None else _decode_mask(_load_pixels(mask))
        pairs.append(GeneratedPair(_load_pixels(images[key]), decoded, images[key].name))
    return pairs


def _returned_pairs(result: Any) -> list[GeneratedPair]:
    """Pairs from a generate() return value: a list of arrays or of (image, mask) tuples."""
    pairs = []
    for k, item in enumerate(result or []):
        if isinstance(item, tuple | list) and len(item) == 2:
            pairs.append(GeneratedPair(np.asarray(item[0]), _decode_mask(np.asarray(item[1])), f"returned-{k}"))
        else:
            pairs.append(GeneratedPair(np.asarray(item), None, f"returned-{k}"))
    return pairs


# ----------------------------------------------------------------------------------- loading
def _package_root(folder: Path) -> Path:
    """The folder holding ``__init__.py``: ``folder`` itself, or its only sub-folder that has one
    (an unzipped medigan archive keeps the package one level down)."""
    if (folder / "__init__.py").is_file():
        return folder
    inner = [p for p in sorted(folder.iterdir()) if (p / "__init__.py").is_file()]
    if len(inner) != 1:
        raise CaseNotFoundError(
            f"medigan package folder {str(folder)!r} has no __init__.py (nor one sub-folder "
            f"with it); expected {PUT_IT_THERE}"
        )
    return inner[0]


class MediganModel:
    """A medigan model opened from a local package through medigan's ``Generators`` (a context manager)."""

    def __init__(
        self, model_id: str, package: Path | str, *, config: Path | str | None = None, workdir: Path | str | None = None
    ) -> None:
        self.model_id, self.package = model_id, Path(package)
        if not self.package.exists():
            raise CaseNotFoundError(
                f"medigan package {str(self.package)!r} does not exist; put {PUT_IT_THERE} "
                "there (samdata never downloads medigan models)"
            )
        if self.package.is_file() and not zipfile.is_zipfile(self.package):
            raise InputFileError(
                f"medigan package {str(self.package)!r} is a file but not a zip; expected {PUT_IT_THERE}"
            )
        self.entry = resolve_metadata(model_id, self.package, Path(config) if config is not None else None)
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="samdata-medigan-"))
        self._saved: tuple[str, list[str], dict[str, Any]] | None = None
        self.generators: Any = None

    @property
    def package_name(self) -> str:
        """The package folder name medigan imports (``execution.package_name``)."""
        return str(self.entry.get("execution", {}).get("package_name") or self.model_id)

    def _unpack(self) -> None:
        """Lay the package out as ``<workdir>/models/<id>/...`` the way medigan unpacks its zips."""
        models = self.workdir / "models"
        target = models / self.model_id
        if target.exists():
            shutil.rmtree(target)
        models.mkdir(parents=True, exist_ok=True)
        (models / "__init__.py").touch()
        if self.package.is_dir():
            shutil.copytree(_package_root(self.package), target / self.package_name)
        else:
            with zipfile.ZipFile(self.package) as zf:
                zf.extractall(target)
        ex = self.entry["execution"]
        weights = f"{ex['model_name']}{ex['extension']}"
        if not ((target / self.package_name / weights).is_file() or (target / weights).is_file()):
            raise CaseNotFoundError(
                f"medigan package {str(self.package)!r} has no weights file {weights!r} "
                f"(expected {self.package_name}/{weights} or {weights} inside it); "
                f"put {PUT_IT_THERE}"
            )

    def __enter__(self) -> MediganModel:
        """Unpack, switch to the workdir and let medigan import the package (its code runs now)."""
        with warnings.catch_warnings():  # medigan imports the deprecated pkg_resources (hence setuptools < 81)
            warnings.simplefilter("ignore", UserWarning)
            Generators = require("medigan", "medigan", "loading a medigan package").Generators
            ConfigManager = require("medigan.config_manager", "medigan", "loading a medigan package").ConfigManager

        if not isinstance(self.entry.get("execution"), dict):
            raise ConfigError(
                f"medigan metadata for {self.model_id!r} has no 'execution' object; expected "
                "medigan's config entry (package_name, model_name, extension, generate_method, ...)"
            )
        entry = json.loads(json.dumps(self.entry))
        entry["execution"]["package_link"] = str(self.package.resolve())  # local only: never a URL
        entry.setdefault("selection", {})
        self._unpack()
        self._saved = (
            os.getcwd(),
            list(sys.path),
            {k: sys.modules.pop(k) for k in list(sys.modules) if k == "models" or k.startswith("models.")},
        )
        os.chdir(self.workdir)
        sys.path.insert(0, str(self.workdir))
        try:
            manager = ConfigManager(config_dict={self.model_id: entry})
            if not manager.is_model_metadata_valid(self.model_id, {self.model_id: entry}, is_local_model=True):
                raise ConfigError(
                    f"medigan rejects the metadata of {self.model_id!r} from {self.package}: it needs "
                    "execution.{package_name, package_link, model_name, extension, dependencies, "
                    "generate_method.args.base}; see medigan's config/template.json"
                )
            self.generators = Generators(config_manager=manager)
            self.generators.get_model_executor(self.model_id)
        except Exception as err:
            self.__exit__(None, None, None)
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(
                f"medigan could not load model {self.model_id!r} from {str(self.package)!r}: "
                f"{type(err).__name__}: {err}"
            ) from err
        return self

    def generate(self, count: int, out_dir: Path | str, custom: dict[str, Any] | None = None) -> list[GeneratedPair]:
        """Run the model's generate() for ``count`` samples into ``out_dir`` and read the pairs back."""
        if self.generators is None:
            raise ConfigError("MediganModel.generate called outside its `with` block")
        out = Path(out_dir).resolve()
        out.mkdir(parents=True, exist_ok=True)
        try:
            result = self.generators.generate(
                model_id=self.model_id,
                num_samples=int(count),
                output_path=str(out) + "/",
                save_images=True,
                batch_size=int(count) + 1,
                **(custom or {}),
            )
        except Exception as err:
            raise ConfigError(
                f"medigan model {self.model_id!r} failed to generate {count} samples: {type(err).__name__}: {err}"
            ) from err
        pairs = read_outputs(out)
        return pairs if pairs else _returned_pairs(result)

    def __exit__(self, *exc: object) -> None:
        """Restore the working directory, sys.path and any ``models`` modules; drop our workdir."""
        if self._saved is None:
            return
        cwd, path, modules = self._saved
        self._saved, self.generators = None, None
        for key in [k for k in sys.modules if k == "models" or k.startswith("models.")]:
            del sys.modules[key]
        sys.modules.update(modules)
        sys.path[:] = path
        os.chdir(cwd)
        if self._own_workdir:
            with contextlib.suppress(OSError):
                shutil.rmtree(self.workdir)
