"""The adapter registry and its spec strings (SimAda-style: any design in any blocks, compared cheaply).

A spec is one or more parts joined by ``+``; a part is ``name`` or ``name:key=value,...``::

    lora:r=8,blocks=all          serial:ratio=0.25,blocks=0,1,8-9      parallel:scale=learn
    serial+lora:r=4              decoder                               lora:r=4+decoder
    serial:blocks=8-9+decoder+refine                                   full
    serial:blocks=8-9+decoder+refine+prompt


``blocks`` lists encoder block indices (ints or ``a-b`` ranges, or ``all``, the default) and is the
one option whose value may contain commas. ``decoder`` trains the mask decoder; alone it means
decoder-only fine-tuning (encoder frozen, no adapter). ``full`` (alone) trains every weight of the
image encoder and the mask decoder (full fine-tuning, as MedSAM's trainer does; and the only mode of
a prompt-free baseline such as the U-Net). ``refine`` (options ``width``, default 16, and
``lr_scale``, default 5: its learning rate as a multiple of the run's) adds a small full-resolution CNN
after the mask decoder that corrects its logits from the image (:class:`training.adapters.modules.RefineHead`).
``prompt`` trains SAM's prompt encoder (point, box-corner and not-a-point embeddings, the mask-input
downscaling convolutions, the no-mask embedding; 6,220 weights in LiteMedSAM); it is frozen otherwise,
as in MedSAM. LiteMedSAM's prompt encoder was trained on boxes only, so a run that adds corrective
clicks (``--click-rounds``) needs it to learn what a point means (micro-sam trains it for the same reason).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from samdata.errors import ConfigError, unknown_name
from training.adapters.modules import LoRAQKV, ParallelAdapter, SerialAdapter
from training.models.sam import SamModel


@dataclass(frozen=True)
class AdapterPart:
    """One adapter design placed in some encoder blocks; only its kind's options are used."""

    kind: str
    blocks: tuple[int, ...] | None = None  # None: every block
    ratio: float = 0.25  # serial / parallel: bottleneck width as a fraction of the block width
    scale: float | None = 0.5  # parallel: fixed output scale; None: learnable scalar starting at 1
    r: int = 4  # lora rank
    alpha: float | None = None  # lora: update scaled by alpha / r; None: alpha = r
    width: int = 16  # refine: channels of the head's first level
    lr_scale: float = 5.0  # refine: the head's learning rate as a multiple of the run's

    def to_spec(self) -> str:
        """This part as a canonical spec string (every option of its kind spelt out)."""
        values = {"blocks": "all" if self.blocks is None else ",".join(map(str, self.blocks)),
                  "ratio": f"{self.ratio:g}", "scale": "learn" if self.scale is None else f"{self.scale:g}",
                  "r": str(self.r), "alpha": f"{self.r if self.alpha is None else self.alpha:g}",
                  "width": str(self.width), "lr_scale": f"{self.lr_scale:g}"}
        opts = [f"{k}={values[k]}" for k in ADAPTERS[self.kind].options]
        return self.kind + (":" + ",".join(opts) if opts else "")


@dataclass(frozen=True)
class AdapterConfig:
    """What to train: adapter parts in the encoder, whether the mask decoder trains too, the width of a
    refinement head after the decoder (0: none) with its learning-rate multiple, whether the prompt
    encoder trains."""

    parts: tuple[AdapterPart, ...] = ()
    train_decoder: bool = False
    train_all: bool = False
    refine: int = 0
    refine_lr_scale: float = 5.0
    train_prompt: bool = False

    def to_spec(self) -> str:
        """The canonical spec string; ``parse_adapter(cfg.to_spec()) == cfg``."""
        if self.train_all:
            return "full"
        head = AdapterPart("refine", width=self.refine, lr_scale=self.refine_lr_scale)
        items = [p.to_spec() for p in self.parts] + ([head.to_spec()] if self.refine else [])
        items += ["decoder"] if self.train_decoder else []
        items += ["prompt"] if self.train_prompt else []
        return "+".join(items)


def _attention(block: nn.Module) -> nn.Module:
    """A block's original attention module, under any adapter wrapper."""
    attn = block.attn
    while isinstance(attn, SerialAdapter):
        attn = attn.base
    return attn


def _insert_serial(model: SamModel, block: nn.Module, part: AdapterPart, g: torch.Generator) -> None:
    block.attn = SerialAdapter(block.attn, _attention(block).proj.out_features, part.ratio, g)


def _insert_parallel(model: SamModel, block: nn.Module, part: AdapterPart, g: torch.Generator) -> None:
    dim = _attention(block).proj.out_features
    block.mlp = ParallelAdapter(block.mlp, dim, part.ratio, part.scale, model.mlp_has_norm, g)


def _insert_lora(model: SamModel, block: nn.Module, part: AdapterPart, g: torch.Generator) -> None:
    attn = _attention(block)
    q, v = model.qv_indices(attn)
    attn.qkv = LoRAQKV(attn.qkv, q, v, part.r, float(part.r if part.alpha is None else part.alpha), g)


@dataclass(frozen=True)
class AdapterKind:
    """A registered adapter design: its spec options and how it is put into one encoder block."""

    summary: str
    options: tuple[str, ...]
    insert: Callable[[SamModel, nn.Module, AdapterPart, torch.Generator], None] | None


