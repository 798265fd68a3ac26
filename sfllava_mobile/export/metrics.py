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


# A baseline position is "confident" when its top-1 log-probability exceeds its runner-up's by this
# much (nats): there a correct export must pick the same token; below it, a near-tie may flip.
CONFIDENT_MARGIN = 1.0


def logit_stats(test: torch.Tensor, ref: torch.Tensor, targets: list[int] | None = None) -> dict:
    """For ``[N, vocab]`` logits: argmax agreement (all rows, and rows where the reference is
    confident), top-5 overlap, KL(ref || test) mean and max; with ``targets`` (the token each row
    predicts, teacher-forced) the perplexity of both and their ratio."""
    t, r = test.double().reshape(-1, test.shape[-1]), ref.double().reshape(-1, ref.shape[-1])
    if t.shape != r.shape:
        raise ValueError(f"shape mismatch: {tuple(t.shape)} vs {tuple(r.shape)}")
    same = t.argmax(-1) == r.argmax(-1)
    k = min(5, t.shape[-1])
    tk, rk = t.topk(k, -1).indices, r.topk(k, -1).indices
    overlap = torch.tensor([len(set(a.tolist()) & set(b.tolist())) / k for a, b in zip(tk, rk)]).mean()
    lr, lt = r.log_softmax(-1), t.log_softmax(-1)
    kl = (lr.exp() * (lr - lt)).sum(-1)
    top2 = lr.topk(min(2, lr.shape[-1]), -1).values
    confident = (top2[:, 0] - top2[:, -1]) > CONFIDENT_MARGIN
    out = {**tensor_stats(test, ref), "positions": int(t.shape[0]), "top1": float(same.double().mean()),
           "top1_confident": float(same[confident].double().mean()) if confident.any() else 1.0,
           "confident_positions": int(confident.sum()), "top5_overlap": float(overlap),
           "kl": float(kl.mean()), "kl_max": float(kl.max())}
    if targets is not None and len(targets) == t.shape[0]:
        idx = torch.tensor(targets).view(-1, 1)
        nll_t, nll_r = -lt.gather(1, idx).mean(), -lr.gather(1, idx).mean()
        out.update(ppl=float(nll_t.exp()), ppl_reference=float(nll_r.exp()), ppl_ratio=float((nll_t - nll_r).exp()))
    return out


def token_stats(test: list[int], ref: list[int]) -> dict:
    """Exact match, common-prefix length and agreement = prefix / len(ref)."""
    prefix = 0
    for a, b in zip(test, ref):
        if a != b:
            break
        prefix += 1
    return {"exact": test == ref, "prefix": prefix, "agreement": prefix / len(ref) if ref else float(test == ref),
            "reference_len": len(ref), "test_len": len(test)}


def greedy_stats(test: list[int], test_rows: torch.Tensor, ref: list[int], ref_rows: torch.Tensor,
                 vocab_limit: int | None = None) -> dict:
    """:func:`token_stats` plus ``divergence_margin``: at the first position where the two greedy
    runs choose differently, how many nats the reference preferred its token over the test's (0
    when they never diverge). A correct export diverges only where the reference nearly ties."""
    out = token_stats(test, ref)
    j = out["prefix"]
    margin = 0.0
    if not out["exact"] and j < ref_rows.shape[0] and j < test_rows.shape[0]:
        lp = ref_rows[j].double()[:vocab_limit].log_softmax(-1)
        mine = ref[j] if j < len(ref) else int(lp.argmax())  # the reference stopped here (EOS)
        theirs = test[j] if j < len(test) else int(test_rows[j].double()[:vocab_limit].argmax())
        margin = float(lp[mine] - lp[theirs])
    return {**out, "divergence_margin": margin}


def merge(rows: list[dict]) -> dict:
    """Worst case over cases: max of errors, min of similarities/agreements."""
    out = {}
    for key in rows[0]:
        vals = [r[key] for r in rows]
        if isinstance(vals[0], bool):
            out[key] = all(vals)
        elif key in ("max_abs", "rel", "kl", "kl_max", "ppl", "ppl_reference", "ppl_ratio", "divergence_margin",
                     "reference_len", "test_len"):
            out[key] = max(vals)
        else:
            out[key] = min(vals)
    return out
