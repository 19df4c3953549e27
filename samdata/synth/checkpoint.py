"""A trained generator on disk: the folder ``GEN`` that ``samdata synth train --out GEN`` writes.

``generator.json`` (:class:`GeneratorInfo`: kind, network shape, labels, grid, the snapshot and slices it
learnt from, config), ``generator.pt`` (the EMA generator's weights; its SHA-256 is the checkpoint hash in
every synthetic case's provenance), ``checkpoints/step-NNNNNN.pt`` (the full state for ``--resume``),
``samples/`` and ``log.jsonl``. Files are written under a temporary name and renamed, so a killed run never
leaves a half-written checkpoint under the real name.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from samdata.errors import CaseNotFoundError, ConfigError, InputFileError
from samdata.files import atomic_write, file_sha256, write_json
from samdata.synth.networks import NetConfig, PairedGenerator, build_generator

if TYPE_CHECKING:
    from samdata.synth.pairs import RealPairs

INFO_FILE = "generator.json"
GENERATOR_FILE = "generator.pt"
CHECKPOINTS = "checkpoints"
SAMPLES = "samples"
LOG_FILE = "log.jsonl"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._]{0,63}$")


def check_generator_id(name: str) -> str:
    """Return ``name`` if it can be part of a case id (letters, digits, '.', '_'; no '-'), else ConfigError."""
    if not isinstance(name, str) or not _ID.match(name):
        raise ConfigError(
            f"generator id {name!r} is invalid: expected 1-64 letters, digits, '.' or '_' "
            "starting with a letter or digit (it becomes part of case ids syn-<id>-<seed>-<k>)"
        )
    return name


@dataclass(frozen=True)
class GeneratorInfo:
    """What a trained generator makes and what it learnt from (``GEN/generator.json``)."""

    generator_id: str
    net: NetConfig | None
    label_values: tuple[int, ...]
    label_names: tuple[str, ...]
    grid: tuple[int, int]
    spacing: tuple[float, float, float]
    modality: str
    source: str
    snapshot_id: str
    train_keys: tuple[tuple[str, int], ...]
    gan: dict[str, Any]
    steps_done: int = 0
    kind: str = "fastgan"

    @classmethod
    def of(
        cls,
        pairs: RealPairs,
        gan: dict[str, Any],
        *,
        generator_id: str,
        net: NetConfig | None,
        steps_done: int,
        kind: str = "fastgan",
    ) -> GeneratorInfo:
        """The info of a generator trained on ``pairs`` with the config ``gan`` (its JSON form)."""
        return cls(
            generator_id=generator_id,
            net=net,
            label_values=pairs.label_values,
            label_names=pairs.label_names,
            grid=pairs.grid,
            spacing=pairs.spacing,
            modality=pairs.modality,
            source=pairs.source,
            snapshot_id=pairs.snapshot_id,
            train_keys=pairs.keys,
            gan=gan,
            steps_done=steps_done,
            kind=kind,
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> GeneratorInfo:
        """Rebuild from :meth:`to_json` output; ConfigError naming ``where`` if fields are missing."""
        try:
            return cls(
                generator_id=str(data["generator_id"]),
                net=NetConfig(**data["net"]) if data.get("net") else None,
                label_values=tuple(int(v) for v in data["label_values"]),
                label_names=tuple(str(v) for v in data["label_names"]),
                grid=(int(data["grid"][0]), int(data["grid"][1])),
                spacing=tuple(float(v) for v in data["spacing"]),  # type: ignore[arg-type]
                modality=str(data["modality"]),
                source=str(data["source"]),
                snapshot_id=str(data["snapshot_id"]),
                train_keys=tuple((str(c), int(z)) for c, z in data["train_keys"]),
                gan=dict(data["gan"]),
                steps_done=int(data.get("steps_done", 0)),
                kind=str(data.get("kind", "fastgan")),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"{where} is not a samdata generator description: {err!r}") from err


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` atomically (:func:`samdata.files.atomic_write`)."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_generator(gen_dir: Path, generator: PairedGenerator, info: GeneratorInfo) -> str:
    """Write ``generator.pt`` (weights) and ``generator.json`` (info); returns the checkpoint hash."""
    gen_dir = Path(gen_dir)
    state = {k: v.detach().cpu() for k, v in generator.state_dict().items()}
    atomic_save(state, gen_dir / GENERATOR_FILE)
    write_info(gen_dir, info)
    return file_sha256(gen_dir / GENERATOR_FILE)


def write_info(gen_dir: Path, info: GeneratorInfo) -> None:
    """Write ``generator.json`` atomically."""
    write_json(Path(gen_dir) / INFO_FILE, info.to_json())


def read_info(gen_dir: Path) -> GeneratorInfo:
    """The GeneratorInfo of a generator folder; CaseNotFoundError saying what is missing."""
    path = Path(gen_dir) / INFO_FILE
    if not path.is_file():
        raise CaseNotFoundError(
            f"{str(gen_dir)!r} is not a trained generator: {INFO_FILE} missing "
            "(train one with `samdata synth train STORE --labels ... --out GEN`)"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputFileError(f"cannot read generator description {str(path)!r}: {err}") from err
    return GeneratorInfo.from_json(data, str(path))


def load_generator(gen_dir: Path, device: torch.device | str = "cpu") -> tuple[PairedGenerator, GeneratorInfo, str]:
    """The trained (EMA) noise-to-pair generator in eval mode on ``device``, its info and its checkpoint hash."""
    gen_dir = Path(gen_dir)
    info = read_info(gen_dir)
    if info.net is None:
        raise ConfigError(f"{str(gen_dir)!r} holds a {info.kind} generator, not a noise-to-pair GAN")
    weights = gen_dir / GENERATOR_FILE
    if not weights.is_file():
        raise CaseNotFoundError(
            f"generator folder {str(gen_dir)!r} has {INFO_FILE} but no {GENERATOR_FILE}; "
            "training did not finish (resume it with --resume)"
        )
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises pickle/zip/runtime errors for unreadable files
        raise InputFileError(f"cannot read generator weights {str(weights)!r}: {err}") from err
    generator = build_generator(info.net)
    try:
        generator.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ConfigError(
            f"weights {str(weights)!r} do not fit the network described in {INFO_FILE} ({info.net}): {err}"
        ) from err
    return generator.to(device).eval(), info, file_sha256(weights)


def checkpoint_path(gen_dir: Path, step: int) -> Path:
    """Where the training state after ``step`` goes."""
    return Path(gen_dir) / CHECKPOINTS / f"step-{step:06d}.pt"


def latest_checkpoint(gen_dir: Path) -> Path | None:
    """The newest training-state file of a generator folder, or None."""
    found = sorted((Path(gen_dir) / CHECKPOINTS).glob("step-*.pt"))
    return found[-1] if found else None


def resume_state(
    gen_dir: Path, config: dict[str, Any], resumable: tuple[str, ...], resume: bool
) -> dict[str, Any] | None:
    """The training state to resume from (None for a fresh run): ConfigError when ``gen_dir`` already holds a
    run and ``resume`` is off, or when the saved config differs from ``config`` outside ``resumable`` fields."""
    latest = latest_checkpoint(gen_dir)
    if not resume:
        if latest is not None or (Path(gen_dir) / INFO_FILE).exists():
            raise ConfigError(
                f"generator folder {str(gen_dir)!r} already holds a run; pass --resume to "
                "continue it or choose another --out"
            )
        return None
    if latest is None:
        return None
    state = torch.load(latest, map_location="cpu", weights_only=True)
    saved = json.loads(state["config"])
    changed = [f"{k}: {saved.get(k)!r} → {v!r}" for k, v in config.items() if k not in resumable and saved.get(k) != v]
    if changed:
        raise ConfigError(
            f"cannot resume {str(latest)!r} with another configuration ({'; '.join(changed)}); "
            f"only {', '.join(resumable)} may change"
        )
    return state
