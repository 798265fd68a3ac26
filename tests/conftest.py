"""Shared fixtures: tiny checkpoints in every on-disk layout, built on the fly, test clips, and
session-wide exported bundles, one per (layout, recipe), shared by every test that needs one.

Export layouts: ``ours`` (SF-LLaVA-1.5-shaped, our format), ``llava_repo`` (SF-LLaVA v1: the LLaVA
repo's layout with a separate CLIP folder), and transformers ``llava`` / ``llava_next`` /
``llava_onevision`` checkpoints written by ``save_pretrained``. The v1-pathway layouts export
4 frames, fewer than the 10 slow frames, so the slow pathway repeats frames (the case that
once failed ``run_decompositions``).
"""

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


SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schema"


def assert_bundle_matches_schema(folder: Path) -> None:
    """The bundle's manifest and golden vectors validate against the committed JSON Schemas (what
    the Swift and Kotlin apps read), independently of the pydantic models that wrote them."""
    from jsonschema import Draft202012Validator

    for name, schema in (("manifest.json", "manifest.schema.json"), ("golden.json", "golden.schema.json")):
        validator = Draft202012Validator(json.loads((SCHEMA_DIR / schema).read_text()))
        errors = sorted(validator.iter_errors(json.loads((folder / name).read_text())), key=lambda e: list(e.path))
        assert not errors, f"{folder / name}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:3])


def _options() -> dict:
    from sfllava_mobile.export.config import ExecuTorchOptions

    # The shared tiny 8da4w bundle encodes its 8 frames in passes of 3 (3, 3, 2) and attends one frame
    # at a time within a pass, so every test that uses it also covers the grouped encoder.
    return {("ours", "8da4w", "executorch"): ExecuTorchOptions(vision_attention_frames=1, vision_frames=3)}


OPTIONS = _options()
FRAMES = {"ours": None, "llava_repo": 4, "llava": 4, "llava_next": 4, "llava_onevision": 4}


@pytest.fixture(scope="session")
def layout_checkpoint(tmp_path_factory):
    """``layout -> checkpoint folder``, built once per session."""
    cache = {}

    def get(layout: str):
        if layout not in cache:
            d = tmp_path_factory.mktemp("layouts") / layout
            if layout == "ours":
                init_tiny(d, family="1.5", seed=0)
            elif layout == "llava_repo":
                init_tiny(d, family="v1", seed=0)
            else:
                make_hf_llava(layout, d)
            cache[layout] = d
        return cache[layout]

    return get


class Exported:
    def __init__(self, layout, quant, checkpoint, model, result, report):
        self.layout, self.quant, self.checkpoint = layout, quant, checkpoint
        self.model, self.result, self.report = model, result, report
        self.bundle = result.bundle


@pytest.fixture(scope="session")
def exported_bundle(layout_checkpoint, tmp_path_factory):
    """``(layout, recipe, backend) -> Exported``: each bundle is exported and verified once per session."""
    cache = {}
    models = {}

    def get(layout: str, quant: str, backend: str = "executorch") -> Exported:
        key = (layout, quant, backend)
        if key not in cache:
            ckpt = layout_checkpoint(layout)
            if layout not in models:
                from sfllava_mobile import load

                models[layout] = load(ckpt)
            model = models[layout]
            out = tmp_path_factory.mktemp("bundles") / f"{backend}-{layout}-{quant}"
            from sfllava_mobile.export import export
            from sfllava_mobile.export.config import ExportConfig
            from sfllava_mobile.export.parity import verify_bundle

            result = export(model, out, ExportConfig(backend=backend, quant=quant, frames=FRAMES[layout],
                                                     options=OPTIONS.get(key)), source=ckpt)
            report = verify_bundle(out, model=model, eager_programs=result.programs)
            cache[key] = Exported(layout, quant, ckpt, model, result, report)
        return cache[key]

    return get
