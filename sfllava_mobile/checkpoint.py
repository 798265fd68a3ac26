"""Local checkpoint folder -> (ModelConfig, weights) -> VideoLLM, for every supported layout.

Layouts (detected from ``config.json``):
- ``sfllava``: ours. ``{"format": "sfllava-mobile", "format_version": 1, "model": {...}}`` and the
  VideoLLM state dict (``vision_tower.*``, ``projector.*``, ``language_model.*``, ``separator``).
- ``llava_original``: the LLaVA repo (SF-LLaVA v1): ``mm_*`` config keys, ``model.*`` /
  ``lm_head`` / ``model.mm_projector.{0,2}``; the CLIP tower is a second local folder named by
  ``mm_vision_tower`` (absolute, or relative to the checkpoint; or passed as ``vision_tower_path``).
- ``transformers``: ``llava`` / ``llava_next`` / ``llava_onevision``, in both the 4.x key naming
  (``language_model.model.*``, ``vision_tower.vision_model.*``) and the 4.52+/5.x one
  (``model.language_model.*``, ``model.vision_tower.*``, ``lm_head.*``). These run the
  training-free SlowFast pathways (SF-LLaVA v1's defaults), overridable.

Nothing is fetched and no remote code runs. A key mismatch raises one :class:`CheckpointError`
listing missing, unexpected and mis-shaped keys (first five of each, with counts).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .config import (CLIP_MEAN, CLIP_STD, ModelConfig, ProjectorConfig, PromptConfig, SlowFastConfig, TextConfig,
                     VisionConfig, apply_overrides)
from .errors import CheckpointError, ConfigError
from .presets import V1_SLOWFAST, V1_SYSTEM
from .tokenizer import Tokenizer
from .weights import iter_tensors, weight_files

log = logging.getLogger(__name__)

FORMAT = "sfllava-mobile"
FORMAT_VERSION = 1
IGNORE = "ignore"
TRANSFORMERS_TYPES = ("llava", "llava_next", "llava_onevision")


@dataclass
class Source:
    """One folder of weights and the prefix rules that map its names to VideoLLM names.

    ``rules`` are ``(checkpoint_prefix, model_prefix)``, first match wins; a model prefix of
    ``IGNORE`` marks weights the layout has but SlowFast does not use (e.g. ``image_newline``).
    """

    folder: Path
    rules: list[tuple[str, str]]
    ignore: list[str] = field(default_factory=list)  # regexes on checkpoint names

    def rename(self, name: str) -> str | None:
        if any(re.search(p, name) for p in self.ignore):
            return None
        for src, dst in self.rules:
            if name.startswith(src):
                return None if dst == IGNORE else dst + name[len(src):]
        return name

    def original(self, model_name: str) -> str:
        """The checkpoint name this layout would use for ``model_name`` (for error messages)."""
        for src, dst in self.rules:
            if dst != IGNORE and model_name.startswith(dst):
                return src + model_name[len(dst):]
        return model_name


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"no {path.name} in {path.parent} ({what})") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot parse {path}: {e}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    return data


def _optional_json(path: Path) -> dict:
    return _read_json(path, "") if path.is_file() else {}


def detect_layout(raw: dict) -> str:
    """``sfllava``, ``llava_original`` or ``transformers``; anything else is refused with the list."""
    if raw.get("format") == FORMAT:
        return "sfllava"
    if "mm_vision_tower" in raw:
        return "llava_original"
    if raw.get("model_type") in TRANSFORMERS_TYPES:
        return "transformers"
    raise CheckpointError(
        f"config.json is not a layout this toolkit reads (model_type={raw.get('model_type')!r}); supported: "
        f"our own (format={FORMAT!r}), the LLaVA repo's (mm_vision_tower), transformers {', '.join(TRANSFORMERS_TYPES)}")


# ---- config conversion -------------------------------------------------------------------

def _text_from_hf(tc: dict, eos_extra: list[int]) -> TextConfig:
    family = {"qwen2": "qwen2", "llama": "llama", "llava_llama": "llama"}.get(tc.get("model_type", "llama"))
    if family is None:
        raise CheckpointError(f"text model_type {tc.get('model_type')!r} is not supported (qwen2 or llama)")
    hidden, heads = tc["hidden_size"], tc["num_attention_heads"]
    rope = dict(tc.get("rope_parameters") or {})
    theta = float(rope.pop("rope_theta", tc.get("rope_theta", 1e6 if family == "qwen2" else 10000.0)))
    legacy = tc.get("rope_scaling") or {}
    if legacy and not rope:
        rope = {"rope_type": legacy.get("rope_type", legacy.get("type")), **{k: v for k, v in legacy.items() if k not in ("type", "rope_type")}}
    scaling = rope if rope and rope.get("rope_type", "default") != "default" else None
    eos = tc.get("eos_token_id")
    eos_ids = [e for e in ([eos] if isinstance(eos, int) else list(eos or [])) + eos_extra if e is not None]
    head_dim = tc.get("head_dim")
    return TextConfig(
        family=family, vocab_size=tc["vocab_size"], hidden_size=hidden, num_layers=tc["num_hidden_layers"],
        num_heads=heads, num_kv_heads=tc.get("num_key_value_heads") or heads,
        intermediate_size=tc["intermediate_size"], rms_norm_eps=float(tc.get("rms_norm_eps", 1e-6)),
        rope_theta=theta, tie_word_embeddings=bool(tc.get("tie_word_embeddings", False)),
        max_position_embeddings=tc.get("max_position_embeddings", 4096),
        head_dim=head_dim if head_dim and head_dim != hidden // heads else None, rope_scaling=scaling,
        bos_id=tc.get("bos_token_id") if family == "llama" else None, eos_ids=tuple(dict.fromkeys(eos_ids)))


def _vision_from_hf(vc: dict, select_layer: int, drop_cls: bool, processor: dict) -> VisionConfig:
    kind = {"clip_vision_model": "clip", "siglip_vision_model": "siglip"}.get(vc.get("model_type", "clip_vision_model"))
    if kind is None:
        raise CheckpointError(f"vision model_type {vc.get('model_type')!r} is not supported (CLIP or SigLIP)")
    from transformers import CLIPVisionConfig, SiglipVisionConfig

    hf = (CLIPVisionConfig if kind == "clip" else SiglipVisionConfig)(**{k: v for k, v in vc.items() if k != "model_type"})
    mean = processor.get("image_mean") or (CLIP_MEAN if kind == "clip" else (0.5, 0.5, 0.5))
    std = processor.get("image_std") or (CLIP_STD if kind == "clip" else (0.5, 0.5, 0.5))
    return VisionConfig(kind=kind, image_size=hf.image_size, patch_size=hf.patch_size, hidden_size=hf.hidden_size,
                        num_layers=hf.num_hidden_layers, num_heads=hf.num_attention_heads,
                        intermediate_size=hf.intermediate_size, hidden_act=hf.hidden_act,
                        layer_norm_eps=hf.layer_norm_eps, select_layer=select_layer, drop_cls=drop_cls,
                        position_grid=hf.image_size // hf.patch_size, position_interpolation="bicubic",
                        image_mean=tuple(mean), image_std=tuple(std))


def _training_free(name: str, vision: VisionConfig, text: TextConfig, act: str, bias: bool) -> ModelConfig:
    """SF-LLaVA v1's training-free pathways on any LLaVA-family checkpoint."""
    if text.family == "qwen2" or text.vocab_size == 64000:
        prompt = PromptConfig("chatml", system="You are a helpful assistant." if text.family == "qwen2" else "Answer the questions.",
                              answer_prefix="In the video," if text.family == "llama" else "")
    else:
        prompt = PromptConfig("vicuna_v1", system=V1_SYSTEM, answer_prefix="In the video,")
    return ModelConfig(name=name, family="v1", vision=vision, slowfast=SlowFastConfig.from_string(V1_SLOWFAST),
                       projector=ProjectorConfig(vision.hidden_size, text.hidden_size, act=act, bias=bias),
                       text=text, prompt=prompt, num_frames=50, frame_rule="segment_midpoint",
                       context_length=text.max_position_embeddings)


