"""Typed, validated configs: vision tower, slow/fast pathways, projector, text decoder, prompt, model.

Every config validates itself on construction (``__post_init__``) and raises :class:`ConfigError`
naming the bad value and the fix, so nothing is traced or loaded with an impossible config.
Configs are frozen; derive variants with :func:`apply_overrides`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

SLOW_POOLS = ("1d_max", "1d_avg", "2d_max", "2d_avg")
SLOW_RULES = ("linspace", "stride")
POOL_POSITIONS = ("after_projector", "before_projector")
FRAME_RULES = ("segment_midpoint", "uniform")
TEMPLATES = ("vicuna_v1", "chatml")


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def _pair(value: Any, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an int or a pair (height, width), got {value!r}") from None
    return (h, w)


@dataclass(frozen=True)
class VisionConfig:
    """A ViT run frame by frame; features are ``hidden_states[select_layer]`` (index 0 = embeddings).

    ``kind="clip"`` has a CLS token and a pre-LayerNorm; ``kind="siglip"`` (SigLIP, Oryx-ViT) has
    neither and resizes its learned ``position_grid`` x ``position_grid`` table to the input's patch
    grid, so it runs at native resolution.
    """

    kind: str
    image_size: tuple[int, int]
    patch_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    hidden_act: str
    layer_norm_eps: float
    select_layer: int
    drop_cls: bool
    position_grid: int
    position_interpolation: str = "bilinear"
    image_mean: tuple[float, float, float] = CLIP_MEAN
    image_std: tuple[float, float, float] = CLIP_STD
    resize: str = "bilinear"

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_size", _pair(self.image_size, "vision.image_size"))
        object.__setattr__(self, "image_mean", tuple(float(v) for v in self.image_mean))
        object.__setattr__(self, "image_std", tuple(float(v) for v in self.image_std))
        _require(self.kind in ("clip", "siglip"), f"vision.kind must be 'clip' or 'siglip', got {self.kind!r}")
        h, w = self.image_size
        _require(self.patch_size > 0, f"vision.patch_size must be positive, got {self.patch_size}")
        _require(h % self.patch_size == 0 and w % self.patch_size == 0,
                 f"vision.image_size {h}x{w} is not a multiple of patch_size {self.patch_size}: "
                 f"use a multiple such as {self.patch_size * max(1, h // self.patch_size)}")
        _require(self.hidden_size % self.num_heads == 0,
                 f"vision.hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        _require(-(self.num_layers + 1) <= self.select_layer <= self.num_layers and self.layers_used >= 1,
                 f"vision.select_layer {self.select_layer} is outside 1..{self.num_layers} "
                 f"(or -{self.num_layers}..-1) for a {self.num_layers}-block tower")
        _require(not (self.drop_cls and self.kind != "clip"), "vision.drop_cls needs a CLS token: only kind='clip' has one")
        if self.kind == "clip":
            _require(self.grid == (self.position_grid, self.position_grid),
                     f"a CLIP tower runs only at its trained size: image_size must be "
                     f"{self.position_grid * self.patch_size}, got {h}x{w}")
        _require(self.position_interpolation in ("bilinear", "bicubic"),
                 f"vision.position_interpolation must be 'bilinear' or 'bicubic', got {self.position_interpolation!r}")
        _require(self.resize == "bilinear", f"vision.resize must be 'bilinear', got {self.resize!r}")
        _require(len(self.image_mean) == 3 and len(self.image_std) == 3 and min(self.image_std) > 0,
                 "vision.image_mean and image_std need 3 values each, std > 0")

    @property
    def grid(self) -> tuple[int, int]:
        """Patch grid (rows, cols) of one frame."""
        return (self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size)

    @property
    def layers_used(self) -> int:
        """How many blocks run: later blocks cannot change ``hidden_states[select_layer]``."""
        return self.select_layer if self.select_layer >= 0 else self.num_layers + 1 + self.select_layer


@dataclass(frozen=True)
class SlowFastConfig:
    """The two pathways over per-frame grids ``[T, H*W, D]``, slow tokens first.

    Slow frames: ``linspace`` takes ``int(torch.linspace(0, T, slow_frames + 1))[:-1]`` (SF-LLaVA
    v1; repeats frames when T < slow_frames); ``stride`` takes frames ``0, s, 2s, ... < T``.
    Slow pooling: ``1d_*`` pools neighbouring pairs of the flattened row-major grid; ``2d_*`` pools
    ``slow_kernel`` blocks (stride = kernel). Fast: every frame average-pooled to ``fast_grid``.
    ``separator`` adds one learned row between slow and fast tokens.
    """

    slow_frames: int = 10
    slow_rule: str = "linspace"
    slow_stride: int = 4
    slow_pool: str = "1d_max"
    slow_kernel: tuple[int, int] = (2, 2)
    fast_grid: tuple[int, int] = (4, 4)
    separator: bool = False
    pool_position: str = "after_projector"

    _STRING = re.compile(r"^slowfast-slow_(\d+)frms_spatial_(1d|2d)_(max|avg)_pool-fast_(\d+)x(\d+)$")

    def __post_init__(self) -> None:
        object.__setattr__(self, "slow_kernel", _pair(self.slow_kernel, "slowfast.slow_kernel"))
        object.__setattr__(self, "fast_grid", _pair(self.fast_grid, "slowfast.fast_grid"))
        _require(self.slow_rule in SLOW_RULES, f"slowfast.slow_rule must be one of {SLOW_RULES}, got {self.slow_rule!r}")
        _require(self.slow_frames >= 1, f"slowfast.slow_frames must be >= 1, got {self.slow_frames}")
        _require(self.slow_stride >= 1, f"slowfast.slow_stride must be >= 1, got {self.slow_stride}")
        _require(self.slow_pool in SLOW_POOLS, f"slowfast.slow_pool must be one of {SLOW_POOLS}, got {self.slow_pool!r}")
        _require(min(self.slow_kernel) >= 1, f"slowfast.slow_kernel must be positive, got {self.slow_kernel}")
        _require(min(self.fast_grid) >= 1, f"slowfast.fast_grid must be positive, got {self.fast_grid}")
        _require(self.pool_position in POOL_POSITIONS,
                 f"slowfast.pool_position must be one of {POOL_POSITIONS}, got {self.pool_position!r}")

    @classmethod
    def from_string(cls, s: str, **extra: Any) -> "SlowFastConfig":
        """Parse the authors' string, e.g. ``slowfast-slow_10frms_spatial_1d_max_pool-fast_4x4``."""
        m = cls._STRING.match(s.strip())
        if not m:
            raise ConfigError(
                f"cannot parse slowfast string {s!r}: expected 'slowfast-slow_{{N}}frms_{{POOL}}-fast_{{H}}x{{W}}' "
                "with POOL one of spatial_1d_max_pool, spatial_1d_avg_pool, spatial_2d_max_pool, spatial_2d_avg_pool")
        n, dim, op, fh, fw = m.groups()
        return cls(slow_frames=int(n), slow_rule="linspace", slow_pool=f"{dim}_{op}", slow_kernel=(2, 2),
                   fast_grid=(int(fh), int(fw)), **extra)

    def to_string(self) -> str:
        """The authors' string; only configs their grammar can express have one."""
        if self.slow_rule != "linspace" or self.slow_kernel != (2, 2) or self.separator:
            raise ConfigError(
                "this slowfast config has no string form: the authors' grammar covers only the linspace "
                f"slow rule, 2x2 slow kernels and no separator (got rule={self.slow_rule}, "
                f"kernel={self.slow_kernel}, separator={self.separator})")
        dim, op = self.slow_pool.split("_")
        return (f"slowfast-slow_{self.slow_frames}frms_spatial_{dim}_{op}_pool-"
                f"fast_{self.fast_grid[0]}x{self.fast_grid[1]}")


