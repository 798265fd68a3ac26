"""One clip, many questions: the clip is encoded and prefilled once, each question after it prefills
only its own turn.

:class:`Conversation` runs over any :class:`~sfllava_mobile.driver.Driver` (the float reference, or a
bundle's artifact through its backend's driver), in the order the phone apps use the stock runner:

1. ``load_clip(frames)``: the vision encoder, then the prompt's text before the video (BOS first
   where the template has one) and the visual rows are prefilled. This does not depend on the
   question, so an app can do it while the user types.
2. ``ask(question)``: the first question prefills the text after the video (the question and the
   assistant's opening); a follow-up prefills :func:`~sfllava_mobile.prompt.render_next_turn` (the
   previous answer closed, the next user turn). Then greedy decoding.

The cache holds what the stock runner's holds: an answer's tokens, except a last one that hit the
token budget (the runner stops before feeding it); an EOS is never fed. Before each turn the
context budget is checked: the turn plus a full answer must fit ``max_context_len``, or
:class:`ContextFull` says so in one sentence (start over, or export a longer context).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from .driver import fed_tokens, greedy
from .errors import SfllavaError
from .prompt import IMAGE_SENTINEL, build_input_ids, next_turn_ids
from .video import tall_image


class ContextFull(SfllavaError):
    """A turn would not fit the KV cache: the conversation must start over (or the bundle be
    exported with a larger ``--max-context-len``)."""


@dataclass
class Turn:
    """One question and its answer; ``timings`` in seconds (``time_to_first_token_s`` counts this
    turn's prefill and first token only; the clip's cost is in :attr:`Conversation.clip_timings`)."""

    question: str
    tokens: list[int]
    text: str
    stop: str  # "eos" or "length"
    turn_tokens: int  # ids this turn prefilled (template and question)
    position: int  # cache positions in use after the turn
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"question": self.question, "answer": self.text, "tokens": self.tokens, "stop": self.stop,
                "turn_tokens": self.turn_tokens, "position": self.position,
                "timings": {k: round(v, 6) for k, v in self.timings.items()}}


class Conversation:
    """Questions about one clip over ``driver``; see the module docstring for the call sequence."""

    def __init__(self, driver, config, tokenizer, max_context_len: int, max_new_tokens: int):
        if max_new_tokens < 1:
            raise SfllavaError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        self.driver, self.config, self.tokenizer = driver, config, tokenizer
        self.max_context_len, self.max_new_tokens = max_context_len, max_new_tokens
        self.eos = tuple(config.text.eos_ids)
        self.vocab_limit = min(tokenizer.vocab_size, config.text.vocab_size)
        self.position = 0
        self.clip_end: int | None = None  # position after the clip's prefill; None: no clip loaded
        self.turns: list[Turn] = []
        self.clip_timings: dict[str, float] = {}

    @classmethod
    def from_model(cls, model, max_context_len: int | None = None, max_new_tokens: int | None = None) -> "Conversation":
        """A conversation with the float reference (a loaded VideoLLM) over transformers' KV cache."""
        from .driver import ReferenceDriver

        cfg = model.config
        if model.tokenizer is None:
            raise SfllavaError("this model has no tokenizer: load it from a checkpoint folder with tokenizer.json")
        return cls(ReferenceDriver(model), cfg, model.tokenizer,
                   cfg.text.max_position_embeddings if max_context_len is None else max_context_len,
                   cfg.max_new_tokens if max_new_tokens is None else max_new_tokens)

    @property
    def remaining(self) -> int:
        """Cache positions still free."""
        return self.max_context_len - self.position

    def _split(self, question: str) -> tuple[list[int], list[int]]:
        ids = build_input_ids(self.tokenizer, self.config.prompt, self.config.text, question)
        k = ids.index(IMAGE_SENTINEL)
        return ids[:k], ids[k + 1:]

    @torch.inference_mode()
    def load_clip(self, frames: torch.Tensor) -> dict[str, float]:
        """Encode ``frames [T, H, W, 3]`` (uint8, at the model's frame size) and prefill the prompt up
        to and including the visual rows; any earlier conversation is dropped."""
        if frames.dim() != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
            raise SfllavaError(f"load_clip takes uint8 frames [T, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
        before, _ = self._split("?")
        t0 = time.perf_counter()
        self.driver.reset()
        rows = self.driver.vision(tall_image(frames), frames)
        t1 = time.perf_counter()
        need = len(before) + rows.shape[1]
        if need >= self.max_context_len:
            raise ContextFull(f"the clip takes {need} positions but the context holds {self.max_context_len}: "
                              "export with fewer frames or a larger --max-context-len")
        pos = 0
        for chunk in (self.driver.embed(before) if before else None, rows):
            if chunk is not None:
                self.driver.decode(chunk, pos)
                pos += chunk.shape[1]
        t2 = time.perf_counter()
        self.position = self.clip_end = pos
        self.turns = []
        self.clip_timings = {"vision_s": t1 - t0, "clip_prefill_s": t2 - t1, "clip_positions": pos}
        return dict(self.clip_timings)

    def start_over(self) -> None:
        """Forget the questions, keep the clip: the next question is a first question again. Free
        here (the cache past the clip is overwritten); the stock runner has no rewind, so the apps
        prefill the clip again."""
        self._require_clip()
        self.driver.rewind(self.clip_end)
        self.position, self.turns = self.clip_end, []

    def _require_clip(self) -> None:
        if self.clip_end is None:
            raise SfllavaError("no clip loaded: call load_clip(frames) first")

    def turn_ids(self, question: str) -> list[int]:
        """The ids the next :meth:`ask` would prefill for ``question``."""
        if not self.turns:
            return self._split(question)[1]
        return next_turn_ids(self.tokenizer, self.config.prompt, question)

    def check_budget(self, question: str, max_new_tokens: int | None = None) -> list[int]:
        """The turn's ids, or :class:`ContextFull` when the turn and a full answer would not fit."""
        self._require_clip()
        ids = self.turn_ids(question)
        answer = self.max_new_tokens if max_new_tokens is None else max_new_tokens
        if len(ids) + answer > self.remaining:
            raise ContextFull(
                f"this question needs {len(ids)} positions plus {answer} for its answer, but only {self.remaining} "
                f"of the {self.max_context_len} the bundle holds are left after {len(self.turns)} turn(s): start over "
                "with the clip (a new conversation), ask for a shorter answer, or export with a larger --max-context-len")
        return ids

    @torch.inference_mode()
    def ask(self, question: str, max_new_tokens: int | None = None,
            on_token: Callable[[int], None] | None = None) -> Turn:
        """Prefill this turn, answer greedily (up to ``max_new_tokens``; ``on_token`` gets each id)."""
        steps = self.max_new_tokens if max_new_tokens is None else max_new_tokens
        if steps < 1:
            raise SfllavaError(f"max_new_tokens must be at least 1, got {steps}")
        ids = self.check_budget(question, steps)
        t0 = time.perf_counter()
        logits = self.driver.decode(self.driver.embed(ids), self.position).reshape(1, -1).float()
        pos = self.position + len(ids)
        t1 = time.perf_counter()
        first = [None]

        def seen(tok: int) -> None:
            if first[0] is None:
                first[0] = time.perf_counter()
            if on_token is not None:
                on_token(tok)

        tokens, _ = greedy(self.driver, logits, pos, steps, self.eos, self.vocab_limit, on_token=seen)
        t2 = time.perf_counter()
        fed = fed_tokens(tokens, steps)
        self.position = pos + len(fed)
        decode_steps = len(fed)
        timings = {"prefill_s": t1 - t0, "time_to_first_token_s": (first[0] or t1) - t0, "decode_s": t2 - t1,
                   "decode_tokens_per_second": decode_steps / (t2 - t1) if decode_steps and t2 > t1 else 0.0}
        turn = Turn(question.strip(), tokens, self.tokenizer.decode(tokens), "length" if len(tokens) >= steps else "eos",
                    len(ids), self.position, timings)
        self.turns.append(turn)
        return turn
