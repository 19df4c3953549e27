"""The CLI's shared options and arguments, declared once for every command (``samdata/cli/*``).

An option that sets a config field is built from that field by :func:`config_option` (its default, help
and limits), so the CLI never restates a config. Defaults that commands share live here too
(``DEFAULT_DEVICE``), so that two commands never disagree on them; a command imports its options from this
module, never from another command.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

#: ``default`` of :func:`config_option` when the option takes the config field's own default
FROM_CONFIG: Any = object()


def _metadata(info: Any) -> tuple[str | None, list[Any]]:
    """A pydantic field's description and constraints, also those inside an optional type
    (``Optional[Annotated[int, Field(ge=1, description=...)]]``)."""
    description, metadata = info.description, list(info.metadata)
    for arg in typing.get_args(info.annotation):
        for extra in getattr(arg, "__metadata__", ()):
            metadata += getattr(extra, "metadata", [extra])
            description = description or getattr(extra, "description", None)
    return description, metadata


def _limits(metadata: list[Any]) -> dict[str, int | float]:
    """``min``/``max`` for Typer from ``ge``/``le`` constraints; an open bound (``gt``/``lt``) has no Typer
    equivalent and is left to the config's validation."""
    limits: dict[str, int | float] = {}
    for item in metadata:
        for key, bound in (("ge", "min"), ("le", "max")):
            if getattr(item, key, None) is not None:
                limits[bound] = getattr(item, key)
    return limits


def _text(value: Any) -> Any:
    """A config default as the CLI spells it: a tuple as comma-separated items (``0,1,3,5``)."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else value


def config_option(
    source: type | tuple[type, ...], name: str, *decls: str, default: Any = FROM_CONFIG, note: str = "", **kwargs: Any
) -> Any:
    """A Typer option (``param: T = config_option(...)``) that sets field ``name`` of config class ``source``:
    its default (a tuple as ``a,b,c``), its help (the field's description, then ``note``) and its ge/le limits
    as ``min``/``max``; ``decls`` and ``kwargs`` go to ``typer.Option``. Pass ``default`` where the option's
    own default must differ, e.g. None so that an option not given leaves the value to a config file or to the
    kind of run (the config's default is then shown in the help, unless ``show_default=False``). ``source`` may
    be several classes that all have field ``name`` (their defaults are all shown)."""
    classes = source if isinstance(source, tuple) else (source,)
    infos = [cls.__pydantic_fields__[name] for cls in classes]  # type: ignore[attr-defined]
    described = [_metadata(i) for i in infos]
    text = next((d for d, _ in described if d), None)
    assert text, f"{classes[0].__name__}.{name} has no description to show as help"
    text += f"; {note}" if note else ""
    defaults = [_text(i.get_default(call_default_factory=True)) for i in infos]
    if default is FROM_CONFIG:
        assert len(set(map(repr, defaults))) == 1, f"{name}: the classes' defaults differ; pass default="
        default = ... if infos[0].is_required() else defaults[0]
    elif kwargs.get("show_default", True) and not all(
        i.is_required() or d in (None, "") for i, d in zip(infos, defaults)
    ):
        shown = [
            f"{d}" if len(set(map(repr, defaults))) == 1 else f"{cls.__name__} {d}" for cls, d in zip(classes, defaults)
        ]
        text += f" (default: {', '.join(dict.fromkeys(shown))})"
    return typer.Option(default, *decls, help=text + ".", **{**_limits(described[0][1]), **kwargs})


#: ``--device`` of every command that runs a model: CUDA when present, else the CPU (a config's own default,
#: e.g. ``CompareConfig.device`` cpu, serves library callers; the CLI uses the machine it runs on)
DEFAULT_DEVICE = "auto"


def feed_logits_option(config: type) -> Any:
    """``--feed-logits/--no-feed-logits`` of ``config``'s field ``feed_logits``; None when not given, so that
    evaluate and compare decide by what the run's model learnt (``training.compare.default_feed``)."""
    return config_option(
        config,
        "feed_logits",
        "--feed-logits/--no-feed-logits",
        default=None,
        show_default=False,
        note="default: on, but off for litemedsam unless the run trained with fed-back click rounds",
    )


StoreArg = Annotated[str, typer.Argument(help="Store folder or s3://bucket/prefix.")]
StoreOpt = Annotated[str, typer.Option(help="Store folder or s3://bucket/prefix.")]
RunArg = Annotated[Path, typer.Argument(help="Run directory written by `samdata train`.")]
RunStoreOpt = Annotated[
    Optional[str], typer.Option(help="Store folder or s3://bucket/prefix (default: the store the run trained on).")
]
DeviceOpt = Annotated[str, typer.Option(help="Torch device for the model: auto (CUDA if present), cpu, cuda, cuda:N.")]
ResumeOpt = Annotated[bool, typer.Option(help="Continue the run in --out from its last checkpoint.")]
WorkersOpt = Annotated[
    Optional[int],
    typer.Option(min=1, help="Local Dask worker processes for the parallel tasks (1 = in the flow's process)."),
]
AddressOpt = Annotated[Optional[str], typer.Option(help="Address of an existing Dask scheduler, tcp://host:8786.")]


SegFormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        help="Output file format: nifti (.nii.gz, any viewer), nrrd (.seg.nrrd: a 3D Slicer segmentation with "
        "named, coloured segments) or dicom-seg (.dcm: DICOM-SEG referencing the source series, for OHIF and "
        "PACS; the image must be a DICOM folder).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


AutoOpt = Annotated[
    bool,
    typer.Option(
        "--auto",
        help="Prompt mode auto: no prompt from you or the store; the run's proposer (a U-Net trained beside it, "
        "`samdata train --proposer unet`) proposes each slice's boxes and the SAM segments from them.",
    ),
]
ProposerOpt = Annotated[
    Optional[Path],
    typer.Option(
        help="With --auto: a prompt-free run folder (--model unet) to propose the boxes instead of "
        "the one the SAM run recorded."
    ),
]


def auto_config(auto: bool, proposer: Path | None, boxes: str) -> Any:
    """The AutoConfig of the ``--auto`` options, or None without ``--auto`` (ConfigError if ``--proposer`` is
    given without it)."""
    from samdata.errors import ConfigError
    from training.eval_config import AutoConfig

    if not auto:
        if proposer is not None:
            raise ConfigError("--proposer names the proposer of prompt mode auto; add --auto")
        return None
    return AutoConfig(proposer=None if proposer is None else str(proposer), boxes=boxes)