def _special_ids(folder: Path) -> list[int]:
    tok = _optional_json(folder / "tokenizer.json")
    return [t["id"] for t in tok.get("added_tokens", []) if t.get("content") in ("<|im_end|>", "<|endoftext|>")]


def _layout_sfllava(raw: dict, folder: Path, vision_tower_path: Path | None) -> tuple[ModelConfig, list[Source]]:
    if raw.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{folder}/config.json has format_version {raw.get('format_version')!r}; "
                              f"this toolkit reads version {FORMAT_VERSION}")
    return ModelConfig.from_dict(raw["model"]), [Source(folder, [])]


def _layout_transformers(raw: dict, folder: Path, vision_tower_path: Path | None) -> tuple[ModelConfig, list[Source]]:
    layer = raw.get("vision_feature_layer", -2)
    if not isinstance(layer, int):
        raise CheckpointError(f"vision_feature_layer {layer!r}: features from several layers are not supported")
    strategy = raw.get("vision_feature_select_strategy", "default")
    vc = raw.get("vision_config") or {}
    if strategy == "default" and vc.get("model_type") == "siglip_vision_model":
        raise CheckpointError("vision_feature_select_strategy 'default' drops the first SigLIP patch; only 'full' is supported for SigLIP")
    generation = _optional_json(folder / "generation_config.json")
    tc = dict(raw.get("text_config") or {})
    if generation.get("eos_token_id") is not None:
        tc["eos_token_id"] = generation["eos_token_id"]
    text = _text_from_hf(tc, _special_ids(folder) if tc.get("model_type") == "qwen2" else [])
    vision = _vision_from_hf(vc, layer, strategy == "default", _optional_json(folder / "preprocessor_config.json"))
    cfg = _training_free(folder.name, vision, text, raw.get("projector_hidden_act", "gelu"),
                         raw.get("multimodal_projector_bias", True))
    rules = [
        ("model.language_model.", "language_model.model."), ("language_model.model.", "language_model.model."),
        ("language_model.lm_head.", "language_model.lm_head."), ("lm_head.", "language_model.lm_head."),
        ("vision_tower.vision_model.", "vision_tower."), ("model.vision_tower.vision_model.", "vision_tower."),
        ("model.vision_tower.", "vision_tower."), ("vision_tower.", "vision_tower."),
        ("multi_modal_projector.", "projector."), ("model.multi_modal_projector.", "projector."),
        ("image_newline", IGNORE), ("model.image_newline", IGNORE),
    ]
    return cfg, [Source(folder, rules)]


