"""What a frame budget costs: visual tokens per pathway, prompt length, KV cache and weight bytes;
and, for a named phone, whether the ExecuTorch program fits and how fast it might run (an estimate)."""

from __future__ import annotations

import torch

from .config import ModelConfig
from .ops import slowfast_token_counts

BITS_4BIT_GROUP32 = 4 + 16 / 32  # int4 weights plus one fp16 scale per 32 weights
RUNTIME_OVERHEAD_BYTES = 300_000_000  # assumed: ExecuTorch runtime, XNNPACK workspace, tokenizer, app + UI
FP32 = 4
KV_CACHES = ("fp32", "fp16", "int8")


def kv_bytes_per_position(t, kv_cache: str = "fp32") -> int:
    """KV-cache bytes per position of the ExecuTorch export: k and v for every layer and KV head."""
    per_head = {"fp32": FP32 * t.kv_head_dim, "fp16": 2 * t.kv_head_dim, "int8": t.kv_head_dim + FP32 + 1}[kv_cache]
    return 2 * t.num_layers * t.num_kv_heads * per_head

# What the ExecuTorch estimate assumes, printed with it (``plan --device`` and its JSON).
EXECUTORCH_ASSUMPTIONS = (
    "weights: the program of the default recipe (8da4w-awq-v8) as exported today: int4 group-32 decoder linears "
    "and token embedding, the tied LM head untied into a second 4-bit copy, int8 per-channel vision tower and "
    "projector linears (and any 4-bit linear whose input width is not a multiple of 32), float32 for "
    "convolutions, position tables, norms and biases",
    "KV cache: the export's --kv-cache (float32 by default; fp16: two bytes per value; int8: one byte per value "
    "plus an fp32 scale and int8 zero point per position and head), allocated for every position of the context",
    "working memory: the largest of the vision call (the frames of one pass of the tower, all T by default: MLP "
    "activations, or the fp32 attention scores [G x heads, n, n] held twice, as input and output of the softmax; in "
    "passes, plus every frame's features kept for the pooling; packed weights shared between passes, as XNNPACK's "
    "weight cache does in ExecuTorch's phone builds) and the prefill call "
    "(whole prompt in one call: MLP activations), plus the visual rows and the uint8 frames; the methods share "
    "one planned arena",
    f"runtime overhead: {RUNTIME_OVERHEAD_BYTES / 1e9:.1f} GB assumed (ExecuTorch runtime, XNNPACK workspace, "
    "tokenizer, app and UI); not measured on a phone",
)


def _meta_model(cfg: ModelConfig):
    from .model import VideoLLM

    with torch.device("meta"):
        return VideoLLM(cfg)


def parameter_counts(cfg: ModelConfig, model=None) -> dict[str, int]:
    """Exact parameter counts per component, from the real modules built on the meta device."""
    model = model if model is not None else _meta_model(cfg)
    counts = {"vision": sum(p.numel() for p in model.vision_tower.parameters()),
              "projector": sum(p.numel() for p in model.projector.parameters()),
              "text": sum(p.numel() for p in model.language_model.parameters()),
              "separator": model.separator.numel() if model.separator is not None else 0}
    counts["total"] = sum(counts.values())
    return counts


