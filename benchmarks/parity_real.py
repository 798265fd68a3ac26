"""Parity on real weights: SmolLM2-135M-Instruct behind the tiny tower (``real_weights.py``),
exported with a 4-bit recipe, verified teacher-forced over a few hundred tokens of prose; then a
deliberately broken program (every decoder layer's MLP output projection scaled by
``--break-scale``: what a kernel with a wrong scale does to every call of its op) is swapped into a
copy of the bundle and must fail the same bounds. (A single layer scaled by 1.25 is not caught:
KL 0.049 against 0.040 for a correct export; see the README.)

    python benchmarks/parity_real.py --teacher-tokens 384 --out benchmarks/results/parity_real.jsonl
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from real_weights import make_smollm2_checkpoint  # noqa: E402


def _summary(rep: dict) -> dict:
    keep = ("rel", "cosine", "top1", "top1_confident", "confident_positions", "positions", "kl", "kl_max", "ppl",
            "ppl_reference", "ppl_ratio", "agreement", "divergence_margin")
    out = {sec: {k: {m: v[m] for m in keep if m in v} for k, v in rep[sec].items()}
           for sec in ("vs_eager_recipe", "vs_float", "eager_vs_float") if sec in rep}
    out["failures"] = {f"{sec}.{k}": v["failures"] for sec in ("vs_eager_recipe", "vs_float") if sec in rep
                       for k, v in rep[sec].items() if v["failures"]}
    out["runner_tokens_equal"] = rep["checks"]["runner"]["text_equal"]
    if "runner_conversation" in rep["checks"]:
        out["runner_conversation_equal"] = rep["checks"]["runner_conversation"]["text_equal"]
    out["pass"] = rep["pass"]
    return out


def run(work: Path, quant: str, teacher_tokens: int, cases: int, steps: int, break_scale: float,
        kv_cache: str = "fp32") -> dict:
    import torch

    from sfllava_mobile import load
    from sfllava_mobile.export.config import ExecuTorchOptions, ExportConfig
    from sfllava_mobile.export import export
    from sfllava_mobile.export.parity import verify_bundle

    ckpt = make_smollm2_checkpoint(work / "smollm2-ckpt")
    model = load(ckpt)
    t0 = time.perf_counter()
    bundle = work / f"smollm2-{quant}-kv{kv_cache}"
    cfg = ExportConfig(quant=quant, overwrite=True, max_new_tokens=max(128, teacher_tokens + 16),  # room for the text
                       options=ExecuTorchOptions(kv_cache=kv_cache))
    result = export(model, bundle, cfg, source=ckpt)
    export_s = time.perf_counter() - t0
    good = verify_bundle(bundle, model=model, eager_programs=result.programs, cases=cases, steps=steps,
                         teacher_tokens=teacher_tokens)
    out = {"model": "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized) + tiny random ViT", "recipe": quant,
           "kv_cache": kv_cache,
           "teacher_tokens": teacher_tokens, "cases": cases, "steps": steps, "export_s": round(export_s, 1),
           "pte_mb": round(result.manifest.size.total_bytes / 1e6, 1), "correct_export": _summary(good)}
    if break_scale:
        broken_model = load(ckpt)
        with torch.no_grad():
            for layer in broken_model.language_model.model.layers:
                layer.mlp.down_proj.weight.mul_(break_scale)
        broken_dir = work / f"smollm2-{quant}-broken-src"
        export(broken_model, broken_dir, cfg)
        swapped = work / f"smollm2-{quant}-swapped"
        if swapped.exists():
            shutil.rmtree(swapped)
        shutil.copytree(bundle, swapped)
        shutil.copy(broken_dir / "model.pte", swapped / "model.pte")
        bad = verify_bundle(swapped, model=model, eager_programs=result.programs, cases=cases, steps=steps,
                            teacher_tokens=teacher_tokens)
        out["broken_export"] = {"what": f"every mlp.down_proj scaled by {break_scale}", **_summary(bad)}
    return out


def main() -> None:
    warnings.simplefilter("ignore")
    ap = argparse.ArgumentParser()
    ap.add_argument("--quant", default="8da4w")
    ap.add_argument("--teacher-tokens", type=int, default=384)
    ap.add_argument("--cases", type=int, default=2)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--break-scale", type=float, default=1.1)
    ap.add_argument("--kv-cache", default="fp32", choices=["fp32", "fp16", "int8"])
    ap.add_argument("--workdir", default="/tmp/sfllava-real")
    ap.add_argument("--out")
    a = ap.parse_args()
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    res = run(work, a.quant, a.teacher_tokens, a.cases, a.steps, a.break_scale, a.kv_cache)
    print(json.dumps(res, indent=1))
    if a.out:
        with open(a.out, "a") as f:
            f.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
