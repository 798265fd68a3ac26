"""What a frame budget costs: visual tokens per pathway, prompt length, KV cache and weight bytes."""

from __future__ import annotations

import torch

from .config import ModelConfig
from .ops import slowfast_token_counts

BITS_4BIT_GROUP32 = 4 + 16 / 32  # int4 weights plus one fp16 scale per 32 weights


def parameter_counts(cfg: ModelConfig) -> dict[str, int]:
    """Exact parameter counts per component, from the real modules built on the meta device."""
    from .model import VideoLLM

    with torch.device("meta"):
        model = VideoLLM(cfg)
    counts = {"vision": sum(p.numel() for p in model.vision_tower.parameters()),
              "projector": sum(p.numel() for p in model.projector.parameters()),
              "text": sum(p.numel() for p in model.language_model.parameters()),
              "separator": model.separator.numel() if model.separator is not None else 0}
    counts["total"] = sum(counts.values())
    return counts


def vision_flops(cfg: ModelConfig, num_frames: int, vision_params: int) -> float:
    """Approximate ViT FLOPs for ``num_frames`` frames: 2 x params x tokens plus attention scores."""
    gh, gw = cfg.vision.grid
    n = gh * gw + (1 if cfg.vision.kind == "clip" else 0)
    per_frame = 2 * vision_params * n + 4 * cfg.vision.layers_used * n * n * cfg.vision.hidden_size
    return float(per_frame * num_frames)


def plan(cfg: ModelConfig, num_frames: int, context: int | None = None, text_tokens: int = 64,
         max_new_tokens: int | None = None) -> dict:
    """A JSON-ready budget. ``text_tokens`` is an allowance for template + question (no tokenizer needed)."""
    counts = slowfast_token_counts(cfg.slowfast, num_frames, cfg.vision.grid)
    new = max_new_tokens if max_new_tokens is not None else cfg.max_new_tokens
    context = context or cfg.context_length
    prompt = counts["total"] + text_tokens
    positions = prompt + new
    t = cfg.text
    kv_per_pos = 2 * t.num_layers * t.num_kv_heads * t.kv_head_dim * 2
    params = parameter_counts(cfg)
    warnings = []
    if positions > context:
        warnings.append(f"prompt ({prompt}) + answer ({new}) = {positions} positions exceed the context of {context}: "
                        f"use fewer frames, a smaller fast_grid, or a larger --context")
    if positions > t.max_position_embeddings and not t.rope_scaling:
        warnings.append(f"{positions} positions exceed the decoder's max_position_embeddings {t.max_position_embeddings}")
    return {
        "preset": cfg.name, "frames": num_frames,
        "visual_tokens": {"slow_frames": counts["slow_frames"], "slow": counts["slow"],
                          "separator": counts["separator"], "fast": counts["fast"], "total": counts["total"]},
        "text_tokens_allowance": text_tokens, "prompt_tokens": prompt, "max_new_tokens": new,
        "positions": positions, "context": context,
        "kv_cache_bytes_fp16": kv_per_pos * positions, "kv_cache_bytes_per_position_fp16": kv_per_pos,
        "parameters": params,
        "weights_bytes_fp16": params["total"] * 2,
        "weights_bytes_4bit": int(params["total"] * BITS_4BIT_GROUP32 / 8),
        "vision_tflops": vision_flops(cfg, num_frames, params["vision"]) / 1e12,
        "inferred_fields": list(cfg.inferred),
        "warnings": warnings,
    }


def _gb(n: float) -> str:
    return f"{n / 1e9:.3f} GB"


def format_plan(p: dict) -> str:
    """Human-readable lines for ``plan``'s result."""
    v = p["visual_tokens"]
    lines = [
        f"preset {p['preset']}, {p['frames']} frames",
        f"  visual tokens: slow {v['slow']} ({v['slow_frames']} frames) + separator {v['separator']} + fast {v['fast']} = {v['total']}",
        f"  prompt: {p['prompt_tokens']} tokens ({p['text_tokens_allowance']} allowed for template + question), "
        f"+ {p['max_new_tokens']} new = {p['positions']} positions of {p['context']} context",
        f"  KV cache (fp16): {_gb(p['kv_cache_bytes_fp16'])} ({p['kv_cache_bytes_per_position_fp16']} bytes/position)",
        f"  parameters: {p['parameters']['total'] / 1e9:.3f} B (vision {p['parameters']['vision'] / 1e6:.1f} M, "
        f"projector {p['parameters']['projector'] / 1e6:.1f} M, text {p['parameters']['text'] / 1e9:.3f} B)",
        f"  weights: fp16 {_gb(p['weights_bytes_fp16'])}, 4-bit (group 32, fp16 scales) {_gb(p['weights_bytes_4bit'])}",
        f"  vision encoder: {p['vision_tflops']:.1f} TFLOPs for the clip",
    ]
    if p["inferred_fields"]:
        lines.append(f"  reconstructed (inferred) fields: {', '.join(p['inferred_fields'])}")
    lines += [f"WARNING: {w}" for w in p["warnings"]]
    return "\n".join(lines)
