"""The three on-device programs as eager modules: what gets exported, and the eager twin that
parity compares the artifact with (before or after quantization).

- ``vision_encoder(image uint8 [1, 3, T*H, W]) -> [1, N_visual, hidden]``: the T frames stacked
  along height (a "tall image" the stock runner carries), normalized in-graph, then the ViT,
  ``slowfast_pool`` and the projector.
- ``token_embedding(ids int64 [1, S]) -> [1, S, hidden]``.
- ``text_decoder(embeds [1, S, hidden], input_pos int64 [1]) -> logits [1, vocab]`` (last row),
  with a static KV cache updated in place.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from sfllava_mobile.model.kv_decoder import AttentionFactory, KVCacheDecoder
from sfllava_mobile.model.video_llm import visual_rows
from sfllava_mobile.video import tall_image  # noqa: F401  (re-exported: the programs' input layout)


def _maybe_copy(module, copy_weights: bool):
    return copy.deepcopy(module) if copy_weights else module


class VisionEncoderProgram(nn.Module):
    """``frames_per_pass`` (0: all): frames the tower encodes together, normalization included (see
    :func:`~sfllava_mobile.model.video_llm.visual_rows`)."""

    def __init__(self, model, frames: int, copy_weights: bool = True, frames_per_pass: int = 0):
        super().__init__()
        cfg = model.config
        self.config = cfg
        self.frames = frames
        self.frames_per_pass = frames_per_pass
        self.height, self.width = cfg.vision.image_size
        self.vision_tower = _maybe_copy(model.vision_tower, copy_weights)
        self.projector = _maybe_copy(model.projector, copy_weights)
        self.separator = _maybe_copy(model.separator, copy_weights)
        self.register_buffer("mean", torch.tensor(cfg.vision.image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.vision.image_std).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.reshape(3, self.frames, self.height, self.width).permute(1, 0, 2, 3)
        return visual_rows(x, self.vision_tower, self.projector, self.separator, self.config, self.frames_per_pass,
                           self.normalize).unsqueeze(0)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 frames -> the tower's input, in float32."""
        return (x.to(torch.float32) / 255.0 - self.mean) / self.std


class TokenEmbeddingProgram(nn.Module):
    def __init__(self, model, copy_weights: bool = True):
        super().__init__()
        self.embed = _maybe_copy(model.language_model.get_input_embeddings(), copy_weights)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embed(ids)


@dataclass
class Programs:
    vision_encoder: VisionEncoderProgram
    token_embedding: TokenEmbeddingProgram
    text_decoder: KVCacheDecoder

    def items(self):
        return [("vision_encoder", self.vision_encoder), ("token_embedding", self.token_embedding),
                ("text_decoder", self.text_decoder)]


def build_programs(model, frames: int, max_context: int, attention: AttentionFactory,
                   copy_weights: bool = True, dtype: torch.dtype = torch.float32,
                   vision_frames_per_pass: int = 0) -> Programs:
    """The three programs over ``model``'s weights, ready to quantize and export.

    ``copy_weights=False`` shares the model's modules: quantizing then rewrites the model itself
    (no float copy of a multi-GB decoder is held), so the caller must not use ``model`` afterwards.
    ``dtype`` is the programs' compute dtype (KV cache, RoPE tables); weights stored otherwise (a
    bf16 checkpoint) are converted layer by layer when quantized (``quantize.torchao.apply``).
    ``vision_frames_per_pass``: frames the vision tower encodes together (0: all).
    """
    lm = _maybe_copy(model.language_model, copy_weights)
    if model.config.text.tie_word_embeddings:
        # Untie: the decoder's head and the embedding table are quantized with different schemes.
        lm.lm_head.weight = nn.Parameter(lm.lm_head.weight.detach().clone())
    return Programs(VisionEncoderProgram(model, frames, copy_weights, vision_frames_per_pass).eval(),
                    TokenEmbeddingProgram(model, copy_weights).eval(),
                    KVCacheDecoder(lm, max_context, attention=attention, last_logits_only=True, dtype=dtype).eval())