def export_weight_bytes(cfg: ModelConfig, model=None, recipe: str | None = None) -> dict[str, int]:
    """Weight bytes of the ExecuTorch program exported with ``recipe`` (default: the backend's default
    recipe), by the export's coverage rules (see ``EXECUTORCH_ASSUMPTIONS``); within a few percent of
    the measured ``.pte`` sizes."""
    from torch import nn

    from .export.config import DEFAULT_RECIPE
    from .quantize import recipes

    r = recipes.get(recipe or DEFAULT_RECIPE["executorch"])
    model = model if model is not None else _meta_model(cfg)
    int4 = int8 = fallback = fallback_scales = floats = 0.0
    seen: set[int] = set()
    for mname, mod in model.named_modules():
        for pname, p in mod.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            on_text = mname.startswith("language_model")
            if isinstance(mod, nn.Linear) and pname == "weight":
                scheme = (r.head_scheme if mname.endswith("lm_head") else r.decoder_linear) if on_text \
                    else r.vision_linear
                if scheme is None:
                    floats += p.numel()
                elif scheme.group and mod.in_features % scheme.group:
                    fallback += p.numel()
                    fallback_scales += mod.out_features
                elif scheme.weight_bits == 4:
                    int4 += p.numel() * scheme.bits_per_weight(mod.in_features) / 8
                else:
                    int8 += p.numel() + FP32 * mod.out_features  # per-channel: one fp32 scale per row
            elif isinstance(mod, nn.Embedding) and on_text and r.embedding is not None:
                int4 += p.numel() * r.embedding.bits_per_weight(mod.embedding_dim) / 8
            else:
                floats += p.numel()
    head = cfg.text.vocab_size * cfg.text.hidden_size if cfg.text.tie_word_embeddings else 0
    hs = r.head_scheme
    out = {"int4_group32": int(int4), "int8_per_channel": int(int8),
           "untied_lm_head": int(head * (hs.bits_per_weight(cfg.text.hidden_size) / 8 if hs else FP32)),
           "int8_fallback": int(fallback + FP32 * fallback_scales), "float32": int(FP32 * floats)}
    out["total"] = sum(out.values())
    return out


def model_summary(cfg: ModelConfig) -> dict:
    """The frame-independent numbers ``plan`` needs, from one model built on the meta device."""
    from torch import nn

    model = _meta_model(cfg)
    text_linear = sum(m.weight.numel() for n, m in model.language_model.named_modules()
                      if isinstance(m, nn.Linear) and not n.endswith("lm_head"))
    return {"parameters": parameter_counts(cfg, model), "export_weights": export_weight_bytes(cfg, model),
            "text_linear_params": text_linear}


def vision_flops(cfg: ModelConfig, num_frames: int, vision_params: int) -> float:
    """Approximate ViT FLOPs for ``num_frames`` frames: 2 x params x tokens plus attention scores."""
    gh, gw = cfg.vision.grid
    n = gh * gw + (1 if cfg.vision.kind == "clip" else 0)
    per_frame = 2 * vision_params * n + 4 * cfg.vision.layers_used * n * n * cfg.vision.hidden_size
    return float(per_frame * num_frames)


def _executorch_budget(cfg: ModelConfig, num_frames: int, visual: int, prompt: int, positions: int,
                       new: int, summary: dict, kv_cache: str = "fp32", vision_frames: int = 0) -> dict:
    """Memory and work of the ExecuTorch program (default recipe) for this budget (see ``EXECUTORCH_ASSUMPTIONS``)."""
    t, v = cfg.text, cfg.vision
    gh, gw = v.grid
    n = gh * gw + (1 if v.kind == "clip" else 0)
    per_pass = min(vision_frames, num_frames) if vision_frames else num_frames
    rows_v = num_frames * n
    rows_p = per_pass * n  # rows of one pass of the tower
    after = cfg.slowfast.pool_position == "after_projector"
    # Live activations at the widest point of each stage, fp32 unless noted (an allowance, not a trace):
    # ViT MLP: fc1 output, activation output, its int8 copy; residual and output (one pass's frames).
    vision_mlp = rows_p * (9 * v.intermediate_size + 8 * v.hidden_size)
    # ViT attention (bmm rewrite), in the export's default frame groups: one group's scores
    # [G * heads, n, n] as softmax input and output; q, k, v, residual for every frame of the pass.
    from .export.rewrites import attention_frames

    group = attention_frames(None, v, per_pass)
    vision_attention = 2 * group * v.num_heads * n * n * FP32 + rows_p * 16 * v.hidden_size
    proj_rows = rows_p if after else visual
    projector = proj_rows * (5 * cfg.projector.input_size + 9 * cfg.projector.output_size)
    # In passes, every frame's features wait for the pooling (projected first when pooling comes after).
    kept = 0 if per_pass == num_frames else rows_v * (cfg.projector.output_size if after else v.hidden_size) * FP32
    vision_call = max(vision_mlp, vision_attention, projector) + kept
    # Decoder MLP over the whole prompt: gate, up, activation, product, int8 copy; hidden-wide buffers.
    prefill_call = prompt * (13 * t.intermediate_size + 16 * t.hidden_size)
    visual_rows = visual * t.hidden_size * FP32
    frames = num_frames * 3 * v.image_size[0] * v.image_size[1]
    working = max(vision_call, prefill_call) + visual_rows + frames
    kv_per_pos = kv_bytes_per_position(t, kv_cache)
    weights = summary["export_weights"]["total"]
    kv = kv_per_pos * positions
    text = summary["parameters"]["text"]
    read_params = text - (0 if t.tie_word_embeddings else t.vocab_size * t.hidden_size)  # embedding table not read
    q_dim = t.num_heads * t.kv_head_dim
    return {
        "estimate": True,
        "weights_bytes": weights,
        "weights_detail": {k: b for k, b in summary["export_weights"].items() if k != "total"},
        "kv_cache_dtype": kv_cache, "kv_cache_bytes": kv, "kv_cache_bytes_per_position": kv_per_pos,
        "vision_attention_frames": group, "vision_frames_per_pass": per_pass,
        "working_bytes": {"vision_call": vision_call, "vision_attention": vision_attention, "vision_mlp": vision_mlp,
                          "vision_features_kept": kept,
                          "projector": projector, "prefill_call": prefill_call, "visual_rows": visual_rows,
                          "input_frames": frames, "peak": working},
        "runtime_overhead_bytes": RUNTIME_OVERHEAD_BYTES,
        "total_bytes": weights + kv + working + RUNTIME_OVERHEAD_BYTES,
        "vision_int8_ops": vision_flops(cfg, num_frames, summary["parameters"]["vision"]),
        "prefill_linear_ops": 2.0 * summary["text_linear_params"] * prompt,
        "prefill_attention_flops": 4.0 * t.num_layers * q_dim * prompt * (prompt + 1) / 2,  # QK^T and PV, causal
        "decode_bytes_per_token": int(read_params * BITS_4BIT_GROUP32 / 8 + kv_per_pos * (prompt + new / 2)),
        "assumptions": list(EXECUTORCH_ASSUMPTIONS),
    }


