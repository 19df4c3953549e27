"""The training configuration: one frozen :class:`TrainConfig` per run, saved as ``config.json`` in
the run directory and compared field by field when a run is resumed.

Slice filters (``train_slices`` / ``val_slices``) are z ranges such as ``"50-139:3"`` (inclusive,
step 3) or ``"10,12,20-30"``. ``val_slices`` holds slices of the *train* split's cases out for
validation (slice-level hold-out for one-volume data such as MNI152; those slices never train);
without it, validation uses the mixture's ``val`` split.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from samdata.config import Count, Device, Flag, Int, PathText, Positive, Weight, build, config
from samdata.errors import ConfigError
from samdata.prompts.clicks import CORRECTIVE_MODES
from samdata.spec import parse_slices
from training.adapters import parse_adapter
from training.augment import augment_entry
from training.models import BASELINES, DEFAULT_MODEL

CACHE_MODES: tuple[str, ...] = ("off", "memory", "disk")
#: fields a resumed run may change; every other field must equal the saved config
RESUME_MUTABLE: tuple[str, ...] = ("steps", "eval_every", "save_every", "log_every", "device", "bf16", "cache",
                                   "cache_mb", "num_workers", "val_max", "store")


@config
class TrainConfig:
    """Everything that defines a training run (data, model, optimisation, bookkeeping, hardware).

    ``adapter``: spec of :func:`training.adapters.parse_adapter` (stored canonical; a baseline model
    such as ``unet`` always trains ``full`` and needs ``labels``, one output channel each). ``size``: model
    input side (None = the model's own). ``steps``: optimizer steps, each of ``grad_accum``
    micro-batches of ``batch_size`` items per process. ``warmup``: linear warm-up steps before the
    cosine decay to 0. ``iou_loss``: weight of the IoU-head MSE (0 = off). ``eval_every``: steps
    between validations (0 = only at the end; validation also runs before step 1 for the zero-shot
    score). ``val_max``: at most this many validation objects (evenly spaced; 0 = all). ``cache``:
    frozen encoder prefix cache, ``off`` / ``memory`` / ``disk`` (fp16 under the run dir, plus memory),
    ignored when image augmentation is on. ``device``: ``auto`` (CUDA if present), ``cpu``, ``cuda``.
    ``click_rounds``: corrective clicks simulated per training item after its first decode (0 = off;
    :mod:`training.clicks`), each round's loss added; ``click_mode``: where a click goes,
    ``interior`` or ``random`` (:func:`samdata.prompts.corrective_click`); ``click_feed_logits``: feed
    the previous round's low-res logits as mask input (SAM's protocol). Validation stays box-only.
    """

    store: PathText
    mixture: str
    model: str = DEFAULT_MODEL
    checkpoint: PathText | None = None
    adapter: str = "decoder"
    steps: Positive = 300
    batch_size: Positive = 4
    lr: Weight = 1e-4
    weight_decay: Weight = 0.01
    warmup: Count = 0
    grad_accum: Positive = 1
    seed: Count = 0
    size: Annotated[Int, Field(ge=16)] | None = None
    context: bool = False
    augment: tuple[str, ...] = ()
    labels: tuple[str, ...] | None = None
    scheme: str | None = None
    min_area: Count = 10
    train_slices: str | None = None
    val_slices: str | None = None
    snapshot: str | None = None
    iou_loss: Weight = 0.0
    eval_every: Count = 0
    val_max: Count = 64
    save_every: Positive = 100
    log_every: Positive = 10
    device: Device = "auto"
    bf16: bool = True
    cache: Literal[CACHE_MODES] = "memory"  # type: ignore[valid-type]
    cache_mb: Count = 4096
    num_workers: Count = 0
    click_rounds: Count = 0
    click_mode: Literal[CORRECTIVE_MODES] = "interior"  # type: ignore[valid-type]
    click_feed_logits: Flag = True

    def __post_init__(self) -> None:
        if self.click_rounds and self.model in BASELINES:
            raise ConfigError(f"TrainConfig.click_rounds={self.click_rounds}: model {self.model!r} takes no prompt, "
                              "so corrective clicks cannot train it; use click_rounds=0")
        if not self.store or not self.mixture:
            raise ConfigError(f"TrainConfig needs a store and a mixture name; got store={self.store!r}, "
                              f"mixture={self.mixture!r}")
        object.__setattr__(self, "adapter", parse_adapter(self.adapter).to_spec())
        if self.model in BASELINES:  # a U-Net has no frozen part: every weight trains ("decoder" is the default)
            if self.adapter not in ("decoder", "full"):
                raise ConfigError(f"model {self.model!r} takes no adapter {self.adapter!r}: it trains from scratch "
                                  "with every weight (adapter 'full')")
            object.__setattr__(self, "adapter", "full")
            if not self.labels:
                raise ConfigError(f"model {self.model!r} segments named labels without a prompt: give labels "
                                  "(e.g. --labels white_matter), one output channel each")
        for name in self.augment:
            augment_entry(name)
        for key in ("train_slices", "val_slices"):
            if getattr(self, key) is not None:
                parse_slices(getattr(self, key))

    @property
    def trains_images(self) -> bool:
        """Whether image augmentation is on (the encoder input then varies: no prefix cache)."""
        return bool(self.augment)

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict of every field."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "config") -> TrainConfig:
        """Rebuild from :meth:`to_json` output; unknown keys raise ConfigError naming ``where``."""
        return build(cls, data, where)

    @classmethod
    def read(cls, path: Path | str) -> TrainConfig:
        """Read a run directory's ``config.json``."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"cannot read training config {str(path)!r}: {err}") from err
        return cls.from_json(data, str(path))

    def with_values(self, values: dict[str, Any]) -> TrainConfig:
        """A copy with some fields replaced (validated again)."""
        return dataclasses.replace(self, **values)


def check_resumable(saved: TrainConfig, new: TrainConfig, where: str) -> None:
    """Raise ConfigError if ``new`` changes a field that a resumed run must keep (see RESUME_MUTABLE)."""
    changed = [f"{f.name}: run {getattr(saved, f.name)!r} vs now {getattr(new, f.name)!r}"
               for f in dataclasses.fields(TrainConfig)
               if f.name not in RESUME_MUTABLE and getattr(saved, f.name) != getattr(new, f.name)]
    if changed:
        first = [c for c in changed if c.split(":")[0] in ("model", "adapter", "checkpoint")]
        what = "another model or adapter" if first else "another configuration"
        raise ConfigError(f"run directory {where!r} holds a run of {what}; cannot resume it with "
                          f"{'; '.join(changed)}. Resume with the same settings or choose a new --out")
