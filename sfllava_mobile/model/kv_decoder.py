"""A decoder with a static KV cache over a transformers CausalLM's own modules and weights.

``KVCacheDecoder(lm, max_context)`` reuses the LM's projections, norms, MLPs and rotary tables;
only the cache handling is ours: buffers of ``max_context`` positions written in place at a
start position the graph derives from ``input_pos``, and RoPE tables precomputed for every
position. The attention-with-cache step is a swappable module (``attention=``), so a backend can
drop in its fused kernels (ExecuTorch's ``update_cache`` / ``custom_sdpa``) over the same weights.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.qwen2.modeling_qwen2 import apply_rotary_pos_emb


class GenericCacheAttention(nn.Module):
    """Cache ``[1, L, H_kv, D]`` written by slice; SDPA over the whole cache with a causal mask.

    Every attention module takes roped ``q [1, S, H, D]``, ``k/v [1, S, H_kv, D]`` and the start
    position, and returns ``[1, S, H*D]``; the cache layout ``[1, L, H_kv, D]`` is the one
    ExecuTorch's ``update_cache`` / ``custom_sdpa`` use, so both implementations load alike.
    """

    def __init__(self, n_heads: int, n_kv: int, head_dim: int, max_context: int, dtype: torch.dtype):
        super().__init__()
        self.n_heads, self.n_kv, self.head_dim, self.max_context = n_heads, n_kv, head_dim, max_context
        self.register_buffer("k_cache", torch.zeros(1, max_context, n_kv, head_dim, dtype=dtype))
        self.register_buffer("v_cache", torch.zeros(1, max_context, n_kv, head_dim, dtype=dtype))

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: int) -> torch.Tensor:
        s = q.shape[1]
        self.k_cache[:, start:start + s] = k
        self.v_cache[:, start:start + s] = v
        cols = torch.arange(self.max_context, device=q.device)
        rows = torch.arange(s, device=q.device) + start
        mask = cols[None, :] <= rows[:, None]
        out = F.scaled_dot_product_attention(q.transpose(1, 2), self.k_cache.transpose(1, 2),
                                             self.v_cache.transpose(1, 2), attn_mask=mask,
                                             enable_gqa=self.n_heads != self.n_kv)
        return out.transpose(1, 2).reshape(1, s, self.n_heads * self.head_dim)

    def reset(self) -> None:
        self.k_cache.zero_()
        self.v_cache.zero_()


AttentionFactory = Callable[[int, int, int, int, torch.dtype], nn.Module]


class _CachedLayer(nn.Module):
    def __init__(self, layer: nn.Module, n_heads: int, n_kv: int, head_dim: int, attention: nn.Module):
        super().__init__()
        a = layer.self_attn
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = a.q_proj, a.k_proj, a.v_proj, a.o_proj
        self.input_layernorm, self.post_attention_layernorm = layer.input_layernorm, layer.post_attention_layernorm
        self.mlp = layer.mlp
        self.n_heads, self.n_kv, self.head_dim = n_heads, n_kv, head_dim
        self.attention = attention

    def forward(self, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, start: int) -> torch.Tensor:
        s = h.shape[1]
        x = self.input_layernorm(h)
        q = self.q_proj(x).view(1, s, self.n_heads, self.head_dim)
        k = self.k_proj(x).view(1, s, self.n_kv, self.head_dim)
        v = self.v_proj(x).view(1, s, self.n_kv, self.head_dim)
        q, k = apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=2)  # heads at dim 2
        h = h + self.o_proj(self.attention(q, k, v, start))
        return h + self.mlp(self.post_attention_layernorm(h))


class KVCacheDecoder(nn.Module):
    """``forward(inputs_embeds [1, S, hidden], input_pos int64 [1]) -> logits``.

    ``input_pos`` is the position of the first of the S rows; rows before it must already be in
    the cache. Logits are ``[1, vocab]`` for the last row (``last_logits_only``) or ``[1, S, vocab]``.
    """

    def __init__(self, lm: nn.Module, max_context: int, attention: AttentionFactory = GenericCacheAttention,
                 last_logits_only: bool = True, dtype: torch.dtype | None = None):
        super().__init__()
        cfg = lm.config
        n_heads, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_heads
        dtype = dtype or lm.lm_head.weight.dtype  # of the cache and RoPE tables (the compute dtype)
        self.max_context = max_context
        self.last_logits_only = last_logits_only
        self.layers = nn.ModuleList(
            _CachedLayer(layer, n_heads, n_kv, head_dim, attention(n_heads, n_kv, head_dim, max_context, dtype))
            for layer in lm.model.layers)
        self.norm, self.lm_head = lm.model.norm, lm.lm_head
        with torch.no_grad():
            pos = torch.arange(max_context).unsqueeze(0)
            cos, sin = lm.model.rotary_emb(torch.zeros(1, dtype=torch.float32), pos)
        self.register_buffer("rope_cos", cos[0].to(dtype), persistent=False)
        self.register_buffer("rope_sin", sin[0].to(dtype), persistent=False)

    def forward(self, inputs_embeds: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
        s = inputs_embeds.shape[1]
        start = input_pos[0].item()
        torch._check(start >= 0)
        torch._check(start + s <= self.max_context)
        cos = self.rope_cos.narrow(0, start, s).unsqueeze(0)
        sin = self.rope_sin.narrow(0, start, s).unsqueeze(0)
        h = inputs_embeds
        for layer in self.layers:
            h = layer(h, cos, sin, start)
        h = self.norm(h)
        if self.last_logits_only:
            return self.lm_head(h[:, -1, :])
        return self.lm_head(h)

    def reset(self) -> None:
        for layer in self.layers:
            layer.attention.reset()