def plan(cfg: ModelConfig, num_frames: int, context: int | None = None, text_tokens: int = 64,
         max_new_tokens: int | None = None, summary: dict | None = None, kv_cache: str = "fp32",
         vision_frames: int = 0) -> dict:
    """A JSON-ready budget. ``text_tokens`` is an allowance for template + question (no tokenizer needed).
    ``summary`` (from :func:`model_summary`) saves rebuilding the model when planning many frame counts.
    ``kv_cache``, ``vision_frames``: the ExecuTorch export's options of those names (the cache dtype;
    frames per pass of the vision tower, 0: all)."""
    from .errors import ConfigError

    if kv_cache not in KV_CACHES:
        raise ConfigError(f"kv_cache must be one of {KV_CACHES}, got {kv_cache!r}")
    counts = slowfast_token_counts(cfg.slowfast, num_frames, cfg.vision.grid)
    new = max_new_tokens if max_new_tokens is not None else cfg.max_new_tokens
    context = context or cfg.context_length
    prompt = counts["total"] + text_tokens
    positions = prompt + new
    t = cfg.text
    kv_per_pos = 2 * t.num_layers * t.num_kv_heads * t.kv_head_dim * 2
    summary = summary if summary is not None else model_summary(cfg)
    params = summary["parameters"]
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
        "executorch": _executorch_budget(cfg, num_frames, counts["total"], prompt, positions, new, summary, kv_cache,
                                         vision_frames),
        "inferred_fields": list(cfg.inferred),
        "warnings": warnings,
    }


def _est(value: float, unit: str, **extra) -> dict:
    return {"value": value, "unit": unit, "estimate": True, **extra}


