"""Activation-aware per-channel scales folded into the preceding norm or linear (SmoothQuant / AWQ).

For a linear ``y = W x`` whose input comes from an RMSNorm (or from another linear's output rows),
``W x = (W diag(s)) (x / s)``: dividing the norm's weight (or the producer's rows) by ``s`` and
multiplying ``W``'s input columns by ``s`` changes nothing in float, but moves activation outliers
into the weights, where 4-bit groups of 32 absorb them better than per-token int8 activations do.
The folded model has the same modules and shapes, so export, the runtime and the apps are untouched.

Groups per decoder layer (LLaMA / Qwen2): ``input_layernorm -> q,k,v``;
``post_attention_layernorm -> gate, up``; ``up rows -> down``. ``s_j = amax(x_j)^a / amax(W_j)^(1-a)``
with ``a`` either fixed (SmoothQuant) or searched per group on calibration activations for the
smallest output error of the quantized group (AWQ's search, here with the 8da4w arithmetic).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

ALPHAS = tuple(i / 10 for i in range(11))


@dataclass(frozen=True)
class FoldGroup:
    """Linears that read the same input, and the module whose output makes that input."""

    layer: int
    name: str  # "attn_in", "mlp_in", "down_in"
    producer: nn.Module  # RMSNorm (weight per channel) or the up projection (rows per channel)
    consumers: tuple[nn.Linear, ...]


def fold_groups(decoder: nn.Module) -> list[FoldGroup]:
    """The foldable groups of a transformers LLaMA / Qwen2 causal LM (``decoder.model.layers``) or of
    the exported ``KVCacheDecoder`` over it (``decoder.layers``, projections on the layer)."""
    groups = []
    layers = decoder.model.layers if hasattr(decoder, "model") else decoder.layers
    for i, layer in enumerate(layers):
        a, m = getattr(layer, "self_attn", layer), layer.mlp
        groups.append(FoldGroup(i, "attn_in", layer.input_layernorm, (a.q_proj, a.k_proj, a.v_proj)))
        groups.append(FoldGroup(i, "mlp_in", layer.post_attention_layernorm, (m.gate_proj, m.up_proj)))
        groups.append(FoldGroup(i, "down_in", m.up_proj, (m.down_proj,)))
    return groups


@torch.no_grad()
def collect_inputs(decoder: nn.Module, groups: list[FoldGroup], batches: list[torch.Tensor],
                   keep_rows: int = 256) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Per group: the per-channel max |x| over every calibration token, and up to ``keep_rows``
    evenly spaced input rows (for the search); ``batches`` are token-id tensors ``[1, S]``."""
    amax: dict[int, torch.Tensor] = {}
    rows: dict[int, list[torch.Tensor]] = {}
    hooks = []
    per_batch = max(1, keep_rows // max(len(batches), 1))
    for gi, g in enumerate(groups):
        def hook(_mod, args, gi=gi):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).float()
            cur = x.abs().amax(0)
            amax[gi] = cur if gi not in amax else torch.maximum(amax[gi], cur)
            # Subsample now: holding every row of every group would cost GBs at 7B.
            pick = torch.linspace(0, x.shape[0] - 1, min(per_batch, x.shape[0])).long()
            rows.setdefault(gi, []).append(x[pick].clone())
        hooks.append(g.consumers[0].register_forward_pre_hook(hook))
    try:
        for ids in batches:
            decoder(input_ids=ids, use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    return {gi: (amax[gi], torch.cat(rows[gi])) for gi in amax}


def fake_quant_weight(w: torch.Tensor, group: int = 32, algorithm: str = "rtn") -> torch.Tensor:
    """Symmetric int4 with one scale per ``group`` inputs: torchao's 8da4w weights (max / 7.5), or the
    ``search`` recipes' searched scales."""
    if algorithm == "search":
        from .torchao import searched_scales

        q, d = searched_scales(w, group)
        return (q.float().reshape(w.shape[0], -1, group) * d.unsqueeze(-1)).reshape(w.shape)
    o, i = w.shape
    g = w.reshape(o, i // group, group)
    scale = (g.abs().amax(-1, keepdim=True) / 7.5).clamp(min=1e-9)
    return (torch.clamp(torch.round(g / scale), -8, 7) * scale).reshape(o, i)


def fake_quant_act(x: torch.Tensor) -> torch.Tensor:
    """Per-token asymmetric int8, as XNNPACK's dynamic activations."""
    lo = x.amin(-1, keepdim=True).clamp(max=0)
    hi = x.amax(-1, keepdim=True).clamp(min=0)
    scale = ((hi - lo) / 255).clamp(min=1e-9)
    zp = torch.round(-128 - lo / scale)
    return (torch.clamp(torch.round(x / scale) + zp, -128, 127) - zp) * scale


def _scales(x_amax: torch.Tensor, w_amax: torch.Tensor, alpha: float) -> torch.Tensor:
    s = x_amax.clamp(min=1e-5).pow(alpha) / w_amax.clamp(min=1e-5).pow(1 - alpha)
    s = s / (s.max() * s.min()).sqrt()  # centre the scales around 1
    return s.clamp(min=1e-4, max=1e4)


def _group_error(consumers, refs, x: torch.Tensor, s: torch.Tensor, group: int, algorithm: str = "rtn") -> float:
    err = 0.0
    xs = fake_quant_act(x / s)
    for lin, ref in zip(consumers, refs):
        w = lin.weight.float()
        q = xs @ fake_quant_weight(w * s, group, algorithm).T
        err += float((q - ref).pow(2).sum() / ref.pow(2).sum().clamp(min=1e-12))
    return err


@torch.no_grad()
def choose_scales(groups: list[FoldGroup], stats, alpha: float | None = None, group: int = 32,
                  algorithm: str = "rtn") -> dict[int, dict]:
    """Per group: ``{"alpha", "scales", "error", "error_identity"}``. ``alpha=None`` searches
    :data:`ALPHAS` (plus "no scaling") for the smallest relative output error of the quantized group."""
    out = {}
    for gi, g in enumerate(groups):
        if gi not in stats:
            continue
        x_amax, x = stats[gi]
        w_amax = torch.stack([c.weight.detach().float().abs().amax(0) for c in g.consumers]).amax(0)
        refs = [x @ c.weight.float().T for c in g.consumers]  # once per group, not per candidate
        ident = _group_error(g.consumers, refs, x, torch.ones_like(x_amax), group, algorithm)
        best = {"alpha": None, "scales": None, "error": ident, "error_identity": ident}
        for a in ((alpha,) if alpha is not None else ALPHAS):
            s = _scales(x_amax, w_amax, a)
            e = _group_error(g.consumers, refs, x, s, group, algorithm)
            if e < best["error"] or alpha is not None:
                best = {"alpha": a, "scales": s, "error": e, "error_identity": ident}
        out[gi] = best
    return out


def group_key(g: FoldGroup) -> str:
    return f"layers.{g.layer}.{g.name}"


@torch.no_grad()
def calibrate(decoder: nn.Module, batches: list[torch.Tensor], method: str = "awq", group: int = 32,
              algorithm: str = "rtn") -> dict:
    """The fold plan of ``decoder`` (weights untouched): ``{"scales": {key: s}, "alphas": {key: a},
    "error_ratio": e}`` with keys ``layers.N.{attn_in,mlp_in,down_in}``; groups where no scale beats
    none are left out. ``method``: ``"awq"`` (search a per group) or ``"smoothquant-A"`` (fixed a)."""
    if method == "awq":
        alpha = None
    elif method.startswith("smoothquant-"):
        alpha = float(method.split("-", 1)[1])
    else:
        raise ValueError(f"unknown fold method {method!r}: awq or smoothquant-ALPHA")
    groups = fold_groups(decoder)
    chosen = choose_scales(groups, collect_inputs(decoder, groups, batches), alpha, group, algorithm)
    keys = {gi: group_key(groups[gi]) for gi in chosen}
    err = sum(c["error"] for c in chosen.values()) / max(sum(c["error_identity"] for c in chosen.values()), 1e-12)
    return {"scales": {keys[gi]: c["scales"].float() for gi, c in chosen.items() if c["scales"] is not None},
            "alphas": {keys[gi]: c["alpha"] for gi, c in chosen.items()}, "error_ratio": err}


def layer_scalings(decoder: nn.Module, scales: dict[str, torch.Tensor]) -> dict[int, tuple[str, torch.Tensor]]:
    """``id(module) -> (how, s)`` for every module a fold plan touches: ``"norm"`` (weight / s),
    ``"columns"`` (weight * s per input channel), ``"rows"`` (weight and bias / s per output channel);
    a linear that is both consumer and producer (``up_proj``) gets both, in one entry list."""
    out: dict[int, list] = {}
    for g in fold_groups(decoder):
        s = scales.get(group_key(g))
        if s is None:
            continue
        out.setdefault(id(g.producer), []).append(("rows" if isinstance(g.producer, nn.Linear) else "norm", s))
        for lin in g.consumers:
            out.setdefault(id(lin), []).append(("columns", s))
    return out


@torch.no_grad()
def scale_module(module: nn.Module, todo: list) -> None:
    """Apply :func:`layer_scalings`' entries to one module, in float32 (new tensors: the old ones may be
    memory-mapped from the checkpoint)."""
    for how, s in todo:
        w = module.weight.detach().float()
        if how == "columns":
            w = w * s.view(1, -1)
        elif how == "rows":
            w = w / s.view(-1, 1)
            if getattr(module, "bias", None) is not None:
                module.bias = nn.Parameter(module.bias.detach().float() / s, requires_grad=False)
        else:
            w = w / s
        module.weight = nn.Parameter(w, requires_grad=False)


@torch.no_grad()
def fold(decoder: nn.Module, scales: dict[str, torch.Tensor]) -> int:
    """Apply a whole fold plan to ``decoder`` now (float32 results); returns the modules changed.
    Exports instead apply it layer by layer as they quantize (:func:`layer_scalings`)."""
    plan = layer_scalings(decoder, scales)
    n = 0
    for m in decoder.modules():
        if id(m) in plan:
            scale_module(m, plan[id(m)])
            n += 1
    return n
