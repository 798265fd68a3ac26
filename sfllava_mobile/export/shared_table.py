"""A tied decoder's table stored once (``ExecuTorchOptions.shared_table``).

XNNPACK keeps a delegated linear's weight in its own packed form, so a tied model's ``.pte``
holds the table twice: the embedding lookup's copy and the head's. With an 8-bit per-channel
head, XNNPACK stores the int8 rows as they are; ``quantized_decomposed::embedding_byte`` (in
the stock quantized kernels) reads exactly those bytes. Both are tagged for one external data
file, whose store keeps identical buffers once: ``model.ptd`` holds the table, ``model.pte`` the
rest, and the runner is given both (its ``data_path``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..quantize.coverage import CoverageRow

TAG = "model"  # ExecuTorch names the external file after the tag
DATA_NAME = f"{TAG}.ptd"
_BUFFERS = ("shared_table_qdata", "shared_table_scale")


class SharedTableEmbedding(nn.Module):
    """``ids -> rows`` of the head's int8 table times its per-row scales (``embedding_byte``)."""

    def __init__(self, head_weight) -> None:
        from executorch.exir.passes import _quant_patterns_and_replacements  # noqa: F401  registers the op

        super().__init__()
        for attr in ("qdata", "scale", "zero_point"):
            if not hasattr(head_weight, attr):
                raise ConfigError("a shared table needs the head quantized by torchao (int8 per channel) first")
        if head_weight.qdata.dtype != torch.int8 or head_weight.scale.shape[-1] != 1 or bool(head_weight.zero_point.any()):
            raise ConfigError("a shared table needs a symmetric int8 per-channel head (recipe 8da4w-awq-h8)")
        # The same storage as the head's: export sees one tensor, the file stores one buffer.
        self.register_buffer(_BUFFERS[0], head_weight.qdata)
        self.register_buffer(_BUFFERS[1], head_weight.scale.reshape(-1).to(torch.float32).contiguous())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized_decomposed.embedding_byte.dtype(
            self.shared_table_qdata, self.shared_table_scale, None, -128, 127, ids, dtype=torch.float32)


def check_tied(config) -> None:
    """Before any work: the option is for decoders whose embedding and head are one table."""
    if not config.text.tie_word_embeddings:
        raise ConfigError("--shared-table is for tied decoders (embedding and head one table); this decoder has "
                          "its own head, and its .pte already stores each table once")


def share(progs, rows: list[CoverageRow]) -> list[CoverageRow]:
    """Point ``progs.token_embedding`` at the quantized head's table (after :func:`check_tied`); the
    coverage rows, the embedding's rewritten to say so."""
    head = progs.text_decoder.lm_head
    progs.token_embedding.embed = SharedTableEmbedding(head.weight)
    shape = tuple(head.weight.shape)
    return [r for r in rows if r.component != "embedding"] + [CoverageRow(
        "embedding", "embed", "embedding", shape, "int8-shared-with-lm_head", 8, 0, 0.0,
        f"reads lm_head's int8 per-channel table, stored once in {DATA_NAME}")]


def tag_head(gm):
    """Transform pass for ``text_decoder``: the head's weight goes to the external file (XNNPACK
    reads the tag when it serializes the delegate's constants)."""
    from torch.fx.passes.infra.pass_base import PassResult

    tagged = 0
    for node in gm.graph.nodes:
        if node.op == "placeholder" and "lm_head" in node.name:
            node.meta.setdefault("custom", {})["delegate_constant_tag"] = TAG
            tagged += 1
    if not tagged:
        raise ConfigError("shared table: the head's weight is not a placeholder of text_decoder's graph")
    return PassResult(gm, True)


def external(node) -> str | None:
    """``ExecutorchBackendConfig.external_constants``: the embedding's buffers go to the same file."""
    return TAG if any(b in node.name for b in _BUFFERS) else None
