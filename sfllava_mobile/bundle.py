"""The on-device bundle: ``manifest.json`` (versioned), ``tokenizer.json``, artifacts, ``golden.json``.

The models and the JSON Schema are in :mod:`sfllava_mobile.manifest`; this module fills them in.
The manifest carries everything an app needs besides the artifacts: frame count and size, the
sampling rule, normalization, slowfast config and visual token count, the prompt template and
special ids, method names and their I/O, the quantization recipe and coverage, and (after
``verify``) the parity results. ``golden.json`` holds vectors the Swift and Kotlin ports test
against: frame indices for several clip lengths, resize/normalize results on a synthetic frame
defined by a formula, the prompt's token ids, and the exported program's first greedy tokens on a
synthetic clip.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .config import ModelConfig
from .manifest import (SCHEMA_VERSION, Golden, Manifest, ModelInfo, Normalization, Prompt, SlowFast, TokenCounts,
                       Video, read_golden, read_manifest)
from .ops import slowfast_token_counts
from .prompt import IMAGE_PLACEHOLDER, render, render_next_turn
from .video import normalize, resize_frames, sample_frame_indices, tall_image


GOLDEN_QUESTION = "What is moving in the video?"
GOLDEN_FOLLOWUP = "What colour is it?"
GOLDEN_STEPS = 8  # tokens per golden answer
GOLDEN_TOTALS = (1, 7, 50, 128, 301, 1800)


def pattern_frame(height: int, width: int) -> torch.Tensor:
    """``[H, W, 3]`` uint8 with pixel (y, x, c) = ``(37*x + 91*y + 53*c) % 256``: easy to rebuild in any language."""
    y = torch.arange(height).view(-1, 1, 1)
    x = torch.arange(width).view(1, -1, 1)
    c = torch.arange(3).view(1, 1, -1)
    return ((37 * x + 91 * y + 53 * c) % 256).to(torch.uint8)


def video_section(cfg: ModelConfig, frames: int) -> Video:
    h, w = cfg.vision.image_size
    return Video(
        frames=frames, frame_height=h, frame_width=w, sampling_rule="uniform",
        sampling_formula="index_i = ((2*i + 1) * total_frames) // (2 * frames), integer arithmetic",
        resize="squash to frame_height x frame_width; bilinear, half-pixel centres, no antialias, float32, "
               "round half to even, clamp to [0, 255]",
        normalization=Normalization(mean=list(cfg.vision.image_mean), std=list(cfg.vision.image_std),
                                    formula="(x / 255 - mean) / std", in_graph=True))


def eos_pieces(tokenizer, eos_ids) -> list[str]:
    """What the runner hands its token callback for each EOS id (special tokens decode to themselves)."""
    return [tokenizer.decode([e], skip_special_tokens=False) for e in eos_ids]


def prompt_section(cfg: ModelConfig, tokenizer) -> Prompt:
    before, after = render(cfg.prompt, "{question}").split(IMAGE_PLACEHOLDER)
    return Prompt(template=cfg.prompt.template, text_before_video=before, text_after_video=after,
                  question_placeholder="{question}", system=cfg.prompt.system,
                  answer_prefix=cfg.prompt.answer_prefix, bos_id=cfg.text.bos_id, eos_ids=list(cfg.text.eos_ids),
                  eos_pieces=eos_pieces(tokenizer, cfg.text.eos_ids),
                  tokenize="encode text_before_video and text_after_video (question substituted) separately, no "
                           "special tokens added; prepend bos_id when not null; the video rows go between them; a "
                           "follow-up encodes text_next_turn (question substituted) the same way",
                  text_next_turn=render_next_turn(cfg.prompt, "{question}"))


def shared_sections(cfg: ModelConfig, frames: int, tokenizer) -> dict[str, Any]:
    """The manifest fields every backend's bundle has the same way."""
    counts = slowfast_token_counts(cfg.slowfast, frames, cfg.vision.grid)
    return {
        "schema_version": SCHEMA_VERSION, "toolkit_version": __version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": ModelInfo(name=cfg.name, family=cfg.family, inferred_fields=list(cfg.inferred), config=cfg.to_dict()),
        "video": video_section(cfg, frames),
        "slowfast": SlowFast(config=cfg.to_dict()["slowfast"], token_counts=TokenCounts(**counts)),
        "visual_tokens": counts["total"],
        "prompt": prompt_section(cfg, tokenizer),
    }


PACKED_FORMULA = "(37*x + 91*y + 53*c + 17*t) % 256"


def packed_frames(frames: int, height: int, width: int) -> torch.Tensor:
    """``[T, H, W, 3]`` uint8 by ``PACKED_FORMULA``: the packing vector's input."""
    return torch.stack([(pattern_frame(height, width).to(torch.int64) + 17 * t) % 256 for t in range(frames)]).to(torch.uint8)


def runner_inputs(bos_id: int | None, text_before: str, text_after: str) -> list[dict]:
    """The stock runner's inputs for one question: BOS as a token input (LLaMA templates), the text
    before the video, the packed clip, the text after."""
    head = [] if bos_id is None else [{"kind": "tokens", "tokens": [bos_id]}]
    before = [{"kind": "text", "text": text_before}] if text_before else []  # the runner refuses an empty text
    return head + before + [{"kind": "image"}, {"kind": "text", "text": text_after}]


