"""Latency and memory of an exported bundle on this machine's runtimes, next to eager PyTorch fp32.

Each engine runs in its own subprocess so that its peak RSS is its own:
- ``pte``: the ``.pte`` through ``executorch.runtime`` (methods called step by step);
- ``runner``: the same ``.pte`` through the C++ ``MultimodalRunner`` the phone apps embed;
- ``eager``: the float reference (transformers modules, KV cache) from the bundle's source checkpoint.
Stages: video decode + sampling, preprocessing, vision encoder, prefill (tokens/s), decode
(tokens/s), time to first token, peak RSS. Decode runs a fixed number of steps (EOS ignored),
so engines are compared on equal work.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from .errors import SfllavaError

ENGINES = ("pte", "runner", "eager")


def _peak_rss_mb() -> float:
    """This process's own high-water mark. Not ``ru_maxrss``: Linux carries the parent's peak into a
    child's ``ru_maxrss`` across fork+exec, so a worker spawned by a large parent reports the parent's."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _prompt(model_or_tok, manifest: dict, question: str) -> tuple[list[int], list[int]]:
    from .tokenizer import Tokenizer

    tok = model_or_tok if isinstance(model_or_tok, Tokenizer) else model_or_tok.tokenizer
    p = manifest["prompt"]
    before = ([] if p["bos_id"] is None else [p["bos_id"]]) + tok.encode(p["text_before_video"])
    after = tok.encode(p["text_after_video"].replace("{question}", question))
    return before, after


def _clip(video: str, manifest: dict, timings: dict) -> torch.Tensor:
    from .video import read_clip

    v = manifest["video"]
    t0 = time.perf_counter()
    clip = read_clip(video, v["frames"], "uniform", resize_to=(v["frame_height"], v["frame_width"]))
    timings["decode_video_s"] = time.perf_counter() - t0
    return clip.frames


def _loop(embed, decode, vision_rows, before, after, steps):
    """Prefill text / video / text, then ``steps`` greedy steps; returns timings."""
    t0 = time.perf_counter()
    pos = 0
    logits = None
    for chunk in (embed(before), vision_rows, embed(after)):
        logits = decode(chunk, pos)
        pos += chunk.shape[1]
    t1 = time.perf_counter()
    for _ in range(steps):
        tok = int(logits.reshape(-1).argmax())
        logits = decode(embed([tok]), pos)
        pos += 1
    t2 = time.perf_counter()
    return {"prompt_tokens": pos - steps, "prefill_s": t1 - t0, "decode_s": t2 - t1,
            "prefill_tokens_per_second": (pos - steps) / (t1 - t0), "decode_tokens_per_second": steps / (t2 - t1)}