def device_estimate(p: dict, device, efficiency) -> dict:
    """Whether the ExecuTorch program of plan ``p`` fits ``device`` (a :class:`devices.Device`) and how fast
    it might run there: published figures x this machine's measured ``efficiency``. Every number is an
    estimate, and says so."""
    e = p["executorch"]
    usable = device.app_usable_memory_gb.value * 1e9
    need = e["total_bytes"]
    int8 = device.cpu_int8_tops.value * 1e12
    fp32 = device.cpu_fp32_tflops.value * 1e12
    bw = device.memory_bandwidth_gbs.value * 1e9
    ev, ep, ed = efficiency.vision.value, efficiency.prefill.value, efficiency.decode.value
    vision_s = e["vision_int8_ops"] / (int8 * ev)
    linear_s = e["prefill_linear_ops"] / (int8 * ep)
    attention_s = e["prefill_attention_flops"] / (fp32 * ep)
    decode = ed * bw / e["decode_bytes_per_token"]
    w = e["working_bytes"]
    largest = "vision call" if w["vision_call"] >= w["prefill_call"] else "prefill call"
    return {
        "estimate": True,
        "label": "ESTIMATE from published device figures and this machine's measured efficiency; "
                 "not measured on the device",
        "device": {"id": device.id, "name": device.name, "soc": device.soc, "os": device.os,
                   "figures": {k: f.to_dict() for k, f in device.figures().items()}, "notes": list(device.notes)},
        "memory": {
            "fits": need <= usable,
            "needed_bytes": _est(need, "bytes"),
            "usable_bytes": _est(usable, "bytes", source=device.app_usable_memory_gb.source),
            "margin_bytes": _est(usable - need, "bytes"),
            "breakdown_bytes": {"weights": _est(e["weights_bytes"], "bytes"),
                                "kv_cache": _est(e["kv_cache_bytes"], "bytes", dtype=e["kv_cache_dtype"]),
                                "working": _est(w["peak"], "bytes", largest=largest),
                                "runtime_overhead": _est(e["runtime_overhead_bytes"], "bytes")},
        },
        "vision_s": _est(vision_s, "s", formula="vision int8 ops / (device CPU int8 peak x vision efficiency)"),
        "prefill_s": _est(linear_s + attention_s, "s", linear_s=linear_s, attention_s=attention_s,
                          formula="2 x decoder linear params x prompt tokens / (CPU int8 peak x prefill efficiency) "
                                  "+ causal attention FLOPs / (CPU fp32 peak x prefill efficiency)"),
        "time_to_first_token_s": _est(vision_s + linear_s + attention_s, "s", formula="vision + prefill"),
        "decode_tokens_per_second": _est(decode, "tokens/s",
                                         formula="decode efficiency x DRAM peak bandwidth / (4-bit decoder weights + "
                                                 "KV cache read per token)"),
        "efficiency": efficiency.to_dict(),
        "caveats": [
            "CPU path only (ExecuTorch + XNNPACK, as exported today); the NPU figures are not used.",
            "Peak clocks and the DRAM peak: a phone sustains less under a long prefill, and its CPU reads below the "
            "DRAM peak, so times are likely low and the decode rate high.",
            "Efficiency factors were measured on an x86 host (AVX2) and are assumed to carry over to ARM cores.",
            *e["assumptions"],
        ],
    }


def max_frames_that_fit(cfg: ModelConfig, device, summary: dict | None = None, context: int | None = None,
                        text_tokens: int = 64, max_new_tokens: int | None = None, limit: int = 2048,
                        kv_cache: str = "fp32", vision_frames: int = 0) -> int:
    """Most frames whose ExecuTorch program fits ``device``'s usable memory and the context (0 if none)."""
    summary = summary if summary is not None else model_summary(cfg)
    usable = device.app_usable_memory_gb.value * 1e9

    def ok(frames: int) -> bool:
        q = plan(cfg, frames, context, text_tokens, max_new_tokens, summary=summary, kv_cache=kv_cache,
                 vision_frames=vision_frames)
        return q["executorch"]["total_bytes"] <= usable and q["positions"] <= q["context"]

    if not ok(1):
        return 0
    lo, hi = 1, limit  # ok(lo); memory and positions grow with frames
    if ok(hi):
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def _gb(n: float) -> str:
    return f"{n / 1e9:.3f} GB"


