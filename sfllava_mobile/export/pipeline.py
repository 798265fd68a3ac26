"""The export every backend shares: lengths, checks, the atomic bundle, golden vectors, manifest.

Entry point: :func:`export` (model, output folder, ExportConfig). The backend named by the config
writes its artifacts (``backend.build``); this module writes everything else around them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sfllava_mobile import bundle
from sfllava_mobile.errors import ConfigError
from sfllava_mobile.fsutil import atomic_dir
from sfllava_mobile.log import stage
from sfllava_mobile.manifest import (Calibration, Context, Export, HeldOutQuality, Manifest, QuantSummary, Quantization,
                                     Size, write)
from sfllava_mobile.memory import release

from ..quantize import calibration, coverage, recipes
from . import backend as backends
from .config import ExportConfig, resolve

log = logging.getLogger("sfllava_mobile")


@dataclass
class ExportResult:
    bundle: Path
    manifest: Manifest
    programs: object  # the eager (quantized) twin when the backend kept one, for parity in the same process
    timings: dict[str, float] = field(default_factory=dict)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def export(model, out: str | Path, config: ExportConfig, source: str | Path | None = None,
           overrides: dict | None = None, inplace: bool = False, vision_tower: str | Path | None = None) -> ExportResult:
    """Export ``model`` (a loaded VideoLLM) to a bundle folder ``out``; atomic, no overwrite by default.

    ``source``, ``overrides`` and ``vision_tower`` (how the model was loaded) go into the manifest
    so that ``verify`` can rebuild the reference later. ``inplace`` quantizes the model's own
    modules instead of copies (for models near the memory limit): the model is consumed and the
    result carries no eager programs.
    """
    be = backends.get(config.backend)
    timings: dict[str, float] = {}
    peaks: dict[str, float] = {}
    t_all = time.perf_counter()
    r = resolve(config, model.config)
    recipe = recipes.get(config.quant, config.backend)
    if model.tokenizer is None:
        raise ConfigError("the model has no tokenizer: load it from a checkpoint folder")
    if model.tokenizer.vocab_size > model.config.text.vocab_size:
        raise ConfigError(f"tokenizer has {model.tokenizer.vocab_size} tokens but the decoder only "
                          f"{model.config.text.vocab_size} logits: the runner would read past the logits")
    out = Path(out)
    cfg, tokenizer = model.config, model.tokenizer
    weights_dtype = {"text": _dtype_name(model.text_dtype), "vision": _dtype_name(model.dtype)}
    log.info("export %s to %s: %d frames -> %d visual tokens, max_seq_len %d, max_context_len %d, recipe %s, %s",
             cfg.name, config.backend, r.frames, r.visual_tokens, r.max_seq_len, r.max_context_len, recipe.name,
             config.options)
    with atomic_dir(out, overwrite=config.overwrite) as tmp:
        cal = None
        if recipe.fold is not None:
            with stage("calibrate", timings, peaks):
                cal = calibration.calibrate(model, recipe.fold, r.max_context_len)
        ctx = backends.BuildContext(model, tmp, r, recipe, config.options, inplace, timings, peaks,
                                    fold_scales=cal.scales if cal else None)
        built = be.build(ctx)
        if cal is not None:
            calibration.save_scales(tmp / calibration.SCALES_FILE, cal.scales)
        tokenizer.save_for_runner(tmp / "tokenizer.json", cfg.text.bos_id)
        bundle.write_json(tmp / "tokenizer_config.json",
                          tokenizer.config_for_apps(cfg.text.bos_id, cfg.text.eos_ids, r.max_context_len))
        summary = coverage.summary(built.coverage)
        floor = int(sum(torch.Size(row.shape).numel() * row.bits_per_weight / 8 for row in built.coverage))
        sizes = {name: bundle.artifact_bytes(tmp / name) for name in sorted(set(built.artifacts.values()))}
        total = sum(sizes.values())
        artifacts = {**built.artifacts, "tokenizer": "tokenizer.json", "tokenizer_config": "tokenizer_config.json",
                     "golden": "golden.json"}
        if cal is not None:
            artifacts["fold_scales"] = calibration.SCALES_FILE
        export_info = Export(options=config.options.to_dict(), timings_s={}, peak_rss_gb={}, weights_dtype=weights_dtype,
                             source=str(Path(source).resolve()) if source else None, overrides=overrides or {},
                             vision_tower=str(Path(vision_tower).resolve()) if vision_tower else None)
        manifest = Manifest(
            **bundle.shared_sections(cfg, r.frames, tokenizer), backend=config.backend, artifacts=artifacts, methods=built.methods,
            context=Context(max_seq_len=r.max_seq_len, max_context_len=r.max_context_len,
                            text_allowance=config.text_allowance, max_new_tokens=config.max_new_tokens, turns=config.turns,
                            **built.context),
            quantization=Quantization(recipe=recipe.name, description=recipe.description,
                                      summary=QuantSummary(**summary), coverage=[row.to_dict() for row in built.coverage],
                                      calibration=Calibration(**cal.info, scales=calibration.SCALES_FILE) if cal else None),
            size=Size(artifact_bytes=sizes, total_bytes=total, weights=summary["weights"], floor_bytes=floor,
                      ratio_to_floor=round(total / floor, 3) if floor else None),
            export=export_info, **{config.backend: built.section})
        programs = built.programs if not inplace else None
        del built
        release()
        with stage("golden", timings, peaks):
            # The app ports check their runtime against what this artifact answers (not the float
            # model: a 4-bit artifact's answer may differ), so the tokens come from the artifact.
            driver = be.driver(tmp, manifest)
            conv = bundle.golden_conversation(driver, cfg, tokenizer, r.frames, r.max_context_len)
            engine = driver.engine
            if cal is not None:
                manifest.quantization.calibration.quality = HeldOutQuality(**calibration.quality_report(driver, cal))
                cal = None
            del driver
            release()
            write(tmp / "golden.json", bundle.golden(cfg, tokenizer, r.frames, conv, engine))
            del conv
        manifest.export.timings_s = {k: round(v, 3) for k, v in timings.items()}
        manifest.export.peak_rss_gb = dict(peaks)
        write(tmp / "manifest.json", manifest)
    timings["total"] = time.perf_counter() - t_all
    log.info("bundle %s: %s %.1f MB (floor %.1f MB, x%.2f) in %.1f s", out, ", ".join(sizes), total / 1e6, floor / 1e6,
             manifest.size.ratio_to_floor or 0, timings["total"])
    return ExportResult(out, manifest, programs, timings)