@torch.inference_mode()
def run_engine(engine: str, bundle: Path, video: str, steps: int, question: str) -> dict:
    """One engine's stage timings (called inside the worker subprocess)."""
    from . import bundle as bundle_mod

    manifest = bundle_mod.read_manifest(bundle)
    t: dict[str, float] = {}
    frames = _clip(video, manifest, t)
    if engine == "eager":
        from .checkpoint import load
        from .export.parity import ReferenceDriver
        from .video import normalize

        model = load(manifest["export"]["source"], dtype="float32", **manifest["export"].get("overrides", {}))
        d = ReferenceDriver(model)
        d.reset()
        v = model.config.vision
        t0 = time.perf_counter()
        pixels = normalize(frames, v.image_mean, v.image_std)
        t["preprocess_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rows = model.embed_video(pixels).unsqueeze(0)
        t["vision_encoder_s"] = time.perf_counter() - t0
        before, after = _prompt(model, manifest, question)
        t.update(_loop(d.embed, d.decode, rows, before, after, steps))
    elif engine == "pte":
        from .export.parity import PteDriver
        from .export.programs import tall_image
        from .tokenizer import Tokenizer

        t0 = time.perf_counter()
        d = PteDriver(bundle / manifest["artifacts"]["program"])
        t["load_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        image = tall_image(frames)
        t["preprocess_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rows = d.vision(image, frames)
        t["vision_encoder_s"] = time.perf_counter() - t0
        before, after = _prompt(Tokenizer.from_folder(bundle), manifest, question)
        t.update(_loop(d.embed, d.decode, rows, before, after, steps))
    elif engine == "runner":
        from executorch.extension.llm.runner import (GenerationConfig, MultimodalRunner, make_image_input,
                                                     make_token_input)

        from .export.executorch_attention import register_ops
        from .export.native_io import native_quiet, stdout_to_stderr
        from .export.programs import tall_image
        from .tokenizer import Tokenizer

        register_ops()
        before, after = _prompt(Tokenizer.from_folder(bundle), manifest, question)
        t0 = time.perf_counter()
        image = tall_image(frames)[0]
        t["preprocess_s"] = time.perf_counter() - t0
        import tempfile

        from .export.parity import _raw_piece_tokenizer

        stats = []
        # Raw-piece tokenizer: random-weight answers are often invalid UTF-8 (see parity.py).
        with native_quiet(), stdout_to_stderr(), tempfile.TemporaryDirectory() as tmpdir:
            tokenizer = _raw_piece_tokenizer(bundle / "tokenizer.json", Path(tmpdir))
            runner = MultimodalRunner(str(bundle / manifest["artifacts"]["program"]), str(tokenizer))
            inputs = [make_token_input(before), make_image_input(image), make_token_input(after)]
            t0 = time.perf_counter()
            runner.generate(inputs, GenerationConfig(max_new_tokens=steps + 1, temperature=0.0, echo=False),
                            lambda piece: None, stats.append)
            wall = time.perf_counter() - t0
        s = stats[0]
        prefill = (s.prompt_eval_end_ms - s.inference_start_ms) / 1000
        decode = (s.inference_end_ms - s.prompt_eval_end_ms) / 1000
        t.update({"prompt_tokens": s.num_prompt_tokens, "prefill_s": prefill, "decode_s": decode,
                  "generated_tokens": s.num_generated_tokens, "wall_s": wall,
                  "prefill_tokens_per_second": s.num_prompt_tokens / prefill if prefill else 0.0,
                  "decode_tokens_per_second": s.num_generated_tokens / decode if decode else 0.0,
                  "note": "prefill_s includes vision_encoder (the runner times them together); decode stops at EOS"})
    else:
        raise SfllavaError(f"unknown engine {engine!r}")
    t["time_to_first_token_s"] = t.get("preprocess_s", 0) + t.get("vision_encoder_s", 0) + t["prefill_s"]
    t["peak_rss_mb"] = _peak_rss_mb()
    return t


def bench(bundle: str | Path, video: str | Path, steps: int = 32, engines: tuple[str, ...] = ENGINES,
          question: str = "What is moving in the video?") -> dict:
    """Run every engine in its own process on the same clip; JSON-ready result with pte/eager ratios."""
    from . import bundle as bundle_mod

    bundle = Path(bundle)
    manifest = bundle_mod.read_manifest(bundle)
    if not Path(video).is_file():
        raise SfllavaError(f"no such video file: {video}")
    results = {}
    for engine in engines:
        cmd = [sys.executable, "-m", "sfllava_mobile.bench", engine, str(bundle), str(video), str(steps), question]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise SfllavaError(f"bench engine {engine} failed: {tail}")
        results[engine] = json.loads(proc.stdout.strip().splitlines()[-1])
    out = {"bundle": str(bundle), "video": str(video), "steps": steps, "threads": torch.get_num_threads(),
           "model": manifest["model"]["name"], "recipe": manifest["quantization"]["recipe"],
           "frames": manifest["video"]["frames"], "visual_tokens": manifest["visual_tokens"],
           "pte_bytes": manifest["size"]["pte_bytes"], "engines": results}
    if "pte" in results and "eager" in results:
        p, e = results["pte"], results["eager"]
        out["pte_vs_eager"] = {k: (p[k] / e[k] if e.get(k) else None) for k in (
            "vision_encoder_s", "prefill_tokens_per_second", "decode_tokens_per_second", "time_to_first_token_s",
            "peak_rss_mb")}
    return out


def plot(result: dict, path: str | Path) -> Path:
    """A PNG: stage seconds and tokens/s per engine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    engines = list(result["engines"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    stages = ["decode_video_s", "preprocess_s", "vision_encoder_s", "prefill_s", "time_to_first_token_s"]
    width = 0.8 / len(engines)
    for i, e in enumerate(engines):
        vals = [result["engines"][e].get(s, 0.0) for s in stages]
        axes[0].bar([j + i * width for j in range(len(stages))], vals, width, label=e)
    axes[0].set_xticks([j + width * (len(engines) - 1) / 2 for j in range(len(stages))])
    axes[0].set_xticklabels([s.replace("_s", "").replace("_", "\n") for s in stages], fontsize=8)
    axes[0].set_ylabel("seconds")
    axes[0].set_title("stages (lower is better)")
    axes[0].legend()
    rates = ["prefill_tokens_per_second", "decode_tokens_per_second"]
    for i, e in enumerate(engines):
        axes[1].bar([j + i * width for j in range(2)], [result["engines"][e].get(r, 0.0) for r in rates], width, label=e)
    axes[1].set_xticks([j + width * (len(engines) - 1) / 2 for j in range(2)])
    axes[1].set_xticklabels(["prefill tok/s", "decode tok/s"])
    axes[1].set_title("throughput (higher is better)")
    fig.suptitle(f"{result['model']} {result['recipe']}, {result['frames']} frames, {result['visual_tokens']} visual tokens, "
                 f"{result['threads']} threads")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def format_bench(r: dict) -> str:
    lines = [f"bench {r['model']} ({r['recipe']}, {r['frames']} frames, {r['visual_tokens']} visual tokens, "
             f"{r['steps']} decode steps, {r['threads']} threads)",
             f"{'stage':28s}" + "".join(f"{e:>12s}" for e in r["engines"])]
    keys = ["decode_video_s", "preprocess_s", "vision_encoder_s", "prefill_s", "prefill_tokens_per_second",
            "decode_tokens_per_second", "time_to_first_token_s", "peak_rss_mb"]
    for k in keys:
        lines.append(f"{k:28s}" + "".join(
            f"{r['engines'][e][k]:12.3f}" if isinstance(r["engines"][e].get(k), (int, float)) else f"{'-':>12s}"
            for e in r["engines"]))
    if "pte_vs_eager" in r:
        lines.append("pte / eager: " + ", ".join(f"{k} x{v:.2f}" for k, v in r["pte_vs_eager"].items() if v))
    return "\n".join(lines)


if __name__ == "__main__":  # worker: python -m sfllava_mobile.bench ENGINE BUNDLE VIDEO STEPS QUESTION
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    engine, bundle_dir, video_path, n, q = sys.argv[1:6]
    res = run_engine(engine, Path(bundle_dir), video_path, int(n), q)
    print(json.dumps(res))