@dataclass(frozen=True)
class ProjectorConfig:
    """``Linear(input_size, output_size) -> act -> Linear(output_size, output_size)`` (LLaVA mlp2x_gelu)."""

    input_size: int
    output_size: int
    act: str = "gelu"
    bias: bool = True

    def __post_init__(self) -> None:
        _require(self.input_size > 0 and self.output_size > 0, "projector sizes must be positive")
        _require(self.act in ("gelu", "gelu_pytorch_tanh", "quick_gelu", "silu"),
                 f"projector.act must be gelu, gelu_pytorch_tanh, quick_gelu or silu, got {self.act!r}")


@dataclass(frozen=True)
class TextConfig:
    """A causal decoder built from transformers' Qwen2 or LLaMA modules."""

    family: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    rms_norm_eps: float
    rope_theta: float
    tie_word_embeddings: bool
    max_position_embeddings: int
    head_dim: int | None = None
    rope_scaling: dict | None = None
    bos_id: int | None = None
    eos_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "eos_ids", tuple(int(i) for i in self.eos_ids))
        _require(self.family in ("qwen2", "llama"), f"text.family must be 'qwen2' or 'llama', got {self.family!r}")
        _require(self.num_heads % self.num_kv_heads == 0,
                 f"text.num_heads {self.num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}")
        _require(self.head_dim is not None or self.hidden_size % self.num_heads == 0,
                 f"text.hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}: set head_dim")
        _require(len(self.eos_ids) >= 1, "text.eos_ids needs at least one end-of-sequence id")
        for name, i in [("bos_id", self.bos_id)] + [("eos_ids", e) for e in self.eos_ids]:
            _require(i is None or 0 <= i < self.vocab_size, f"text.{name} {i} is outside the vocabulary (size {self.vocab_size})")

    @property
    def kv_head_dim(self) -> int:
        return self.head_dim or self.hidden_size // self.num_heads