def format_plan(p: dict) -> str:
    """Human-readable lines for ``plan``'s result."""
    v = p["visual_tokens"]
    e = p["executorch"]
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
        f"  ExecuTorch program (default recipe) in memory: {_gb(e['total_bytes'])} = weights {_gb(e['weights_bytes'])} "
        f"+ KV cache ({e['kv_cache_dtype']}) {_gb(e['kv_cache_bytes'])} + working {_gb(e['working_bytes']['peak'])} "
        f"+ runtime {_gb(e['runtime_overhead_bytes'])} (estimate; `--device NAME` compares it with a phone)",
    ]
    if p["inferred_fields"]:
        lines.append(f"  reconstructed (inferred) fields: {', '.join(p['inferred_fields'])}")
    lines += [f"WARNING: {w}" for w in p["warnings"]]
    return "\n".join(lines)


def _short(path: str) -> str:
    shipped = "sfllava_mobile/data/host_efficiency.json"
    return shipped if path.replace("\\", "/").endswith(shipped) else path


def _s(x: float) -> str:
    return f"{x:.1f} s" if x < 100 else f"{x:.0f} s"


def format_device_estimate(est: dict, p: dict) -> str:
    """The ``plan --device`` section: every number is an estimate, and the text says so."""
    d, m, e = est["device"], est["memory"], p["executorch"]
    f = d["figures"]
    w = e["working_bytes"]
    eff = est["efficiency"]
    fac = eff["factors"]
    need, usable, margin = m["needed_bytes"]["value"], m["usable_bytes"]["value"], m["margin_bytes"]["value"]
    pre = est["prefill_s"]
    if w["vision_call"] < w["prefill_call"]:
        largest = "prefill call: the whole prompt at once"
    elif w["vision_call"] == w["vision_attention"] + w["vision_features_kept"]:
        largest = f"vision call: attention scores, {e['vision_attention_frames']} of {p['frames']} frames at a time"
    elif e["vision_frames_per_pass"] < p["frames"]:
        largest = f"vision call: {e['vision_frames_per_pass']} of {p['frames']} frames per pass"
    else:
        largest = f"vision call: all {p['frames']} frames at once"
    lines = [
        f"ESTIMATE for {d['name']} ({d['soc']}): published device figures x this machine's measured efficiency; "
        f"NOT measured on the device",
        f"  memory: needs {_gb(need)} of {_gb(usable)} usable -> "
        + (f"fits ({_gb(margin)} to spare)" if m["fits"] else f"does NOT fit (short by {_gb(-margin)})"),
        f"    weights {_gb(e['weights_bytes'])} + KV cache {e['kv_cache_dtype']} {_gb(e['kv_cache_bytes'])} "
        f"({p['positions']} positions) + working {_gb(w['peak'])} ({largest}) "
        f"+ runtime {_gb(e['runtime_overhead_bytes'])}",
        f"    usable memory: {f['app_usable_memory_gb']['value']:g} GB of {f['ram_gb']['value']:g} GB RAM "
        f"({f['app_usable_memory_gb']['basis']}: {f['app_usable_memory_gb']['derivation']})",
    ]
    if "max_frames" in est:
        lines.append(f"    most frames that fit: {est['max_frames']['value']}")
    lines += [
        f"  vision encoder: {e['vision_int8_ops'] / 1e12:.1f} T int8 ops / ({f['cpu_int8_tops']['value']:g} TOPS CPU "
        f"x {fac['vision_int8_fraction']['value']:g}) = {_s(est['vision_s']['value'])}",
        f"  prefill of {p['prompt_tokens']} tokens: linear {_s(pre['linear_s'])} + attention (fp32, "
        f"{f['cpu_fp32_tflops']['value']:g} TFLOPS) {_s(pre['attention_s'])} = {_s(pre['value'])}",
        f"  time to first token: {_s(est['time_to_first_token_s']['value'])}",
        f"  decode: {fac['decode_bandwidth_fraction']['value']:g} x {f['memory_bandwidth_gbs']['value']:g} GB/s / "
        f"{e['decode_bytes_per_token'] / 1e9:.3f} GB per token = {est['decode_tokens_per_second']['value']:.1f} "
        "tokens/s (DRAM peak)",
        f"  efficiency: {_short(eff['file'])} (measured on {eff['measured_on']}, {eff['date']})",
        "  caveats: CPU (XNNPACK) path only, NPU unused; burst clocks and the DRAM peak (a phone sustains and reads "
        "less); x86 efficiency assumed to carry over to ARM",
    ]
    return "\n".join(lines)
