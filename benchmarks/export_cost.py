"""Export cost of a whole preset (ViT included) with random weights: wall time and peak RSS.

The random checkpoint is written in bf16 (a 3B model in fp32 plus the safetensors write buffer
would not fit in 24 GB); the export loads it as fp32 like any checkpoint, quantizes in place and
lowers. Usage:

    python benchmarks/export_cost.py --preset sf-llava-1.5-3b --frames 8 --out results.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from executorch_llm import export_cost  # noqa: E402


def make_checkpoint(preset: str, folder: Path) -> Path:
    from sfllava_mobile import presets, save
    from sfllava_mobile.config import apply_overrides
    from sfllava_mobile.model import VideoLLM
    from sfllava_mobile.tiny import build_tokenizer

    if (folder / "config.json").is_file():
        return folder
    # The tiny tokenizer's end ids: the real ones are outside its 512 tokens.
    cfg = apply_overrides(presets.get(preset), {"text.eos_ids": "511,509", "name": f"random-{preset}"})
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.no_grad():
            model = VideoLLM(cfg, build_tokenizer("1.5", 512)).eval()
    finally:
        torch.set_default_dtype(torch.float32)
    save(model, folder)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="sf-llava-1.5-3b")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--workdir", default="/tmp/sfllava-bench")
    ap.add_argument("--out")
    a = ap.parse_args()
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ckpt = make_checkpoint(a.preset, work / a.preset)
    made = time.perf_counter() - t0
    cost = export_cost(ckpt, work / f"{a.preset}-bundle", "custom", a.frames)
    result = {"preset": a.preset, "frames": a.frames, "checkpoint_build_s": round(made, 1), "export": cost,
              "machine_memory_gb": round(Path("/proc/meminfo").read_text().split()[1] and
                                         int(Path("/proc/meminfo").read_text().split()[1]) / 2**20, 1)}
    print(json.dumps(result, indent=1))
    if a.out:
        with open(a.out, "a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
