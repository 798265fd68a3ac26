"""ExecuTorch's fused KV-cache ops as a drop-in attention for KVCacheDecoder.

``llama::update_cache`` writes k/v into ``[1, L, H_kv, D]`` buffers in place and
``llama::custom_sdpa`` attends causally over positions ``< start + S`` (grouped-query attention
without repeating heads). Importing ``custom_ops`` registers both the export-time ops and the
runtime kernels of the pip wheel; it must happen before export and before loading a program.
"""

from __future__ import annotations

import torch
from torch import nn


def register_ops() -> None:
    """Register ``torch.ops.llama.*`` and the quantized kernels (4-bit embedding) with the runtime."""
    from executorch.extension.llm.custom_ops import custom_ops  # noqa: F401
    import executorch.kernels.quantized  # noqa: F401


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