def _resolve_tower(name: str, folder: Path, override: Path | None) -> Path:
    if override is not None:
        if not Path(override).is_dir():
            raise CheckpointError(f"vision tower folder {override} does not exist")
        return Path(override)
    for cand in (Path(name), folder / name):
        if cand.is_dir():
            return cand
    raise CheckpointError(
        f"config.json names the vision tower {name!r} (mm_vision_tower), which is not a local folder; nothing is "
        "downloaded: pass vision_tower_path=DIR (CLI: --vision-tower DIR) pointing at a local copy of it")


def _layout_llava_original(raw: dict, folder: Path, vision_tower_path: Path | None) -> tuple[ModelConfig, list[Source]]:
    if raw.get("mm_projector_type", "linear") != "mlp2x_gelu":
        raise CheckpointError(f"mm_projector_type {raw.get('mm_projector_type')!r} is not supported (mlp2x_gelu only)")
    tower = _resolve_tower(str(raw["mm_vision_tower"]), folder, vision_tower_path)
    tower_raw = _read_json(tower / "config.json", "the vision tower's config")
    vc = tower_raw.get("vision_config") or tower_raw
    vc = {**vc, "model_type": "clip_vision_model"}
    feature = raw.get("mm_vision_select_feature", "patch")
    if feature not in ("patch", "cls_patch"):
        raise CheckpointError(f"mm_vision_select_feature {feature!r} is not supported (patch or cls_patch)")
    vision = _vision_from_hf(vc, int(raw.get("mm_vision_select_layer", -2)), feature == "patch",
                             _optional_json(tower / "preprocessor_config.json"))
    text = _text_from_hf({**raw, "model_type": "llama"}, [])
    if int(raw.get("mm_hidden_size", vision.hidden_size)) != vision.hidden_size:
        raise CheckpointError(f"mm_hidden_size {raw['mm_hidden_size']} does not match the tower's width {vision.hidden_size}")
    cfg = _training_free(folder.name, vision, text, "gelu", True)
    llm = Source(folder, [("model.mm_projector.0.", "projector.linear_1."), ("model.mm_projector.2.", "projector.linear_2."),
                          ("model.image_newline", IGNORE), ("model.vision_tower.", IGNORE),
                          ("model.", "language_model.model."), ("lm_head.", "language_model.lm_head.")])
    clip = Source(tower, [("vision_model.", "vision_tower."), ("text_model.", IGNORE), ("visual_projection.", IGNORE),
                          ("text_projection.", IGNORE), ("logit_scale", IGNORE), ("", "vision_tower.")])
    return cfg, [llm, clip]


_LAYOUTS: dict[str, Callable] = {"sfllava": _layout_sfllava, "transformers": _layout_transformers,
                                 "llava_original": _layout_llava_original}


