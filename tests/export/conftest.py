"""Session-wide exported bundles, one per (layout, recipe), shared by every export test.

Layouts: ``ours`` (SF-LLaVA-1.5-shaped, our format), ``llava_repo`` (SF-LLaVA v1: the LLaVA
repo's layout with a separate CLIP folder), and transformers ``llava`` / ``llava_next`` /
``llava_onevision`` checkpoints written by ``save_pretrained``. The v1-pathway layouts export
4 frames, fewer than the 10 slow frames, so the slow pathway repeats frames (the case that
once failed ``run_decompositions``).
"""

from __future__ import annotations

import pytest

from sfllava_mobile import load
from sfllava_mobile.export.config import ExportConfig
from sfllava_mobile.export.executorch import export
from sfllava_mobile.export.parity import verify_bundle
from sfllava_mobile.tiny import init_tiny

from ..conftest import make_hf_llava

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
    """``(layout, recipe) -> Exported``: each bundle is exported and verified once per session."""
    cache = {}
    models = {}

    def get(layout: str, quant: str) -> Exported:
        key = (layout, quant)
        if key not in cache:
            ckpt = layout_checkpoint(layout)
            if layout not in models:
                models[layout] = load(ckpt)
            model = models[layout]
            out = tmp_path_factory.mktemp("bundles") / f"{layout}-{quant}"
            result = export(model, out, ExportConfig(quant=quant, frames=FRAMES[layout]), source=ckpt)
            report = verify_bundle(out, model=model, eager_programs=result.programs)
            cache[key] = Exported(layout, quant, ckpt, model, result, report)
        return cache[key]

    return get
