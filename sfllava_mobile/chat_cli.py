"""``sfllava-mobile chat``: a conversation over one clip, scripted (``--question`` repeated) or
interactive, with a bundle's artifact or the float reference."""

from __future__ import annotations

import json
import logging
import sys

from .conversation import ContextFull, Conversation
from .errors import SfllavaError
from .log import stage

log = logging.getLogger("sfllava_mobile")


def open_conversation(a) -> tuple[Conversation, object]:
    """The conversation (``--bundle`` or ``--checkpoint``) and the clip sampled as it expects."""
    from . import video

    timings: dict[str, float] = {}
    if a.bundle:
        from .bundle import read_manifest
        from .export.chat import open_bundle

        manifest = read_manifest(a.bundle)  # a one-line error for a folder that is not a bundle
        with stage("load", timings):
            conv = open_bundle(a.bundle, a.max_new_tokens)
        v = manifest.video
        frames, rule, size = v.frames, v.sampling_rule, (v.frame_height, v.frame_width)
    else:
        from . import checkpoint

        with stage("load", timings):
            conv = Conversation.from_model(checkpoint.load(a.checkpoint, vision_tower_path=a.vision_tower),
                                           max_new_tokens=a.max_new_tokens)
        cfg = conv.config
        frames, rule, size = cfg.num_frames, cfg.frame_rule, cfg.vision.image_size
    with stage("decode_video", timings):
        clip = video.read_clip(a.video, frames, rule, resize_to=size)
    return conv, clip


def run_chat(a) -> int:
    conv, clip = open_conversation(a)
    with stage("clip"):
        conv.load_clip(clip.frames)
    log.info("clip: %d of %d frames, %d positions prefilled once (vision %.2f s, prefill %.2f s)",
             len(clip.indices), clip.total_frames, conv.clip_end, conv.clip_timings["vision_s"],
             conv.clip_timings["clip_prefill_s"])
    if a.question:
        return _scripted(conv, a.question, a.json)
    return _interactive(conv)


def _stream(conv: Conversation):
    from .generate import StreamDecoder

    def sink(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    return StreamDecoder(conv.tokenizer, sink)


def _scripted(conv: Conversation, questions: list[str], as_json: bool) -> int:
    code = 0
    for q in questions:
        try:
            conv.check_budget(q)  # a bad question or a full context: one line, before anything is printed
            if as_json:
                conv.ask(q)
            else:
                print(f"> {q.strip()}")
                dec = _stream(conv)
                conv.ask(q, on_token=dec.push)
                dec.flush()
                print()
        except ContextFull as e:
            print(f"error: {e}", file=sys.stderr)
            code = e.exit_code
            break
    if as_json:
        print(json.dumps({"clip": {k: round(v, 6) for k, v in conv.clip_timings.items()},
                          "max_context_len": conv.max_context_len, "position": conv.position,
                          "turns": [t.to_dict() for t in conv.turns]}, indent=2))
    else:
        _summary(conv)
    return code


def _summary(conv: Conversation) -> None:
    for i, t in enumerate(conv.turns):
        first = conv.clip_timings["vision_s"] + conv.clip_timings["clip_prefill_s"] if i == 0 else 0.0
        log.info("turn %d: time to first token %.3f s%s, %d tokens (%s), %.1f tok/s; %d of %d positions used", i + 1,
                 first + t.timings["time_to_first_token_s"], " (clip included)" if i == 0 else "", len(t.tokens),
                 t.stop, t.timings["decode_tokens_per_second"], t.position, conv.max_context_len)


def _interactive(conv: Conversation) -> int:
    print(f"ask about the clip ({conv.remaining} positions left); /restart starts over, /quit or an empty line ends")
    while True:
        try:
            q = input("> ")
        except EOFError:
            break
        q = q.strip()
        if q in ("", "/quit", "/exit"):
            break
        if q == "/restart":
            conv.start_over()
            print("started over with the same clip")
            continue
        dec = _stream(conv)
        try:
            conv.ask(q, on_token=dec.push)
        except ContextFull as e:
            print(f"{e}. Type /restart to start over.")
            continue
        except SfllavaError as e:
            print(f"error: {e}")
            continue
        dec.flush()
        print()
    _summary(conv)
    return 0
