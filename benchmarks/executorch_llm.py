"""Real-shape ExecuTorch numbers for the README: export cost, size vs floor, speed vs eager and
vs this machine's memory-bandwidth floor.

A random-weight checkpoint is built with a real decoder shape (Qwen2.5-0.5B or the 1B preset's
Qwen2.5-1.5B) behind the tiny ViT (so the decoder dominates), exported 8da4w in a subprocess
(wall time and peak RSS measured), then benchmarked with ``sfllava_mobile.bench``. The read
bandwidth is measured in the same run; the decode floor is bandwidth / bytes read per token
(quantized decoder + head weights, plus the KV cache at the mean decode position).

    python benchmarks/executorch_llm.py --shape qwen2.5-0.5b --attention custom,generic --out results.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

SHAPES = {
    "tiny": {},  # the tiny preset as is
    "qwen2.5-0.5b": {"text.hidden_size": 896, "text.num_layers": 24, "text.num_heads": 14, "text.num_kv_heads": 2,
                     "text.intermediate_size": 4864, "text.vocab_size": 151936, "projector.output_size": 896},
    "qwen2.5-1.5b": {"text.hidden_size": 1536, "text.num_layers": 28, "text.num_heads": 12, "text.num_kv_heads": 2,
                     "text.intermediate_size": 8960, "text.vocab_size": 151936, "projector.output_size": 1536},
    "qwen2.5-3b": {"text.hidden_size": 2048, "text.num_layers": 36, "text.num_heads": 16, "text.num_kv_heads": 2,
                   "text.intermediate_size": 11008, "text.vocab_size": 151936, "projector.output_size": 2048},
}


def make_checkpoint(shape: str, folder: Path) -> Path:
    from sfllava_mobile import presets, save
    from sfllava_mobile.config import apply_overrides
    from sfllava_mobile.model import VideoLLM
    from sfllava_mobile.tiny import build_tokenizer

    if (folder / "config.json").is_file():
        return folder
    cfg = apply_overrides(presets.get("tiny"), {**SHAPES[shape], "text.max_position_embeddings": 32768,
                                                "context_length": 32768, "name": f"tiny-vit+{shape}"})
    torch.manual_seed(0)
    model = VideoLLM(cfg, build_tokenizer("1.5", 512)).eval()
    save(model, folder)
    return folder


def read_bandwidth_gbs(gib: float = 1.0, repeats: int = 7) -> float:
    """Best-of-N streaming read bandwidth with torch's threads (a float32 sum over ``gib`` GiB)."""
    x = torch.ones(int(gib * 2**30 / 4))
    x.sum()
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        x.sum()
        best = max(best, x.numel() * 4 / (time.perf_counter() - t0) / 1e9)
    return best


def export_cost(ckpt: Path, out: Path, attention: str, frames: int, extra: tuple[str, ...] = ()) -> dict:
    cmd = [sys.executable, "-m", "sfllava_mobile.cli", "-q", "export", "--checkpoint", str(ckpt), "--quant", "8da4w",
           "--frames", str(frames), "--attention", attention, "--out", str(out), "--overwrite", "--no-verify", *extra]
    # A fresh wrapper per export: RUSAGE_CHILDREN then holds this export's peak alone.
    wrap = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", wrap, *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    peak_kb = int(proc.stderr.strip().splitlines()[-1].split()[-1])
    manifest = json.loads((out / "manifest.json").read_text())
    return {"wall_s": round(wall, 1), "peak_rss_gb": round(peak_kb / 2**20, 2),
            "stages_s": manifest["export"]["timings_s"], "pte_mb": round(manifest["size"]["total_bytes"] / 1e6, 1),
            "floor_mb": round(manifest["size"]["floor_bytes"] / 1e6, 1), "ratio_to_floor": manifest["size"]["ratio_to_floor"],
            "delegate_calls": {k: v["delegate_calls"] for k, v in manifest["executorch"]["delegation"].items()}}


def bytes_per_token(manifest: dict, position: int) -> float:
    rows = manifest["quantization"]["coverage"]
    w = sum(r["bits_per_weight"] / 8 * _numel(r["shape"]) for r in rows if r["component"] == "decoder")
    t = manifest["model"]["config"]["text"]
    head_dim = t["head_dim"] or t["hidden_size"] // t["num_heads"]
    kv = 2 * t["num_layers"] * t["num_kv_heads"] * head_dim * position * 4  # fp32 cache
    return w + kv


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="qwen2.5-0.5b", choices=list(SHAPES))
    ap.add_argument("--attention", default="custom,generic")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--workdir", default="/tmp/sfllava-bench")
    ap.add_argument("--out", help="append the JSON result to this file")
    ap.add_argument("--export-only", default="", help="comma list of extra export variants to time only: "
                    "two_pass_per_op, no_rewrites")
    a = ap.parse_args()
    from sfllava_mobile.bench import bench
    from sfllava_mobile.synthetic import write_clip

    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    ckpt = make_checkpoint(a.shape, work / a.shape)
    clip = write_clip(work / "clip.mp4", num_frames=64, size=(96, 128))
    result = {"shape": a.shape, "frames": a.frames, "steps": a.steps, "threads": torch.get_num_threads(),
              "read_bandwidth_gbs": round(read_bandwidth_gbs(), 1), "runs": {}}
    for attention in a.attention.split(","):
        out = work / f"{a.shape}-{attention}"
        cost = export_cost(ckpt, out, attention, a.frames)
        engines = ("pte", "eager") if attention != "custom" else ("pte", "runner", "eager")
        b = bench(out, clip, steps=a.steps, engines=engines)
        manifest = json.loads((out / "manifest.json").read_text())
        pos = b["engines"]["pte"]["prompt_tokens"] + a.steps // 2
        bpt = bytes_per_token(manifest, pos)
        floor = result["read_bandwidth_gbs"] * 1e9 / bpt
        result["runs"][attention] = {"export": cost, "bench": b["engines"], "pte_vs_eager": b.get("artifact_vs_eager"),
                                     "decode_bytes_per_token_mb": round(bpt / 1e6, 1),
                                     "decode_floor_tokens_per_second": round(floor, 1),
                                     "decode_fraction_of_floor": round(b["engines"]["pte"]["decode_tokens_per_second"] / floor, 3)}
        print(json.dumps({attention: result["runs"][attention]}, indent=1), flush=True)
    for variant in filter(None, a.export_only.split(",")):
        extra = ("--partitioner", "two_pass_per_op") if variant == "two_pass_per_op" else ("--no-rewrites",)
        result["runs"][f"custom+{variant}"] = {"export": export_cost(ckpt, work / f"{a.shape}-{variant}", "custom",
                                                                     a.frames, extra)}
        print(json.dumps({variant: result["runs"][f"custom+{variant}"]}, indent=1), flush=True)
    if a.out:
        with open(a.out, "a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
