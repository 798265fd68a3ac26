"""Peak RSS and wall time per stage of ``sfllava-mobile export`` (ExecuTorch 8da4w or, with
``--backend coreml``, Core ML int4) with verify on, at
real shapes, random bf16 weights written as sharded safetensors, under a memory watchdog.

Shapes (``--shape``, repeatable):
  0.5b  tiny ViT + Qwen2.5-0.5B decoder, our layout
  1.5b  the sf-llava-1.5-1b preset (SigLIP-so400m 384 px + Qwen2.5-1.5B), our layout
  3b    the sf-llava-1.5-3b preset (SigLIP-so400m + Qwen2.5-3B), our layout
  7b    the sf-llava-7b preset (CLIP-L/14-336 + Vicuna-7B), LLaVA-repo layout, CLIP tower in its own folder

The checkpoint is written tensor by tensor (no model is ever built in memory). The export runs
in a child process; a watchdog samples the PSS of the child's whole process tree every 0.3 s and
kills it above ``--limit-gb`` of PSS (default 21: this machine has 24 GB and no swap). Stage times and
peaks come from the export's own stage log. Usage:

    python benchmarks/export_memory.py --shape 0.5b --shape 7b --out benchmarks/results/export_memory.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

SHAPES = {
    "0.5b": ("tiny", "ours", {"text.hidden_size": 896, "text.num_layers": 24, "text.num_heads": 14,
                              "text.num_kv_heads": 2, "text.intermediate_size": 4864, "text.vocab_size": 151936,
                              "projector.output_size": 896, "text.max_position_embeddings": 32768,
                              "context_length": 32768}),
    "1.5b": ("sf-llava-1.5-1b", "ours", {}),
    "3b": ("sf-llava-1.5-3b", "ours", {}),
    "7b": ("sf-llava-7b", "llava_original", {}),
}


def _init(name: str, shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    if name.endswith("bias"):
        return torch.zeros(shape)
    if len(shape) == 1 and ("norm" in name or "layrnorm" in name or name.endswith("weight")):
        return torch.ones(shape)
    return torch.randn(shape, generator=g) * 0.02


def write_random_checkpoint(preset: str, layout: str, overrides: dict, folder: Path,
                            shard_gb: float = 2.0) -> Path:
    """A random bf16 checkpoint of ``preset`` in ``layout``, sharded, written one tensor at a time."""
    from safetensors.torch import save_file

    from sfllava_mobile import presets
    from sfllava_mobile.config import apply_overrides
    from sfllava_mobile.model import VideoLLM
    from sfllava_mobile.tiny import build_tokenizer, llava_original_key, write_llava_original_configs

    if (folder / "config.json").is_file():
        return folder
    family = "v1" if layout == "llava_original" else "1.5"
    extra = {} if family == "v1" else {"text.eos_ids": "511,509"}  # the 512-token test tokenizer's end ids
    cfg = apply_overrides(presets.get(preset), {**overrides, **extra, "name": f"random-{preset}"})
    tmp = folder.with_name(folder.name + ".partial")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    with torch.device("meta"):
        model = VideoLLM(cfg)
    state = model.state_dict()
    if cfg.text.tie_word_embeddings:
        state.pop("language_model.lm_head.weight", None)
    parts: dict[str, Path] = {"llm": tmp}
    if layout == "llava_original":
        parts["tower"] = write_llava_original_configs(cfg, tmp, torch_dtype="bfloat16")
    else:
        (tmp / "config.json").write_text(json.dumps({"format": "sfllava-mobile", "format_version": 1,
                                                     "model": cfg.to_dict()}, indent=2))
    g = torch.Generator().manual_seed(0)
    shards: dict[str, list[dict]] = {p: [{}] for p in parts}
    sizes = {p: 0 for p in parts}
    index: dict[str, dict[str, int]] = {p: {} for p in parts}

    def flush(part: str) -> None:
        n = len(shards[part])
        path = parts[part] / f"model-{n:05d}.safetensors"
        save_file(shards[part][-1], str(path), metadata={"format": "pt"})
        for k in shards[part][-1]:
            index[part][k] = n
        shards[part].append({})
        sizes[part] = 0

    for name, meta in state.items():
        part, key = llava_original_key(name) if layout == "llava_original" else ("llm", name)
        t = _init(name, tuple(meta.shape), g).to(torch.bfloat16)
        shards[part][-1][key] = t
        sizes[part] += t.numel() * 2
        if sizes[part] >= shard_gb * 1e9:
            flush(part)
    if layout == "llava_original":
        shards["llm"][-1]["model.image_newline"] = torch.zeros(cfg.text.hidden_size, dtype=torch.bfloat16)
    for part in parts:
        if shards[part][-1]:
            flush(part)
        total = len(shards[part]) - 1
        weight_map = {}
        for i in range(1, total + 1):
            old = parts[part] / f"model-{i:05d}.safetensors"
            new = parts[part] / f"model-{i:05d}-of-{total:05d}.safetensors"
            old.rename(new)
            weight_map.update({k: new.name for k, n in index[part].items() if n == i})
        (parts[part] / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {}, "weight_map": weight_map}, indent=1))
    build_tokenizer(family, 512).save(tmp / "tokenizer.json")
    os.replace(tmp, folder)
    return folder


def _tree_pss_kb(pid: int) -> int:
    """Proportional set size of ``pid`` and all its descendants, kB.

    PSS, not RSS: a child between fork and exec (ExecuTorch runs ``flatc`` once per XNNPACK
    partition) shares every page of a 12 GB parent, and summed RSS would count them twice."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
            for task in Path(f"/proc/{p}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def run_watched(cmd: list[str], limit_gb: float, log_path: Path) -> dict:
    """Run ``cmd``; kill its process group above ``limit_gb`` of tree PSS. Returns exit, wall, peak."""
    peak = [0]
    killed = [False]
    with open(log_path, "w") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        done = threading.Event()

        def watch() -> None:
            over = 0
            while not done.wait(0.3):
                kb = _tree_pss_kb(proc.pid)
                # Two samples in a row: a sample that reads the parent just before a fork and the
                # child just after counts the shared pages twice (one run saw 29.5 GB on a 23.5 GB host).
                over = over + 1 if kb > limit_gb * 2**20 else 0
                if over == 1:
                    continue
                peak[0] = max(peak[0], kb)
                if over >= 2:
                    killed[0] = True
                    os.killpg(proc.pid, signal.SIGKILL)
                    return

        t = threading.Thread(target=watch, daemon=True)
        t0 = time.perf_counter()
        t.start()
        code = proc.wait()
        done.set()
        t.join()
    return {"exit_code": code, "wall_s": round(time.perf_counter() - t0, 1), "peak_pss_gb": round(peak[0] / 2**20, 2),
            "killed_by_watchdog": killed[0], "limit_gb": limit_gb}


_STAGE = re.compile(r"\] (\S+) done in ([\d.]+) s \(peak RSS ([\d.]+) GB\)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", action="append", choices=list(SHAPES), required=True)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--limit-gb", type=float, default=21.0)
    ap.add_argument("--workdir", default="/tmp/sfllava-mem")
    ap.add_argument("--backend", default="executorch", choices=["executorch", "coreml"])
    ap.add_argument("--quant", help="default: 8da4w (executorch), int4 (coreml)")
    ap.add_argument("--parity", default="--cases 1 --steps 4 --teacher-tokens 32",
                    help="parity options passed to export")
    ap.add_argument("--out", help="append one JSON line per shape here")
    a = ap.parse_args()
    a.quant = a.quant or {"executorch": "8da4w", "coreml": "int4"}[a.backend]
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    for shape in a.shape:
        preset, layout, overrides = SHAPES[shape]
        t0 = time.perf_counter()
        ckpt = write_random_checkpoint(preset, layout, overrides, work / f"ckpt-{shape}")
        built = time.perf_counter() - t0
        bundle = work / f"bundle-{a.backend}-{shape}"
        cmd = [sys.executable, "-m", "sfllava_mobile.cli", "export", "--checkpoint", str(ckpt), "--backend", a.backend,
               "--quant", a.quant,
               "--frames", str(a.frames), "--out", str(bundle), "--overwrite", *a.parity.split()]
        log_path = work / f"export-{a.backend}-{shape}.log"
        res = run_watched(cmd, a.limit_gb, log_path)
        text = log_path.read_text()
        stages = [{"stage": m.group(1), "s": float(m.group(2)), "peak_rss_gb": float(m.group(3))}
                  for m in _STAGE.finditer(text)]
        result = {"shape": shape, "backend": a.backend, "preset": preset, "layout": layout, "frames": a.frames,
                  "quant": a.quant,
                  "checkpoint_gb": round(sum(f.stat().st_size for f in ckpt.rglob("*.safetensors")) / 1e9, 2),
                  "checkpoint_build_s": round(built, 1), **res, "stages": stages,
                  "machine_mem_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}
        if res["exit_code"] in (0, 1) and (bundle / "manifest.json").is_file():
            m = json.loads((bundle / "manifest.json").read_text())
            result.update(artifact_mb=round(m["size"]["total_bytes"] / 1e6, 1), floor_mb=round(m["size"]["floor_bytes"] / 1e6, 1),
                          visual_tokens=m["visual_tokens"], parity_pass=m.get("parity", {}).get("pass"),
                          reference_dtype=m.get("parity", {}).get("reference_dtype"))
            if m.get("coreml"):
                cm = m["coreml"]
                result.update(weight_bin_mb=round(sum(cm["weight_bin_bytes"].values()) / 1e6, 1),
                              mil_ops={k: sum(v.values()) for k, v in cm["mil_ops"].items()},
                              int4_ops=sum(v.get("constexpr_blockwise_shift_scale", 0) for v in cm["mil_ops"].values()),
                              states=len(cm["states"]), slowfast_pool_ops=cm["slowfast_pool_ops"])
        else:
            result["log_tail"] = text.strip().splitlines()[-3:]
        print(json.dumps(result), flush=True)
        if a.out:
            with open(a.out, "a") as f:
                f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
