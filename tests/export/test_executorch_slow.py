"""Real shapes (slow; `make test-slow`): a Qwen2.5-0.5B-shaped decoder behind the tiny ViT,
exported 8da4w, with parity through the runtime and the C++ runner."""

import sys
from pathlib import Path

import pytest

from sfllava_mobile import load
from sfllava_mobile.export.config import ExportConfig
from sfllava_mobile.export import export
from sfllava_mobile.export.parity import verify_bundle

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]


def test_qwen05b_shape_8da4w_parity(tmp_path):
    from executorch_llm import make_checkpoint

    ckpt = make_checkpoint("qwen2.5-0.5b", tmp_path / "ckpt")
    model = load(ckpt)
    result = export(model, tmp_path / "bundle", ExportConfig(quant="8da4w", frames=32), source=ckpt)
    report = verify_bundle(result.bundle, model=model, eager_programs=result.programs, cases=2, steps=16)
    assert report["pass"], report
    size = result.manifest.size
    assert size.ratio_to_floor < 1.1
    assert result.manifest.executorch.delegation["text_decoder"].delegate_calls <= 2 * 24 + 2
