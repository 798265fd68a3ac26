"""Thin command line over the library: init-tiny, generate, chat, plan, export, verify, bench, presets, synth-clip."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from .errors import SfllavaError

log = logging.getLogger("sfllava_mobile")


def _overrides(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise SfllavaError(f"--set takes FIELD=VALUE (e.g. slowfast.slow_frames=16), got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _cmd_init_tiny(a) -> int:
    from .tiny import init_tiny

    from .log import stage

    with stage("init-tiny"):
        out = init_tiny(a.out, family=a.family, seed=a.seed, overwrite=a.overwrite)
    print(f"wrote tiny SF-LLaVA-{a.family} checkpoint to {out}")
    return 0


def _cmd_generate(a) -> int:
    from . import checkpoint, video
    from .log import stage

    timings: dict[str, float] = {}
    with stage("import", timings):  # torch + transformers: seconds, before any work starts
        from . import model as _  # noqa: F401
    overrides = _overrides(a.set)
    if a.frames:
        overrides["num_frames"] = str(a.frames)
    with stage("load", timings):
        model = checkpoint.load(a.checkpoint, vision_tower_path=a.vision_tower, allow_pickle=a.allow_pickle, **overrides)
    cfg = model.config
    with stage("decode_video", timings):
        clip = video.read_clip(a.video, cfg.num_frames, cfg.frame_rule, resize_to=cfg.vision.image_size)
    log.info("sampled %d of %d frames (%s rule), %d visual tokens", len(clip.indices), clip.total_frames,
             cfg.frame_rule, model.visual_token_count(len(clip.indices)))

    def sink(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    with stage("generate", timings):
        result = model.generate(clip.frames, a.question, max_new_tokens=a.max_new_tokens,
                                stream=None if a.json else sink, frame_indices=clip.indices)
    result.timings = {**timings, **result.timings}
    if a.json:
        print(json.dumps({**result.to_dict(), "answer": result.text, "total_frames": clip.total_frames,
                          "truncated_video": clip.truncated, "model": cfg.name}, indent=2))
    else:
        print()
    return 0


def _cmd_chat(a) -> int:
    from .chat_cli import run_chat

    return run_chat(a)


def _cmd_plan(a) -> int:
    from . import presets
    from .checkpoint import read_config
    from .devices import format_devices, get_device, load_devices, load_efficiency
    from .plan import (device_estimate, format_device_estimate, format_plan, max_frames_that_fit, model_summary,
                       plan)

    if a.device == "list":
        devices = load_devices()
        print(json.dumps([d.to_dict() for d in devices], indent=2) if a.json else format_devices(devices))
        return 0
    # Device and efficiency files first: a wrong name fails in a second, before the model is built.
    device = get_device(a.device) if a.device else None
    efficiency = load_efficiency(a.efficiency) if a.device else None
    if a.efficiency and not a.device:
        raise SfllavaError("--efficiency FILE goes with --device NAME")
    overrides = _overrides(a.set)
    if bool(a.preset) == bool(a.checkpoint):
        raise SfllavaError("plan needs exactly one of --preset NAME or --checkpoint DIR")
    cfg = presets.get(a.preset, **overrides) if a.preset else read_config(a.checkpoint, a.vision_tower, **overrides)[0]
    summary = model_summary(cfg)
    p = plan(cfg, a.frames or cfg.num_frames, a.context, a.text_tokens, a.max_new_tokens, summary=summary,
             kv_cache=a.kv_cache, vision_frames=a.vision_frames)
    if device is not None:
        est = device_estimate(p, device, efficiency)
        est["max_frames"] = {"value": max_frames_that_fit(cfg, device, summary, a.context, a.text_tokens,
                                                          a.max_new_tokens, kv_cache=a.kv_cache,
                                                          vision_frames=a.vision_frames), "estimate": True}
        p["device_estimate"] = est
    if a.json:
        print(json.dumps(p, indent=2))
    else:
        print(format_plan(p))
        if device is not None:
            print(format_device_estimate(p["device_estimate"], p))
    return 0


_ET_FLAGS = {"attention": "--attention", "partitioner": "--partitioner", "no_rewrites": "--no-rewrites",
             "vision_attention_frames": "--vision-attention-frames", "shared_table": "--shared-table",
             "kv_cache": "--kv-cache", "vision_frames": "--vision-frames"}
_COREML_FLAGS = {"deployment_target": "--deployment-target", "compute_precision": "--compute-precision",
                 "prefill_chunk": "--prefill-chunk"}


def _backend_options(a):
    """The backend's options from the flags; a flag of the other backend is an error, not ignored."""
    from .export.config import CoreMLOptions, ExecuTorchOptions

    mine, theirs = (_ET_FLAGS, _COREML_FLAGS) if a.backend == "executorch" else (_COREML_FLAGS, _ET_FLAGS)
    def given_(key: str) -> bool:  # 0 is a value (--vision-attention-frames 0), not "not given"
        return getattr(a, key) is not None and getattr(a, key) is not False

    wrong = [flag for key, flag in theirs.items() if given_(key)]
    if wrong:
        other = "coreml" if a.backend == "executorch" else "executorch"
        raise SfllavaError(f"{' and '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} "
                           f"{'an option' if len(wrong) == 1 else 'options'} of --backend {other}, "
                           f"not of --backend {a.backend}")
    given = {key: getattr(a, key) for key in mine if given_(key)}
    if a.backend == "executorch":
        return ExecuTorchOptions(**{k: v for k, v in given.items() if k != "no_rewrites"},
                                 **({"rewrites": False} if given.get("no_rewrites") else {}))
    renamed = {"minimum_deployment_target" if k == "deployment_target" else k: v for k, v in given.items()}
    return CoreMLOptions(**renamed)


