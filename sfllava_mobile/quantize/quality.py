"""Quantization quality on text, scored the way ``llama-perplexity --kl-divergence`` scores it.

A text is cut into chunks of ``n_ctx`` tokens; in each chunk the positions ``n_ctx // 2 ..
n_ctx - 2`` are scored (teacher-forced: the logits at position j predict token j + 1), so every
scored token has at least half a context before it. Against a float reference the metrics are the
mean KL divergence KL(p_ref || p_test), the share of positions whose top-1 token is the same, and
the perplexity of the test model on the true next tokens (llama.cpp's "Mean KLD", "Same top p",
"Mean PPL(Q)").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Chunks:
    """Token chunks of one text, and which positions are scored."""

    tokens: list[list[int]]
    n_ctx: int

    @property
    def first(self) -> int:
        return self.n_ctx // 2

    @property
    def scored_per_chunk(self) -> int:
        return self.n_ctx - 1 - self.first

    @property
    def scored(self) -> int:
        return self.scored_per_chunk * len(self.tokens)

    def targets(self, i: int) -> torch.Tensor:
        """The true next tokens for chunk ``i``'s scored positions."""
        return torch.tensor(self.tokens[i][self.first + 1:])


def make_chunks(ids: list[int], n_ctx: int, n_chunks: int | None = None, bos_id: int | None = None) -> Chunks:
    """Consecutive ``n_ctx``-token chunks of ``ids`` (as many as fit, at most ``n_chunks``); with
    ``bos_id`` each chunk's first token is replaced by BOS, as llama-perplexity does for models that
    add one."""
    if n_ctx < 4:
        raise ValueError(f"n_ctx must be at least 4, got {n_ctx}")
    count = len(ids) // n_ctx if n_chunks is None else min(n_chunks, len(ids) // n_ctx)
    if count < 1:
        raise ValueError(f"the text has {len(ids)} tokens: fewer than one chunk of {n_ctx}")
    chunks = []
    for c in range(count):
        chunk = list(ids[c * n_ctx:(c + 1) * n_ctx])
        if bos_id is not None:
            chunk[0] = bos_id
        chunks.append(chunk)
    return Chunks(chunks, n_ctx)


def causal_lm_logits(lm):
    """``ids -> logits`` of a transformers causal LM, no cache (the float reference of :func:`scored_logits`)."""
    return lambda ids: lm(input_ids=ids, use_cache=False).logits


@torch.no_grad()
def scored_logits(logits_fn, chunks: Chunks) -> list[torch.Tensor]:
    """``logits_fn(ids[1, n_ctx]) -> [1, n_ctx, vocab]`` per chunk, cut to the scored rows (float32)."""
    out = []
    for chunk in chunks.tokens:
        logits = logits_fn(torch.tensor([chunk]))
        out.append(logits[0, chunks.first:chunks.n_ctx - 1].float())
    return out


@dataclass
class QualityStats:
    """Running sums over scored positions."""

    kl_sum: float = 0.0
    same_top1: int = 0
    nll_sum: float = 0.0
    ref_nll_sum: float = 0.0
    count: int = 0

    def add(self, ref: torch.Tensor, test: torch.Tensor, targets: torch.Tensor) -> None:
        ref_lp = torch.log_softmax(ref.double(), -1)
        test_lp = torch.log_softmax(test.double(), -1)
        self.kl_sum += float((ref_lp.exp() * (ref_lp - test_lp)).sum(-1).sum())
        self.same_top1 += int((ref.argmax(-1) == test.argmax(-1)).sum())
        idx = targets.view(-1, 1)
        self.nll_sum -= float(test_lp.gather(-1, idx).sum())
        self.ref_nll_sum -= float(ref_lp.gather(-1, idx).sum())
        self.count += int(targets.numel())

    def result(self) -> dict:
        n = max(self.count, 1)
        return {"scored_tokens": self.count, "mean_kl": round(self.kl_sum / n, 6),
                "same_top1": round(self.same_top1 / n, 5), "ppl": round(math.exp(self.nll_sum / n), 4),
                "ppl_reference": round(math.exp(self.ref_nll_sum / n), 4)}


def compare(ref: list[torch.Tensor], test: list[torch.Tensor], chunks: Chunks) -> dict:
    """KL / top-1 / PPL of ``test`` against ``ref`` (both from :func:`scored_logits` or a driver)."""
    stats = QualityStats()
    for i, (r, t) in enumerate(zip(ref, test, strict=True)):
        stats.add(r, t, chunks.targets(i))
    return stats.result()
