"""Evaluate a saved Core ML ML Program (.mlpackage) with numpy, where Core ML cannot run (Linux).

This checks the *program's semantics* (the conversion, the op parameters, the int4 constexpr
weights, the state reads and writes), not Apple's kernels: the ANE/GPU accumulate differently.

Load: the package's spec + weight dir -> pymil Program (coremltools' milproto frontend, the same
loader ``save_multifunction`` uses). Run: walk ``function.operations`` in order; for each op put
the input values on its input Vars and call the op's own ``value_inference()`` (coremltools' numpy
reference, 113 core ops at iOS18); ops without one (silu, conv, pools, states, constexpr_* ...)
have numpy handlers here. ``write_state`` comes back from milproto as ``coreml_update_state``.

Precision model: ``compute="fp32"`` (default) evaluates every op in fp32 and rounds each output to
its declared MIL dtype (fp16 tensors are stored as fp16 between ops, like the device does; the
accumulation inside an op is fp32). ``compute="native"`` keeps the declared dtypes inside the op
(numpy fp16 arithmetic, pessimistic).

    interp = MilInterpreter("text_decoder.mlpackage", function="decode")
    out = interp.predict({"inputs_embeds": x, "input_pos": np.array([3], np.int32)})
    interp.states  # {state name: fp16 array}, persists across predict() calls; reset_states()
"""
from __future__ import annotations

import collections
import os
from typing import Callable

import numpy as np

import coremltools as ct
from coremltools.converters.mil.frontend.milproto import load as _milproto
from coremltools.converters.mil.mil import Builder as mb
from coremltools.converters.mil.mil import types
from coremltools.converters.mil.mil.block import Function
from coremltools.converters.mil.mil.types.symbolic import any_symbolic
from coremltools.converters.mil.mil.operation import Operation

from sfllava_mobile.errors import SfllavaError

_BASE_VI = Operation.value_inference


class _Val:
    """Stands in for a builtin sym_val: Var.val / Var.sym_val only read ``.val``."""
    __slots__ = ("val",)

    def __init__(self, v):
        self.val = v


def np_dtype(var) -> np.dtype | None:
    dt = var.dtype
    if dt is None or types.is_state(var.sym_type):
        return None
    if types.is_str(dt):
        return None
    return np.dtype(types.nptype_from_builtin(dt))


def load_program(pkg: str, spec=None):
    """The package's spec and its MIL program (every function), weights read from the package."""
    try:
        spec = spec or ct.utils.load_spec(str(pkg))
        wdir = os.path.join(pkg, "Data", "com.apple.CoreML", "weights")
        return spec, _milproto.load(spec, spec.specificationVersion, wdir)
    except Exception as e:  # coremltools raises bare RuntimeError/TypeError/protobuf errors deep inside
        raise SfllavaError(f"{pkg}: not a readable Core ML package ({type(e).__name__}: {e})") from None


# ----------------------------------------------------------------------------- numpy handlers
HANDLERS: dict[str, Callable] = {}


def handler(*names):
    def deco(f):
        for n in names:
            HANDLERS[n] = f
        return f
    return deco


def _p(op, name, env, default=None):
    """Value of parameter ``name`` of ``op`` (consts read directly)."""
    v = op.inputs.get(name)
    if v is None:
        return default
    if isinstance(v, (list, tuple)):
        return [env.value(x) for x in v]
    return env.value(v)


@handler("silu")
def _silu(op, env):
    x = _p(op, "x", env).astype(np.float32)
    return x / (1.0 + np.exp(-x))


@handler("read_state")
def _read_state(op, env):
    return env.interp.states[op.inputs["input"].name].copy()


@handler("coreml_update_state")
def _update_state(op, env):
    v = _p(op, "value", env)
    name = op.inputs["state"].name
    env.interp.states[name] = np.asarray(v).astype(env.interp.states[name].dtype).copy()
    return v


@handler("constexpr_blockwise_shift_scale", "constexpr_lut_to_dense", "constexpr_affine_dequantize",
         "constexpr_cast", "constexpr_sparse_to_dense", "constexpr_lut_to_sparse",
         "constexpr_sparse_blockwise_shift_scale")
def _constexpr(op, env):
    key = id(op)
    if key not in env.interp.constexpr_cache:  # weights: decompress once per interpreter
        env.interp.constexpr_cache[key] = op.materialized_val_inference()
    return env.interp.constexpr_cache[key]


def _pads(op, env, spatial):
    pad_type = _p(op, "pad_type", env, "valid")
    if pad_type == "custom":
        pad = list(_p(op, "pad", env))
        return [(pad[2 * i], pad[2 * i + 1]) for i in range(spatial)], pad_type
    return [(0, 0)] * spatial, pad_type