@dataclass(frozen=True)
class PromptConfig:
    """Chat template; ``<image>`` marks where the visual tokens go."""

    template: str
    system: str = ""
    answer_prefix: str = ""

    def __post_init__(self) -> None:
        _require(self.template in TEMPLATES, f"prompt.template must be one of {TEMPLATES}, got {self.template!r}")


@dataclass(frozen=True)
class ModelConfig:
    """A whole SlowFast-LLaVA: vision tower -> slowfast pathways / projector -> decoder.

    ``inferred`` lists the dotted field paths whose values are reconstructions (SPEC [I]), not
    read in the authors' code; every one of them can be overridden.
    """

    name: str
    family: str
    vision: VisionConfig
    slowfast: SlowFastConfig
    projector: ProjectorConfig
    text: TextConfig
    prompt: PromptConfig
    num_frames: int = 50
    frame_rule: str = "segment_midpoint"
    max_new_tokens: int = 128
    context_length: int = 4096
    inferred: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "inferred", tuple(self.inferred))
        _require(self.family in ("v1", "1.5"), f"family must be 'v1' or '1.5', got {self.family!r}")
        _require(self.num_frames >= 1, f"num_frames must be >= 1, got {self.num_frames}")
        _require(self.frame_rule in FRAME_RULES, f"frame_rule must be one of {FRAME_RULES}, got {self.frame_rule!r}")
        _require(self.max_new_tokens >= 1, f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        _require(self.context_length >= 1, f"context_length must be >= 1, got {self.context_length}")
        _require(self.projector.input_size == self.vision.hidden_size,
                 f"projector.input_size {self.projector.input_size} must equal vision.hidden_size {self.vision.hidden_size}")
        _require(self.projector.output_size == self.text.hidden_size,
                 f"projector.output_size {self.projector.output_size} must equal text.hidden_size {self.text.hidden_size}")
        gh, gw = self.vision.grid
        kh, kw = self.slowfast.slow_kernel
        fh, fw = self.slowfast.fast_grid
        if self.slowfast.slow_pool.startswith("2d"):
            _require(kh <= gh and kw <= gw, f"slowfast.slow_kernel {kh}x{kw} is larger than the {gh}x{gw} patch grid")
        else:
            _require(gh * gw >= 2, "1-D slow pooling needs at least 2 tokens per frame")
        _require(fh <= gh and fw <= gw,
                 f"slowfast.fast_grid {fh}x{fw} is larger than the {gh}x{gw} patch grid: use at most {gh}x{gw}")

    @property
    def pool_dim(self) -> int:
        """Width of the features slowfast_pool sees (and of the separator row)."""
        return self.vision.hidden_size if self.slowfast.pool_position == "before_projector" else self.text.hidden_size

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        try:
            return cls(
                name=d["name"], family=d["family"],
                vision=VisionConfig(**d["vision"]), slowfast=SlowFastConfig(**d["slowfast"]),
                projector=ProjectorConfig(**d["projector"]), text=TextConfig(**d["text"]),
                prompt=PromptConfig(**d["prompt"]),
                **{k: d[k] for k in ("num_frames", "frame_rule", "max_new_tokens", "context_length", "inferred") if k in d},
            )
        except (KeyError, TypeError) as e:
            raise ConfigError(f"model config is malformed: {e}") from None


_SECTIONS = ("vision", "slowfast", "projector", "text", "prompt")


def _coerce(current: Any, value: Any) -> Any:
    """Parse CLI strings ('16', '2x2', 'true') to the type of the field they replace."""
    if not isinstance(value, str) or isinstance(current, str):
        return value
    v = value.strip()
    if isinstance(current, bool):
        if v.lower() in ("1", "true", "yes", "on"):
            return True
        if v.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"expected true/false, got {value!r}")
    try:
        if isinstance(current, int):
            return int(v)
        if isinstance(current, float):
            return float(v)
        if isinstance(current, tuple):
            parts = re.split(r"[x,]", v)
            return tuple(type(current[0])(p) if current else int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"cannot parse {value!r} as {type(current).__name__}") from None
    if current is None:
        for conv in (int, float):
            try:
                return conv(v)
            except ValueError:
                pass
    return value


