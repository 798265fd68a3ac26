"""Lowering eager programs to one ExecuTorch program: torch.export, XNNPACK partitioning,
memory planning, and freeing what the lowering leaves behind."""

from __future__ import annotations

import collections
import contextlib
import sys

import torch

from sfllava_mobile.ops import decompositions

METHODS = ("vision_encoder", "token_embedding", "text_decoder")


def export_programs(p, model, r) -> dict:
    """``torch.export`` of the three programs (the decoder and embedding with a dynamic length)."""
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


def lower(eps: dict, meta: dict, scheme: str = "single", transform_passes: dict | None = None):
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
                eps, partitioner=partitioner, constant_methods=meta, transform_passes=transform_passes,
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


def to_executorch(edge, external_constants=None):
    """``external_constants``: ``node -> tag | None``, constants that go to the tag's ``.ptd``."""
    from executorch.exir import ExecutorchBackendConfig
    from executorch.exir.passes import MemoryPlanningPass
    from executorch.exir.passes.sym_shape_eval_pass import ConstraintBasedSymShapeEvalPass

    return edge.to_executorch(ExecutorchBackendConfig(
        extract_delegate_segments=True,
        do_quant_fusion_and_const_prop=True,  # 4-bit embedding -> quantized_decomposed::embedding_4bit
        # The KV cache gets its own memory: without it, running vision_encoder overwrites the cache.
        memory_planning_pass=MemoryPlanningPass(alloc_graph_input=False, share_mutable_buffers=True),
        sym_shape_eval_pass=ConstraintBasedSymShapeEvalPass(),
        external_constants=external_constants or False))


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


