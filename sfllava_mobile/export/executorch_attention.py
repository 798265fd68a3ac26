"""ExecuTorch's fused KV-cache ops as drop-in attentions for KVCacheDecoder.

``llama::update_cache`` writes k/v into ``[1, L, H_kv, D]`` buffers in place and
``llama::custom_sdpa`` attends causally over positions ``< start + S`` (grouped-query attention
without repeating heads). :class:`Int8CacheAttention` keeps the cache in int8 with one scale and
zero point per position and head (ExecuTorch's quantized KV cache: ``quantize_per_token`` then
``llama::custom_quantized_sdpa``, which also quantizes q per token): a quarter of the float32
cache's bytes plus 5 bytes per position and head; :class:`Fp16CacheAttention` keeps it in float16. Importing ``custom_ops`` registers both the
export-time ops and the runtime kernels of the pip wheel; it must happen before export and before
loading a program.
"""

from __future__ import annotations

import torch
from torch import nn


def register_ops() -> None:
    """Register ``torch.ops.llama.*``, ``quantized_decomposed.*`` and the quantized kernels (4-bit
    embedding, per-token quantize) with the runtime."""
    from executorch.extension.llm.custom_ops import custom_ops  # noqa: F401
    import executorch.kernels.quantized  # noqa: F401
    from torch.ao.quantization.fx._decomposed import quantized_decomposed_lib  # noqa: F401


class CustomSdpaAttention(nn.Module):
    def __init__(self, n_heads: int, n_kv: int, head_dim: int, max_context: int, dtype: torch.dtype):
        super().__init__()
        register_ops()
        self.n_heads, self.head_dim = n_heads, head_dim
        self.register_buffer("k_cache", torch.zeros(1, max_context, n_kv, head_dim, dtype=dtype))
        self.register_buffer("v_cache", torch.zeros(1, max_context, n_kv, head_dim, dtype=dtype))

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: int) -> torch.Tensor:
        s = q.shape[1]
        torch.ops.llama.update_cache(k, self.k_cache, start)
        torch.ops.llama.update_cache(v, self.v_cache, start)
        out = torch.ops.llama.custom_sdpa(q, self.k_cache, self.v_cache, start, None, 0.0, True)
        return out.reshape(1, s, self.n_heads * self.head_dim)

    def reset(self) -> None:
        self.k_cache.zero_()
        self.v_cache.zero_()


class Fp16CacheAttention(nn.Module):
    """The KV cache in float16: q, k and v go to float16 and ``custom_sdpa`` runs in float16 (its
    kernel takes one dtype for q and the cache; mixing them is silently wrong), the output back to
    the decoder's dtype. Half the float32 cache's bytes."""

    fixed_dtype_buffers = ("k_cache", "v_cache")  # not upcast with the rest of the program

    def __init__(self, n_heads: int, n_kv: int, head_dim: int, max_context: int, dtype: torch.dtype):
        super().__init__()
        register_ops()
        self.n_heads, self.head_dim = n_heads, head_dim
        self.register_buffer("k_cache", torch.zeros(1, max_context, n_kv, head_dim, dtype=torch.float16))
        self.register_buffer("v_cache", torch.zeros(1, max_context, n_kv, head_dim, dtype=torch.float16))

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: int) -> torch.Tensor:
        s = q.shape[1]
        torch.ops.llama.update_cache(k.to(torch.float16), self.k_cache, start)
        torch.ops.llama.update_cache(v.to(torch.float16), self.v_cache, start)
        out = torch.ops.llama.custom_sdpa(q.to(torch.float16), self.k_cache, self.v_cache, start, None, 0.0, True)
        return out.reshape(1, s, self.n_heads * self.head_dim).to(q.dtype)

    def reset(self) -> None:
        self.k_cache.zero_()
        self.v_cache.zero_()


def _per_token_int8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x`` as int8 with an fp32 scale and int8 zero point per last-dim row (asymmetric)."""
    scale, zp = torch.ops.quantized_decomposed.choose_qparams_per_token_asymmetric.default(x, torch.int8)
    q = torch.ops.quantized_decomposed.quantize_per_token(x, scale, zp, -128, 127, torch.int8)
    return q, scale.to(torch.float32), zp.to(torch.int8)


class Int8CacheAttention(nn.Module):
    """The KV cache as int8 ``[1, L, H_kv, D]`` with per-(position, head) scales and zero points."""

    def __init__(self, n_heads: int, n_kv: int, head_dim: int, max_context: int, dtype: torch.dtype):
        super().__init__()
        register_ops()
        self.n_heads, self.head_dim = n_heads, head_dim
        for name in ("k", "v"):
            self.register_buffer(f"{name}_cache", torch.zeros(1, max_context, n_kv, head_dim, dtype=torch.int8))
            self.register_buffer(f"{name}_scales", torch.ones(1, max_context, n_kv, 1, dtype=torch.float32))
            self.register_buffer(f"{name}_zero_points", torch.zeros(1, max_context, n_kv, 1, dtype=torch.int8))

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: int) -> torch.Tensor:
        s = q.shape[1]
        for x, cache, scales, zps in ((k, self.k_cache, self.k_scales, self.k_zero_points),
                                      (v, self.v_cache, self.v_scales, self.v_zero_points)):
            xq, xs, xz = _per_token_int8(x.to(torch.float32))
            torch.ops.llama.update_cache(xq, cache, start)
            torch.ops.llama.update_cache(xs, scales, start)
            torch.ops.llama.update_cache(xz, zps, start)
        qq, qs, qz = _per_token_int8(q.to(torch.float32))
        out = torch.ops.llama.custom_quantized_sdpa(qq, self.k_cache, self.v_cache, start, None, 0.0, True, None,
                                                    qz, qs, self.k_zero_points, self.k_scales,
                                                    self.v_zero_points, self.v_scales)
        return out.reshape(1, s, self.n_heads * self.head_dim).to(q.dtype)

    def reset(self) -> None:
        for name in ("k", "v"):
            getattr(self, f"{name}_cache").zero_()
            getattr(self, f"{name}_scales").fill_(1.0)
            getattr(self, f"{name}_zero_points").zero_()
