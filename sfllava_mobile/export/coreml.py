"""The Core ML backend: three ML Program packages an iPhone app loads with Core ML alone.

- ``vision_encoder.mlpackage``: the tall image (the T resized frames, channel-planar, stacked
  along height; float16 values 0..255) -> normalization, ViT, ``slowfast_pool`` (one composite),
  projector -> ``[1, N_visual, hidden]``;
- ``token_embedding.mlpackage``: ``ids int32 [1, S]`` -> ``[1, S, hidden]``;
- ``text_decoder.mlpackage``: two functions sharing one copy of the weights and the same fp16 KV
  state, ``prefill`` (``prefill_chunk`` rows) and ``decode`` (one row), each
  ``(inputs_embeds, input_pos) -> logits of the last row``.

iOS 18 is the floor (state, fused SDPA, int4 per-block weights, multifunction packages). Packages
convert and save on Linux but only run on Apple platforms: here the driver evaluates the saved
MIL programs with numpy (:mod:`.mil_eval`), which checks the program, not Apple's kernels.

Entry points (the backend seam, :mod:`.backend`): :func:`build`, :func:`driver`,
:func:`eager_twin`, :func:`bounds`, :func:`checks`.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from sfllava_mobile.errors import SfllavaError
from sfllava_mobile.log import stage
from sfllava_mobile.manifest import CoreMLSection, CoreMLState, Manifest, Method
from sfllava_mobile.memory import release

from ..quantize import coreml as cq, coverage, torchao as tq
from .backend import BuildContext, Built
from .config import ResolvedExport
from .coreml_attention import CoreMLCacheAttention
from .programs import Programs, build_programs

log = logging.getLogger("sfllava_mobile")

PACKAGES = {"vision_encoder": "vision_encoder.mlpackage", "token_embedding": "token_embedding.mlpackage",
            "text_decoder": "text_decoder.mlpackage"}
CALL_SEQUENCE = ("vision_encoder(image) once per clip; token_embedding(ids) per text segment; text_decoder: "
                 "state = makeState(); feed rows in order (text before the video, the video rows, text after) as "
                 "prefill calls of exactly prefill_chunk rows while that many remain, the rest one row at a time "
                 "through decode; input_pos = position of the call's first row; the last call's logits give the "
                 "first answer token; then one decode call per token, the same state throughout")


_HOME = {"vision_encoder": "vision", "token_embedding": "embedding", "text_decoder": "decoder"}  # unnamed constants


def _component(fqn: str) -> str:
    if fqn.startswith("projector"):
        return "projector"
    if fqn.startswith(("vision_tower", "separator")):
        return "vision"
    if fqn.startswith("embed"):
        return "embedding"
    return "decoder"


def prepare_programs(model, frames: int, max_context: int, copy_weights: bool = True) -> Programs:
    """The eager programs exactly as they are converted (float32 compute, fp16 KV cache)."""
    progs = build_programs(model, frames, max_context, CoreMLCacheAttention, copy_weights=copy_weights)
    for _, program in progs.items():
        tq.upcast(program)  # the converter takes float32 and stores fp16; a bf16 checkpoint goes via float32
    return progs


def _export(progs: Programs, model, r: ResolvedExport) -> dict:
    h, w = model.config.vision.image_size
    hidden = model.config.text.hidden_size
    seq = torch.export.Dim("seq", min=1, max=r.max_seq_len)
    with torch.no_grad():
        # slowfast_pool stays one node ({}: no decomposition) and converts as one MIL composite.
        return {
            "vision_encoder": torch.export.export(
                progs.vision_encoder, (torch.zeros(1, 3, r.frames * h, w),), strict=False).run_decompositions({}),
            "token_embedding": torch.export.export(
                progs.token_embedding, (torch.zeros(1, 2, dtype=torch.long),), dynamic_shapes=({1: seq},),
                strict=False).run_decompositions({}),
            "text_decoder": torch.export.export(
                progs.text_decoder, (torch.zeros(1, 2, hidden), torch.tensor([0])), dynamic_shapes=({1: seq}, None),
                strict=False).run_decompositions({}),
        }


def _convert(ep, name: str, opts, states=None, inputs=None, output: str = "output"):
    import coremltools as ct

    precision = ct.precision.FLOAT16 if opts.compute_precision == "float16" else ct.precision.FLOAT32
    with stage(f"convert_{name}"):
        return ct.convert(ep, inputs=inputs, states=states, outputs=[ct.TensorType(name=output)],
                          minimum_deployment_target=getattr(ct.target, opts.minimum_deployment_target),
                          compute_precision=precision, skip_model_load=True)


def _decoder_states(ep, decoder) -> list:
    import coremltools as ct

    buffers = dict(decoder.named_buffers())
    names = sorted(ep.graph_signature.buffers_to_mutate.values())
    return [ct.StateType(wrapped_type=ct.TensorType(shape=tuple(buffers[n].shape), dtype=np.float16), name=n)
            for n in names]


def _split_decoder(mlmodel, folder: Path, chunk: int, hidden: int) -> None:
    """The dynamic-length decoder as a package of ``prefill`` (chunk rows) and ``decode`` (one row)
    sharing weights and states."""
    from coremltools.models.utils import MultiFunctionDescriptor, materialize_dynamic_shape_mlmodel, save_multifunction

    tmp = folder / ".decoder-materialized.mlpackage"
    materialize_dynamic_shape_mlmodel(mlmodel, {"prefill": {"inputs_embeds": (1, chunk, hidden)},
                                                "decode": {"inputs_embeds": (1, 1, hidden)}}, str(tmp))
    # Keep exactly the two fixed-shape functions (the materialized package keeps the dynamic main too).
    desc = MultiFunctionDescriptor()
    desc.add_function(str(tmp), "prefill", "prefill")
    desc.add_function(str(tmp), "decode", "decode")
    desc.default_function_name = "decode"
    save_multifunction(desc, str(folder / PACKAGES["text_decoder"]))
    shutil.rmtree(tmp)


def build(ctx: BuildContext) -> Built:
    """Prepare, export, convert (coremltools), quantize (coremltools.optimize.coreml), save; then
    check every op of every package has an evaluator, so parity can run the whole program here."""
    import coremltools as ct

    from . import coreml_ops, mil_eval

    model, r, recipe, opts = ctx.model, ctx.resolved, ctx.recipe, ctx.options
    t, p = ctx.timings, ctx.peaks
    hidden = model.config.text.hidden_size
    coreml_ops.register()
    with stage("prepare", t, p):
        progs = prepare_programs(model, r.frames, r.max_context_len, copy_weights=not ctx.inplace)
    with stage("torch_export", t, p):
        eps = _export(progs, model, r)
    names = {k: cq.constant_names(m) for k, m in progs.items()}
    with stage("convert", t, p):
        h, w = model.config.vision.image_size
        converted = {
            "vision_encoder": _convert(eps["vision_encoder"], "vision_encoder", opts, output="visual_rows", inputs=[
                ct.TensorType(name="image", shape=(1, 3, r.frames * h, w), dtype=np.float16)]),
            "token_embedding": _convert(eps["token_embedding"], "token_embedding", opts, output="embeddings"),
            "text_decoder": _convert(eps["text_decoder"], "text_decoder", opts, output="logits",
                                     states=_decoder_states(eps["text_decoder"], progs.text_decoder)),
        }
        del eps
    rows: list = []
    compressed: dict[str, list[str]] = {}
    with stage("quantize", t, p):
        for name, mlmodel in converted.items():
            known, home = names[name], _HOME[name]
            cfg, got = cq.plan(mlmodel, recipe, lambda fqn: _component(fqn) if fqn in known.values() else home, known)
            rows += got
            compressed[PACKAGES[name]] = sorted(cfg.op_name_configs) if cfg is not None else []
            converted[name] = cq.apply(mlmodel, cfg)
    s = coverage.summary(rows)
    log.info("coverage: %d weights, %d quantized (%d fallbacks), %d fp16; %.2f bits/weight\n%s", s["layers"],
             s["quantized"], s["fallbacks"], s["float"], s["bits_per_weight"], coverage.format_rows(rows))
    with stage("save", t, p):
        converted["vision_encoder"].save(str(ctx.folder / PACKAGES["vision_encoder"]))
        converted["token_embedding"].save(str(ctx.folder / PACKAGES["token_embedding"]))
        _split_decoder(converted["text_decoder"], ctx.folder, opts.prefill_chunk, hidden)
    del converted
    twin = None
    if not ctx.inplace and not recipe.is_float:
        twin = _apply_twin_quantization(progs, rows)
    elif ctx.inplace:
        progs = None
    release()
    section = _inspect(ctx.folder, opts, mil_eval, compressed)
    return Built(artifacts={k: v for k, v in PACKAGES.items()}, methods=_method_contract(model, r, opts),
                 coverage=rows, section=section, programs=twin if twin is not None else progs,
                 context={"prefill_chunk": opts.prefill_chunk})


def _inspect(folder: Path, opts, mil_eval, compressed: dict[str, list[str]]) -> CoreMLSection:
    """Functions, states, MIL op counts and the slowfast composite of the saved packages; refuses a
    package with an op type the Linux evaluator cannot run (parity would not cover it) or whose
    compressed weights are not the ones the coverage rows promise."""
    import coremltools as ct
    from coremltools.converters.mil.mil import types

    from .coreml_ops import PREFIX

    functions, counts, states, composite, weight_bin = {}, {}, [], 0, {}
    for method, pkg in PACKAGES.items():
        weight_bin[pkg] = (folder / pkg / "Data" / "com.apple.CoreML" / "weights" / "weight.bin").stat().st_size
        spec, program = mil_eval.load_program(folder / pkg)
        missing = [op for op, how in mil_eval.op_coverage(program).items() if how == "MISSING"]
        if missing:
            raise SfllavaError(f"{pkg} has MIL ops the Linux parity evaluator cannot run: {', '.join(missing)}")
        functions[pkg] = sorted(program.functions)
        counts[pkg] = mil_eval.op_counts(program)
        fn = next(iter(program.functions.values()))
        held = sum(op.op_type.startswith("constexpr_") for op in fn.operations)
        if held != len(compressed[pkg]):
            names = [op.name for op in fn.operations if op.op_type.startswith("constexpr_")]
            lost = [c for c in compressed[pkg] if not any(n.startswith(c) for n in names)]
            raise SfllavaError(f"{pkg} holds {held} compressed weights but the quantization plan made "
                               f"{len(compressed[pkg])} (not compressed: {', '.join(lost[:4]) or '?'}): "
                               f"coremltools skipped or added some; coverage would be wrong")
        if method == "vision_encoder":
            composite = sum(PREFIX in op.name for op in fn.operations)
        if method == "text_decoder":
            for name, var in fn.inputs.items():
                if types.is_state(var.sym_type):
                    wrapped = var.sym_type.wrapped_type()
                    states.append(CoreMLState(name=name, dtype="float16", shape=list(wrapped.get_shape())))
    if composite == 0:
        raise SfllavaError("the vision encoder package lost the slowfast_pool composite (no op carries its prefix)")
    return CoreMLSection(minimum_deployment_target=opts.minimum_deployment_target,
                         compute_precision=opts.compute_precision, packages=dict(PACKAGES), functions=functions,
                         states=sorted(states, key=lambda s: s.name), call_sequence=CALL_SEQUENCE, mil_ops=counts,
                         slowfast_pool_ops=composite, weight_bin_bytes=weight_bin, coremltools_version=ct.__version__)


def _apply_twin_quantization(progs: Programs, rows: list) -> Programs:
    """Every weight of the eager programs as the package holds it (coremltools' quantization math,
    fp16 storage), compute left in float32: the eager twin of a quantized bundle."""
    by_name = {(r.component, r.name): r.scheme for r in rows}
    with torch.no_grad():
        for key, program in progs.items():
            for fqn, param in program.named_parameters():
                scheme = by_name.get((_component(fqn), fqn), "fp16")
                param.copy_(cq.fake_quantize(param, scheme))
    return progs


def driver(bundle: Path, manifest: Manifest):
    """On macOS: Core ML itself (``MLModel.predict``); elsewhere the numpy MIL evaluator."""
    from .coreml_runtime import MilDriver, PredictDriver

    return (PredictDriver if sys.platform == "darwin" else MilDriver)(Path(bundle), manifest)


def eager_twin(model, manifest: Manifest, bundle: Path | None = None) -> Programs:
    """The converted programs in eager PyTorch with every weight as the bundle's recipe stores it
    (from the manifest's coverage; the quantization math is coremltools', applied to the float
    weights, never read back from the package). Consumes ``model``."""
    from ..quantize.coverage import CoverageRow

    progs = prepare_programs(model, manifest.video.frames, manifest.context.max_context_len, copy_weights=False)
    rows = [CoverageRow(**{**r.model_dump(), "shape": tuple(r.shape)}) for r in manifest.quantization.coverage]
    return _apply_twin_quantization(progs, rows)


# Named bounds. fp16 compute: about 1e-3 relative per op, compounding through the layers; the
# float bounds of ExecuTorch (float32 vs float32) cannot hold. Calibrated on the tiny models
# (README, Core ML): each bound sits well beyond the measured value and far inside a broken one.
_FP16 = {"vision_encoder": {"rel": 0.02, "cosine": 0.9995}, "token_embedding": {"rel": 2e-3, "cosine": 0.99999},
         "text_decoder": {"rel": 0.05, "cosine": 0.999, "top1_confident": 0.97, "kl": 0.02},
         "greedy": {"divergence_margin": 1.0}}
_LOOSE = {"vision_encoder": {"cosine": 0.9}, "token_embedding": {"cosine": 0.98},
          "text_decoder": {"cosine": 0.5, "kl": 5.0}}


def bounds(manifest: Manifest) -> dict:
    if manifest.quantization.recipe == "none":
        return {"vs_float": _FP16, "checks": {}}
    return {"vs_eager": _FP16, "vs_float": _LOOSE, "checks": {}}


def checks(bundle: Path, manifest: Manifest, config, tokenizer, case, steps: int, expected: list[int]) -> dict:
    return {}  # no Core ML runtime here beyond the evaluator parity already drove


def _method_contract(model, r: ResolvedExport, opts) -> dict[str, Method]:
    h, w = model.config.vision.image_size
    hid, vocab = model.config.text.hidden_size, model.config.text.vocab_size
    return {k: Method.model_validate(v) for k, v in {
        "vision_encoder": {"artifact": PACKAGES["vision_encoder"],
                           "inputs": [{"name": "image", "dtype": "float16", "shape": [1, 3, r.frames * h, w],
                                       "layout": "tall_image",
                                       "meaning": "the T resized RGB frames, channel-planar, stacked along height "
                                                  "(frame t occupies rows t*H .. t*H+H-1), values 0..255 as float16"}],
                           "output": {"name": "visual_rows", "dtype": "float16", "shape": [1, r.visual_tokens, hid]}},
        "token_embedding": {"artifact": PACKAGES["token_embedding"],
                            "inputs": [{"name": "ids", "dtype": "int32", "shape": [1, f"1..{r.max_seq_len}"]}],
                            "output": {"name": "embeddings", "dtype": "float16", "shape": [1, "S", hid]}},
        "text_decoder": {"artifact": PACKAGES["text_decoder"], "function": "prefill, decode",
                         "inputs": [{"name": "inputs_embeds", "dtype": "float16",
                                     "shape": [1, f"{opts.prefill_chunk} (prefill) or 1 (decode)", hid]},
                                    {"name": "input_pos", "dtype": "int32", "shape": [1],
                                     "meaning": "position of the first row"}],
                         "output": {"name": "logits", "dtype": "float16", "shape": [1, vocab],
                                    "meaning": "logits of the last row"}},
    }.items()}
