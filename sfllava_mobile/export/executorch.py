"""ExecuTorch export: one ``.pte`` holding ``vision_encoder``, ``token_embedding``, ``text_decoder``
and the metadata methods the stock multimodal runner reads, in a bundle folder.

Entry point: :func:`export` (same shape as every backend's: model, output folder, ExportConfig).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sfllava_mobile import bundle
from sfllava_mobile.errors import ConfigError
from sfllava_mobile.fsutil import atomic_dir
from sfllava_mobile.log import stage
from sfllava_mobile.memory import release
from sfllava_mobile.model.kv_decoder import GenericCacheAttention
from sfllava_mobile.ops import decompositions
from sfllava_mobile.synthetic import synthetic_frames

from ..quantize import recipes, torchao as tq
from . import kernels
from .config import ExportConfig, ResolvedExport, resolve
from .programs import Programs, build_programs, tall_image
from .rewrites import rewrite_norms, use_bmm_attention

log = logging.getLogger("sfllava_mobile")

PTE_NAME = "model.pte"
METHODS = ("vision_encoder", "token_embedding", "text_decoder")


@dataclass
class ExportResult:
    bundle: Path
    manifest: dict
    programs: Programs  # the eager (quantized) twins, for parity in the same process
    timings: dict[str, float] = field(default_factory=dict)


def _attention(kind: str):
    if kind == "custom":
        from .executorch_attention import CustomSdpaAttention

        return CustomSdpaAttention
    return GenericCacheAttention


def prepare_programs(model, frames: int, max_context: int, attention: str, rewrites: bool,
                     copy_weights: bool = True) -> Programs:
    """The eager programs exactly as they will be exported (before quantization); ``verify``
    rebuilds the eager twin through this same function."""
    progs = build_programs(model, frames, max_context, _attention(attention), copy_weights=copy_weights)
    if rewrites:
        n = rewrite_norms(progs.vision_encoder) + rewrite_norms(progs.text_decoder)
        use_bmm_attention(progs.vision_encoder)
        log.info("rewrote %d norm layers and the ViT attention into ops XNNPACK takes whole", n)
    return progs


def quantize_programs(progs: Programs, recipe) -> list:
    """Apply ``recipe`` to the programs in place, layer by layer (16-bit weights go to float32 one
    layer at a time, then to their recipe); returns the coverage rows."""
    rows = tq.apply(recipe, progs.vision_encoder.vision_tower, progs.vision_encoder.projector,
                    progs.text_decoder, progs.token_embedding)
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


def golden_tokens(pte: Path, config, tokenizer, frames: int, steps: int = 8) -> list[int]:
    """Greedy tokens of the exported program on the golden clip and question (``bundle.golden``)."""
    from sfllava_mobile.prompt import IMAGE_SENTINEL, build_input_ids
    from sfllava_mobile.video import resize_frames

    from .parity import Case, PteDriver, record

    clip = resize_frames(torch.from_numpy(synthetic_frames(frames, 96, 128)), config.vision.image_size)
    ids = build_input_ids(tokenizer, config.prompt, config.text, bundle.GOLDEN_QUESTION)
    k = ids.index(IMAGE_SENTINEL)
    driver = PteDriver(pte)
    limit = min(tokenizer.vocab_size, config.text.vocab_size)
    return record(driver, Case(clip, bundle.GOLDEN_QUESTION, ids[:k], ids[k + 1:]), [], steps,
                  tuple(config.text.eos_ids), limit).tokens


def metadata(model, r: ResolvedExport) -> dict:
    """Constant methods the runner reads (see the README's runner contract)."""
    text = model.config.text
    meta = {"get_max_seq_len": r.max_seq_len, "get_max_context_len": r.max_context_len,
            "get_eos_ids": list(text.eos_ids), "use_kv_cache": True, "enable_dynamic_shape": True,
            "get_vocab_size": text.vocab_size, "get_n_frames": r.frames, "get_visual_tokens": r.visual_tokens}
    if text.bos_id is not None:
        meta["get_bos_id"] = text.bos_id
    return meta


def _export_programs(p: Programs, model, r: ResolvedExport) -> dict:
    h, w = model.config.vision.image_size
    hidden = model.config.text.hidden_size
    seq = torch.export.Dim("seq", min=1, max=r.max_seq_len)
    image = torch.zeros(1, 3, r.frames * h, w, dtype=torch.uint8)
    eps = {}
    # Non-strict tracing: strict (dynamo) export of a 4-bit decoder holds a transient copy of its
    # weights (+6.7 GB at 7B, which broke a 24 GB host); non-strict shares them.
    with torch.no_grad():
        ep = torch.export.export(p.vision_encoder, (image,), strict=False)
        # slowfast_pool becomes core ATen ops (slices, pools, cat) that XNNPACK can take.
        eps["vision_encoder"] = ep.run_decompositions(decompositions())
        eps["token_embedding"] = torch.export.export(
            p.token_embedding, (torch.zeros(1, 2, dtype=torch.long),), dynamic_shapes=({1: seq},), strict=False)
        eps["text_decoder"] = torch.export.export(
            p.text_decoder, (torch.zeros(1, 2, hidden), torch.tensor([0])), dynamic_shapes=({1: seq}, None),
            strict=False)
    return eps


def _storages(eps: dict, min_bytes: int = 1 << 20) -> set[int]:
    """Data pointers of the large weights and buffers of ``eps`` (tensor subclasses flattened)."""
    out = set()
    for ep in eps.values():
        for t in list(ep.state_dict.values()) + list(ep.constants.values()):
            if not isinstance(t, torch.Tensor):
                continue
            inner = [getattr(t, a) for a in t.__tensor_flatten__()[0]] if hasattr(t, "__tensor_flatten__") else [t]
            out.update(x.untyped_storage().data_ptr() for x in inner if x.untyped_storage().nbytes() >= min_bytes)
    return out


@contextlib.contextmanager
def shared_weights_on_deepcopy(storages: set[int]):
    """Inside, ``copy.deepcopy`` of a tensor whose storage is in ``storages`` returns the tensor.

    ExecuTorch's edge conversion deep-copies every method's program before transforming it
    (exir/program/_program.py, ``_generate_edge_program``), weights included: a 7B decoder's 6.7 GB
    of 4-bit weights then exists twice during lowering and a 24 GB host runs out. Weights are
    never mutated by the lowering passes, and the pre-lowering programs are dropped afterwards,
    so sharing them is safe; everything else is still copied."""
    originals = {cls: cls.__deepcopy__ for cls in (torch.Tensor, torch.nn.Parameter)}

    def make(orig):
        def deepcopy(self, memo):
            if type(self) in (torch.Tensor, torch.nn.Parameter) and self.untyped_storage().data_ptr() in storages:
                memo[id(self)] = self
                return self
            return orig(self, memo)
        return deepcopy

    for cls, orig in originals.items():
        cls.__deepcopy__ = make(orig)
    try:
        yield
    finally:
        for cls, orig in originals.items():
            cls.__deepcopy__ = orig


def _lower(eps: dict, meta: dict, scheme: str = "single"):
    from executorch.backends.xnnpack.partition.config.xnnpack_config import ConfigPrecisionType
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

    # One partitioner over both precisions, so dynamically quantized linears and the float ops
    # between them share partitions. Upstream llava's two-pass split makes every linear and every
    # gap its own delegate call: 364 decoder calls for the 0.5B shape instead of 50, and 58% longer
    # lowering (README, export cost).
    if scheme == "single":
        partitioner = [XnnpackPartitioner(config_precisions=[ConfigPrecisionType.DYNAMIC_QUANT, ConfigPrecisionType.FP32])]
    else:
        partitioner = [XnnpackPartitioner(config_precisions=ConfigPrecisionType.DYNAMIC_QUANT, per_op_mode=True),
                       XnnpackPartitioner()]
    try:
        with shared_weights_on_deepcopy(_storages(eps)):
            return to_edge_transform_and_lower(
                eps, partitioner=partitioner, constant_methods=meta,
                compile_config=EdgeCompileConfig(_check_ir_validity=False, _skip_dim_order=True))
    finally:
        forget_lowering_state()


def forget_lowering_state() -> int:
    """Drop what lowering leaves in process-wide caches after it returns; returns the count.

    Each of these pins a lowered graph, and through it the exported program and every weight, for
    the life of the process (13 GB after a 7B export): XNNPACK's partitioner configs log rejections
    through module-level ``WhyNoPartition`` objects that remember the last rejected fx node;
    ``exir.backend.utils.is_same_node`` is an unbounded ``lru_cache`` keyed by fx nodes; tracing
    through a delegate leaves it in the class-wide fake-tensor dispatch cache and in ``ShapeEnv``
    method caches keyed by the shape environment."""
    from executorch.exir.backend.utils import WhyNoPartition
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    cleared = len(FakeTensorMode.cache)
    FakeTensorMode.cache_clear()
    namespaces = [vars(ShapeEnv)] + [vars(m) for name, m in list(sys.modules.items())
                                     if name.startswith("executorch.") and m is not None]
    for namespace in namespaces:
        for value in list(namespace.values()):
            if isinstance(value, WhyNoPartition) and value.node is not None:
                value.node = None
                cleared += 1
            elif not isinstance(value, type) and callable(getattr(value, "cache_info", None)):
                # an lru_cache, or ShapeEnv's function wrapper around one
                if getattr(value.cache_info(), "currsize", 0) and callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()
                    cleared += 1
    return cleared


def _to_executorch(edge):
    from executorch.exir import ExecutorchBackendConfig
    from executorch.exir.passes import MemoryPlanningPass
    from executorch.exir.passes.sym_shape_eval_pass import ConstraintBasedSymShapeEvalPass

    return edge.to_executorch(ExecutorchBackendConfig(
        extract_delegate_segments=True,
        do_quant_fusion_and_const_prop=True,  # 4-bit embedding -> quantized_decomposed::embedding_4bit
        # The KV cache gets its own memory: without it, running vision_encoder overwrites the cache.
        memory_planning_pass=MemoryPlanningPass(alloc_graph_input=False, share_mutable_buffers=True),
        sym_shape_eval_pass=ConstraintBasedSymShapeEvalPass()))


_BOOKKEEPING = ("alloc", "getitem", "view")  # memory planning's own nodes, not compute


def _op_name(target) -> str:
    text = str(target)
    if text.startswith("<EdgeOpOverload: "):
        return text[len("<EdgeOpOverload: "):].split(">")[0]
    return text if "." in text else getattr(target, "__name__", text)


def delegation_report(et) -> dict:
    """Per method: delegate calls, and every compute op left outside the delegate with its count."""
    report = {}
    for name in METHODS:
        ops = collections.Counter(_op_name(n.target) for n in et.exported_program(name).graph.nodes
                                  if n.op == "call_function" and getattr(n.target, "__name__", "") not in _BOOKKEEPING)
        calls = ops.pop("executorch_call_delegate", 0)
        report[name] = {"delegate_calls": calls, "outside_delegate": dict(sorted(ops.items()))}
    return report


def export(model, out: str | Path, config: ExportConfig, source: str | Path | None = None,
           overrides: dict | None = None, inplace: bool = False, vision_tower: str | Path | None = None) -> ExportResult:
    """Export ``model`` (a loaded VideoLLM) to a bundle folder ``out``; atomic, no overwrite by default.

    ``source`` and ``overrides`` (the checkpoint folder and config overrides the model was loaded
    with, and a separate ``vision_tower`` folder) go into the manifest so that ``verify`` can rebuild
    the reference later. ``inplace``
    quantizes the model's own modules instead of copies (for models near the memory limit): the
    model is consumed (its weights are dropped once the program is written) and the result carries
    no eager programs.
    """
    from .executorch_attention import register_ops

    timings: dict[str, float] = {}
    peaks: dict[str, float] = {}
    t_all = time.perf_counter()
    r = resolve(config, model.config)
    recipe = recipes.get(config.quant)
    if model.tokenizer is None:
        raise ConfigError("the model has no tokenizer: load it from a checkpoint folder")
    if model.tokenizer.vocab_size > model.config.text.vocab_size:
        raise ConfigError(f"tokenizer has {model.tokenizer.vocab_size} tokens but the decoder only "
                          f"{model.config.text.vocab_size} logits: the runner would read past the logits")
    out = Path(out)
    weights_dtype = {"text": str(model.text_dtype).replace("torch.", ""), "vision": str(model.dtype).replace("torch.", "")}
    register_ops()
    log.info("export %s: %d frames -> %d visual tokens, max_seq_len %d, max_context_len %d, recipe %s, "
             "attention %s", model.config.name, r.frames, r.visual_tokens, r.max_seq_len, r.max_context_len,
             recipe.name, config.attention)
    with atomic_dir(out, overwrite=config.overwrite) as tmp:
        with stage("prepare", timings, peaks):
            progs = prepare_programs(model, r.frames, r.max_context_len, config.attention, config.rewrites,
                                     copy_weights=not inplace)
        if inplace:
            release_small_tensors(model)
        with stage("quantize", timings, peaks):
            rows = quantize_programs(progs, recipe)
        summary = tq.coverage_summary(rows)
        log.info("coverage: %d layers, %d quantized (%d with a fallback group), %d float; %.2f bits/weight\n%s",
                 summary["layers"], summary["quantized"], summary["fallbacks"], summary["float"],
                 summary["bits_per_weight"], tq.format_coverage(rows))
        with stage("torch_export", timings, peaks):
            eps = _export_programs(progs, model, r)
        with stage("to_edge_transform_and_lower", timings, peaks):
            edge = _lower(eps, metadata(model, r), config.partitioner)
        with stage("to_executorch", timings, peaks):
            et = _to_executorch(edge)
            del edge, eps  # the lowered program holds what it needs; free the traced graphs' constants
        with stage("write", timings, peaks):
            pte = tmp / PTE_NAME
            with open(pte, "wb") as f:
                et.write_to_file(f)
            model.tokenizer.save(tmp / "tokenizer.json")
        delegation = delegation_report(et)
        operators = kernels.program_operators(et)
        del et
        forget_lowering_state()
        if inplace:
            # The program is written; the consumed model's 4-bit weights and the eager KV cache
            # (3.5 GB at 7B) must not sit beside the runtime's copy while golden tokens are taken.
            _drop_weights(model, *(m for _, m in progs.items()))
            progs = None
        release()
        with stage("golden", timings, peaks):
            # The app ports check their runner against what this program answers (not the float
            # model: a 4-bit program's answer may differ), so the tokens come from the .pte.
            tokens = golden_tokens(pte, model.config, model.tokenizer, r.frames)
            golden = bundle.golden(model.config, model.tokenizer, r.frames, tokens)
            bundle.write_json(tmp / "golden.json", golden)
        libraries = kernels.required_libraries(operators)
        log.info("kernel libraries the program needs: %s", ", ".join(
            f"{lib['name']} (iOS {lib['ios']}{', import ' + lib['python'] if lib['python'] else ''})" for lib in libraries))
        for name, rep in delegation.items():
            log.info("%s: %d delegate call(s); outside the delegate: %s", name, rep["delegate_calls"],
                     ", ".join(f"{k} x{v}" for k, v in rep["outside_delegate"].items()) or "nothing")
        params = sum(int(torch.Size(row.shape).numel()) for row in rows)
        floor = int(sum(torch.Size(row.shape).numel() * row.bits_per_weight / 8 for row in rows))
        manifest = bundle.base_manifest(model.config, r.frames, model.tokenizer, "executorch", {
            "artifacts": {"program": PTE_NAME, "tokenizer": "tokenizer.json", "golden": "golden.json"},
            "methods": _method_contract(model, r),
            "metadata_methods": metadata(model, r),
            "context": {"max_seq_len": r.max_seq_len, "max_context_len": r.max_context_len,
                        "text_allowance": config.text_allowance, "max_new_tokens": config.max_new_tokens},
            "quantization": {"recipe": recipe.name, "description": recipe.description, "summary": summary,
                             "coverage": [row.to_dict() for row in rows]},
            "delegation": delegation,
            "kernel_libraries": libraries,
            "size": {"pte_bytes": pte.stat().st_size, "weights": params, "floor_bytes": floor,
                     "ratio_to_floor": round(pte.stat().st_size / floor, 3) if floor else None},
            "export": {"attention": config.attention, "partitioner": config.partitioner, "rewrites": config.rewrites,
                       "timings_s": {k: round(v, 3) for k, v in timings.items()}, "peak_rss_gb": peaks,
                       "weights_dtype": weights_dtype,
                       "source": str(Path(source).resolve()) if source else None, "overrides": overrides or {},
                       "vision_tower": str(Path(vision_tower).resolve()) if vision_tower else None},
        })
        bundle.write_json(tmp / "manifest.json", manifest)
    timings["total"] = time.perf_counter() - t_all
    log.info("bundle %s: %s %.1f MB (floor %.1f MB, x%.2f) in %.1f s", out, PTE_NAME, manifest["size"]["pte_bytes"] / 1e6,
             floor / 1e6, manifest["size"]["ratio_to_floor"] or 0, timings["total"])
    return ExportResult(out, manifest, progs, timings)


def _method_contract(model, r: ResolvedExport) -> dict:
    h, w = model.config.vision.image_size
    hid, vocab = model.config.text.hidden_size, model.config.text.vocab_size
    return {
        "vision_encoder": {"inputs": [{"dtype": "uint8", "shape": [1, 3, r.frames * h, w]}],
                           "output": {"dtype": "float32", "shape": [1, r.visual_tokens, hid]}},
        "token_embedding": {"inputs": [{"dtype": "int64", "shape": [1, f"1..{r.max_seq_len}"]}],
                            "output": {"dtype": "float32", "shape": [1, "S", hid]}},
        "text_decoder": {"inputs": [{"dtype": "float32", "shape": [1, f"1..{r.max_seq_len}", hid]},
                                    {"dtype": "int64", "shape": [1], "meaning": "position of the first row"}],
                         "output": {"dtype": "float32", "shape": [1, vocab], "meaning": "logits of the last row"}},
    }


__all__ = ["ExportResult", "export", "tall_image", "PTE_NAME", "METHODS"]
