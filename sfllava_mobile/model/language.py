"""The text decoder: transformers' Qwen2ForCausalLM or LlamaForCausalLM, built from a TextConfig."""

from __future__ import annotations

from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from ..config import TextConfig


def hf_text_config(cfg: TextConfig):
    """The transformers config with the same shapes and rope settings."""
    rope = {"rope_type": "default", "rope_theta": cfg.rope_theta}
    if cfg.rope_scaling:
        rope = {**rope, **cfg.rope_scaling}
    common = dict(vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
                  num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
                  num_key_value_heads=cfg.num_kv_heads, rms_norm_eps=cfg.rms_norm_eps,
                  max_position_embeddings=cfg.max_position_embeddings, tie_word_embeddings=cfg.tie_word_embeddings,
                  rope_parameters=rope, bos_token_id=cfg.bos_id, eos_token_id=list(cfg.eos_ids))
    if cfg.head_dim is not None:
        common["head_dim"] = cfg.head_dim
    hf = Qwen2Config(**common) if cfg.family == "qwen2" else LlamaConfig(**common)
    hf._attn_implementation = "sdpa"
    return hf


def build_decoder(cfg: TextConfig):
    """A causal LM whose state-dict keys are ``model.*`` and ``lm_head.weight`` (absent when tied)."""
    hf = hf_text_config(cfg)
    return Qwen2ForCausalLM(hf) if cfg.family == "qwen2" else LlamaForCausalLM(hf)