def _cmd_export(a) -> int:
    import warnings

    from . import checkpoint
    from .export import export
    from .export.config import ExportConfig
    from .export.parity import format_report, verify_bundle
    from .log import stage

    cfg = ExportConfig(backend=a.backend, quant=a.quant, frames=a.frames, turns=a.turns,
                       max_seq_len=a.max_seq_len, max_context_len=a.max_context_len, overwrite=a.overwrite,
                       verify=not a.no_verify, options=_backend_options(a))
    overrides = _overrides(a.set)
    with stage("load"):
        model = checkpoint.load(a.checkpoint, vision_tower_path=a.vision_tower, allow_pickle=a.allow_pickle, **overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch/executorch deprecation chatter during tracing
        # In place: the float model is quantized as it is exported, so no second copy of the
        # decoder is held; verify then reloads the reference from the checkpoint.
        result = export(model, a.out, cfg, source=a.checkpoint, overrides=overrides, inplace=True,
                        vision_tower=a.vision_tower)
        del model
        result.programs = None
        if not cfg.verify:
            print(f"wrote {result.bundle} (parity not run: --no-verify)")
            return 0
        with stage("verify"):
            report = verify_bundle(result.bundle, cases=a.cases, steps=a.steps, teacher_tokens=a.teacher_tokens,
                                   reference_dtype=a.reference_dtype)
    print(format_report(report))
    print(f"wrote {result.bundle}: {result.manifest.size.total_bytes / 1e6:.2f} MB of artifacts, parity "
          f"{'PASS' if report['pass'] else 'FAIL'}")
    return 0 if report["pass"] else 1


def _cmd_verify(a) -> int:
    import warnings

    from .export.parity import format_report, verify_bundle

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = verify_bundle(a.bundle, checkpoint=a.checkpoint, cases=a.cases, steps=a.steps, seed=a.seed,
                               teacher_tokens=a.teacher_tokens, reference_dtype=a.reference_dtype)
    print(json.dumps(report, indent=2) if a.json else format_report(report))
    return 0 if report["pass"] else 1


def _cmd_bench(a) -> int:
    from .bench import bench, format_bench, plot

    result = bench(a.bundle, a.video, steps=a.steps, engines=tuple(a.engines.split(",")) if a.engines else None)
    if a.plot:
        result["plot"] = str(plot(result, a.plot))
    if a.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_bench(result))
        if a.plot:
            print(f"chart: {a.plot}")
    return 0


def _cmd_presets(a) -> int:
    from . import presets

    for name in presets.names():
        cfg = presets.get(name)
        tag = f"reconstruction ({len(cfg.inferred)} inferred fields)" if cfg.inferred else "exact"
        print(f"{name:18s} family {cfg.family:4s} {cfg.num_frames:4d} frames  {tag}")
    return 0


