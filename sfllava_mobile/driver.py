"""Engines driven through the call sequence an app makes: the protocol every backend's driver
follows, the float reference as one such driver, and the two sequences built on it (the prompt's
prefill, greedy steps). Parity, golden vectors, bench and conversations all use these, so every
engine is run the same way.
"""

from __future__ import annotations

from typing import Protocol

import torch
from transformers import DynamicCache

from .video import normalize


class Driver(Protocol):
    """One engine driven through the app's call sequence; every output is float32.

    ``decode(embeds [1, S, hidden], pos)`` writes rows ``pos .. pos+S-1`` of the KV cache and returns
    the last row's logits ``[1, V]``; rows past ``pos`` written earlier are stale and get overwritten
    before they are read, which is what ``rewind`` relies on.
    """

    name: str
    engine: str  # what runs the artifact, in words (reports)

    def reset(self) -> None: ...

    def rewind(self, pos: int) -> None: ...

    def vision(self, image: torch.Tensor, frames: torch.Tensor) -> torch.Tensor: ...

    def embed(self, ids: list[int]) -> torch.Tensor: ...

    def decode(self, embeds: torch.Tensor, pos: int) -> torch.Tensor: ...

    def decode_all(self, embeds: torch.Tensor, pos: int) -> torch.Tensor: ...


class ReferenceDriver:
    """The float VideoLLM with transformers' own KV cache."""

    name = "reference"
    engine = "the float VideoLLM (transformers modules and KV cache)"

    def __init__(self, model):
        self.model, self.cache = model, None

    def reset(self):
        self.cache = DynamicCache(config=self.model.language_model.config)

    def rewind(self, pos: int):
        extra = self.cache.get_seq_length() - pos
        if extra > 0:
            self.cache.crop(-extra)  # transformers 5: a negative count removes that many positions

    def vision(self, image: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        v = self.model.config.vision
        return self.model.embed_video(normalize(frames, v.image_mean, v.image_std)).unsqueeze(0).float()

    def embed(self, ids: list[int]) -> torch.Tensor:
        return self.model.embed_tokens()(torch.tensor([ids])).float()

    def decode_all(self, embeds: torch.Tensor, pos: int) -> torch.Tensor:
        """Logits ``[S, V]`` of every row (float32)."""
        self.rewind(pos)
        out = self.model.language_model(inputs_embeds=embeds.to(self.model.text_dtype), past_key_values=self.cache,
                                        use_cache=True)
        return out.logits[0].float()

    def decode(self, embeds: torch.Tensor, pos: int) -> torch.Tensor:
        self.rewind(pos)  # a static cache overwrites rows past pos; transformers' cache must drop them
        out = self.model.language_model(inputs_embeds=embeds.to(self.model.text_dtype), past_key_values=self.cache,
                                        use_cache=True, logits_to_keep=1)
        return out.logits[:, -1].float()


def prefill(driver, before: list[int], vision_rows: torch.Tensor, after: list[int]) -> tuple[int, torch.Tensor]:
    """The app's prompt sequence: text before the video, the video rows, text after. Returns the
    next position and the last row's logits."""
    pos, logits = 0, None
    for chunk in (driver.embed(before), vision_rows, driver.embed(after)):
        logits = driver.decode(chunk, pos)
        pos += chunk.shape[1]
    return pos, logits.reshape(1, -1).float()


def greedy(driver, logits: torch.Tensor, pos: int, steps: int, eos: tuple[int, ...] = (),
           vocab_limit: int | None = None, on_token=None) -> tuple[list[int], list[torch.Tensor]]:
    """Up to ``steps`` greedy tokens from ``logits`` at ``pos`` (stops before an ``eos`` token).
    Returns the tokens and the logits rows after each fed token.

    Like the stock runner, every token but a last one that hits ``steps`` is fed back: after an EOS
    stop the cache holds the whole answer, after a length stop all of it but its last token.
    """
    tokens, rows = [], []
    while len(tokens) < steps:
        tok = int(logits.reshape(-1)[:vocab_limit].argmax())
        if tok in eos:
            break
        tokens.append(tok)
        if on_token is not None:
            on_token(tok)
        if len(tokens) == steps:
            break
        logits = driver.decode(driver.embed([tok]), pos).reshape(1, -1).float()
        pos += 1
        rows.append(logits)
    return tokens, rows


def fed_tokens(tokens: list[int], steps: int) -> list[int]:
    """The answer tokens the cache holds after :func:`greedy` with ``steps`` (the runner's rule, see
    there): fewer than ``steps`` tokens means it stopped on EOS, having fed them all."""
    return tokens[:-1] if tokens and len(tokens) >= steps else tokens
