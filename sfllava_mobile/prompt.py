"""Chat templates, the ``<image>`` placeholder, and splicing visual rows into the prompt.

The prompt is tokenized in text chunks around ``<image>`` (the LLaVA convention) and the
placeholder becomes one sentinel id, ``IMAGE_SENTINEL``, which :func:`splice` replaces with the
visual embeddings. One BOS is prepended when the decoder has one.

A conversation continues with :func:`render_next_turn`: the template's multi-turn form, which closes
the previous answer (ChatML ``<|im_end|>``, Vicuna ``</s>``) and opens the next user turn; it is
tokenized as one more text chunk, the way the stock runner tokenizes a text input.
"""

from __future__ import annotations

import torch

from .config import PromptConfig, TextConfig
from .errors import ConfigError
from .tokenizer import Tokenizer

IMAGE_PLACEHOLDER = "<image>"
IMAGE_SENTINEL = -200


def _check_question(question: str) -> str:
    question = question.strip()
    if not question:
        raise ConfigError("ask a question first: the question is empty")
    if IMAGE_PLACEHOLDER in question:
        raise ConfigError(f"the question must not contain {IMAGE_PLACEHOLDER!r}: the video goes there")
    return question


def render(prompt: PromptConfig, question: str) -> str:
    """The prompt text with one ``<image>`` placeholder, ending where the answer starts."""
    question = _check_question(question)
    prefix = f" {prompt.answer_prefix}" if prompt.answer_prefix else ""
    if prompt.template == "vicuna_v1":
        system = f"{prompt.system} " if prompt.system else ""
        return f"{system}USER: {IMAGE_PLACEHOLDER}\n{question} ASSISTANT:{prefix}"
    system = f"<|im_start|>system\n{prompt.system}<|im_end|>\n" if prompt.system else ""
    return (f"{system}<|im_start|>user\n{IMAGE_PLACEHOLDER}\n{question}<|im_end|>\n"
            f"<|im_start|>assistant\n{prompt.answer_prefix}")


def render_next_turn(prompt: PromptConfig, question: str) -> str:
    """The text of a follow-up turn: the previous answer closed, the next user turn, the answer's start.

    Appended right after the previous answer's tokens (the EOS that ended it is never in the cache:
    the runner stops before feeding it), so the turn itself carries the close.
    """
    question = _check_question(question)
    prefix = f" {prompt.answer_prefix}" if prompt.answer_prefix else ""
    if prompt.template == "vicuna_v1":
        return f"</s>USER: {question} ASSISTANT:{prefix}"
    return f"<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n{prompt.answer_prefix}"


def next_turn_ids(tokenizer: Tokenizer, prompt: PromptConfig, question: str) -> list[int]:
    """Token ids of :func:`render_next_turn` (one chunk, no special tokens added)."""
    return tokenizer.encode(render_next_turn(prompt, question))


def build_input_ids(tokenizer: Tokenizer, prompt: PromptConfig, text: TextConfig, question: str) -> list[int]:
    """Token ids of the rendered prompt with ``IMAGE_SENTINEL`` at the placeholder."""
    before, after = render(prompt, question).split(IMAGE_PLACEHOLDER)
    ids = [] if text.bos_id is None else [text.bos_id]
    return ids + tokenizer.encode(before) + [IMAGE_SENTINEL] + tokenizer.encode(after)


def splice(input_ids: list[int], visual: torch.Tensor, embed: torch.nn.Module) -> torch.Tensor:
    """``[1, S - 1 + N_visual, hidden]``: token embeddings with the sentinel replaced by ``visual``."""
    if input_ids.count(IMAGE_SENTINEL) != 1:
        raise ConfigError(f"the prompt must hold exactly one {IMAGE_PLACEHOLDER}, found {input_ids.count(IMAGE_SENTINEL)}")
    k = input_ids.index(IMAGE_SENTINEL)
    weight = embed.weight
    before = embed(torch.tensor(input_ids[:k], dtype=torch.long, device=weight.device))
    after = embed(torch.tensor(input_ids[k + 1:], dtype=torch.long, device=weight.device))
    return torch.cat([before, visual.to(weight.dtype), after], dim=0).unsqueeze(0)
