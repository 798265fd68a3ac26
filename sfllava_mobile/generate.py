"""Eager greedy decoding with transformers' KV cache, streaming text as it is produced."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from transformers import DynamicCache

from .tokenizer import Tokenizer


@dataclass
class GenerationResult:
    """What one generation produced; ``timings`` holds seconds per stage."""

    text: str
    token_ids: list[int]
    prompt_tokens: int
    visual_tokens: int
    frame_indices: list[int] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict(text=self.text, token_ids=self.token_ids, prompt_tokens=self.prompt_tokens,
                    visual_tokens=self.visual_tokens, frame_indices=self.frame_indices,
                    timings={k: round(v, 6) for k, v in self.timings.items()})


class StreamDecoder:
    """Turns a growing id list into text increments; holds back an incomplete UTF-8 byte piece."""

    def __init__(self, tokenizer: Tokenizer, sink: Callable[[str], None]):
        self.tokenizer, self.sink, self.ids, self.emitted = tokenizer, sink, [], ""

    def push(self, token_id: int) -> None:
        self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids)
        if text.endswith("\ufffd"):
            return
        if text.startswith(self.emitted):
            self.sink(text[len(self.emitted):])
        self.emitted = text

    def flush(self) -> None:
        text = self.tokenizer.decode(self.ids)
        if text != self.emitted and text.startswith(self.emitted):
            self.sink(text[len(self.emitted):])
        self.emitted = text


@torch.inference_mode()
def greedy_decode(lm, inputs_embeds: torch.Tensor, max_new_tokens: int, eos_ids: tuple[int, ...],
                  on_token: Callable[[int], None] | None = None) -> tuple[list[int], dict[str, float]]:
    """Prefill ``inputs_embeds [1, S, hidden]`` once, then decode one token per step with the cache.

    Stops at the first id in ``eos_ids`` (not returned) or after ``max_new_tokens`` tokens.
    """
    cache = DynamicCache(config=lm.config)
    t0 = time.perf_counter()
    out = lm(inputs_embeds=inputs_embeds, past_key_values=cache, use_cache=True, logits_to_keep=1)
    token = int(out.logits[0, -1].argmax())
    t1 = time.perf_counter()
    ids: list[int] = []
    steps = 0
    while token not in eos_ids and len(ids) < max_new_tokens:
        ids.append(token)
        if on_token:
            on_token(token)
        if len(ids) == max_new_tokens:
            break
        out = lm(input_ids=torch.tensor([[token]], device=inputs_embeds.device), past_key_values=cache,
                 use_cache=True)
        steps += 1
        token = int(out.logits[0, -1].argmax())
    t2 = time.perf_counter()
    timings = {"prefill_s": t1 - t0, "decode_s": t2 - t1,
               "prefill_tokens_per_second": inputs_embeds.shape[1] / max(t1 - t0, 1e-9),
               "decode_tokens_per_second": steps / (t2 - t1) if steps and t2 > t1 else 0.0}
    return ids, timings