def golden(cfg: ModelConfig, tokenizer, frames: int, conversation, engine: str) -> Golden:
    """Vectors the app ports check against (see module docstring). ``conversation``: the exported
    artifact's :class:`~sfllava_mobile.conversation.Conversation` after ``GOLDEN_QUESTION`` and
    ``GOLDEN_FOLLOWUP`` on :func:`golden_clip`, run by ``engine``."""
    from .driver import fed_tokens
    from .prompt import build_input_ids, next_turn_ids

    src = pattern_frame(12, 20)
    small = resize_frames(src.unsqueeze(0), (7, 9))[0]
    full = resize_frames(src.unsqueeze(0), cfg.vision.image_size)
    norm = normalize(full, cfg.vision.image_mean, cfg.vision.image_std)
    ids = build_input_ids(tokenizer, cfg.prompt, cfg.text, GOLDEN_QUESTION)
    k = ids.index(-200)
    text_before, text_after = render(cfg.prompt, GOLDEN_QUESTION).split(IMAGE_PLACEHOLDER)
    h, w = cfg.vision.image_size
    t1, t2 = conversation.turns
    greedy_tokens = t1.tokens
    packed = tall_image(packed_frames(frames, h, w)).numpy().tobytes()
    clip = tall_image(golden_clip(cfg, frames)).numpy().tobytes()
    return Golden.model_validate({
        "schema_version": SCHEMA_VERSION,
        "frame_indices": {"frames": frames, "rule": "uniform",
                          "cases": {str(t): sample_frame_indices(t, frames, "uniform") for t in GOLDEN_TOTALS}},
        "frame_indices_segment_midpoint": {"frames": 50, "rule": "segment_midpoint", "cases": {
            str(t): sample_frame_indices(t, 50, "segment_midpoint") for t in GOLDEN_TOTALS}},
        "pattern_frame": {"formula": "(37*x + 91*y + 53*c) % 256", "height": 12, "width": 20},
        "resize_small": {"to": [7, 9], "uint8_hwc": small.flatten().tolist()},
        "resize_model": {"to": list(cfg.vision.image_size), "sum": int(full.to(torch.int64).sum()),
                         "first_row_uint8_hwc": full[0].flatten()[:48].tolist()},
        "normalized_model": {"sum": float(norm.sum()), "first_values_chw": norm.flatten()[:16].tolist()},
        "packed_clip": {"formula": PACKED_FORMULA, "frames": frames, "height": h, "width": w,
                        "layout": "tall_image: [1, 3, T*H, W] uint8, channel-planar, frames stacked along height",
                        "bytes": len(packed), "sha256": hashlib.sha256(packed).hexdigest(),
                        "first_bytes": list(packed[:64])},
        "prompt": {"question": GOLDEN_QUESTION, "ids_before_video": ids[:k], "ids_after_video": ids[k + 1:],
                   "text_before_video": text_before, "text_after_video": text_after,
                   "runner_inputs": runner_inputs(cfg.text.bos_id, text_before, text_after)},
        "greedy": {"question": GOLDEN_QUESTION, "clip": "synthetic_frames(frames, 96, 128) of sfllava_mobile.synthetic, "
                   "resized to the model's frame size", "clip_frames": frames, "engine": engine, "max_new_tokens": GOLDEN_STEPS,
                   "tokens": greedy_tokens, "image_sha256": hashlib.sha256(clip).hexdigest()},
        "conversation": {"questions": [GOLDEN_QUESTION, GOLDEN_FOLLOWUP],
                         "text_next_turn": render_next_turn(cfg.prompt, GOLDEN_FOLLOWUP),
                         "ids_next_turn": next_turn_ids(tokenizer, cfg.prompt, GOLDEN_FOLLOWUP),
                         "max_new_tokens": GOLDEN_STEPS, "turn1_tokens": t1.tokens,
                         "turn1_fed": len(fed_tokens(t1.tokens, GOLDEN_STEPS)), "turn2_tokens": t2.tokens,
                         "positions": {"clip": conversation.clip_end, "turn1": t1.position, "turn2": t2.position}},
    })


def golden_conversation(driver, cfg: ModelConfig, tokenizer, frames: int, max_context_len: int):
    """The golden clip, ``GOLDEN_QUESTION`` then ``GOLDEN_FOLLOWUP``, through ``driver`` as an app runs it."""
    from .conversation import Conversation

    conv = Conversation(driver, cfg, tokenizer, max_context_len, GOLDEN_STEPS)
    conv.load_clip(golden_clip(cfg, frames))
    conv.ask(GOLDEN_QUESTION)
    conv.ask(GOLDEN_FOLLOWUP)
    return conv


def golden_clip(cfg: ModelConfig, frames: int) -> torch.Tensor:
    """The golden answer's clip: ``synthetic_frames(frames, 96, 128)`` resized to the model's frame size."""
    from .synthetic import synthetic_frames

    return resize_frames(torch.from_numpy(synthetic_frames(frames, 96, 128)), cfg.vision.image_size)


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def artifact_bytes(path: Path) -> int:
    """Bytes of a file, or of every file under a package folder."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
