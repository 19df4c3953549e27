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

from samdata.config import ClickMode, Count, Device, Flag, Int, PathText, Positive, Weight, build, config
from samdata.errors import ConfigError
from samdata.spec import parse_slices

#: the model a run fine-tunes unless it names another (:data:`training.models.MODELS`)
DEFAULT_MODEL = "litemedsam"

CACHE_MODES: tuple[str, ...] = ("off", "memory", "disk")
#: fields a resumed run may change; every other field must equal the saved config
RESUME_MUTABLE: tuple[str, ...] = (
    "steps",
    "eval_every",
    "save_every",
    "log_every",
    "device",
    "bf16",
    "cache",
    "cache_mb",
    "num_workers",
    "val_max",
    "store",
    "proposer",
)


@config
class TrainConfig:
    """Everything that defines a training run (data, model, optimisation, bookkeeping, hardware); each field's
    description says what it does (``samdata train --help`` shows them).

    ``adapter`` is stored canonical (:func:`training.adapters.parse_adapter`); a baseline model such as ``unet``
    always trains ``full`` and needs ``labels``, one output channel each. Validation also runs before step 1
    for the zero-shot score and stays box-only under click rounds; ``cache`` is ignored when image
    augmentation is on (:mod:`training.clicks` for the click rounds).
    """

    store: Annotated[PathText, Field(description="Store folder or s3://bucket/prefix")]
    mixture: Annotated[str, Field(description="Mixture name (samdata mixture)")]
    model: Annotated[
        str,
        Field(
            description="litemedsam, sam_vit_b/l/h, tiny, or unet (the prompt-free baseline: "
            "needs --labels, trains every weight; use --lr 1e-3)"
        ),
    ] = DEFAULT_MODEL
    checkpoint: Annotated[PathText | None, Field(description="Base weights (.pth); required for sam_vit_*")] = None
    adapter: Annotated[str, Field(description="Adapter spec, e.g. decoder, lora:r=8,blocks=all+decoder")] = "decoder"
    steps: Annotated[Positive, Field(description="Optimizer steps")] = 300
    batch_size: Annotated[Positive, Field(description="Items per micro-batch per process")] = 4
    lr: Annotated[Weight, Field(description="AdamW learning rate")] = 1e-4
    weight_decay: Annotated[Weight, Field(description="AdamW weight decay")] = 0.01
    warmup: Annotated[Count, Field(description="Linear warm-up steps before the cosine decay to 0")] = 0
    grad_accum: Annotated[Positive, Field(description="Micro-batches per step")] = 1
    seed: Annotated[Count, Field(description="Seed of items, prompts, augmentation and adapters")] = 0
    size: Annotated[Int, Field(ge=16, description="Model input side (default: the model's own)")] | None = None
    context: Annotated[bool, Field(description="Slices z-1,z,z+1 as channels")] = False
    augment: Annotated[
        tuple[str, ...], Field(description="Augmentations, e.g. flip,affine (turns the prefix cache off)")
    ] = ()
    labels: Annotated[
        tuple[str, ...] | None, Field(description="Label names to train on, comma-separated (default: the mixture's)")
    ] = None
    scheme: Annotated[
        str | None, Field(description="Training prompt scheme (default: the prompt set's, else box:jitter=5)")
    ] = None
    min_area: Annotated[Count, Field(description="Skip objects smaller than this (pixels)")] = 10
    train_slices: Annotated[str | None, Field(description="Train only on these z, e.g. 50-139:3")] = None
    val_slices: Annotated[
        str | None,
        Field(
            description="Hold these z of the train cases out for validation, e.g. 51-135:6 (default: the mixture's val "
            "split)"
        ),
    ] = None
    snapshot: Annotated[str | None, Field(description="Store snapshot id (default: the mixture's)")] = None
    iou_loss: Annotated[Weight, Field(description="Weight of the IoU-head MSE (0: off)")] = 0.0
    eval_every: Annotated[Count, Field(description="Validate every N steps (0: only at the end)")] = 0
    val_max: Annotated[Count, Field(description="At most N validation objects, evenly spaced (0: all)")] = 64
    save_every: Annotated[Positive, Field(description="Checkpoint every N steps")] = 100
    log_every: Annotated[Positive, Field(description="Log metrics every N steps")] = 10
    device: Device = "auto"
    bf16: Annotated[bool, Field(description="bf16 autocast on CUDA")] = True
    cache: Annotated[
        Literal[CACHE_MODES],
        Field(  # type: ignore[valid-type]
            description="Frozen-prefix cache: memory, disk or off; disk keeps fp16 under the run dir, plus memory"
        ),
    ] = "memory"
    cache_mb: Count = 4096
    num_workers: Annotated[Count, Field(description="DataLoader worker processes")] = 0
    click_rounds: Annotated[
        Count,
        Field(
            description="Corrective clicks simulated per item after its first decode, each decoded again and its loss "
            "added"
        ),
    ] = 0
    click_mode: Annotated[
        ClickMode, Field(description="Where a simulated click goes: interior (the deepest error pixel) or random")
    ] = "interior"
    click_feed_logits: Annotated[
        Flag, Field(description="Feed the previous round's logits as mask input during click rounds")
    ] = True
    proposer: Annotated[
        str | None,
        Field(
            description="Also train a prompt-free proposer for --auto prediction into RUN/proposer, e.g. unet or "
            "unet:steps=1200,lr=0.001,augment=flip (training.proposer)"
        ),
    ] = None

    def __post_init__(self) -> None:
        from training.adapters import parse_adapter  # torch: not at import, so the CLI reads this class cheaply
        from training.augment import augment_entry
        from training.models import BASELINES

        if self.click_rounds and self.model in BASELINES:
            raise ConfigError(
                f"TrainConfig.click_rounds={self.click_rounds}: model {self.model!r} takes no prompt, "
                "so corrective clicks cannot train it; use click_rounds=0"
            )
        if not self.store or not self.mixture:
            raise ConfigError(
                f"TrainConfig needs a store and a mixture name; got store={self.store!r}, mixture={self.mixture!r}"
            )
        object.__setattr__(self, "adapter", parse_adapter(self.adapter).to_spec())
        if self.proposer is not None:
            from training.proposer import canonical_proposer

            if self.model in BASELINES:
                raise ConfigError(
                    f"TrainConfig.proposer={self.proposer!r}: model {self.model!r} takes no prompt and needs no "
                    "proposer; give it to a SAM run"
                )
            object.__setattr__(self, "proposer", canonical_proposer(self.proposer))
        if self.model in BASELINES:  # a U-Net has no frozen part: every weight trains ("decoder" is the default)
            if self.adapter not in ("decoder", "full"):
                raise ConfigError(
                    f"model {self.model!r} takes no adapter {self.adapter!r}: it trains from scratch "
                    "with every weight (adapter 'full')"
                )
            object.__setattr__(self, "adapter", "full")
            if not self.labels:
                raise ConfigError(
                    f"model {self.model!r} segments named labels without a prompt: give labels "
                    "(e.g. --labels white_matter), one output channel each"
                )
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
    changed = [
        f"{f.name}: run {getattr(saved, f.name)!r} vs now {getattr(new, f.name)!r}"
        for f in dataclasses.fields(TrainConfig)
        if f.name not in RESUME_MUTABLE and getattr(saved, f.name) != getattr(new, f.name)
    ]
    if changed:
        first = [c for c in changed if c.split(":")[0] in ("model", "adapter", "checkpoint")]
        what = "another model or adapter" if first else "another configuration"
        raise ConfigError(
            f"run directory {where!r} holds a run of {what}; cannot resume it with "
            f"{'; '.join(changed)}. Resume with the same settings or choose a new --out"
        )
