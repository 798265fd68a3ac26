"""The KV-cache attention Core ML converts to state: fp16 cache buffers under a float32 graph.

Core ML state must be fp16, and the converter casts each state read back to the graph's dtype;
an fp16 graph (``.half()``) then mixes dtypes in its SDPA and fails to convert, so the module
stays float32 and only the buffers are fp16 (``compute_precision=float16`` makes the program fp16
anyway). coremltools' SDPA ignores ``enable_gqa``, so grouped KV heads are repeated explicitly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sfllava_mobile.model.kv_decoder import GenericCacheAttention


class CoreMLCacheAttention(GenericCacheAttention):
    def __init__(self, n_heads: int, n_kv: int, head_dim: int, max_context: int, dtype: torch.dtype):
        super().__init__(n_heads, n_kv, head_dim, max_context, torch.float16)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: int) -> torch.Tensor:
        s = q.shape[1]
        self.k_cache[:, start:start + s] = k.to(torch.float16)
        self.v_cache[:, start:start + s] = v.to(torch.float16)
        cols = torch.arange(self.max_context, device=q.device)
        rows = torch.arange(s, device=q.device) + start
        mask = cols[None, :] <= rows[:, None]
        kc, vc = self.k_cache.to(q.dtype), self.v_cache.to(q.dtype)
        if self.n_heads != self.n_kv:
            rep = self.n_heads // self.n_kv
            kc, vc = kc.repeat_interleave(rep, dim=2), vc.repeat_interleave(rep, dim=2)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), kc.transpose(1, 2), vc.transpose(1, 2), attn_mask=mask)
        return out.transpose(1, 2).reshape(1, s, self.n_heads * self.head_dim)
