"""Parity metrics between an artifact's outputs and a reference."""

from __future__ import annotations

import torch


def tensor_stats(test: torch.Tensor, ref: torch.Tensor) -> dict:
    """max-abs error, relative error ``||test - ref|| / ||ref||`` and cosine similarity (flattened)."""
    a, b = test.detach().double().flatten(), ref.detach().double().flatten()
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {tuple(test.shape)} vs {tuple(ref.shape)}")
    diff = a - b
    nb = b.norm()
    cos = float(torch.dot(a, b) / (a.norm() * nb)) if a.norm() > 0 and nb > 0 else float(torch.equal(a, b))
    return {"max_abs": float(diff.abs().max()) if diff.numel() else 0.0,
            "rel": float(diff.norm() / nb) if nb > 0 else float(diff.norm()), "cosine": cos}


def logit_stats(test: torch.Tensor, ref: torch.Tensor) -> dict:
    """Per-row argmax agreement, top-5 overlap and KL(ref || test) for ``[N, vocab]`` logits."""
    t, r = test.double().reshape(-1, test.shape[-1]), ref.double().reshape(-1, ref.shape[-1])
    top1 = (t.argmax(-1) == r.argmax(-1)).double().mean()
    k = min(5, t.shape[-1])
    tk, rk = t.topk(k, -1).indices, r.topk(k, -1).indices
    overlap = torch.tensor([len(set(a.tolist()) & set(b.tolist())) / k for a, b in zip(tk, rk)]).mean()
    lr, lt = r.log_softmax(-1), t.log_softmax(-1)
    kl = (lr.exp() * (lr - lt)).sum(-1).mean()
    return {**tensor_stats(test, ref), "top1": float(top1), "top5_overlap": float(overlap), "kl": float(kl)}


def token_stats(test: list[int], ref: list[int]) -> dict:
    """Exact match, common-prefix length and agreement = prefix / len(ref)."""
    prefix = 0
    for a, b in zip(test, ref):
        if a != b:
            break
        prefix += 1
    return {"exact": test == ref, "prefix": prefix, "agreement": prefix / len(ref) if ref else float(test == ref),
            "reference_len": len(ref), "test_len": len(test)}


def merge(rows: list[dict]) -> dict:
    """Worst case over cases: max of errors, min of similarities/agreements."""
    out = {}
    for key in rows[0]:
        vals = [r[key] for r in rows]
        if isinstance(vals[0], bool):
            out[key] = all(vals)
        elif key in ("max_abs", "rel", "kl", "reference_len", "test_len"):
            out[key] = max(vals)
        else:
            out[key] = min(vals)
    return out