def apply_overrides(cfg: ModelConfig, overrides: dict[str, Any]) -> ModelConfig:
    """Return ``cfg`` with dotted (``slowfast.slow_frames``) or ``__`` keys replaced; re-validates.

    ``slowfast`` may also be given whole, as the authors' string.
    """
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {s: {} for s in _SECTIONS}
    for key, value in overrides.items():
        path = key.replace("__", ".").split(".")
        if len(path) == 1 and path[0] == "slowfast" and isinstance(value, str):
            top["slowfast"] = SlowFastConfig.from_string(value, separator=cfg.slowfast.separator,
                                                         pool_position=cfg.slowfast.pool_position)
        elif len(path) == 1:
            if path[0] not in {f.name for f in dataclasses.fields(ModelConfig)} or path[0] in _SECTIONS:
                raise ConfigError(f"unknown config field {key!r}")
            top[path[0]] = _coerce(getattr(cfg, path[0]), value)
        elif len(path) == 2 and path[0] in _SECTIONS:
            section = getattr(cfg, path[0])
            if path[1] not in {f.name for f in dataclasses.fields(section)}:
                raise ConfigError(f"unknown config field {key!r}; {path[0]} has "
                                  f"{', '.join(f.name for f in dataclasses.fields(section))}")
            nested[path[0]][path[1]] = _coerce(getattr(section, path[1]), value)
        else:
            raise ConfigError(f"unknown config field {key!r}")
    for s, changes in nested.items():
        if changes:
            base = top.get(s, getattr(cfg, s))
            top[s] = dataclasses.replace(base, **changes)
    return dataclasses.replace(cfg, **top) if top else cfg