def read_config(path: str | Path, vision_tower_path: str | Path | None = None, **overrides: Any) -> tuple[ModelConfig, str, list[Source]]:
    """``(config, layout, sources)`` of a checkpoint folder, overrides applied, without reading weights."""
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint folder {folder} does not exist")
    raw = _read_json(folder / "config.json", "every checkpoint folder needs one")
    layout = detect_layout(raw)
    try:
        cfg, sources = _LAYOUTS[layout](raw, folder, Path(vision_tower_path) if vision_tower_path else None)
    except KeyError as e:
        raise CheckpointError(f"{folder}/config.json ({layout} layout) lacks the key {e}") from None
    except ConfigError as e:
        raise CheckpointError(f"{folder}/config.json ({layout} layout): {e}") from None
    return apply_overrides(cfg, overrides), layout, sources


# ---- weights -> model ----------------------------------------------------------------------

_UNUSED_VISION = re.compile(r"^vision_tower\.(post_layernorm|head)\.|^vision_tower\.embeddings\.position_ids$|rotary_emb\.inv_freq$")


def _unused(name: str, cfg: ModelConfig) -> bool:
    """Weights a checkpoint may hold that this config does not need (after the select layer, tied head)."""
    if _UNUSED_VISION.search(name):
        return True
    m = re.match(r"^vision_tower\.encoder\.layers\.(\d+)\.", name)
    if m and cfg.vision.layers_used <= int(m.group(1)) < cfg.vision.num_layers:
        return True
    return cfg.text.tie_word_embeddings and name == "language_model.lm_head.weight"


def _summary(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (", ..." if len(items) > n else "")


def _materialize_buffers(model: torch.nn.Module) -> None:
    """Rebuild non-persistent buffers left on the meta device by the meta-device construction."""
    for name, module in list(model.named_modules()):
        if type(module).__name__.endswith("RotaryEmbedding") and any(b.is_meta for b in module.buffers()):
            parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            setattr(parent, name.rsplit(".", 1)[-1], type(module)(config=module.config))
            continue
        for bname, buf in list(module.named_buffers(recurse=False)):
            if buf.is_meta:
                if bname != "position_ids":
                    raise RuntimeError(f"buffer {name}.{bname} was not materialized")
                module.register_buffer(bname, torch.arange(buf.shape[-1]).expand(1, -1), persistent=False)


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def component(name: str) -> str:
    """``text`` for the decoder's weights, ``vision`` for the tower, projector and separator."""
    return "text" if name.startswith("language_model.") else "vision"


def resolve_dtypes(dtype: "torch.dtype | str | dict", stored: dict[str, dict[torch.dtype, int]]) -> dict[str, torch.dtype]:
    """Per component, the dtype its floating tensors are held in.

    ``"stored"``: the checkpoint's own dtype (the one holding most bytes of that component; the
    few tensors stored otherwise, e.g. fp32 norms in a bf16 file, are converted one by one).
    A dtype (or its name) applies to every component; a dict maps ``text`` / ``vision`` to one.
    """
    out = {}
    for comp in ("text", "vision"):
        want = dtype.get(comp, "stored") if isinstance(dtype, dict) else dtype
        if isinstance(want, str) and want != "stored":
            if want not in DTYPES:
                raise ConfigError(f"dtype {want!r}: choose stored, {', '.join(DTYPES)}")
            want = DTYPES[want]
        if want == "stored":
            counts = stored.get(comp) or {torch.float32: 1}
            want = max(counts, key=counts.get)
        out[comp] = want
    return out


def build_model(cfg: ModelConfig, sources: list[Source], layout: str, allow_pickle: bool = False,
                dtype: "torch.dtype | str | dict" = "stored"):
    """Create VideoLLM on the meta device and assign the checkpoint's tensors; strict key report.

    Tensors are read one at a time and kept in their stored dtype unless ``dtype`` (see
    :func:`resolve_dtypes`) asks otherwise: a 16-bit checkpoint never exists as an fp32 copy."""
    from .model import VideoLLM

    with torch.device("meta"):
        model = VideoLLM(cfg)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if cfg.text.tie_word_embeddings:
        expected.pop("language_model.lm_head.weight", None)
    state: dict[str, torch.Tensor] = {}
    stored: dict[str, dict[torch.dtype, int]] = {"text": {}, "vision": {}}
    unexpected, misshaped, seen_misshaped = [], [], set()
    for src in sources:
        files = weight_files(src.folder, allow_pickle)
        t0 = time.perf_counter()
        for i, (name, path, tensor) in enumerate(iter_tensors(files)):
            target = src.rename(name)
            if target is None or (target not in expected and _unused(target, cfg)):
                continue
            if target not in expected:
                unexpected.append(name)
            elif tuple(tensor.shape) != expected[target]:
                seen_misshaped.add(target)
                misshaped.append(f"{name}: checkpoint {list(tensor.shape)} vs model {list(expected[target])}")
            else:
                if tensor.is_floating_point():
                    counts = stored[component(target)]
                    counts[tensor.dtype] = counts.get(tensor.dtype, 0) + tensor.numel() * tensor.element_size()
                    if isinstance(dtype, torch.dtype) and tensor.dtype != dtype:
                        tensor = tensor.to(dtype)  # per tensor: no second whole-model copy
                state[target] = tensor
        log.info("read %d tensors from %d file(s) in %s (%.2f s)", len(state), len(files), src.folder,
                 time.perf_counter() - t0)
    missing = [k for k in expected if k not in state and k not in seen_misshaped]
    if missing or unexpected or misshaped:
        def orig(k: str) -> str:
            return next((s.original(k) for s in sources if s.original(k) != k), k)

        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_summary([orig(k) for k in missing])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_summary(unexpected)})")
        if misshaped:
            parts.append(f"{len(misshaped)} mis-shaped ({_summary(misshaped, 3)})")
        raise CheckpointError(f"checkpoint {sources[0].folder} ({layout} layout) does not match config "
                              f"{cfg.name!r}: {'; '.join(parts)}")
    dtypes = resolve_dtypes(dtype, stored)
    for name, tensor in state.items():
        want = dtypes[component(name)]
        if tensor.is_floating_point() and tensor.dtype != want:
            state[name] = tensor.to(want)
    model.load_state_dict(state, strict=False, assign=True)
    if cfg.text.tie_word_embeddings:
        model.language_model.lm_head.weight = model.language_model.model.embed_tokens.weight
    _materialize_buffers(model)
    return model.eval()


