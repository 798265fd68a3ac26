"""A video's time to first token per stage at the presets' real shapes, and the int8 ceiling the
vision encoder is measured against (issue 10, item 4). Not in the default suite.

What it does, in one run on this machine:

1. **int8 peak.** One linear at the ViT MLP's shape (``M = frames x patches`` rows, ``K -> N`` as the
   preset's ``fc1``) exported twice as a one-op ``.pte`` through XNNPACK, 8da4w (what the encoder
   ships) and 8da8w, and timed: ``2 M K N / t`` is the int8 rate this CPU's XNNPACK kernels reach.
2. **Per stage, at real width and a truncated depth.** For each preset and frame count it writes a
   random checkpoint whose vision tower and decoder keep their real widths but only ``L`` blocks
   (``--depths``, default 1 and 2), exports it with the CLI (8da4w, ``--no-verify``), and runs
   ``sfllava-mobile bench --engines pte`` on a synthetic clip: video decode, preprocess, vision
   encoder, prefill of every visual token in one call, peak RSS after each stage.
3. **Full depth.** Every block of a tower or decoder does the same work, so each stage's time is
   ``a + b L``; two depths give ``a`` and ``b`` and the full-depth value ``a + b L_full`` (the vision
   tower's and the decoder's block counts separately). RSS at full depth adds the missing blocks'
   4-bit weights and KV cache to the measured peak. These are labelled *extrapolated*; the
   truncated runs behind them are in the JSON line.

Exporting a 27-block SigLIP and a 28-32 block decoder at real depth takes tens of minutes per
export here (ExecuTorch lowering is per node); the fit costs four small exports per preset.

    python benchmarks/video_ttft.py --preset sf-llava-1.5-1b --preset sf-llava-7b --frames 32 --frames 128 \\
        --out benchmarks/results/video_ttft.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from export_memory import run_watched, write_random_checkpoint  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LAYOUT = {"sf-llava-7b": "llava_original"}  # v1 checkpoints come in the LLaVA repo's layout


def _cli() -> list[str]:
    return [sys.executable, "-m", "sfllava_mobile.cli"]


def int8_peak(rows: int, k: int, n: int, repeats: int = 5) -> dict:
    """Seconds and TOPS of one ``[rows, k] x [k, n]`` linear as an XNNPACK ``.pte``: 8da4w, 8da8w, and fp32
    (what int8 buys over float on this CPU)."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.runtime import Runtime

    from sfllava_mobile.quantize.recipes import Scheme
    from sfllava_mobile.quantize.torchao import quantize_module

    out = {"rows": rows, "k": k, "n": n}
    x = torch.randn(rows, k)
    for label, scheme in (("8da4w", Scheme(4, 32)), ("8da8w", Scheme(8, 0)), ("fp32", None)):
        m = torch.nn.Sequential(torch.nn.Linear(k, n, bias=True)).eval()
        if scheme is not None:
            quantize_module(m, scheme, "bench", "linear")
        with torch.no_grad():
            ep = torch.export.export(m, (x,), strict=False)
        et = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).to_executorch()
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "linear.pte"
            path.write_bytes(et.buffer)
            method = Runtime.get().load_program(path).load_method("forward")
            method.execute([x])  # first call packs the weights
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                method.execute([x])
                times.append(time.perf_counter() - t0)
        t = sorted(times)[len(times) // 2]
        out[label] = {"seconds": round(t, 4), "tops": round(2 * rows * k * n / t / 1e12, 3)}
    return out


def depth_overrides(preset: str, depth: int) -> dict:
    """Real widths, ``depth`` vision blocks used and ``depth`` decoder blocks."""
    from sfllava_mobile import presets

    cfg = presets.get(preset)
    unused = cfg.vision.num_layers - cfg.vision.layers_used  # blocks after the select layer
    return {"vision.num_layers": depth + unused, "text.num_layers": depth}


def run_point(preset: str, depth: int, frames: int, clip: Path, work: Path, limit_gb: float,
              recipe: str = "8da4w", attention_frames: int | None = None, extra_flags: tuple[str, ...] = ()) -> dict:
    """Export at ``depth`` blocks and ``frames`` frames, bench it; the bench JSON's pte engine plus export cost.
    ``attention_frames``: the export's ``--vision-attention-frames`` (None: its default); ``extra_flags``:
    more export flags (``--kv-cache int8``, ``--vision-frames 16``), part of the bundle's name."""
    ckpt = write_random_checkpoint(preset, LAYOUT.get(preset, "ours"), depth_overrides(preset, depth),
                                   work / f"ckpt-{preset}-L{depth}")
    tag = f"{recipe}-a{'auto' if attention_frames is None else attention_frames}" + "".join(
        f"-{f.strip('-')}" for f in extra_flags)
    bundle = work / f"bundle-{preset}-L{depth}-T{frames}-{tag}"
    extra = ([] if attention_frames is None else ["--vision-attention-frames", str(attention_frames)]) + list(extra_flags)
    export = {"skipped": True}
    elog = bundle.parent / (bundle.name + ".export.log")
    if not (bundle / "manifest.json").is_file():
        export = run_watched(_cli() + ["-q", "export", "--checkpoint", str(ckpt), "--backend", "executorch",
                                       "--quant", recipe, "--frames", str(frames), "--no-verify", "--overwrite",
                                       "--out", str(bundle), *extra], limit_gb, elog)
        if export["exit_code"] != 0:
            raise SystemExit(f"export failed ({export}); see {elog}")
    log = bundle.parent / (bundle.name + ".bench.log")
    watched = run_watched(_cli() + ["-q", "bench", str(bundle), "--video", str(clip), "--steps", "4",
                                    "--engines", "pte", "--json"], limit_gb, log)
    if watched["exit_code"] != 0:
        raise SystemExit(f"bench failed ({watched}); see {log}")
    text = log.read_text()
    report = json.loads(text[text.rindex('{\n  "bench_version"'):])  # the log also holds native stderr
    return {"depth": depth, "frames": frames, "recipe": recipe, "vision_attention_frames": attention_frames,
            "export_flags": list(extra_flags),
            "visual_tokens": report["visual_tokens"],
            "artifact_bytes": report["artifact_bytes"], "export": export, "pte": report["engines"]["pte"]}


def vision_block_params(v) -> int:
    """Linear weights of one ViT block: q, k, v, out and the two MLP layers."""
    return 4 * v.hidden_size ** 2 + 2 * v.hidden_size * v.intermediate_size


def vision_share(cfg) -> float:
    """One tower block's parameters over one tower block's plus one decoder block's."""
    v, t = cfg.vision, cfg.text
    pv = vision_block_params(v)
    kv = t.hidden_size // t.num_heads * t.num_kv_heads
    pt = 2 * t.hidden_size ** 2 + 2 * t.hidden_size * kv + 3 * t.hidden_size * t.intermediate_size
    return pv / (pv + pt)


STAGES = ("decode_video_s", "preprocess_s", "vision_encoder_s", "prefill_s", "followup_time_to_first_token_s")


def extrapolate(points: list[dict], vision_blocks: int, text_blocks: int, vision_share: float) -> dict:
    """Full-depth stage seconds from two depths: vision scales with the tower's blocks, prefill with the
    decoder's; decoding the video and preprocessing do not depend on depth (their mean is kept).
    ``vision_share``: a tower block's share of one tower block plus one decoder block's parameters."""
    (p1, p2) = sorted(points, key=lambda p: p["depth"])[:2]
    d1, d2 = p1["depth"], p2["depth"]
    out = {}
    for stage in STAGES:
        a, b = p1["pte"][stage], p2["pte"][stage]
        if stage == "vision_encoder_s":
            out[stage] = a + (b - a) / (d2 - d1) * (vision_blocks - d1)
        elif stage in ("prefill_s", "followup_time_to_first_token_s"):  # decoder work only
            out[stage] = a + (b - a) / (d2 - d1) * (text_blocks - d1)
        else:
            out[stage] = (a + b) / 2
    out["time_to_first_token_s"] = out["preprocess_s"] + out["vision_encoder_s"] + out["prefill_s"]
    out["time_to_first_token_with_decode_s"] = out["time_to_first_token_s"] + out["decode_video_s"]
    out["followup_share_of_first"] = out["followup_time_to_first_token_s"] / out["time_to_first_token_with_decode_s"]
    # Peak: the deeper run's, plus the measured RSS growth per block (weights, packed weights, KV cache),
    # split between a tower block and a decoder block by their parameter counts.
    units = vision_share * (vision_blocks - d2) + (1 - vision_share) * (text_blocks - d2)  # blocks still missing
    out["peak_rss_mb"] = p2["pte"]["peak_rss_mb"] + (p2["pte"]["peak_rss_mb"] - p1["pte"]["peak_rss_mb"]) / (d2 - d1) * units
    out["artifact_mb"] = (p2["artifact_bytes"] + (p2["artifact_bytes"] - p1["artifact_bytes"]) / (d2 - d1) * units) / 2**20
    return {k: round(v, 2 if v > 1 else 5) for k, v in out.items()}


def ab_encoder(preset: str, frames: int, depths: list[int], recipes_: list[str], rounds: int, clip: Path, work: Path,
               limit_gb: float) -> dict:
    """Recipes' vision encoders in the same run: each recipe exported at every depth, then the benches
    interleaved (A B A B ...) so machine noise hits all; per-block seconds from the depth slope."""
    runs: dict[str, dict[int, list[float]]] = {r: {d: [] for d in depths} for r in recipes_}
    for _ in range(rounds):
        for d in depths:
            for r in recipes_:
                p = run_point(preset, d, frames, clip, work, limit_gb, r)
                runs[r][d].append(p["pte"]["vision_encoder_s"])
    out = {"preset": preset, "frames": frames, "rounds": rounds, "vision_encoder_s": runs}
    if len(depths) >= 2:
        d1, d2 = depths[0], depths[-1]
        out["per_block_s"] = {r: (min(runs[r][d2]) - min(runs[r][d1])) / (d2 - d1) for r in recipes_}
        flops = block_flops(preset, frames)
        out["per_block_tops"] = {r: round(flops / s / 1e12, 4) for r, s in out["per_block_s"].items()}
    return out


def block_flops(preset: str, frames: int) -> float:
    """One vision tower block's FLOPs over ``frames`` frames: its linears (2 x params x tokens) and attention."""
    from sfllava_mobile import presets

    v = presets.get(preset).vision
    gh, gw = v.grid
    n = gh * gw + (1 if v.kind == "clip" else 0)
    return float(frames * (2 * vision_block_params(v) * n + 4 * n * n * v.hidden_size))


def followup(x: dict) -> str:
    """A follow-up question's time to first token and its share of the first question's (with video decode)."""
    if "followup_time_to_first_token_s" not in x:
        return "-"  # runs from before conversations
    return f"{x['followup_time_to_first_token_s']:.2f} ({100 * x['followup_share_of_first']:.2f} %)"


def markdown(result: dict) -> str:
    """The README's table for one run: per preset and frame count, full depth (extrapolated)."""
    from sfllava_mobile import presets
    from sfllava_mobile.plan import model_summary, vision_flops

    peak = result.get("int8_peak", {})
    best = max((peak[k]["tops"] for k in ("8da4w", "8da8w") if k in peak), default=None)
    lines = [f"{result['date']}, this machine ({result['threads']} threads), recipe `{result['recipe']}`, "
             f"clip {result['clip']}. int8 peak (one XNNPACK linear at the ViT MLP's shape): "
             + ", ".join(f"{k} {peak[k]['tops']:.3f} TOPS" for k in ("8da4w", "8da8w") if k in peak) + ".", "",
             "| preset | frames | visual tokens | decode video s | vision s (s/frame) | vision TOPS (x peak) "
             "| prefill s (tok/s) | TTFT s | follow-up TTFT s (share) | peak RSS after vision / prefill GB | .pte GB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, entry in result["presets"].items():
        cfg = presets.get(name)
        vparams = model_summary(cfg)["parameters"]["vision"]
        for frames, f in entry["frames"].items():
            if "extrapolated" not in f:
                continue
            x, deep = f["extrapolated"], max(f["measured"], key=lambda p: p["depth"])
            after = deep["pte"].get("peak_rss_after_mb", {})
            tops = vision_flops(cfg, int(frames), vparams) / x["vision_encoder_s"] / 1e12
            grow = x["peak_rss_mb"] - deep["pte"]["peak_rss_mb"]  # the missing blocks' share, added to both
            share = f" ({tops / best:.2f})" if best else ""
            lines.append(
                f"| {name} | {frames} | {f['visual_tokens']} | {x['decode_video_s']:.2f} "
                f"| {x['vision_encoder_s']:.1f} ({x['vision_encoder_s'] / int(frames):.2f}) | {tops:.3f}{share} "
                f"| {x['prefill_s']:.1f} ({f['visual_tokens'] / x['prefill_s']:.0f}) | {x['time_to_first_token_s']:.1f} "
                f"| {followup(x)} "
                f"| {(after.get('vision_encoder', 0) + grow) / 1024:.2f} / {(after.get('prefill', 0) + grow) / 1024:.2f} "
                f"| {x['artifact_mb'] / 1024:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", action="append", choices=["sf-llava-1.5-1b", "sf-llava-1.5-3b", "sf-llava-1.5-7b",
                                                          "sf-llava-7b"])
    ap.add_argument("--frames", action="append", type=int)
    ap.add_argument("--depths", default="1,2", help="two truncated depths to fit a + b * blocks (one: measure only)")
    ap.add_argument("--recipe", default="8da4w",
                    help="export recipe (8da4w: 8da4w-awq's kernels and bytes without its calibration pass; "
                         "8da4w-v8: those of the default 8da4w-awq-v8, an 8-bit encoder)")
    ap.add_argument("--vision-attention-frames", type=int, help="the export option (default: its auto setting)")
    ap.add_argument("--export-flags", default="", help="more export flags, e.g. '--kv-cache int8 --vision-frames 16'")
    ap.add_argument("--clip-size", default="360x640", help="synthetic clip HxW (what a phone camera roll holds, scaled)")
    ap.add_argument("--workdir", default=str(Path.home() / ".cache" / "sfllava-mobile" / "video_ttft"))
    ap.add_argument("--limit-gb", type=float, default=21.0)
    ap.add_argument("--no-peak", action="store_true", help="skip the int8 microbenchmark")
    ap.add_argument("--out", help="append one JSON line here")
    ap.add_argument("--table", help="print the markdown table of every run in this JSONL file and exit")
    ap.add_argument("--ab", help="comma list of recipes: compare their vision encoders, interleaved, at the first "
                                 "--preset and --frames and at --depths; writes an 'ab' JSON line")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds for --ab")
    a = ap.parse_args()
    if a.table:
        for line in Path(a.table).read_text().splitlines():
            if "presets" in json.loads(line) and json.loads(line)["presets"]:
                print(markdown(json.loads(line)) + "\n")
        return
    presets_ = a.preset or ["sf-llava-1.5-1b", "sf-llava-7b"]
    frames_ = a.frames or [32, 128]
    depths = [int(d) for d in a.depths.split(",")]
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)

    from sfllava_mobile import presets
    from sfllava_mobile.synthetic import write_clip

    h, w = (int(v) for v in a.clip_size.split("x"))
    clip = work / f"clip-{h}x{w}.mp4"
    if not clip.is_file():
        write_clip(clip, num_frames=300, size=(h, w), fps=30)  # 10 s at 30 fps
    result = {"date": time.strftime("%Y-%m-%d"), "threads": torch.get_num_threads(), "clip": f"{h}x{w}, 300 frames",
              "recipe": a.recipe, "vision_attention_frames": a.vision_attention_frames,
              "export_flags": a.export_flags, "presets": {}}
    if not a.no_peak:
        cfg = presets.get(presets_[0]).vision
        rows = 4 * (cfg.image_size[0] // cfg.patch_size) * (cfg.image_size[1] // cfg.patch_size)
        result["int8_peak"] = int8_peak(rows, cfg.hidden_size, cfg.intermediate_size)
        print("int8 peak", json.dumps(result["int8_peak"]), flush=True)
    if a.ab:
        result["ab"] = ab_encoder(presets_[0], frames_[0], depths, a.ab.split(","), a.rounds, clip, work, a.limit_gb)
        if "int8_peak" in result and "per_block_tops" in result["ab"]:
            best = max(result["int8_peak"][k]["tops"] for k in ("8da4w", "8da8w"))
            result["ab"]["x_int8_peak"] = {r: round(t / best, 3) for r, t in result["ab"]["per_block_tops"].items()}
        print(json.dumps(result["ab"]))
        if a.out:
            with open(a.out, "a") as f:
                f.write(json.dumps(result) + "\n")
        return
    for preset in presets_:
        cfg = presets.get(preset)
        entry = {"vision_blocks": cfg.vision.layers_used, "text_blocks": cfg.text.num_layers, "frames": {}}
        for frames in frames_:
            points = []
            for d in depths:
                t0 = time.perf_counter()
                points.append(run_point(preset, d, frames, clip, work, a.limit_gb, a.recipe,
                                        a.vision_attention_frames, tuple(a.export_flags.split())))
                print(f"{preset} T={frames} L={d}: " + json.dumps({k: points[-1]["pte"].get(k) for k in STAGES + (
                    "peak_rss_after_mb",)}) + f" ({time.perf_counter() - t0:.0f} s)", flush=True)
            entry["frames"][str(frames)] = {"visual_tokens": points[0]["visual_tokens"], "measured": points}
            if len(points) < 2:  # one depth: a memory or kernel comparison, nothing to fit
                continue
            full = extrapolate(points, cfg.vision.layers_used, cfg.text.num_layers, vision_share(cfg))
            entry["frames"][str(frames)]["extrapolated"] = full
            print(f"{preset} T={frames} full depth (extrapolated): {json.dumps(full)}", flush=True)
        result["presets"][preset] = entry
    if any("extrapolated" in f for e in result["presets"].values() for f in e["frames"].values()):
        print(markdown(result))
    line = json.dumps(result)
    if a.out:
        with open(a.out, "a") as f:
            f.write(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
