"""Torch-to-MIL translations the Core ML conversion registers with coremltools' torch frontend.

``sfllava::slowfast_pool`` stays one node through ``run_decompositions({})`` (it is a custom op,
not a composite) and is translated here as one composite: slices (+ tile for repeated slow
frames), 1-D pair or 2-D block reductions, the separator row and the fast average pool, one
concat. An ML Program keeps no grouping, so every op of the composite carries the name prefix
``<node>__slowfast_pool__`` (:data:`PREFIX`): tests and the manifest count them in the saved package.
"""

from __future__ import annotations

import math

PREFIX = "__slowfast_pool__"
_registered = False


def register() -> None:
    """Register the translations (once per process; before ``ct.convert``)."""
    global _registered
    if _registered:
        return
    from coremltools.converters.mil.frontend.torch.torch_op_registry import register_torch_op

    register_torch_op(_slowfast_pool, torch_alias=["sfllava::slowfast_pool", "sfllava.slowfast_pool"], override=True)
    _registered = True


def _frames(mb, x, idx: list[int], name: str):
    """``x[idx]`` along axis 0 from strided slices (a tile for a repeated frame) and one concat."""
    from sfllava_mobile.ops.slowfast_pool import _runs

    parts = []
    for k, (start, count, step) in enumerate(_runs(idx)):
        if step == 0:
            one = mb.slice_by_index(x=x, begin=[start, 0, 0], end=[start + 1, 0, 0], end_mask=[False, True, True],
                                    name=f"{name}_repeat{k}")
            parts.append(mb.tile(x=one, reps=[count, 1, 1], name=f"{name}_tile{k}"))
        else:
            parts.append(mb.slice_by_index(x=x, begin=[start, 0, 0], end=[start + (count - 1) * step + 1, 0, 0],
                                           stride=[step, 1, 1], end_mask=[False, True, True], name=f"{name}_slice{k}"))
    return parts[0] if len(parts) == 1 else mb.concat(values=parts, axis=0, name=f"{name}_frames")


def _pool(mb, x, gh: int, gw: int, d: int, kernel: tuple[int, int], kind: str, name: str):
    """``[N, gh*gw, d]`` -> ``[N * (gh/kh) * (gw/kw), d]`` by non-overlapping 2-D pooling, as a
    rank-5 reshape and one reduction: no layout transposes, which MIL's transpose passes would
    merge and rename out of the composite."""
    kh, kw = kernel
    y = mb.reshape(x=x, shape=[-1, kh, gw // kw, kw, d], name=f"{name}_blocks")
    reduce = mb.reduce_max if kind == "max" else mb.reduce_mean
    y = reduce(x=y, axes=[1, 3], keep_dims=False, name=f"{name}_pool")
    return mb.reshape(x=y, shape=[-1, d], name=f"{name}_rows")


def _adaptive_avg(mb, x, gh: int, gw: int, d: int, out: tuple[int, int], name: str):
    """``adaptive_avg_pool2d`` (torch's bins: floor(i*g/o) .. ceil((i+1)*g/o)) as slices + means."""
    y = mb.reshape(x=x, shape=[-1, gh, gw, d], name=f"{name}_grid")
    cells = []
    for i in range(out[0]):
        r0, r1 = (i * gh) // out[0], math.ceil((i + 1) * gh / out[0])
        row = []
        for j in range(out[1]):
            c0, c1 = (j * gw) // out[1], math.ceil((j + 1) * gw / out[1])
            cell = mb.slice_by_index(x=y, begin=[0, r0, c0, 0], end=[0, r1, c1, 0], end_mask=[True, False, False, True],
                                     name=f"{name}_cell{i}_{j}")
            row.append(mb.reduce_mean(x=cell, axes=[1, 2], keep_dims=True, name=f"{name}_mean{i}_{j}"))
        cells.append(mb.concat(values=row, axis=2, name=f"{name}_row{i}"))
    y = mb.concat(values=cells, axis=1, name=f"{name}_cells")
    return mb.reshape(x=y, shape=[-1, d], name=f"{name}_rows")


def _slowfast_pool(context, node):
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.frontend.torch.ops import _get_inputs

    from sfllava_mobile.ops.slowfast_pool import slow_frame_indices

    (features, separator, grid_h, grid_w, slow_rule, slow_param, slow_pool,
     kernel_h, kernel_w, fast_h, fast_w) = _get_inputs(context, node, expected=11)
    gh, gw, kh, kw, fh, fw, param = (int(v.val) for v in (grid_h, grid_w, kernel_h, kernel_w, fast_h, fast_w, slow_param))
    rule = slow_rule if isinstance(slow_rule, str) else str(slow_rule.val)  # strings may arrive as python str
    pool = slow_pool if isinstance(slow_pool, str) else str(slow_pool.val)
    name = node.name + PREFIX
    t, hw, d = (int(s) for s in features.shape)
    idx = slow_frame_indices(rule, param, t)
    slow = _frames(mb, features, idx, f"{name}slow")
    if pool in ("1d_max", "1d_avg"):
        half = hw // 2
        if 2 * half != hw:
            slow = mb.slice_by_index(x=slow, begin=[0, 0, 0], end=[0, 2 * half, 0], end_mask=[True, False, True],
                                     name=f"{name}slow_even")
        pairs = mb.reshape(x=slow, shape=[len(idx), half, 2, d], name=f"{name}slow_pairs")
        reduce = mb.reduce_max if pool == "1d_max" else mb.reduce_mean
        pooled = reduce(x=pairs, axes=[2], keep_dims=False, name=f"{name}slow_reduce")
        slow_out = mb.reshape(x=pooled, shape=[-1, d], name=f"{name}slow_out")
    else:
        slow_out = _pool(mb, slow, gh, gw, d, (kh, kw), "max" if pool == "2d_max" else "avg", f"{name}slow")
    if gh % fh == 0 and gw % fw == 0:
        fast_out = _pool(mb, features, gh, gw, d, (gh // fh, gw // fw), "avg", f"{name}fast")
    else:
        fast_out = _adaptive_avg(mb, features, gh, gw, d, (fh, fw), f"{name}fast")
    parts = [slow_out]
    if separator is not None:
        parts.append(mb.reshape(x=separator, shape=[1, d], name=f"{name}separator"))
    parts.append(fast_out)
    # The composite's output keeps the node's own name (what later ops refer to).
    context.add(mb.concat(values=parts, axis=0, name=node.name), torch_name=node.name)
