"""Apply a recipe with torchao for ExecuTorch/XNNPACK, and report coverage of every layer.

Linears use ``Int8DynamicActivationIntxWeightConfig`` (8daXw). torchao's weight-only linears
are not used: the XNNPACK partitioner accepts them but computes wrong results (about 1/scale off;
seen in a spike with executorch 1.5.1), so weight-only is for embeddings only. XNNPACK takes
group sizes that are multiples of 32 only, so a linear whose input width is not divisible by the
recipe's group falls back to int8 per-channel weights (8da8w): SigLIP's MLP width 4304 = 16 x 269
has no multiple-of-32 divisor. No layer is skipped silently: every layer gets a coverage row.
"""

from __future__ import annotations

import torch
from torch import nn

from .coverage import CoverageRow
from .recipes import Recipe, Scheme


def _fallback(in_features: int, scheme: Scheme) -> tuple[Scheme, str]:
    """The scheme a layer of this width actually gets, and why, if it differs."""
    if scheme.group == 0 or in_features % scheme.group == 0:
        return scheme, ""
    return (Scheme(8, 0, scheme.dynamic_act8),
            f"width {in_features} not divisible by group {scheme.group} (XNNPACK needs multiples of 32): int8 per-channel")


def _config(scheme: Scheme, embedding: bool, algorithm: str = "rtn"):
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, IntxWeightOnlyConfig
    from torchao.quantization.granularity import PerAxis, PerGroup
    from torchao.quantization.quantize_.workflows.intx.intx_choose_qparams_algorithm import (
        IntxChooseQParamsAlgorithm,
    )

    dtype = torch.int4 if scheme.weight_bits == 4 else torch.int8
    gran = PerGroup(scheme.group) if scheme.group else PerAxis(0)
    if embedding or not scheme.dynamic_act8:
        return IntxWeightOnlyConfig(weight_dtype=dtype, granularity=gran)
    # HQQ only where it has room to help: 4-bit groups (8-bit per-channel keeps the group max).
    algo = (IntxChooseQParamsAlgorithm.HQQ_SCALE_ONLY if algorithm == "hqq" and scheme.weight_bits == 4
            else IntxChooseQParamsAlgorithm.AFFINE)
    return Int8DynamicActivationIntxWeightConfig(weight_dtype=dtype, weight_granularity=gran,
                                                 intx_choose_qparams_algorithm=algo)


SEARCH_STEPS = (6.5, 6.75, 7.0, 7.25, 7.5, 7.75, 8.0)


