"""VideoLLM: vision tower -> slowfast_pool / projector (configured order) -> decoder."""

from __future__ import annotations

import time
from typing import Callable

import torch
from torch import nn

from ..config import ModelConfig
from ..errors import ConfigError
from ..ops import slowfast_pool, slowfast_token_count
from .language import build_decoder
from .projector import Projector
from .vision import VisionTower


def visual_rows(pixel_values: torch.Tensor, vision_tower: nn.Module, projector: nn.Module,
                separator: torch.Tensor | None, config: ModelConfig, frames_per_pass: int = 0,
                prepare: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """``[T, 3, H, W]`` -> ``[N_visual, hidden]``: tower, slowfast_pool and projector in the configured
    order, separator if any. Shared by the reference model and every exported encoder.

    ``frames_per_pass`` (0: all): the tower (and the projector, when pooling comes after it) runs on
    that many frames at a time, ``prepare`` (e.g. normalization) first, so one pass's activations are
    alive at once and only the per-frame features of every frame are kept for the pooling. The same
    math: frames never attend to each other in the tower.
    """
    p = config.vision.patch_size
    grid = (pixel_values.shape[2] // p, pixel_values.shape[3] // p)
    sf = config.slowfast
    after = sf.pool_position != "before_projector"
    t = pixel_values.shape[0]
    step = frames_per_pass or t
    feats = []
    for s in range(0, t, step):
        x = pixel_values[s:s + step]
        x = vision_tower(prepare(x) if prepare is not None else x)
        feats.append(projector(x) if after else x)
    feats = feats[0] if len(feats) == 1 else torch.cat(feats, dim=0)
    if after:
        return slowfast_pool(feats, sf, grid, separator)
    return projector(slowfast_pool(feats, sf, grid, separator))


class VideoLLM(nn.Module):
    """The PyTorch reference every export is checked against.

    State-dict keys (our on-disk layout): ``vision_tower.*``, ``projector.linear_{1,2}.*``,
    ``language_model.model.*``, ``language_model.lm_head.weight`` (untied only), ``separator``.
    """

    def __init__(self, config: ModelConfig, tokenizer=None):
        super().__init__()
        self.config = config
        self.vision_tower = VisionTower(config.vision)
        self.projector = Projector(config.projector)
        self.language_model = build_decoder(config.text)
        self.separator = nn.Parameter(torch.zeros(config.pool_dim)) if config.slowfast.separator else None
        self.tokenizer = tokenizer

    @property
    def dtype(self) -> torch.dtype:
        """The vision side's dtype (tower, projector): what ``embed_video`` computes in."""
        return self.projector.linear_1.weight.dtype

    @property
    def text_dtype(self) -> torch.dtype:
        """The decoder's dtype; may differ from the vision side's (e.g. bf16 decoder, fp32 ViT)."""
        return self.language_model.get_input_embeddings().weight.dtype

    def visual_token_count(self, num_frames: int | None = None) -> int:
        return slowfast_token_count(self.config.slowfast, num_frames or self.config.num_frames, self.config.vision.grid)

    def embed_video(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``pixel_values [T, 3, H, W]`` (normalized) -> ``[N_visual, hidden]``: the rows spliced into the prompt."""
        if pixel_values.dim() != 4 or pixel_values.shape[1] != 3:
            raise ConfigError(f"embed_video takes pixel_values [T, 3, H, W], got {tuple(pixel_values.shape)}")
        return visual_rows(pixel_values.to(self.dtype), self.vision_tower, self.projector, self.separator, self.config)

    def embed_tokens(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def decoder_logits(self, inputs_embeds: torch.Tensor) -> torch.Tensor:
        """``[1, S, hidden]`` (or ``[S, hidden]``) -> logits ``[1, S, vocab]``, no cache (parity checks)."""
        if inputs_embeds.dim() == 2:
            inputs_embeds = inputs_embeds.unsqueeze(0)
        return self.language_model(inputs_embeds=inputs_embeds.to(self.text_dtype), use_cache=False).logits

    @torch.inference_mode()
    def generate(self, frames_uint8, question: str, max_new_tokens: int | None = None,
                 stream: Callable[[str], None] | None = None, frame_indices: list[int] | None = None):
        """Answer ``question`` about ``frames_uint8 [T, H, W, 3]`` greedily; ``stream`` gets text pieces.

        Returns a :class:`~sfllava_mobile.generate.GenerationResult` (``.text``, ``.token_ids``, timings).
        """
        from ..generate import GenerationResult, StreamDecoder, greedy_decode
        from ..prompt import build_input_ids, splice
        from ..video import preprocess

        if self.tokenizer is None:
            raise ConfigError("this model has no tokenizer: load it from a checkpoint folder with tokenizer.json")
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        pixels = preprocess(frames_uint8, self.config)
        t1 = time.perf_counter()
        visual = self.embed_video(pixels)
        t2 = time.perf_counter()
        ids = build_input_ids(self.tokenizer, self.config.prompt, self.config.text, question)
        embeds = splice(ids, visual, self.embed_tokens())
        decoder = StreamDecoder(self.tokenizer, stream) if stream else None
        out_ids, dec_t = greedy_decode(self.language_model, embeds, max_new_tokens or self.config.max_new_tokens,
                                       self.config.text.eos_ids, decoder.push if decoder else None)
        if decoder:
            decoder.flush()
        timings.update(preprocess_s=t1 - t0, vision_s=t2 - t1, **dec_t)
        timings["time_to_first_token_s"] = timings["preprocess_s"] + timings["vision_s"] + timings["prefill_s"]
        return GenerationResult(text=self.tokenizer.decode(out_ids), token_ids=out_ids,
                                prompt_tokens=int(embeds.shape[1]), visual_tokens=int(visual.shape[0]),
                                frame_indices=list(frame_indices or []), timings=timings)
