"""Latency and memory of an exported bundle on this machine's runtimes, next to eager PyTorch fp32.

Each engine runs in its own subprocess so that its peak RSS is its own:
- the artifact through its backend's driver, the same call sequence parity drives: ``pte`` (the
  ``.pte`` through ``executorch.runtime``) or ``coreml`` (the packages' MIL programs evaluated with
  numpy on Linux: the program's semantics at numpy speed, not Core ML's latency);
- ``runner``: an ExecuTorch ``.pte`` through the C++ ``MultimodalRunner`` the phone apps embed;
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


FOLLOWUP = "What happens next?"


def _prompt(tok, manifest, question: str) -> tuple[list[int], list[int], list[int]]:
    """Ids before the video, after it (the question), and of a follow-up turn (``FOLLOWUP``)."""
    p = manifest.prompt
    before = ([] if p.bos_id is None else [p.bos_id]) + tok.encode(p.text_before_video)
    after = tok.encode(p.text_after_video.replace(p.question_placeholder, question))
    return before, after, tok.encode(p.text_next_turn.replace(p.question_placeholder, FOLLOWUP))


def _clip(video: str, manifest, timings: dict) -> torch.Tensor:
    from .video import read_clip

    v = manifest.video
    t0 = time.perf_counter()
    clip = read_clip(video, v.frames, v.sampling_rule, resize_to=(v.frame_height, v.frame_width))
    timings["decode_video_s"] = time.perf_counter() - t0
    _mark(timings, "decode_video")
    return clip.frames


def _mark(timings: dict, stage: str) -> None:
    """Record the high-water RSS once ``stage`` has run (VmHWM only grows: a stage's own peak is
    its value minus the previous stage's, when it is larger)."""
    timings.setdefault("peak_rss_after_mb", {})[stage] = round(_peak_rss_mb(), 1)


def _drive(driver, image, frames, before, after, followup, steps, t: dict) -> None:
    """The same prompt and greedy sequence parity records (``parity.prefill`` / ``parity.greedy``),
    timed per stage; decode runs ``steps`` steps whatever the tokens (EOS ignored: equal work).
    Then a follow-up turn is prefilled where the answer ends, as a conversation asks it."""
    from .driver import fed_tokens, greedy, prefill

    t0 = time.perf_counter()
    rows = driver.vision(image, frames)
    t["vision_encoder_s"] = time.perf_counter() - t0
    _mark(t, "vision_encoder")
    t0 = time.perf_counter()
    pos, logits = prefill(driver, before, rows, after)
    t1 = time.perf_counter()
    _mark(t, "prefill")
    tokens, _ = greedy(driver, logits, pos, steps + 1)
    t2 = time.perf_counter()
    _mark(t, "decode")
    at = pos + len(fed_tokens(tokens, steps + 1))
    t3 = time.perf_counter()
    int(driver.decode(driver.embed(followup), at).reshape(-1).argmax())
    t4 = time.perf_counter()
    _mark(t, "followup")
    t.update({"prompt_tokens": pos, "prefill_s": t1 - t0, "decode_s": t2 - t1,
              "prefill_tokens_per_second": pos / (t1 - t0), "decode_tokens_per_second": steps / (t2 - t1),
              "followup_prompt_tokens": len(followup), "followup_time_to_first_token_s": t4 - t3})


@torch.inference_mode()
def run_engine(engine: str, bundle: Path, video: str, steps: int, question: str) -> dict:
    """One engine's stage timings (called inside the worker subprocess)."""
    from . import bundle as bundle_mod
    from .export import backend as backends
    from .export.programs import tall_image
    from .tokenizer import Tokenizer

    manifest = bundle_mod.read_manifest(bundle)
    t: dict[str, float] = {}
    frames = _clip(video, manifest, t)
    before, after, followup = _prompt(Tokenizer.from_folder(bundle), manifest, question)
    if engine == "eager":
        from .checkpoint import load
        from .driver import ReferenceDriver

        model = load(manifest.export.source, dtype="float32", **manifest.export.overrides)
        d = ReferenceDriver(model)
        d.reset()
        _drive(d, None, frames, before, after, followup, steps, t)
    elif engine == "runner":
        if manifest.backend != "executorch":
            raise SfllavaError(f"engine runner needs an ExecuTorch bundle, not {manifest.backend}")
        from .export.executorch_runtime import runner_timings

        t0 = time.perf_counter()
        image = tall_image(frames)[0]
        t["preprocess_s"] = time.perf_counter() - t0
        t.update(runner_timings(bundle, manifest, before, image, after, steps,
                                manifest.prompt.text_next_turn.replace(manifest.prompt.question_placeholder, FOLLOWUP)))
    elif engine == artifact_engine(manifest.backend):
        t0 = time.perf_counter()
        d = backends.get(manifest.backend).driver(bundle, manifest)
        t["load_s"] = time.perf_counter() - t0
        _mark(t, "load")
        t0 = time.perf_counter()
        image = tall_image(frames)
        t["preprocess_s"] = time.perf_counter() - t0
        _mark(t, "preprocess")
        _drive(d, image, frames, before, after, followup, steps, t)
    else:
        raise SfllavaError(f"unknown engine {engine!r} for a {manifest.backend} bundle; choose from "
                           f"{', '.join(engines_for(manifest.backend))}")
    t["time_to_first_token_s"] = t.get("preprocess_s", 0) + t.get("vision_encoder_s", 0) + t["prefill_s"]
    t["peak_rss_mb"] = _peak_rss_mb()
    return t


def artifact_engine(backend: str) -> str:
    return {"executorch": "pte", "coreml": "coreml"}[backend]


def engine_note(engine: str) -> str:
    """What an engine's seconds mean on this host (a Core ML number off a Mac is not a latency)."""
    if engine == "coreml":
        return ("Core ML predict on this Mac: real latency" if sys.platform == "darwin" else
                "numpy evaluation of the MIL programs: the parity run's timing, not Core ML latency")
    return {"pte": "ExecuTorch runtime (XNNPACK) on this host's CPU", "runner": "ExecuTorch C++ MultimodalRunner",
            "eager": "PyTorch fp32 reference"}[engine]


def engines_for(backend: str) -> tuple[str, ...]:
    """Engines that can run a bundle of ``backend`` on this host."""
    return ("pte", "runner", "eager") if backend == "executorch" else (artifact_engine(backend), "eager")


def bench(bundle: str | Path, video: str | Path, steps: int = 32, engines: tuple[str, ...] | None = None,
          question: str = "What is moving in the video?") -> dict:
    """Run every engine in its own process on the same clip; JSON-ready result with artifact/eager ratios."""
    from . import bundle as bundle_mod

    bundle = Path(bundle)
    manifest = bundle_mod.read_manifest(bundle)
    engines = engines or engines_for(manifest.backend)
    for e in engines:
        if e not in engines_for(manifest.backend):
            raise SfllavaError(f"engine {e!r} cannot run a {manifest.backend} bundle; choose from "
                               f"{', '.join(engines_for(manifest.backend))}")
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
    art = artifact_engine(manifest.backend)
    out = {"bundle": str(bundle), "backend": manifest.backend, "video": str(video), "steps": steps,
           "threads": torch.get_num_threads(), "model": manifest.model.name, "recipe": manifest.quantization.recipe,
           "frames": manifest.video.frames, "visual_tokens": manifest.visual_tokens,
           "artifact_bytes": manifest.size.total_bytes, "engines": results,
           "engine_notes": {e: engine_note(e) for e in results}}
    out["device"] = host_device()
    if art in results and "eager" in results:
        p, e = results[art], results["eager"]
        out["artifact_vs_eager"] = {k: (p[k] / e[k] if e.get(k) else None) for k in (
            "vision_encoder_s", "prefill_tokens_per_second", "decode_tokens_per_second", "time_to_first_token_s",
            "followup_time_to_first_token_s", "peak_rss_mb")}
    from .manifest import Bench

    # The contract the phone apps' benchmark modes write too; a key an engine lacks is left out.
    return Bench.model_validate(out).model_dump(mode="json", exclude_none=True)


def host_device() -> dict:
    import platform

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 if hasattr(os, "sysconf") else None
    return {"name": platform.node() or "host", "os": f"{platform.system()} {platform.release()}",
            "abi": platform.machine(), "memory_mb": mem}


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
            "decode_tokens_per_second", "time_to_first_token_s", "followup_time_to_first_token_s", "peak_rss_mb"]
    for k in keys:
        lines.append(f"{k:28s}" + "".join(
            f"{r['engines'][e][k]:12.3f}" if isinstance(r["engines"][e].get(k), (int, float)) else f"{'-':>12s}"
            for e in r["engines"]))
    lines += [f"  {e}: {note}" for e, note in r.get("engine_notes", {}).items()]
    if "artifact_vs_eager" in r:
        lines.append("artifact / eager: " + ", ".join(f"{k} x{v:.2f}" for k, v in r["artifact_vs_eager"].items() if v))
    return "\n".join(lines)


if __name__ == "__main__":  # worker: python -m sfllava_mobile.bench ENGINE BUNDLE VIDEO STEPS QUESTION
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    engine, bundle_dir, video_path, n, q = sys.argv[1:6]
    res = run_engine(engine, Path(bundle_dir), video_path, int(n), q)
    print(json.dumps(res))