@torch.no_grad()
def searched_scales(w: torch.Tensor, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    """4-bit symmetric codes ``[-8, 7]`` and one positive scale per ``group`` inputs: group max / k for
    the k in :data:`SEARCH_STEPS` with the smallest squared error (torchao's default is k = 7.5 always;
    k = 8 gives a negative extreme level -8 exactly and clips a positive one to 7). XNNPACK refuses
    negative scales (measured: the program does not load), so llama.cpp Q4_0's signed scale, which
    gives level -8 to a positive extreme too, is not available."""
    o, i = w.shape
    g = w.float().reshape(o, i // group, group)
    amax = g.abs().amax(-1, keepdim=True).clamp(min=1e-12)
    best_q = best_d = best_err = None
    for k in SEARCH_STEPS:
        d = amax / k
        q = torch.clamp(torch.round(g / d), -8, 7)
        err = (q * d - g).pow(2).sum(-1, keepdim=True)
        if best_err is None:
            best_q, best_d, best_err = q, d, err
        else:
            better = err < best_err
            best_q, best_d = torch.where(better, q, best_q), torch.where(better, d, best_d)
            best_err = torch.minimum(err, best_err)
    return best_q.to(torch.int8).reshape(o, i), best_d.reshape(o, i // group)


def quantize_module(module: nn.Module, scheme: Scheme | None, component: str, kind: str,
                    algorithm: str = "rtn", head: Scheme | None = None, before=None) -> list[CoverageRow]:
    """Quantize every ``kind`` ("linear" or "embedding") layer of ``module`` in place; one row each.
    ``head`` is the scheme of a linear named ``lm_head`` (default: ``scheme``); ``before(layer)`` runs
    on each layer once it is float32, just before it is quantized (the fold's column/row scaling)."""
    from torchao.quantization import quantize_

    cls = nn.Linear if kind == "linear" else nn.Embedding
    rows = []
    targets = [(n, m) for n, m in module.named_modules() if type(m) is cls]
    for name, layer in targets:
        shape = tuple(layer.weight.shape)
        width = shape[1]
        # One layer at a time to float32 (a bf16 checkpoint's weights): the transient fp32 copy is
        # one layer, never the model; quantizing then shrinks it to int4/int8.
        upcast(layer)
        if before is not None:
            before(layer)
        layer_scheme = head if head is not None and name.split(".")[-1] == "lm_head" else scheme
        if layer_scheme is None:
            rows.append(CoverageRow(component, name, kind, shape, "float", None, None, 32.0, "recipe keeps float"))
            continue
        used, note = _fallback(width, layer_scheme)
        search = algorithm == "search" and used.weight_bits == 4 and used.group > 0
        float_w = layer.weight.detach() if search else None
        quantize_(layer, _config(used, kind == "embedding", algorithm), filter_fn=lambda m, fqn: isinstance(m, cls))
        if search:  # same tensor layout, our codes and scales (torchao has no such scale search)
            q, d = searched_scales(float_w, used.group)
            layer.weight.qdata.copy_(q)
            layer.weight.scale.copy_(d.to(layer.weight.scale.dtype))
            layer.weight.zero_point.zero_()
        label = Scheme(used.weight_bits, used.group, used.dynamic_act8 and kind == "linear").label
        rows.append(CoverageRow(component, name, kind, shape, label, used.weight_bits, used.group,
                                used.bits_per_weight(width), note))
    return rows


def upcast(module: nn.Module, dtype: torch.dtype = torch.float32, max_numel: int | None = None) -> None:
    """Plain floating parameters and buffers of ``module`` to ``dtype``, in place, one tensor at a
    time (only those of at most ``max_numel`` elements, if given); quantized tensor subclasses are
    left as they are, and so are the buffers a module names in ``fixed_dtype_buffers`` (a float16
    KV cache: its dtype is the module's contract)."""
    def wanted(t: torch.Tensor) -> bool:
        return t.is_floating_point() and t.dtype != dtype and (max_numel is None or t.numel() <= max_numel)

    for sub in module.modules():
        for name, p in list(sub.named_parameters(recurse=False)):
            if type(p.data) is torch.Tensor and wanted(p):
                setattr(sub, name, nn.Parameter(p.detach().to(dtype), requires_grad=False))
        fixed = getattr(sub, "fixed_dtype_buffers", ())
        for name, b in list(sub.named_buffers(recurse=False)):
            if type(b) is torch.Tensor and wanted(b) and name not in fixed:
                persistent = name not in sub._non_persistent_buffers_set
                sub.register_buffer(name, b.to(dtype), persistent=persistent)


def _float_rows(module: nn.Module, component: str) -> list[CoverageRow]:
    """Layers no recipe quantizes, listed with the reason."""
    rows = []
    for name, m in module.named_modules():
        if isinstance(m, nn.Conv2d):
            rows.append(CoverageRow(component, name, "conv", tuple(m.weight.shape), "float", None, None, 32.0,
                                    "patch embedding convolution stays float (runs once per frame)"))
        elif type(m) is nn.Embedding:
            rows.append(CoverageRow(component, name, "embedding", tuple(m.weight.shape), "float", None, None, 32.0,
                                    "position table is interpolated, not looked up: stays float"))
    return rows


def apply(recipe: Recipe, vision: nn.Module, projector: nn.Module, decoder: nn.Module, embedding: nn.Module,
          fold_scales: dict | None = None) -> list[CoverageRow]:
    """Quantize the export copies in place per ``recipe``; returns the coverage rows. ``fold_scales``
    (``smooth.calibrate``'s ``"scales"``) are folded into the decoder's norms now and into each of its
    linears just before that linear is quantized."""
    from . import smooth

    before = None
    if fold_scales:
        todo = smooth.layer_scalings(decoder, fold_scales)
        for m in decoder.modules():
            if id(m) in todo and not isinstance(m, nn.Linear):
                smooth.scale_module(m, todo[id(m)])  # the norms: small, float32 now

        def before(layer):
            if id(layer) in todo:
                smooth.scale_module(layer, todo[id(layer)])
    algo = recipe.weight_algorithm
    rows = _float_rows(vision, "vision")
    rows += quantize_module(vision, recipe.vision_linear, "vision", "linear", algo)
    rows += quantize_module(projector, recipe.vision_linear, "projector", "linear", algo)
    rows += quantize_module(decoder, recipe.decoder_linear, "decoder", "linear", algo, recipe.head_scheme, before)
    rows += quantize_module(embedding, recipe.embedding, "embedding", "embedding")
    for module in (vision, projector, decoder, embedding):  # norms, biases, conv, position tables
        upcast(module)
    return rows
