"""The configurations of evaluation (:class:`EvalConfig`), comparison (:class:`CompareConfig`) and prompt mode
auto (:class:`AutoConfig`), apart from the torch code that uses them, so that the CLI and the flows read them
cheaply; field types shared by them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from samdata.config import Count, Device, Int, PathText, config
from samdata.errors import ConfigError

if TYPE_CHECKING:
    from samdata.metrics import MetricConfig

Tolerance = Annotated[float, Field(gt=0, description="Normalised surface Dice tolerance in mm")]
BatchSlices = Annotated[
    int, Field(ge=1, description="Slices per encoder batch (more: more memory, no faster on a CPU)")
]
Clicks = Annotated[
    tuple[int, ...], Field(description="Corrective-click counts of the interactive protocol, e.g. 0,1,3,5")
]
FeedLogits = Annotated[bool, Field(description="With clicks: feed the previous logits back as mask prompt")]
Volumes = Annotated[
    bool,
    Field(
        description="Also score each case in 3D on its source grid (Dice, NSD, HD95 per label) and write "
        "nnU-Net's summary.json"
    ),
]
Tta = Annotated[
    str,
    Field(
        description="Test-time mirroring, probabilities averaged: none; lr (as is + left-right, "
        "2 passes); flip (all 4 mirror views, nnU-Net's default, 4 passes)"
    ),
]


@config
class EvalConfig:
    """NSD tolerance (mm), probability threshold, slices per encoder batch, objects per figure end, click
    counts of the interactive protocol and whether it feeds back logits (``feed_logits``), and
    ``prompt_seed``: the seed of the prompts of train-split items (``object_rng(seed, case, z, label)``,
    as a run's held-out ``val_slices`` validation draws them; pass the run's seed), and ``tta``: the
    test-time mirroring of every prediction (:mod:`training.tta`: none, lr or flip), and ``volumes``: whether to
    add the 3D scores per case (:mod:`training.volume_scores`; the same NSD tolerance)."""

    tolerance_mm: Tolerance = 2.0
    threshold: float = 0.5
    batch_slices: BatchSlices = 2
    figure_objects: Annotated[Int, Field(ge=1, description="Best and worst objects shown in the figure")] = 3
    clicks: Clicks = ()
    feed_logits: FeedLogits = True
    prompt_seed: int = 0
    tta: Tta = "none"
    volumes: Volumes = True

    def __post_init__(self) -> None:
        from samdata.metrics import MetricConfig  # numpy, torch: not at import, so the CLI reads this class cheaply
        from training.tta import tta_views

        MetricConfig(self.tolerance_mm, self.threshold)
        tta_views(self.tta)
        object.__setattr__(self, "clicks", check_clicks(self.clicks))

    @property
    def metric(self) -> MetricConfig:
        """The metric settings."""
        from samdata.metrics import MetricConfig

        return MetricConfig(self.tolerance_mm, self.threshold)


def check_clicks(clicks: tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """Sorted distinct click counts, each an integer >= 0 (ConfigError otherwise)."""
    values = tuple(clicks)
    import numpy as np

    if any(isinstance(c, bool) or not isinstance(c, int | np.integer) or c < 0 for c in values):
        raise ConfigError(f"click counts {values!r}; expected integers >= 0 such as 0,1,3,5")
    return tuple(sorted({int(c) for c in values}))


@config
class CompareConfig:
    """What to compare on: ``split`` (``slices``, a z spec, as :func:`open_split` takes them), click counts of the
    interactive protocol (``()`` skips it), NSD tolerance, slices per encoder batch, torch device (``auto``: CUDA if
    present), whether to add the first SAM run's zero-shot base, the prompt and click seed (None: the first run's
    seed), ``feed_logits`` (None: off for LiteMedSAM, on otherwise), slices shown in ``errors.png``, ``tta``,
    the test-time mirroring of every prediction (:mod:`training.tta`), and ``volumes``: 3D scores per case."""

    split: Annotated[
        Literal["test", "val", "train"],
        Field(
            description="Mixture split: test, val, or train (held-out slices: --slices or the first run's val_slices)"
        ),
    ] = "test"
    slices: Annotated[str | None, Field(description="Only these slices, a z spec like 51-135:6 or 4,8,10-12")] = None
    clicks: Clicks = (0, 1, 3, 5)
    tolerance_mm: Tolerance = 2.0
    batch_slices: BatchSlices = 2
    device: Device = "cpu"
    zero_shot: Annotated[bool, Field(description="Add the first SAM run's base model without adapters")] = True
    prompt_seed: Annotated[Int, Field(ge=0)] | None = None
    feed_logits: FeedLogits | None = None
    figure_slices: Annotated[Int, Field(ge=1)] = 3
    tta: Tta = "none"
    volumes: Volumes = True

    def __post_init__(self) -> None:
        if self.slices is not None:
            from samdata.spec import parse_slices

            parse_slices(self.slices)
        object.__setattr__(self, "clicks", check_clicks(self.clicks))
        self.eval_config(0)

    def eval_config(self, seed: int, feed_logits: bool = True) -> EvalConfig:
        """The evaluation settings with prompt (train split) and click seed ``seed``."""
        return EvalConfig(
            tolerance_mm=self.tolerance_mm,
            batch_slices=self.batch_slices,
            clicks=self.clicks,
            feed_logits=feed_logits,
            prompt_seed=seed,
            tta=self.tta,
            volumes=self.volumes,
        )


@config
class AutoConfig:
    """Prompt mode auto (:mod:`training.auto`): how a prompt-free proposer's prediction becomes SAM's boxes, and
    which proposer run (default: the one the SAM run recorded)."""

    threshold: Annotated[float, Field(gt=0, lt=1, description="Probability above which a pixel is foreground")] = 0.5
    min_area: Annotated[Count, Field(description="Proposer components smaller than this (pixels) give no box")] = 10
    min_confidence: Annotated[
        float, Field(ge=0, le=1, description="Proposer components of lower mean probability give no box")
    ] = 0.6
    max_gap: Annotated[Count, Field(description="Slices without a box bridged inside one 3D run")] = 2
    boxes: Annotated[
        Literal["proposer", "propagate"],
        Field(
            description="proposer: every slice's own proposer box, SAM's neighbour box in gaps; propagate: the "
            "seed slice's box only, then SAM's own (MedSAM's 3D propagation)"
        ),
    ] = "proposer"
    proposer: Annotated[
        PathText | None,
        Field(description="A prompt-free run folder to propose the boxes (default: the one the SAM run recorded)"),
    ] = None
