"""Shared fixtures: tiny checkpoints in every on-disk layout, built on the fly, and test clips."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

import sfllava_mobile  # noqa: F401  (quiets third-party import logging)
from sfllava_mobile.synthetic import write_clip
from sfllava_mobile.tiny import build_tokenizer, init_tiny

logging.getLogger("torch").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def tiny15_dir(tmp_path_factory) -> Path:
    return init_tiny(tmp_path_factory.mktemp("ckpt") / "tiny15", family="1.5", seed=0)


@pytest.fixture(scope="session")
def tinyv1_dir(tmp_path_factory) -> Path:
    return init_tiny(tmp_path_factory.mktemp("ckpt") / "tinyv1", family="v1", seed=0)


@pytest.fixture(scope="session")
def clip_path(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", num_frames=40, size=(48, 64))


V5_RENAMES = [("language_model.model.", "model.language_model."), ("language_model.lm_head.", "lm_head."),
              ("vision_tower.", "model.vision_tower."), ("multi_modal_projector.", "model.multi_modal_projector."),
              ("image_newline", "model.image_newline")]


def make_hf_llava(kind: str, out: Path, naming: str = "saved", seed: int = 0):
    """A tiny transformers ``llava`` / ``llava_next`` / ``llava_onevision`` checkpoint, saved by
    transformers itself (``naming="saved"``: what save_pretrained writes), or re-keyed to the
    4.x hub naming (``"v4"``, vision under ``vision_tower.vision_model.``) or the 4.52+/5.x
    in-memory naming (``"v5"``, everything under ``model.``)."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    from transformers import (CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration,
                              LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaOnevisionConfig,
                              LlavaOnevisionForConditionalGeneration, Qwen2Config, SiglipVisionConfig)

    torch.manual_seed(seed)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                  image_size=56, patch_size=7)
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=512)
    if kind == "llava_onevision":
        cfg = LlavaOnevisionConfig(vision_config=SiglipVisionConfig(**vision).to_dict(),
                                   text_config=Qwen2Config(**text, tie_word_embeddings=False).to_dict(),
                                   image_token_index=500, video_token_index=501)
        cls, family = LlavaOnevisionForConditionalGeneration, "1.5"
    else:
        cfg_cls, cls = {"llava": (LlavaConfig, LlavaForConditionalGeneration),
                        "llava_next": (LlavaNextConfig, LlavaNextForConditionalGeneration)}[kind]
        cfg = cfg_cls(vision_config=CLIPVisionConfig(**vision).to_dict(), text_config=LlamaConfig(**text).to_dict(),
                      image_token_index=500)
        family = "v1"
    model = cls(cfg).eval()
    with torch.no_grad():  # transformers' std-0.02 init gives near-constant logits; widen it
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0, 1 / p[0].numel() ** 0.5)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    build_tokenizer(family, 512).save(out / "tokenizer.json")
    if naming != "saved":
        path = out / "model.safetensors"
        with safe_open(str(path), "pt") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
        renamed = {}
        for k, v in state.items():
            if naming == "v4" and k.startswith("vision_tower.") and not k.startswith("vision_tower.vision_model."):
                k = "vision_tower.vision_model." + k[len("vision_tower."):]
            if naming == "v5":
                for a, b in V5_RENAMES:
                    if k.startswith(a):
                        k = b + k[len(a):]
                        break
            renamed[k] = v
        save_file(renamed, str(path), metadata={"format": "pt"})
    return model


def rewrite_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))