ADAPTERS: dict[str, AdapterKind] = {
    "serial": AdapterKind("bottleneck (D→ratio·D, GELU, →D) after attention, residual; Med-SA / SAM-Adapter",
                          ("ratio", "blocks"), _insert_serial),
    "parallel": AdapterKind("bottleneck (ReLU) beside the MLP, times scale; Med-SA / AdaptFormer",
                            ("ratio", "scale", "blocks"), _insert_parallel),
    "lora": AdapterKind("low-rank update of q and v in the qkv projection; A kaiming, B zero",
                        ("r", "alpha", "blocks"), _insert_lora),
    "decoder": AdapterKind("train the mask decoder (alone: decoder-only, encoder frozen)", (), None),
    "full": AdapterKind("train every encoder and decoder weight (full fine-tuning; the U-Net baseline)", (), None),
    "refine": AdapterKind("small full-resolution CNN after the decoder correcting its logits from the image "
                          "(zero-initialised output; HQ-SAM's idea); lr_scale × the run's learning rate",
                          ("width", "lr_scale"), None),
    "prompt": AdapterKind("train the prompt encoder (point / box / mask-input embeddings; frozen otherwise)",
                          (), None),
}


_INTEGERS = ("r", "width")


def _parse_blocks(spec: str, text: str) -> tuple[int, ...] | None:
    if text == "all":
        return None
    out: set[int] = set()
    for token in text.split(","):
        try:
            lo, _, hi = token.partition("-")
            first, last = int(lo), int(hi) if hi else int(lo)
        except ValueError as err:
            raise ConfigError(f"adapter spec {spec!r}: bad block {token!r}; expected 'all', ints or "
                              "ranges like 8-11") from err
        if first < 0 or last < first:
            raise ConfigError(f"adapter spec {spec!r}: bad block range {token!r}")
        out.update(range(first, last + 1))
    return tuple(sorted(out))


def _parse_value(spec: str, key: str, text: str) -> object:
    if key == "blocks":
        return _parse_blocks(spec, text)
    if key == "scale" and text == "learn":
        return None
    try:
        value = int(text) if key in _INTEGERS else float(text)
    except ValueError as err:
        raise ConfigError(f"adapter spec {spec!r}: {key}={text!r} is not "
                          f"{'an integer' if key in _INTEGERS else 'a number'}") from err
    if value <= 0 or (key == "ratio" and value > 4):
        raise ConfigError(f"adapter spec {spec!r}: {key}={text!r} out of range "
                          f"(expected {'0 < ratio <= 4' if key == 'ratio' else f'{key} > 0'})")
    return value


def _parse_part(spec: str, text: str) -> AdapterPart:
    name, _, opts = text.partition(":")
    name = name.strip()
    if name not in ADAPTERS:
        raise unknown_name("adapter", name, list(ADAPTERS))
    raw: dict[str, str] = {}
    last = None
    for token in (t.strip() for t in opts.split(",") if opts.strip()):
        if "=" in token:
            last, _, value = (s.strip() for s in token.partition("="))
            if last in raw:
                raise ConfigError(f"adapter spec {spec!r}: option {last!r} given twice")
            raw[last] = value
        elif last == "blocks":
            raw["blocks"] += "," + token
        else:
            raise ConfigError(f"adapter spec {spec!r}: {token!r} is not key=value")
    allowed = ADAPTERS[name].options
    for key in raw:
        if key not in allowed:
            raise ConfigError(f"adapter spec {spec!r}: {name} takes no option {key!r}; "
                              f"valid: {', '.join(allowed) or 'none'}")
    values = {k: _parse_value(spec, k, v) for k, v in raw.items()}
    if name == "lora" and "alpha" not in values:  # spell the default out so to_spec round-trips
        values["alpha"] = float(values.get("r", AdapterPart.r))
    return AdapterPart(kind=name, **values)


def parse_adapter(spec: str) -> AdapterConfig:
    """Parse an adapter spec string (see the module docstring) into an AdapterConfig."""
    texts = [t.strip() for t in spec.split("+")]
    if not spec.strip() or not all(texts):
        raise ConfigError(f"adapter spec {spec!r} is empty or has an empty part; valid adapters: "
                          f"{', '.join(ADAPTERS)}")
    parts = [_parse_part(spec, t) for t in texts]
    kinds = [p.kind for p in parts]
    if len(set(kinds)) != len(kinds):
        raise ConfigError(f"adapter spec {spec!r}: each adapter may appear once, got {'+'.join(kinds)}")
    if "full" in kinds:
        if len(kinds) > 1:
            raise ConfigError(f"adapter spec {spec!r}: 'full' trains the encoder and decoder and stands alone")
        return AdapterConfig(train_decoder=True, train_all=True)
    train_decoder = "decoder" in kinds
    head = next((p for p in parts if p.kind == "refine"), None)
    return AdapterConfig(parts=tuple(p for p in parts if ADAPTERS[p.kind].insert is not None),
                         train_decoder=train_decoder, refine=0 if head is None else head.width,
                         refine_lr_scale=AdapterPart.lr_scale if head is None else head.lr_scale,
                         train_prompt="prompt" in kinds)

