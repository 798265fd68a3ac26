"""Export settings: the shared config, one options class per backend, all validated before tracing."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from sfllava_mobile.config import ModelConfig
from sfllava_mobile.errors import ConfigError
from sfllava_mobile.ops import slowfast_token_count

from ..quantize import recipes

ATTENTIONS = ("custom", "generic")
PARTITIONERS = ("single", "two_pass_per_op")
KV_CACHES = ("fp32", "fp16", "int8")
COREML_TARGETS = ("iOS18", "iOS26")
COREML_PRECISIONS = ("float16", "float32")


@dataclass(frozen=True)
class ExecuTorchOptions:
    """``attention``: ``custom`` uses ExecuTorch's ``update_cache``/``custom_sdpa``; ``generic`` the
    backend-neutral cache. ``partitioner``: ``single`` (one XNNPACK partitioner over dynamic-quant and
    fp32 ops: fewest delegate calls) or ``two_pass_per_op`` (upstream llava's: each quantized linear
    alone, then the rest; kept to measure against). ``rewrites``: XNNPACK-friendly norms and ViT attention.
    ``vision_attention_frames``: frames whose ViT attention runs together (the rest waits), which bounds
    the encoder's working memory on long clips; ``None``: as many as keep one group's attention scores
    under 256 MB (``rewrites.attention_frames``); ``0``: every frame at once. ``shared_table``: for a
    tied decoder, ``token_embedding`` reads the LM head's int8 table (stored once, in ``model.ptd``
    beside ``model.pte``; the runner loads both) instead of a second 4-bit copy; needs a recipe
    whose head is 8-bit per channel (``8da4w-awq-h8``). ``kv_cache``: the decoder's KV cache dtype,
    ``fp32``, ``fp16`` (SDPA in float16: half the bytes) or ``int8`` (ExecuTorch's quantized cache and
    SDPA: a quarter of the bytes plus a scale and zero point per position and head); the last two need
    ``attention="custom"``. ``vision_frames``: frames the vision tower encodes in one pass (its whole
    blocks, normalization included; the per-frame features are kept for the pooling), which bounds the
    encoder's activations on long clips; ``0``: every frame in one pass. Each pass is unrolled in the
    graph with the same weights: phone runtimes share their packed weights (XNNPACK's weight cache,
    on in ExecuTorch's Android and iOS builds), the pip runtime here packs them once per pass."""

    attention: str = "custom"
    partitioner: str = "single"
    rewrites: bool = True
    vision_attention_frames: int | None = None
    shared_table: bool = False
    kv_cache: str = "fp32"
    vision_frames: int = 0

    def __post_init__(self) -> None:
        if self.vision_frames < 0:
            raise ConfigError(f"vision_frames must be >= 0 (0: every frame in one pass), got {self.vision_frames}")
        if self.kv_cache not in KV_CACHES:
            raise ConfigError(f"kv_cache must be one of {KV_CACHES}, got {self.kv_cache!r}")
        if self.kv_cache != "fp32" and self.attention != "custom":
            raise ConfigError(f"the {self.kv_cache} KV cache needs ExecuTorch's custom SDPA: use --attention custom")
        if self.attention not in ATTENTIONS:
            raise ConfigError(f"attention must be one of {ATTENTIONS}, got {self.attention!r}")
        if self.partitioner not in PARTITIONERS:
            raise ConfigError(f"partitioner must be one of {PARTITIONERS}, got {self.partitioner!r}")
        if self.vision_attention_frames is not None and self.vision_attention_frames < 0:
            raise ConfigError(f"vision_attention_frames must be >= 0 (0: all frames at once), "
                              f"got {self.vision_attention_frames}")
        if self.vision_attention_frames and not self.rewrites:
            raise ConfigError("vision_attention_frames needs the ViT attention rewrite; drop --no-rewrites")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CoreMLOptions:
    """``minimum_deployment_target``: iOS18 is the floor for Core ML state, fused SDPA, int4
    per-block weights and multifunction packages. ``compute_precision``: float16 (what the Neural
    Engine runs) or float32. ``prefill_chunk``: rows per ``prefill`` call of the decoder package;
    an app sends the rest of a prompt through ``decode`` one row at a time."""

    minimum_deployment_target: str = "iOS18"
    compute_precision: str = "float16"
    prefill_chunk: int = 64

    def __post_init__(self) -> None:
        if self.minimum_deployment_target not in COREML_TARGETS:
            raise ConfigError(f"Core ML state, int4 weights and multifunction packages need "
                              f"minimum_deployment_target >= iOS18; choose one of {COREML_TARGETS}, "
                              f"got {self.minimum_deployment_target!r}")
        if self.compute_precision not in COREML_PRECISIONS:
            raise ConfigError(f"compute_precision must be one of {COREML_PRECISIONS}, got {self.compute_precision!r}")
        if not 1 <= self.prefill_chunk <= 4096:
            raise ConfigError(f"prefill_chunk must be in 1..4096, got {self.prefill_chunk}")

    def to_dict(self) -> dict:
        return asdict(self)


OPTIONS = {"executorch": ExecuTorchOptions, "coreml": CoreMLOptions}
BACKENDS = tuple(OPTIONS)
# ExecuTorch: 4-bit decoder (AWQ + searched scales), 8-bit encoder: the compute-bound tower runs 1.6x
# faster on XNNPACK's int8 per-channel kernels than on its 4-bit group kernels (README, video TTFT).
DEFAULT_RECIPE = {"executorch": "8da4w-awq-v8", "coreml": "int4"}


FOLLOWUP_ALLOWANCE = 64  # positions for a follow-up's template and question (render_next_turn)


@dataclass(frozen=True)
class ExportConfig:
    """What to export, for any backend. ``frames`` defaults to the model's; lengths default from
    the token plan. ``quant`` defaults to the backend's recipe (8da4w / int4). ``options``: the
    backend's own options (default: that backend's defaults).

    ``max_seq_len``: most rows one ``text_decoder`` call takes; the ExecuTorch runner prefills the
    whole video in one call, so it must be >= the visual token count (and >= the longest text
    segment). ``max_context_len``: KV-cache positions = prompt + answers; by default the first
    question (``text_allowance``: room for template + question tokens) and ``turns`` answers of
    ``max_new_tokens``, each follow-up with ``FOLLOWUP_ALLOWANCE`` more for its template and question,
    capped at the decoder's positions.
    """

    backend: str = "executorch"
    quant: str | None = None  # None: the backend's DEFAULT_RECIPE
    frames: int | None = None
    max_seq_len: int | None = None
    max_context_len: int | None = None
    text_allowance: int = 256
    max_new_tokens: int = 128
    turns: int = 4
    verify: bool = True
    overwrite: bool = False
    options: ExecuTorchOptions | CoreMLOptions | None = field(default=None)

    def __post_init__(self) -> None:
        if self.backend not in OPTIONS:
            raise ConfigError(f"backend {self.backend!r} is not available; choose one of {BACKENDS}")
        if self.quant is None:
            object.__setattr__(self, "quant", DEFAULT_RECIPE[self.backend])
        recipes.get(self.quant, self.backend)
        if self.options is None:
            object.__setattr__(self, "options", OPTIONS[self.backend]())
        elif not isinstance(self.options, OPTIONS[self.backend]):
            raise ConfigError(f"the {self.backend} backend takes {OPTIONS[self.backend].__name__}, "
                              f"not {type(self.options).__name__}")
        if isinstance(self.options, ExecuTorchOptions) and self.options.shared_table:
            head = recipes.get(self.quant, self.backend).head_scheme
            if head is None or head.weight_bits != 8 or head.group:
                raise ConfigError(f"a shared table is the head's int8 per-channel table, and recipe {self.quant} "
                                  f"has a {head.label if head else 'float'} head; use --quant 8da4w-awq-h8")
        for name in ("frames", "max_seq_len", "max_context_len"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ConfigError(f"{name} must be >= 1, got {v}")
        if self.text_allowance < 16 or self.max_new_tokens < 1:
            raise ConfigError("text_allowance must be >= 16 and max_new_tokens >= 1")
        if self.turns < 1:
            raise ConfigError(f"turns (questions the context holds) must be >= 1, got {self.turns}")


@dataclass(frozen=True)
class ResolvedExport:
    frames: int
    visual_tokens: int
    max_seq_len: int
    max_context_len: int


def resolve(export: ExportConfig, model: ModelConfig) -> ResolvedExport:
    """Concrete lengths for ``model``; every limit that cannot hold is named with its fix."""
    frames = export.frames or model.num_frames
    n_vis = slowfast_token_count(model.slowfast, frames, model.vision.grid)
    seq = export.max_seq_len or max(n_vis, export.text_allowance)
    one = n_vis + export.text_allowance + export.max_new_tokens
    ctx = export.max_context_len or one + (export.turns - 1) * (export.max_new_tokens + FOLLOWUP_ALLOWANCE)
    limit = model.text.max_position_embeddings
    if not export.max_context_len and ctx > limit and not model.text.rope_scaling:
        ctx = max(limit, one)  # fewer follow-ups fit; the conversation's budget check says so when they run out
    if seq < n_vis:
        raise ConfigError(f"max_seq_len {seq} < {n_vis} visual tokens: the runner prefills the video in one call; "
                          f"use --max-seq-len >= {n_vis} or fewer frames")
    if ctx < n_vis + 16:
        raise ConfigError(f"max_context_len {ctx} leaves no room for text after {n_vis} visual tokens; use at least {n_vis + 64}")
    if seq >= ctx:
        seq = ctx - 1  # torch.export cannot bound a dynamic length by the cache length itself
    if ctx > limit and not model.text.rope_scaling:
        raise ConfigError(f"max_context_len {ctx} exceeds the decoder's {limit} positions; use fewer frames or a "
                          f"smaller --max-context-len")
    if isinstance(export.options, CoreMLOptions) and export.options.prefill_chunk > seq:
        raise ConfigError(f"prefill_chunk {export.options.prefill_chunk} > max_seq_len {seq}: use a smaller chunk")
    return ResolvedExport(frames, n_vis, seq, ctx)
