"""Calibration for the fold recipes: the shipped texts, the fold plan, and the quality report.

The calibration text (``data/calibration_text.txt``) sets the fold's scales; a different held-out
text (``data/parity_text.txt``) measures the artifact against the float model afterwards, scored
as ``quality.py`` scores (KL, same top-1, perplexity). Both ship with the package: nothing is
downloaded, and the same bytes give the same scales on every machine.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch

from . import quality, smooth

CALIBRATION_TEXT = "calibration_text.txt"
HELD_OUT_TEXT = "parity_text.txt"
SCALES_FILE = "fold_scales.safetensors"
BATCH_TOKENS = 512
BATCHES = 4  # 2,048 calibration tokens
QUALITY_CTX = 256

log = logging.getLogger(__name__)


def shipped_text(name: str) -> str:
    return resources.files("sfllava_mobile").joinpath("data", name).read_text(encoding="utf-8")


@dataclass
class Calibration:
    """A fold plan, what it was computed from, and the float reference for the quality report."""

    method: str
    scales: dict[str, torch.Tensor]
    info: dict
    held_out: quality.Chunks | None = None
    reference: list[torch.Tensor] = field(default_factory=list)


@torch.no_grad()
def calibrate(model, method: str, max_context: int = QUALITY_CTX) -> Calibration:
    """The fold plan of ``model``'s decoder (weights untouched) from the shipped calibration text, and
    the float logits of the held-out text (for :func:`quality_report` after export)."""
    t0 = time.perf_counter()
    text = shipped_text(CALIBRATION_TEXT)
    ids = model.tokenizer.encode(text)
    batches = [torch.tensor([ids[i:i + BATCH_TOKENS]]) for i in range(0, min(len(ids), BATCHES * BATCH_TOKENS),
                                                                        BATCH_TOKENS)]
    lm = model.language_model
    # The search scores candidates with the cheap max/7.5 rule even for the "search" recipes: the
    # searched rule costs 7x per candidate, which at 7B is hours (measured 560 s at 135M).
    plan = smooth.calibrate(lm, batches, method, algorithm="rtn")
    info = {"method": method, "text": CALIBRATION_TEXT, "text_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "tokens": sum(b.shape[1] for b in batches), "groups_total": 3 * model.config.text.num_layers,
            "groups_scaled": len(plan["scales"]), "layer_error_ratio": round(plan["error_ratio"], 4),
            "seconds": round(time.perf_counter() - t0, 2)}
    held_ids = model.tokenizer.encode(shipped_text(HELD_OUT_TEXT))
    n_ctx = min(QUALITY_CTX, len(held_ids), max_context)
    chunks = quality.make_chunks(held_ids, n_ctx, 2)
    reference = quality.scored_logits(quality.causal_lm_logits(lm), chunks)
    log.info("calibrated %s on %d tokens in %.1f s: %d of %d layer groups scaled, layer output error x%.3f",
             method, info["tokens"], info["seconds"], info["groups_scaled"], info["groups_total"],
             info["layer_error_ratio"])
    return Calibration(method, plan["scales"], info, chunks, reference)


def save_scales(path: Path, scales: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    from ..fsutil import current_umask

    save_file({k: v.contiguous().float() for k, v in scales.items()}, str(path))
    os.chmod(path, 0o666 & ~current_umask())  # safetensors writes 0600; a bundle file should read like its neighbours


def load_scales(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


@torch.no_grad()
def artifact_logits(driver, chunks: quality.Chunks) -> list[torch.Tensor]:
    """Teacher-forced scored rows from an exported artifact's driver (``embed`` + ``decode``): the
    first half of each chunk in one prefill call, then one call per scored position."""
    out = []
    first = chunks.first
    for chunk in chunks.tokens:
        driver.reset()
        emb = driver.embed(chunk)
        step = getattr(driver, "max_seq_len", first + 1)  # a prefill call takes at most max_seq_len rows
        for start in range(0, first + 1, step):
            last = driver.decode(emb[:, start:min(first + 1, start + step)], start)
        rows = [last.reshape(-1)]
        for j in range(first + 1, chunks.n_ctx - 1):
            rows.append(driver.decode(emb[:, j:j + 1], j).reshape(-1))
        out.append(torch.stack(rows).float())
    return out


def quality_report(driver, cal: Calibration) -> dict:
    """KL / same top-1 / perplexity of the artifact against the float model on the held-out text."""
    test = artifact_logits(driver, cal.held_out)
    report = quality.compare(cal.reference, test, cal.held_out)
    report.update(text=HELD_OUT_TEXT, n_ctx=cal.held_out.n_ctx, chunks=len(cal.held_out.tokens))
    log.info("artifact vs float on the held-out text: KL %.4f, same top-1 %.3f, PPL %.3f (float %.3f)",
             report["mean_kl"], report["same_top1"], report["ppl"], report["ppl_reference"])
    return report
