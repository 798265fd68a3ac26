"""The ExecuTorch backend: one ``.pte`` holding ``vision_encoder``, ``token_embedding``,
``text_decoder`` and the metadata methods the stock multimodal runner reads.

Entry points (the backend seam, :mod:`sfllava_mobile.export.backend`): :func:`build`,
:func:`driver`, :func:`eager_twin`, :func:`bounds`, :func:`checks`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from sfllava_mobile.log import stage
from sfllava_mobile.manifest import ExecuTorchSection, Manifest, Method
from sfllava_mobile.memory import release
from sfllava_mobile.model.kv_decoder import GenericCacheAttention

from ..errors import ConfigError, SfllavaError
from ..quantize import calibration, coverage, recipes, torchao as tq
from . import kernels, shared_table
from .backend import BuildContext, Built
from .config import ResolvedExport
from .executorch_lower import (METHODS, delegation_report, export_programs, forget_lowering_state, lower,
                               to_executorch)
from .executorch_runtime import PteDriver, program_files, runner_check, runner_conversation_check
from .programs import Programs, build_programs
from .rewrites import attention_frames, rewrite_norms, use_bmm_attention

log = logging.getLogger("sfllava_mobile")

PTE_NAME = "model.pte"
ENGINE = PteDriver.engine


def _attention(kind: str, kv_cache: str = "fp32"):
    if kind == "custom":
        from .executorch_attention import CustomSdpaAttention, Fp16CacheAttention, Int8CacheAttention

        return {"int8": Int8CacheAttention, "fp16": Fp16CacheAttention}.get(kv_cache, CustomSdpaAttention)
    return GenericCacheAttention


def prepare_programs(model, frames: int, max_context: int, attention: str, rewrites: bool,
                     copy_weights: bool = True, vision_attention_frames: int | None = None,
                     kv_cache: str = "fp32", vision_frames: int = 0) -> Programs:
    """The eager programs exactly as they will be exported (before quantization); ``verify``
    rebuilds the eager twin through this same function."""
    per_pass = min(vision_frames, frames) if vision_frames else frames
    progs = build_programs(model, frames, max_context, _attention(attention, kv_cache), copy_weights=copy_weights,
                           vision_frames_per_pass=per_pass if per_pass < frames else 0)
    if per_pass < frames:
        log.info("the vision tower encodes %d frames per pass (%d passes)", per_pass, -(-frames // per_pass))
    if rewrites:
        n = rewrite_norms(progs.vision_encoder) + rewrite_norms(progs.text_decoder)
        group = attention_frames(vision_attention_frames, model.config.vision, per_pass)
        use_bmm_attention(progs.vision_encoder, group)
        log.info("rewrote %d norm layers and the ViT attention into ops XNNPACK takes whole; "
                 "the ViT attends %d of %d frames at a time", n, group, frames)
    return progs


def quantize_programs(progs: Programs, recipe, fold_scales: dict | None = None) -> list:
    """Apply ``recipe`` to the programs in place, layer by layer (16-bit weights go to float32 one
    layer at a time, then to their recipe), folding ``fold_scales`` first; returns the coverage rows."""
    if recipe.fold is not None and not fold_scales:
        raise ConfigError(f"recipe {recipe.name} folds calibrated scales, and none were given")
    rows = tq.apply(recipe, progs.vision_encoder.vision_tower, progs.vision_encoder.projector,
                    progs.text_decoder, progs.token_embedding, fold_scales)
    for _, program in progs.items():
        tq.upcast(program)  # what no recipe covers (separator, norms) computes in float32 too
    return rows


def _drop_weights(*modules) -> None:
    """Replace every parameter and buffer with an empty tensor (the module is unusable after)."""
    for module in modules:
        for sub in module.modules():
            for name, _ in list(sub.named_parameters(recurse=False)):
                setattr(sub, name, torch.nn.Parameter(torch.empty(0), requires_grad=False))
            for name in list(sub._buffers):
                if sub._buffers[name] is not None:
                    sub._buffers[name] = torch.empty(0)


def release_small_tensors(model) -> None:
    """Before quantizing ``model`` in place: its small tensors (norms, biases) to float32 now.

    A memory-mapped checkpoint file stays mapped while any tensor read from it lives; once the
    small ones are copies, each shard is unmapped as soon as its large weights are quantized, so
    the file never sits in memory beside the quantized model."""
    tq.upcast(model, max_numel=1 << 20)


def metadata(model, r: ResolvedExport) -> dict:
    """Constant methods the runner reads (see the README's runner contract)."""
    text = model.config.text
    meta = {"get_max_seq_len": r.max_seq_len, "get_max_context_len": r.max_context_len,
            "get_eos_ids": list(text.eos_ids), "use_kv_cache": True, "enable_dynamic_shape": True,
            "get_vocab_size": text.vocab_size, "get_n_frames": r.frames, "get_visual_tokens": r.visual_tokens}
    if text.bos_id is not None:
        meta["get_bos_id"] = text.bos_id
    return meta


def build(ctx: BuildContext) -> Built:
    """Prepare, quantize (torchao), export, lower (XNNPACK) and write ``model.pte``."""
    from .executorch_attention import register_ops

    model, r, recipe, opts = ctx.model, ctx.resolved, ctx.recipe, ctx.options
    t, p = ctx.timings, ctx.peaks
    register_ops()
    if opts.shared_table:
        shared_table.check_tied(model.config)
    with stage("prepare", t, p):
        progs = prepare_programs(model, r.frames, r.max_context_len, opts.attention, opts.rewrites,
                                 copy_weights=not ctx.inplace, vision_attention_frames=opts.vision_attention_frames,
                                 kv_cache=opts.kv_cache, vision_frames=opts.vision_frames)
    if ctx.inplace:
        release_small_tensors(model)
    with stage("quantize", t, p):
        rows = quantize_programs(progs, recipe, ctx.fold_scales)
        if opts.shared_table:
            rows = shared_table.share(progs, rows)
    s = coverage.summary(rows)
    log.info("coverage: %d layers, %d quantized (%d with a fallback group), %d float; %.2f bits/weight\n%s",
             s["layers"], s["quantized"], s["fallbacks"], s["float"], s["bits_per_weight"], coverage.format_rows(rows))
    with stage("torch_export", t, p):
        eps = export_programs(progs, model, r)
    meta = metadata(model, r)
    with stage("to_edge_transform_and_lower", t, p):
        edge = lower(eps, meta, opts.partitioner,
                     {"text_decoder": [shared_table.tag_head]} if opts.shared_table else None)
    with stage("to_executorch", t, p):
        et = to_executorch(edge, shared_table.external if opts.shared_table else None)
        del edge, eps  # the lowered program holds what it needs; free the traced graphs' constants
    with stage("write", t, p):
        with open(ctx.folder / PTE_NAME, "wb") as f:
            et.write_to_file(f)
        if opts.shared_table:
            et.write_tensor_data_to_file(str(ctx.folder))
            _check_shared(ctx.folder, model)
    delegation = delegation_report(et)
    operators = kernels.program_operators(et)
    del et
    forget_lowering_state()
    if ctx.inplace:
        # The program is written; the consumed model's 4-bit weights and the eager KV cache
        # (3.5 GB at 7B) must not sit beside the runtime's copy while golden tokens are taken.
        _drop_weights(model, *(m for _, m in progs.items()))
        progs = None
    release()
    libraries = kernels.required_libraries(operators)
    log.info("kernel libraries the program needs: %s", ", ".join(
        f"{lib['name']} (iOS {lib['ios']}{', import ' + lib['python'] if lib['python'] else ''})" for lib in libraries))
    for name, rep in delegation.items():
        log.info("%s: %d delegate call(s); outside the delegate: %s", name, rep["delegate_calls"],
                 ", ".join(f"{k} x{v}" for k, v in rep["outside_delegate"].items()) or "nothing")
    data = shared_table.DATA_NAME if opts.shared_table else None
    section = ExecuTorchSection(program=PTE_NAME, data=data, metadata_methods=meta, delegation=delegation,
                                kernel_libraries=libraries)
    return Built(artifacts={"program": PTE_NAME, **({"data": data} if data else {})},
                 methods=_method_contract(model, r), coverage=rows, section=section, programs=progs)


def _check_shared(folder: Path, model) -> None:
    """The point of the option: the data file holds the table once (int8 rows plus fp32 scales)."""
    text = model.config.text
    table = text.vocab_size * text.hidden_size + 4 * text.vocab_size
    size = (folder / shared_table.DATA_NAME).stat().st_size
    if not table <= size < 1.05 * table + (1 << 16):
        raise SfllavaError(f"{shared_table.DATA_NAME} holds {size} bytes, not one {table}-byte table: the embedding "
                          "and the head were not stored as one buffer")
    log.info("shared table: %s holds the %d x %d int8 table once (%.1f MB)", shared_table.DATA_NAME,
             text.vocab_size, text.hidden_size, size / 1e6)


def driver(bundle: Path, manifest: Manifest) -> PteDriver:
    return PteDriver(*program_files(Path(bundle), manifest))


def eager_twin(model, manifest: Manifest, bundle: Path | None = None) -> Programs:
    """The exported programs in eager PyTorch with the bundle's recipe applied by torchao
    (consumes ``model``: quantized in place, layer by layer)."""
    opts = manifest.export.options
    progs = prepare_programs(model, manifest.video.frames, manifest.context.max_context_len,
                             opts.get("attention", "custom"), opts.get("rewrites", True), copy_weights=False,
                             vision_attention_frames=opts.get("vision_attention_frames"),
                             kv_cache=opts.get("kv_cache", "fp32"), vision_frames=opts.get("vision_frames", 0))
    release_small_tensors(model)
    recipe = recipes.get(manifest.quantization.recipe, "executorch")
    scales = None
    if recipe.fold is not None:
        if bundle is None or "fold_scales" not in manifest.artifacts:
            raise ConfigError(f"recipe {recipe.name} needs the bundle's {calibration.SCALES_FILE}")
        scales = calibration.load_scales(Path(bundle) / manifest.artifacts["fold_scales"])
    rows = quantize_programs(progs, recipe, scales)
    if opts.get("shared_table"):
        shared_table.share(progs, rows)
    return progs


# Named bounds per comparison. "vs_float" for recipe none: the .pte against the float32 reference.
# "vs_eager": a quantized export against the same recipe in eager PyTorch (differences come only
# from kernels: XNNPACK's int8 dynamic activations vs torchao's reference math). "vs_float" of a
# quantized export: quantization error itself, so these bounds catch breakage (a kernel off by
# 1/scale drives KL up and cosine towards 0), not quality.
# Calibration (README, Parity): tiny random models of every layout and real SmolLM2-135M weights
# over 384 teacher-forced tokens of prose (a correct 8da4w export: KL 0.040, rel 0.050, cosine
# 0.9988, confident top-1 1.0, divergence margin 0.30); each bound sits about 2x beyond that.
_FLOAT = {"vision_encoder": {"rel": 1e-4, "cosine": 0.99999}, "token_embedding": {"max_abs": 0.0},
          "text_decoder": {"rel": 1e-4, "cosine": 0.99999, "top1": 1.0}, "greedy": {"exact": True}}
_EAGER = {"vision_encoder": {"rel": 0.03, "cosine": 0.9995}, "token_embedding": {"max_abs": 1e-6},
          "text_decoder": {"rel": 0.1, "cosine": 0.995, "top1_confident": 0.97, "kl": 0.08},
          "greedy": {"divergence_margin": 1.0}}
_LOOSE = {"vision_encoder": {"cosine": 0.9}, "token_embedding": {"cosine": 0.98},
          "text_decoder": {"cosine": 0.5, "kl": 5.0}}
_LOOSE_E8 = {**_LOOSE, "token_embedding": {"cosine": 0.999}}


def bounds(manifest: Manifest) -> dict:
    recipe = manifest.quantization.recipe
    checks = {"runner": {"text_equal": True}, "runner_conversation": {"text_equal": True}}
    if recipes.get(recipe, "executorch").is_float:
        return {"vs_float": _FLOAT, "checks": checks}
    return {"vs_eager": _EAGER, "vs_float": _LOOSE_E8 if recipe == "8da4w-e8" else _LOOSE, "checks": checks}


def checks(bundle: Path, manifest: Manifest, config, tokenizer, case, steps: int, expected: list[int]) -> dict:
    """The C++ MultimodalRunner must answer what the program answers when driven step by step, for
    one question and for a follow-up about the same clip (golden.json's conversation)."""
    with stage("runner"):
        return {"runner": runner_check(Path(bundle), config, tokenizer, case, steps, expected),
                "runner_conversation": runner_conversation_check(Path(bundle), manifest, tokenizer)}


def _method_contract(model, r: ResolvedExport) -> dict[str, Method]:
    h, w = model.config.vision.image_size
    hid, vocab = model.config.text.hidden_size, model.config.text.vocab_size
    return {k: Method.model_validate({"artifact": PTE_NAME, **v}) for k, v in {
        "vision_encoder": {"inputs": [{"dtype": "uint8", "shape": [1, 3, r.frames * h, w], "layout": "tall_image",
                                       "meaning": "the T resized RGB frames, channel-planar, stacked along height "
                                                  "(frame t occupies rows t*H .. t*H+H-1); the stock runner's image input"}],
                           "output": {"dtype": "float32", "shape": [1, r.visual_tokens, hid]}},
        "token_embedding": {"inputs": [{"dtype": "int64", "shape": [1, f"1..{r.max_seq_len}"]}],
                            "output": {"dtype": "float32", "shape": [1, "S", hid]}},
        "text_decoder": {"inputs": [{"dtype": "float32", "shape": [1, f"1..{r.max_seq_len}", hid]},
                                    {"dtype": "int64", "shape": [1], "meaning": "position of the first row"}],
                         "output": {"dtype": "float32", "shape": [1, vocab], "meaning": "logits of the last row"}},
    }.items()}


