"""Apply a recipe to converted Core ML programs with ``coremltools.optimize.coreml``, and report
coverage of every weight; the same quantization math for the eager twin parity compares with.

``int4``: ``linear_symmetric`` int4, one fp16 scale per block of 32 input channels (axis 1 of a
linear ``[out, in]``, a conv ``[out, in, kh, kw]`` or an embedding table ``[vocab, hidden]``).
A weight whose axis 1 the block does not divide takes int8 per-channel (coremltools would leave
it fp16 silently); a constant feeding anything but linear / conv / gather (RoPE tables, a position
table that is resized, not looked up) stays fp16. Every weight gets a coverage row saying which.
"""

from __future__ import annotations

import numpy as np
import torch

from .coverage import CoverageRow
from .recipes import Recipe

WEIGHT_THRESHOLD = 2048  # coremltools' default: constants with more elements than this are weights
_KINDS = {"linear": "linear", "conv": "conv", "gather": "embedding"}
_ROLE = {"linear": "weight", "conv": "weight", "gather": "x"}  # the parameter a weight is fed as


def _param(op_meta, const: str) -> str:
    return next((p for p, v in op_meta.params_name_mapping.items() if v == const), "?")


def _schemes(recipe: Recipe, component: str):
    return {"vision": recipe.vision_linear, "projector": recipe.vision_linear, "decoder": recipe.decoder_linear,
            "embedding": recipe.embedding}[component]


def plan(mlmodel, recipe: Recipe, component_of, names: dict[str, str]) -> tuple[object | None, list[CoverageRow]]:
    """The ``OptimizationConfig`` for ``mlmodel`` (None for a float recipe) and one coverage row per
    weight. ``component_of(fqn)`` names the component; ``names`` maps the program's constant names
    (``p_layers_0_q_proj_weight``) to module names (``layers.0.q_proj.weight``)."""
    import coremltools.optimize.coreml as cto

    rows: list[CoverageRow] = []
    ops: dict[str, object] = {}
    weights = cto.get_weights_metadata(mlmodel, weight_threshold=WEIGHT_THRESHOLD)
    for const, meta in weights.items():
        fqn = _module_name(const, names)
        component = component_of(fqn)
        scheme = _schemes(recipe, component)
        shape = tuple(int(s) for s in meta.val.shape)
        kinds = {c.op_type for c in meta.child_ops}
        kind = _KINDS.get(next(iter(kinds))) if len(kinds) == 1 else None
        # Only a linear/conv "weight" or a gather's table is a weight: the converter gives a linear
        # without bias a zero bias, which coremltools lists (> threshold) but never quantizes.
        if kind is not None and not all(c.params_name_mapping.get(_ROLE[c.op_type]) == const for c in meta.child_ops):
            kind, kinds = None, {f"{c.op_type} (as {_param(c, const)})" for c in meta.child_ops}
        if scheme is None:
            rows.append(CoverageRow(component, fqn, kind or "table", shape, "fp16", None, None, 16.0, "recipe keeps fp16"))
        elif kind is None:
            rows.append(CoverageRow(component, fqn, "table", shape, "fp16", None, None, 16.0,
                                    f"feeds {', '.join(sorted(kinds)) or 'nothing'}, not a linear/conv weight or a gather table: stays fp16"))
        elif len(shape) < 2 or shape[1] % scheme.group:
            ops[const] = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel",
                                                     weight_threshold=0)
            width = shape[1] if len(shape) > 1 else 1
            rows.append(CoverageRow(component, fqn, kind, shape, "int8-per-channel", 8, 0, 8 + 16 / width,
                                    f"axis-1 width {width} not divisible by block {scheme.group}: int8 per-channel"))
        else:
            ops[const] = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int4", granularity="per_block",
                                                     block_size=scheme.group, weight_threshold=0)
            rows.append(CoverageRow(component, fqn, kind, shape, f"int4-block{scheme.group}", 4, scheme.group,
                                    scheme.bits_per_weight(shape[1])))
    # One config per listed weight and no global one: coremltools lists weights of >= threshold
    # elements but quantizes only > threshold, so a global config would skip a [32, 64] k_proj.
    cfg = cto.OptimizationConfig(op_name_configs=ops) if ops else None
    return cfg, rows


def apply(mlmodel, cfg):
    """The quantized program (``mlmodel`` itself for a float recipe)."""
    if cfg is None:
        return mlmodel
    import coremltools.optimize.coreml as cto

    return cto.linear_quantize_weights(mlmodel, cfg)


def _module_name(const: str, names: dict[str, str]) -> str:
    for suffix in ("_to_fp16", ""):
        if const.endswith(suffix) and const[: len(const) - len(suffix)] in names:
            return names[const[: len(const) - len(suffix)]]
    return const


def constant_names(module: torch.nn.Module) -> dict[str, str]:
    """``torch.export`` constant name (``p_`` + dotted name with underscores) -> module name."""
    out = {}
    for name, _ in module.named_parameters():
        out["p_" + name.replace(".", "_")] = name
    for name, _ in module.named_buffers():
        out["b_" + name.replace(".", "_")] = name
        out["c_" + name.replace(".", "_")] = name
    return out


def fake_quantize(weight: torch.Tensor, scheme: str, block: int = 32) -> torch.Tensor:
    """What a package holds for ``weight`` under coverage ``scheme`` (``int4-block32``,
    ``int8-per-channel``, ``fp16``), dequantized: fp16 weights quantized by coremltools' own
    ``compute_qparams``, scales in fp16, returned in float32."""
    from coremltools.optimize._utils import compute_qparams

    w16 = weight.detach().to(torch.float16)
    if scheme == "fp16":
        return w16.float()
    w = w16.numpy()  # coremltools quantizes the fp16 constant with fp16 arithmetic; fp32 rounds ties differently
    if scheme.startswith("int4-block"):
        nbits, blocks = 4, [1, block] + [0] * (w.ndim - 2)
    elif scheme == "int8-per-channel":
        nbits, blocks = 8, [1] + [0] * (w.ndim - 1)
    else:
        raise ValueError(f"unknown Core ML weight scheme {scheme!r}")
    q, scale, zero = compute_qparams(w, nbits, True, "LINEAR_SYMMETRIC", None, blocks)
    scale16 = scale.astype(np.float16).astype(np.float32)
    deq = q.astype(np.float32) * _expand(scale16, w.shape)  # exact in fp32: both factors have <= 11 bits
    return torch.from_numpy(deq.astype(np.float16).astype(np.float32))


def _expand(scale: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    out = scale
    for axis, (s, n) in enumerate(zip(scale.shape, shape)):
        if s != n:
            out = np.repeat(out, n // s, axis=axis)
    return out