def check_tokenizer(cfg: ModelConfig, tokenizer: Tokenizer) -> None:
    """Special ids of the config must exist in the tokenizer (a mismatch would never stop decoding)."""
    n = tokenizer.vocab_size
    bad = [i for i in (*cfg.text.eos_ids, cfg.text.bos_id) if i is not None and i >= n]
    if bad:
        raise CheckpointError(f"special ids {bad} of the config are outside the tokenizer's {n} tokens")
    if cfg.prompt.template == "chatml":
        for tok in ("<|im_start|>", "<|im_end|>"):
            if tokenizer.token_to_id(tok) is None:
                raise CheckpointError(f"the chatml template needs {tok} but tokenizer.json does not define it")


def load(path: str | Path, *, vision_tower_path: str | Path | None = None, allow_pickle: bool = False,
         dtype: "torch.dtype | str | dict" = "stored", **overrides: Any):
    """Load a checkpoint folder (any supported layout) into a :class:`VideoLLM` with its tokenizer.

    ``dtype="stored"`` keeps the checkpoint's dtype (a bf16 7B stays 13 GB, not 27 GB); a dtype,
    its name, or ``{"text": ..., "vision": ...}`` converts tensor by tensor while reading.

    ``overrides`` replace config fields by dotted path (``slowfast.slow_frames=16``; as a Python
    keyword use ``slowfast__slow_frames=16``). Raises :class:`CheckpointError` on any mismatch.
    """
    t0 = time.perf_counter()
    cfg, layout, sources = read_config(path, vision_tower_path, **overrides)
    tokenizer = Tokenizer.from_folder(Path(path))
    check_tokenizer(cfg, tokenizer)
    model = build_model(cfg, sources, layout, allow_pickle, dtype)
    model.tokenizer = tokenizer
    log.info("loaded %s (%s layout, %s) in %.2f s", path, layout, cfg.name, time.perf_counter() - t0)
    return model


def save(model, folder: str | Path, overwrite: bool = False) -> Path:
    """Write ``model`` in our layout (config.json, model.safetensors, tokenizer.json), atomically;
    an existing non-empty ``folder`` is replaced only with ``overwrite``."""
    from safetensors.torch import save_file

    from .fsutil import atomic_dir

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if model.config.text.tie_word_embeddings:
        state.pop("language_model.lm_head.weight", None)
    with atomic_dir(folder, overwrite=overwrite) as tmp:
        (tmp / "config.json").write_text(json.dumps(
            {"format": FORMAT, "format_version": FORMAT_VERSION, "model": model.config.to_dict()}, indent=2))
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        os.chmod(tmp / "model.safetensors", 0o644)  # safetensors writes 0600
        if model.tokenizer is not None:
            model.tokenizer.save(tmp / "tokenizer.json")
    return Path(folder)