def _same_pads(in_sz, k, s, d=1):
    out = -(-in_sz // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - in_sz, 0)
    return (total // 2, total - total // 2)


@handler("conv")
def _conv(op, env):
    x = _p(op, "x", env).astype(np.float32)
    w = _p(op, "weight", env).astype(np.float32)
    b = _p(op, "bias", env)
    nsp = x.ndim - 2
    strides = list(_p(op, "strides", env, [1] * nsp))
    dil = list(_p(op, "dilations", env, [1] * nsp))
    groups = int(_p(op, "groups", env, 1))
    pads, pad_type = _pads(op, env, nsp)
    if pad_type == "same":
        pads = [_same_pads(x.shape[2 + i], w.shape[2 + i], strides[i], dil[i]) for i in range(nsp)]
    if nsp == 1:
        x, w = x[:, :, None, :], w[:, :, None, :]
        strides, dil, pads = [1] + strides, [1] + dil, [(0, 0)] + pads
    x = np.pad(x, [(0, 0), (0, 0)] + list(pads))
    n, cin, hh, ww = x.shape
    cout, cpg, kh, kw = w.shape
    oh = (hh - (kh - 1) * dil[0] - 1) // strides[0] + 1
    ow = (ww - (kw - 1) * dil[1] - 1) // strides[1] + 1
    out = np.zeros((n, cout, oh, ow), np.float32)
    opg = cout // groups
    for g in range(groups):
        xg = x[:, g * cpg:(g + 1) * cpg]
        wg = w[g * opg:(g + 1) * opg]
        cols = np.empty((n, cpg, kh, kw, oh, ow), np.float32)
        for i in range(kh):
            for j in range(kw):
                cols[:, :, i, j] = xg[:, :, i * dil[0]: i * dil[0] + strides[0] * (oh - 1) + 1: strides[0],
                                      j * dil[1]: j * dil[1] + strides[1] * (ow - 1) + 1: strides[1]]
        out[:, g * opg:(g + 1) * opg] = np.einsum("ncijhw,ocij->nohw", cols, wg, optimize=True)
    if b is not None:
        out += b.astype(np.float32).reshape(1, -1, 1, 1)
    return out[:, :, 0, :] if nsp == 1 else out


def _pool(op, env, kind):
    x = _p(op, "x", env).astype(np.float32)
    k = list(_p(op, "kernel_sizes", env))
    nsp = len(k)
    s = list(_p(op, "strides", env, [1] * nsp))
    pads, pad_type = _pads(op, env, nsp)
    if pad_type == "same":
        pads = [_same_pads(x.shape[x.ndim - nsp + i], k[i], s[i]) for i in range(nsp)]
    if _p(op, "ceil_mode", env, False):
        raise SfllavaError(f"mil_eval: {op.op_type} {op.name} uses ceil_mode, which the Linux evaluator does not run")
    exclude = bool(_p(op, "exclude_padding_from_average", env, False))
    lead = x.ndim - nsp
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, [(0, 0)] * lead + list(pads), constant_values=fill)
    ones = np.pad(np.ones(x.shape[lead:], np.float32), list(pads))
    outs = [(xp.shape[lead + i] - k[i]) // s[i] + 1 for i in range(nsp)]
    win = np.lib.stride_tricks.sliding_window_view(xp, k, axis=tuple(range(lead, x.ndim)))
    win = win[(Ellipsis,) * 0 + tuple([slice(None)] * lead) + tuple(slice(0, outs[i] * s[i], s[i]) for i in range(nsp))]
    axes = tuple(range(x.ndim, x.ndim + nsp))
    if kind == "max":
        return win.max(axis=axes)
    tot = win.sum(axis=axes)
    if exclude:
        cnt = np.lib.stride_tricks.sliding_window_view(ones, k)[tuple(slice(0, outs[i] * s[i], s[i]) for i in range(nsp))]
        return tot / cnt.sum(axis=tuple(range(nsp, 2 * nsp)))
    return tot / float(np.prod(k))


HANDLERS["avg_pool"] = lambda op, env: _pool(op, env, "avg")
HANDLERS["max_pool"] = lambda op, env: _pool(op, env, "max")


def _bilinear_axis(in_sz, out_sz, mode, align_corners=False, half_pixel=False):
    """Source coordinates for one axis."""
    i = np.arange(out_sz, dtype=np.float64)
    if mode == "ALIGN_CORNERS" or align_corners:
        src = i * ((in_sz - 1) / (out_sz - 1)) if out_sz > 1 else np.zeros_like(i)
    elif mode in ("UNALIGN_CORNERS", "HALF_PIXEL") or half_pixel:
        src = (i + 0.5) * (in_sz / out_sz) - 0.5
    elif mode == "STRICT_ALIGN_CORNERS":
        src = i * ((in_sz - 1) / (out_sz - 1)) if out_sz > 1 else np.zeros_like(i)
    else:  # DEFAULT / OFFSET_CORNERS
        src = i * (in_sz / out_sz)
    src = np.clip(src, 0, in_sz - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, in_sz - 1)
    return lo, hi, (src - lo).astype(np.float32)


def _bilinear(x, oh, ow, mode, align_corners=False, half_pixel=False):
    x = x.astype(np.float32)
    hl, hh, hf = _bilinear_axis(x.shape[-2], oh, mode, align_corners, half_pixel)
    wl, wh, wf = _bilinear_axis(x.shape[-1], ow, mode, align_corners, half_pixel)
    top = x[..., hl, :] * (1 - hf)[:, None] + x[..., hh, :] * hf[:, None]
    return top[..., wl] * (1 - wf) + top[..., wh] * wf


@handler("upsample_bilinear")
def _upsample_bilinear(op, env):
    x = _p(op, "x", env)
    sh, sw = float(_p(op, "scale_factor_height", env, 1)), float(_p(op, "scale_factor_width", env, 1))
    ac = bool(_p(op, "align_corners", env, False))
    hp = bool(_p(op, "half_pixel_centers", env, not ac))
    oh, ow = int(np.floor(x.shape[-2] * sh)), int(np.floor(x.shape[-1] * sw))
    return _bilinear(x, oh, ow, None, ac, hp)


@handler("resize_bilinear")
def _resize_bilinear(op, env):
    x = _p(op, "x", env)
    oh, ow = int(_p(op, "target_size_height", env)), int(_p(op, "target_size_width", env))
    return _bilinear(x, oh, ow, _p(op, "sampling_mode", env, "DEFAULT"))


@handler("shape")
def _shape(op, env):  # value_inference reads the (maybe symbolic) static shape; use the real one
    return np.array(np.shape(_p(op, "x", env)), np.int32)


# ----------------------------------------------------------------------------- interpreter
class _Env:
    def __init__(self, interp):
        self.interp = interp
        self.vals: dict[str, object] = {}

    def value(self, var):
        if var.name in self.vals:
            return self.vals[var.name]
        v = var.val
        if v is None and var.op is not None and var.op.op_type.startswith("constexpr_"):
            return HANDLERS[var.op.op_type](var.op, self)
        if v is None and not types.is_state(var.sym_type):
            raise KeyError(f"no value for var {var.name}")
        return v


class MilInterpreter:
    def __init__(self, pkg: str | None = None, function: str | None = None, compute: str = "fp32", program=None):
        if program is None:
            self.spec, self.program = load_program(pkg)
        else:
            self.spec, self.program = None, program
        fns = self.program.functions
        name = function or getattr(self.program, "default_function_name", None) or "main"
        if name not in fns:
            name = next(iter(fns))
        self.function_name = name
        self.fn = fns[name]
        self.compute = compute
        self.constexpr_cache: dict[int, np.ndarray] = {}
        self.states: dict[str, np.ndarray] = {}
        self.reset_states()
        self.trace: list[tuple[str, str, str]] = []  # (op name, op type, how) of the last run

    def with_function(self, name):
        """Another function of the same program, sharing this interpreter's states."""
        other = MilInterpreter(program=self.program, function=name, compute=self.compute)
        other.states = self.states
        other.constexpr_cache = self.constexpr_cache
        return other

    def reset_states(self):
        for n, v in self.fn.inputs.items():
            if types.is_state(v.sym_type):
                wt = v.sym_type.wrapped_type()
                self.states[n] = np.zeros(wt.get_shape(), types.nptype_from_builtin(wt.get_primitive()))

    @property
    def input_names(self):
        return [n for n, v in self.fn.inputs.items() if not types.is_state(v.sym_type)]

    def predict(self, inputs: dict) -> dict:
        env = _Env(self)
        for n, v in self.fn.inputs.items():
            if types.is_state(v.sym_type):
                continue
            env.vals[n] = np.asarray(inputs[n]).astype(np_dtype(v))
        self.trace = []
        for op in self.fn.operations:
            self._run_op(op, env)
        return {v.name: env.vals[v.name] if v.name in env.vals else env.value(v) for v in self.fn.outputs}

    # -- one op
    def _run_op(self, op, env):
        t = op.op_type
        if t == "const":
            return
        if t.startswith("constexpr_"):
            out = HANDLERS[t](op, env)
            env.vals[op.outputs[0].name] = out
            self.trace.append((op.name, t, "handler"))
            return
        if t in HANDLERS:
            outs, how = HANDLERS[t](op, env), "handler"
        elif type(op).value_inference is not _BASE_VI:
            if self._static(op):
                outs, how = self._value_inference(op, env), "value_inference"
            else:  # symbolic shapes: rebuild the op on consts so type inference sees real shapes
                outs, how = self._rebuild(op, env), "rebuild+value_inference"
        else:
            raise SfllavaError(f"mil_eval: no evaluator for op type {t!r} (op {op.name}); parity cannot run this "
                               f"package on Linux")
        if len(op.outputs) == 1:
            outs = (outs,)
        for var, val in zip(op.outputs, outs):
            dt = np_dtype(var)
            val = np.asarray(val)
            env.vals[var.name] = val.astype(dt) if dt is not None else val
        self.trace.append((op.name, t, how))

    @staticmethod
    def _static(op):
        vs = [op.outputs[0]] + [x for v in op.inputs.values() for x in (v if isinstance(v, (list, tuple)) else [v])]
        return not any(types.is_tensor(x.sym_type) and any_symbolic(x.shape) for x in vs)

    def _input_value(self, var, env):
        val = env.value(var)
        if isinstance(val, np.bool_):  # numpy 2: np.mean(keepdims=np.bool_) raises; use a python bool
            val = bool(val)
        if self.compute == "fp32" and isinstance(val, (np.ndarray, np.generic)) and val.dtype == np.float16:
            val = val.astype(np.float32)
        return val

    def _rebuild(self, op, env):
        kwargs = {}
        for pname, v in op.inputs.items():
            kwargs[pname] = [self._input_value(x, env) for x in v] if isinstance(v, (list, tuple)) else self._input_value(v, env)
        with Function({}, opset_version=self.fn.opset_version):
            out = getattr(mb, op.op_type)(**kwargs)
        outs = out if isinstance(out, (list, tuple)) else [out]
        vals = [o.val for o in outs]
        if any(v is None for v in vals):
            raise RuntimeError(f"rebuilt {op.op_type} {op.name} has no value")
        return tuple(vals) if len(op.outputs) > 1 else vals[0]

    def _value_inference(self, op, env):
        saved = []
        try:
            for pname, v in op.inputs.items():
                for var in (v if isinstance(v, (list, tuple)) else [v]):
                    if var.name in env.vals or var.val is None or self.compute == "fp32":
                        val = self._input_value(var, env)
                        saved.append((var, var._sym_val))
                        var._sym_val = _Val(val)
            res = op.value_inference()
        finally:
            for var, sv in reversed(saved):
                var._sym_val = sv
        if res is None:
            raise RuntimeError(f"value_inference of {op.op_type} {op.name} returned None")
        return res


def op_coverage(program) -> dict:
    """{op_type: 'value_inference' | 'handler' | 'MISSING'} for every op in every function: an
    export fails on MISSING, so a new op type shows up at once rather than as an untested program."""
    cov = {}
    for fn in program.functions.values():
        for op in fn.operations:
            t = op.op_type
            if t in HANDLERS:
                cov[t] = "handler"
            elif t == "const" or type(op).value_inference is not _BASE_VI:
                cov[t] = "value_inference"
            else:
                cov[t] = "MISSING"
    return dict(sorted(cov.items()))


def op_counts(program) -> dict[str, int]:
    """MIL op type -> count over the program's first function (they share their ops' types)."""
    fn = next(iter(program.functions.values()))
    return dict(sorted(collections.Counter(op.op_type for op in fn.operations).items()))


def quantization_report(program) -> list[tuple[str, str, str, tuple, tuple]]:
    """(consumer op, constexpr op type, data dtype, data shape, block) for every compressed weight."""
    rows = []
    for fn_name, fn in program.functions.items():
        for op in fn.operations:
            if op.op_type == "constexpr_blockwise_shift_scale":
                data, scale = op.data, op.scale
                block = tuple(int(d // s) for d, s in zip(data.shape, scale.shape))
                users = [c.name for c in op.outputs[0].child_ops]
                rows.append((fn_name, ",".join(users), types.builtin_to_string(data.dtype), tuple(data.shape), block))
            elif op.op_type.startswith("constexpr_"):
                users = [c.name for c in op.outputs[0].child_ops]
                rows.append((fn_name, ",".join(users), op.op_type, tuple(op.outputs[0].shape), ()))
    return rows
