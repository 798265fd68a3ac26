"""The export matrix: every checkpoint layout and both pathway families export to ExecuTorch and
pass parity through the runtime and the stock C++ runner."""

import json

import pytest

from sfllava_mobile.ops import slowfast_token_count

from ..conftest import assert_bundle_matches_schema

pytestmark = pytest.mark.filterwarnings("ignore")

MATRIX = [("llava_repo", "none"), ("llava_repo", "8da4w"), ("llava", "none"), ("llava", "8da4w"),
          ("llava_next", "8da4w"), ("llava_onevision", "8da4w"),
          ("llava_repo", "8da4w-awq-v8")]  # the default recipe on the v1 (LLaMA decoder) layout too


@pytest.mark.parametrize("layout,quant", MATRIX)
def test_layout_exports_and_passes_parity(exported_bundle, layout, quant):
    e = exported_bundle(layout, quant)
    rep = e.report
    failing = {f"{sec}.{k}": v["failures"] for sec in ("vs_float", "vs_eager_recipe") if sec in rep
               for k, v in rep[sec].items() if not v["pass"]}
    assert rep["pass"], failing or rep["checks"]["runner"]
    assert rep["checks"]["runner"]["text_equal"] and rep["checks"]["runner"]["runner_pieces"]
    assert_bundle_matches_schema(e.bundle)
    m = json.loads((e.bundle / "manifest.json").read_text())
    cfg = e.model.config
    assert m["visual_tokens"] == slowfast_token_count(cfg.slowfast, 4, cfg.vision.grid)
    # v1 pathways at 4 frames: 10 slow frames (repeats) x 1-D pairs + 4 x fast grid
    assert cfg.slowfast.slow_frames == 10 and m["visual_tokens"] == 10 * (cfg.vision.grid[0] * cfg.vision.grid[1] // 2) + 4 * 16
    assert m["parity"]["pass"] and m["parity"]["teacher_tokens"] == 64
    if quant == "none":
        assert rep["vs_float"]["greedy"]["exact"] and rep["vs_float"]["text_decoder"]["top1"] == 1.0
    else:
        assert rep["vs_eager_recipe"]["text_decoder"]["positions"] == 64
        assert rep["vs_eager_recipe"]["text_decoder"]["kl"] < 0.02


def test_llava_repo_bundle_verifies_from_disk(exported_bundle):
    """verify without the in-memory model: reference and eager twin are reloaded from the
    checkpoint (and its separate CLIP folder), one after the other."""
    from sfllava_mobile.export.parity import verify_bundle

    e = exported_bundle("llava_repo", "8da4w")
    rep = verify_bundle(e.bundle, cases=1, steps=4, teacher_tokens=16)
    assert rep["pass"] and rep["reference_dtype"] == {"text": "float32", "vision": "float32"}
    assert rep["engine"].startswith("the exported program (executorch.runtime")
    assert_bundle_matches_schema(e.bundle)  # with the parity summary verify wrote into the manifest
    assert set(rep["timings_s"]) >= {"load_reference_s", "reference_s", "build_eager_twin_s", "eager_twin_s",
                                     "artifact_s"}
    assert all(v > 0 for v in rep["peak_rss_gb"].values())