def _cmd_synth_clip(a) -> int:
    from .synthetic import write_clip

    try:
        h, w = (int(x) for x in a.size.lower().split("x"))
    except ValueError:
        raise SfllavaError(f"--size takes HEIGHTxWIDTH, got {a.size!r}") from None
    path = write_clip(a.out, num_frames=a.frames, size=(h, w), fps=a.fps, rotation=a.rotation)
    print(f"wrote {a.frames}-frame {h}x{w} clip to {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sfllava-mobile", description=__doc__)
    p.add_argument("-v", "--verbose", action="count", default=0, help="debug logging")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("init-tiny", help="write a tiny random checkpoint in the real on-disk layout")
    s.add_argument("out")
    s.add_argument("--family", choices=["1.5", "v1"], default="1.5")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(fn=_cmd_init_tiny)

    def ckpt_args(s, required=True):
        s.add_argument("--checkpoint", required=required, help="local checkpoint folder")
        s.add_argument("--vision-tower", help="local CLIP folder for LLaVA-repo checkpoints (mm_vision_tower)")
        s.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override a config field (repeatable)")

    def parity_args(s):
        s.add_argument("--cases", type=int, default=2, help="parity: clips + questions (default 2)")
        s.add_argument("--steps", type=int, default=8, help="parity: free-running greedy steps per case (default 8)")
        s.add_argument("--teacher-tokens", type=int, default=64,
                       help="parity: tokens of prose scored teacher-forced per case (default 64)")
        s.add_argument("--reference-dtype", default="auto", choices=["auto", "float32", "bfloat16", "stored"],
                       help="parity: the reference decoder's dtype (auto: float32 up to 2B parameters, else bfloat16)")

    s = sub.add_parser("generate", help="answer a question about a video with the PyTorch reference")
    ckpt_args(s)
    s.add_argument("--allow-pickle", action="store_true", help="load .bin/.pt weights with torch.load(weights_only=True)")
    s.add_argument("--video", required=True)
    s.add_argument("--question", required=True)
    s.add_argument("--max-new-tokens", type=int)
    s.add_argument("--frames", type=int, help="frames to sample (default: the model's)")
    s.add_argument("--json", action="store_true", help="print a machine-readable result instead of streaming")
    s.set_defaults(fn=_cmd_generate)

    s = sub.add_parser("chat", help="ask several questions about one clip: it is encoded and prefilled once",
                       description="A conversation over one clip with an exported bundle (--bundle, the artifact run by "
                                   "its backend on this host) or the PyTorch reference (--checkpoint). Interactive "
                                   "when no --question is given (/restart starts over with the clip, /quit ends).")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--bundle", help="an exported bundle folder")
    src.add_argument("--checkpoint", help="a checkpoint folder (the float reference)")
    s.add_argument("--vision-tower", help="local CLIP folder for LLaVA-repo checkpoints (mm_vision_tower)")
    s.add_argument("--video", required=True)
    s.add_argument("--question", action="append", help="a question; repeat for follow-ups (scripted, no prompt)")
    s.add_argument("--max-new-tokens", type=int, help="tokens per answer (default: the bundle's or the model's)")
    s.add_argument("--json", action="store_true", help="print one JSON document (clip timings and every turn)")
    s.set_defaults(fn=_cmd_chat)

    s = sub.add_parser("plan", help="visual tokens, context, KV cache and weight bytes for a frame budget; "
                                    "with --device, an estimate for a named phone")
    s.add_argument("--preset")
    ckpt_args(s, required=False)
    s.add_argument("--frames", type=int)
    s.add_argument("--context", type=int, help="context length to check against (default: the model's)")
    s.add_argument("--text-tokens", type=int, default=64, help="allowance for template + question tokens")
    s.add_argument("--max-new-tokens", type=int)
    s.add_argument("--device", metavar="NAME",
                   help="estimate fit, time to first token and decode rate on a named phone ('list' shows the table)")
    s.add_argument("--kv-cache", choices=["fp32", "fp16", "int8"], default="fp32",
                   help="the ExecuTorch export's KV cache (export --kv-cache) to count")
    s.add_argument("--vision-frames", type=int, default=0,
                   help="the export's frames per pass of the vision tower (export --vision-frames; 0: all)")
    s.add_argument("--efficiency", metavar="FILE",
                   help="host efficiency factors to use instead of sfllava_mobile/data/host_efficiency.json")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=_cmd_plan)

    s = sub.add_parser("export", help="export a checkpoint to an on-device bundle, then check parity",
                       description="Export any supported checkpoint (our layout, the LLaVA repo's / SF-LLaVA v1 with "
                                   "its CLIP folder, transformers llava / llava_next / llava_onevision) to an "
                                   "ExecuTorch or Core ML bundle, then check parity. Weights load in their stored dtype and are "
                                   "quantized in place; measured peaks with verify on: 0.5B 3.4 GB, 7B (bf16) 17.2 GB; see "
                                   "README 'What exports, and the memory it takes'.")
    ckpt_args(s)
    s.add_argument("--allow-pickle", action="store_true")
    s.add_argument("--backend", default="executorch", choices=["executorch", "coreml"])
    s.add_argument("--quant", help="recipe; ExecuTorch: none, 8da4w, 8da4w-awq, 8da4w-awq-h8, 8da4w-awq-v8 (default), "
                                   "8da4w-sq, 8da4w-h8, 8da4w-search, 8da4w-hqq, 8da4w-v8, 8da4w-e8; Core ML: none (fp16), int4 (default)")
    s.add_argument("--frames", type=int, help="frames per clip baked into the program (default: the model's)")
    s.add_argument("--max-seq-len", type=int)
    s.add_argument("--max-context-len", type=int)
    s.add_argument("--turns", type=int, default=4,
                   help="questions about one clip the default context holds, each with a whole answer (default 4)")
    g = s.add_argument_group("ExecuTorch options")
    g.add_argument("--attention", choices=["custom", "generic"], help="KV-cache attention (default custom)")
    g.add_argument("--partitioner", choices=["single", "two_pass_per_op"],
                   help="XNNPACK partitioning (default single; two_pass_per_op: upstream llava's, for comparison)")
    g.add_argument("--no-rewrites", action="store_true", help="skip the XNNPACK-friendly norm/attention rewrites")
    g.add_argument("--vision-attention-frames", type=int,
                   help="frames whose ViT attention runs together: bounds the encoder's memory on long clips "
                        "(default: as many as keep their attention scores under 256 MB; 0: all at once)")
    g.add_argument("--shared-table", action="store_true",
                   help="tied decoders: the embedding reads the 8-bit head's table, stored once in model.ptd "
                        "beside model.pte (with --quant 8da4w-awq-h8)")
    g.add_argument("--vision-frames", type=int,
                   help="frames the vision tower encodes per pass (default 0: all at once); bounds the encoder's "
                        "activations on long clips")
    g.add_argument("--kv-cache", choices=["fp32", "fp16", "int8"],
                   help="the decoder's KV cache (default fp32; fp16: half the bytes, SDPA in fp16; int8: ExecuTorch's "
                        "quantized cache and SDPA, a quarter of the bytes)")
    g = s.add_argument_group("Core ML options")
    g.add_argument("--deployment-target", help="minimum_deployment_target (default iOS18)")
    g.add_argument("--compute-precision", choices=["float16", "float32"], help="default float16")
    g.add_argument("--prefill-chunk", type=int, help="rows per prefill call of the decoder package (default 64)")
    s.add_argument("--out", required=True)
    s.add_argument("--overwrite", action="store_true")
    s.add_argument("--no-verify", action="store_true", help="skip the parity check")
    parity_args(s)
    s.set_defaults(fn=_cmd_export)

    s = sub.add_parser("verify", help="parity of a bundle against the PyTorch reference (writes parity.json)")
    s.add_argument("bundle")
    s.add_argument("--checkpoint", help="source checkpoint (default: the one the manifest names)")
    s.add_argument("--seed", type=int, default=1234)
    s.add_argument("--json", action="store_true")
    parity_args(s)
    s.set_defaults(fn=_cmd_verify)

    s = sub.add_parser("bench", help="latency and memory of a bundle vs eager PyTorch fp32, per stage")
    s.add_argument("bundle")
    s.add_argument("--video", required=True)
    s.add_argument("--steps", type=int, default=32, help="decode steps (EOS ignored)")
    s.add_argument("--engines", help="comma list; ExecuTorch bundles: pte, runner, eager (default all); "
                                     "Core ML bundles: coreml, eager")
    s.add_argument("--plot", help="write a PNG chart here")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=_cmd_bench)

    s = sub.add_parser("presets", help="list the named presets")
    s.set_defaults(fn=_cmd_presets)

    s = sub.add_parser("synth-clip", help="write a synthetic test clip with PyAV")
    s.add_argument("out")
    s.add_argument("--frames", type=int, default=48)
    s.add_argument("--size", default="96x128", help="HEIGHTxWIDTH")
    s.add_argument("--fps", type=int, default=24)
    s.add_argument("--rotation", type=int, default=0, help="display rotation metadata, degrees")
    s.set_defaults(fn=_cmd_synth_clip)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; user errors print one line to stderr and return 2."""
    from .log import configure

    from .memory import tune_allocator

    args = build_parser().parse_args(argv)
    configure(-1 if args.quiet else args.verbose)
    tune_allocator()
    t0 = time.perf_counter()
    try:
        code = args.fn(args)
    except SfllavaError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    log.debug("%s finished in %.2f s", args.command, time.perf_counter() - t0)
    return code


if __name__ == "__main__":
    sys.exit(main())
