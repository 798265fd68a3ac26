"""``init-tiny``: deterministic tiny random checkpoints in the real on-disk layouts.

``family="1.5"`` writes our layout (preset ``tiny``); ``family="v1"`` writes the LLaVA repo's
layout (preset ``tiny-v1``) with the CLIP tower in ``vision_tower/``, named by
``mm_vision_tower``. Both carry a byte-level BPE ``tokenizer.json`` trained here on a fixed corpus.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import torch
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from . import presets
from .config import ModelConfig
from .errors import ConfigError
from .fsutil import atomic_dir
from .tokenizer import Tokenizer

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
LLAMA_SPECIALS = ["<unk>", "<s>", "</s>"]

_SUBJECTS = ["the cat", "a dog", "the person", "a red car", "two birds", "the chef", "a child", "the robot",
             "a yellow ball", "the camera", "an old man", "the video"]
_VERBS = ["jumps over", "walks past", "picks up", "looks at", "runs toward", "throws", "opens", "paints",
          "follows", "moves", "slices", "records"]
_OBJECTS = ["the fence", "a table", "the window", "a green box", "the door", "some water", "the street",
            "a blue square", "the kitchen", "a white frame", "the screen", "a small tree"]


def _corpus() -> list[str]:
    lines = [f"In the video, {s} {v} {o}." for s, v, o in itertools.product(_SUBJECTS, _VERBS, _OBJECTS)]
    lines += ["What happens in the video? Describe the motion, the colors and the objects.",
              "USER: ASSISTANT: system user assistant You are a helpful assistant. Answer the questions.",
              "0123456789 first second third frame scene time left right top bottom fast slow"]
    return lines


def build_tokenizer(family: str, vocab_size: int) -> Tokenizer:
    """A byte-level BPE tokenizer of exactly ``vocab_size`` tokens with the family's special tokens.

    Qwen-style (1.5): specials at the end, ``<|endoftext|>, <|im_start|>, <|im_end|>``.
    LLaMA-style (v1): ``<unk>=0, <s>=1, </s>=2``; ChatML tokens are not needed by its template.
    """
    specials = QWEN_SPECIALS if family == "1.5" else LLAMA_SPECIALS
    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    n_regular = vocab_size - len(specials)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size if family != "1.5" else n_regular,
                                  special_tokens=[] if family == "1.5" else specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer)
    if family == "1.5":
        tok.add_special_tokens(specials)
    if tok.get_vocab_size() != vocab_size:
        raise ConfigError(f"tiny tokenizer came out with {tok.get_vocab_size()} tokens, expected {vocab_size}")
    return Tokenizer(tok)


def _tiny_model(family: str, seed: int):
    from .model import VideoLLM

    cfg: ModelConfig = presets.get("tiny" if family == "1.5" else "tiny-v1")
    tokenizer = build_tokenizer(family, cfg.text.vocab_size)
    ids = [tokenizer.token_to_id(t) for t in (QWEN_SPECIALS[2], QWEN_SPECIALS[0])] if family == "1.5" else [2]
    if tuple(ids) != cfg.text.eos_ids:
        raise ConfigError(f"tiny tokenizer eos ids {ids} differ from the preset's {cfg.text.eos_ids}")
    torch.manual_seed(seed)
    model = VideoLLM(cfg, tokenizer)
    _spread_init(model)
    return model.eval()


@torch.no_grad()
def _spread_init(model) -> None:
    """Re-draw weights with unit-variance activations so that greedy decoding of a random model
    yields varied tokens (transformers' std 0.02 makes every logit nearly equal, and parity tests
    that compare token sequences would then compare constants)."""
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            p.normal_(0.0, 0.1)
        elif "norm" in name and p.dim() == 1:
            p.normal_(1.0, 0.1)
        elif p.dim() >= 2 and "embed" not in name:
            # Residual-branch outputs 3x larger, so layers (not the tied input embedding) decide.
            gain = 3.0 if name.endswith(("o_proj.weight", "down_proj.weight")) else 1.0
            p.normal_(0.0, gain / (p[0].numel() ** 0.5))
        else:
            p.normal_(0.0, 1.0)


def llava_original_key(name: str) -> tuple[str, str] | None:
    """Our state-dict name -> ``(part, name)`` in the LLaVA repo's layout; part ``llm`` is the
    checkpoint folder, ``tower`` the CLIP folder; None for weights that layout does not hold."""
    if name.startswith("vision_tower."):
        return "tower", "vision_model." + name[len("vision_tower."):]
    if name.startswith("projector.linear_1."):
        return "llm", "model.mm_projector.0." + name.split(".")[-1]
    if name.startswith("projector.linear_2."):
        return "llm", "model.mm_projector.2." + name.split(".")[-1]
    if name.startswith("language_model."):
        return "llm", name[len("language_model."):]
    return None


def write_llava_original_configs(cfg: ModelConfig, out: Path, torch_dtype: str = "float32") -> Path:
    """``config.json`` of the LLaVA repo's layout in ``out`` and the CLIP tower's configs in
    ``out/vision_tower`` (named by ``mm_vision_tower``); returns the tower folder."""
    from .model.language import hf_text_config
    from .model.vision import hf_vision_config

    text = hf_text_config(cfg.text).to_dict()
    text.update(architectures=["LlavaLlamaForCausalLM"], model_type="llava_llama", mm_vision_tower="vision_tower",
                mm_hidden_size=cfg.vision.hidden_size, mm_projector_type="mlp2x_gelu",
                mm_vision_select_layer=cfg.vision.select_layer, mm_vision_select_feature="patch",
                mm_patch_merge_type="spatial_unpad", image_aspect_ratio="anyres", torch_dtype=torch_dtype)
    (out / "config.json").write_text(json.dumps(text, indent=2))
    tower = out / "vision_tower"
    tower.mkdir(exist_ok=True)
    vision = hf_vision_config(cfg.vision).to_dict()
    vision["image_size"] = cfg.vision.image_size[0]
    (tower / "config.json").write_text(json.dumps(vision, indent=2))
    (tower / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": list(cfg.vision.image_mean), "image_std": list(cfg.vision.image_std)}, indent=2))
    return tower


def _write_llava_original(model, out: Path) -> None:
    """The LLaVA repo's layout: LLM + projector in the folder, CLIP tower in ``vision_tower/``."""
    from safetensors.torch import save_file

    parts: dict[str, dict[str, torch.Tensor]] = {"llm": {}, "tower": {}}
    for k, v in model.state_dict().items():
        mapped = llava_original_key(k)
        if mapped:
            parts[mapped[0]][mapped[1]] = v.detach().contiguous()
    # Real LLaVA-NeXT checkpoints carry image_newline; SlowFast ignores it.
    parts["llm"]["model.image_newline"] = torch.zeros(model.config.text.hidden_size)
    tower = write_llava_original_configs(model.config, out)
    save_file(parts["llm"], str(out / "model.safetensors"), metadata={"format": "pt"})
    save_file(parts["tower"], str(tower / "model.safetensors"), metadata={"format": "pt"})
    model.tokenizer.save(out / "tokenizer.json")


def init_tiny(out: str | Path, family: str = "1.5", seed: int = 0, overwrite: bool = False) -> Path:
    """Write a tiny random checkpoint folder for ``family`` (``"1.5"`` or ``"v1"``); deterministic per seed."""
    from .checkpoint import save

    if family not in ("1.5", "v1"):
        raise ConfigError(f"--family must be '1.5' or 'v1', got {family!r}")
    model = _tiny_model(family, seed)
    out = Path(out)
    if family == "1.5":
        return save(model, out, overwrite=overwrite)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        _write_llava_original(model, tmp)
    return out
