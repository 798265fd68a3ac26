"""Module rewrites that let XNNPACK take whole regions instead of op islands.

XNNPACK (executorch 1.5.1) has no layer_norm, reduces ``mean`` only over the spatial dims of
4-D tensors, and cannot take the NaN guards (``where``/``any``/``eq``) that SDPA decomposes
into. Each unsupported op splits a delegate region: more partitions, more lowering time, more
runtime hand-offs. The rewrites express the same math in ops XNNPACK has: a mean over the last
dim is a linear layer with a constant ``1/D`` weight, and attention is matmul-softmax-matmul.
Each has a parity test against the module it replaces.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LinearMeanRMSNorm(nn.Module):
    """``x * rsqrt(mean(x^2) + eps) * weight`` with the mean as ``linear(x^2, 1/D)``."""

    def __init__(self, weight: torch.Tensor, eps: float):
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone(), requires_grad=False)
        self.eps = eps
        d = weight.shape[0]
        self.register_buffer("mean_w", torch.full((1, d), 1.0 / d, dtype=weight.dtype), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = F.linear(x * x, self.mean_w)
        return x * torch.rsqrt(var + self.eps) * self.weight


class LinearMeanLayerNorm(nn.Module):
    """LayerNorm over the last dim with both means as ``linear(., 1/D)``."""

    def __init__(self, ln: nn.LayerNorm):
        super().__init__()
        self.weight = nn.Parameter(ln.weight.detach().clone(), requires_grad=False)
        self.bias = nn.Parameter(ln.bias.detach().clone(), requires_grad=False)
        self.eps = ln.eps
        d = ln.weight.shape[0]
        self.register_buffer("mean_w", torch.full((1, d), 1.0 / d, dtype=ln.weight.dtype), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x - F.linear(x, self.mean_w)
        return c * torch.rsqrt(F.linear(c * c, self.mean_w) + self.eps) * self.weight + self.bias


def _is_rms_norm(m: nn.Module) -> bool:
    return type(m).__name__.endswith("RMSNorm") and hasattr(m, "variance_epsilon")


def rewrite_norms(module: nn.Module) -> int:
    """Replace every transformers RMSNorm and nn.LayerNorm under ``module``; returns how many."""
    count = 0
    for name, child in list(module.named_children()):
        if _is_rms_norm(child):
            setattr(module, name, LinearMeanRMSNorm(child.weight, child.variance_epsilon))
            count += 1
        elif isinstance(child, nn.LayerNorm):
            setattr(module, name, LinearMeanLayerNorm(child))
            count += 1
        else:
            count += rewrite_norms(child)
    return count


def _cat(parts: list[torch.Tensor]) -> torch.Tensor:
    """``torch.cat`` on dim 0 as a tree of at most 5 inputs per cat: XNNPACK's concatenate takes 2-5."""
    while len(parts) > 1:
        parts = [torch.cat(parts[i:i + 5], dim=0) if len(parts[i:i + 5]) > 1 else parts[i]
                 for i in range(0, len(parts), 5)]
    return parts[0]


def bmm_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers attention interface: ``[B, H, N, D]`` q/k/v -> ``([B, N, H, D], None)`` with
    3-D ``bmm`` (a 4-D matmul decomposes into ``expand_copy``, which XNNPACK does not take).

    With ``config.sfllava_attention_frames = G`` (and no mask) the B frames attend G at a time:
    the same math, but only G frames' ``[H, N, N]`` scores are alive at once, which bounds the
    encoder's working memory for long clips (the scores are most of it)."""
    b, h, n, d = query.shape
    scale = scaling if scaling is not None else d ** -0.5
    group = getattr(getattr(module, "config", None), "sfllava_attention_frames", 0) or b
    if attention_mask is not None:
        group = b
    outs = []
    for s in range(0, b, group):
        g = min(b, s + group) - s
        q = query[s:s + g].reshape(g * h, n, d)
        k = key[s:s + g].reshape(g * h, key.shape[2], d)
        v = value[s:s + g].reshape(g * h, value.shape[2], d)
        scores = torch.bmm(q, k.transpose(1, 2)) * scale
        if attention_mask is not None:
            scores = scores + attention_mask.reshape(-1, n, key.shape[2])
        outs.append(torch.bmm(torch.softmax(scores, dim=-1), v).reshape(g, h, n, d))
    return _cat(outs).transpose(1, 2), None


SCORES_BUDGET = 256 * 2**20  # bytes of fp32 attention scores alive at once in the auto setting


def attention_frames(requested: int | None, vision, frames: int) -> int:
    """Frames per ViT attention group: ``requested`` if given (0 = all), else the most whose
    ``[heads, N, N]`` fp32 scores fit :data:`SCORES_BUDGET` (at least 1, at most ``frames``)."""
    if requested is not None:
        return min(requested, frames) if requested else frames
    tokens = vision.grid[0] * vision.grid[1] + (1 if vision.kind == "clip" else 0)
    per_frame = vision.num_heads * tokens * tokens * 4
    return max(1, min(frames, SCORES_BUDGET // per_frame))


def use_bmm_attention(module: nn.Module, frames_per_call: int = 0) -> int:
    """Switch the transformers attention modules under ``module`` to :func:`bmm_attention`, attending
    ``frames_per_call`` frames at a time (0: all at once); returns how many configs were switched."""
    from transformers import AttentionInterface

    AttentionInterface.register("sfllava_bmm", bmm_attention)
    count = 0
    for m in module.modules():
        cfg = getattr(m, "config", None)
        if cfg is not None and hasattr(m, "q_proj") and getattr(cfg, "_attn_implementation", None) != "sfllava_bmm":
            cfg._attn_implementation = "sfllava_bmm"
            count += 1
        if cfg is not None and hasattr(m, "q_proj"):
            cfg.sfllava_attention_frames = frames_per_call
    return count
