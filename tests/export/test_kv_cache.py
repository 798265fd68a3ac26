"""The smaller KV caches (``--kv-cache fp16|int8``): ExecuTorch's custom SDPA in float16, and its
quantized cache and SDPA; parity through the runtime and the C++ runner for a question and its
follow-up, and bounds that fail when the int8 cache's scales are wrong."""

import json

import pytest
import torch

from sfllava_mobile import ConfigError, load
from sfllava_mobile.export import export
from sfllava_mobile.export.config import ExecuTorchOptions, ExportConfig
from sfllava_mobile.export.executorch_attention import CustomSdpaAttention, Fp16CacheAttention, Int8CacheAttention
from sfllava_mobile.export.parity import verify_bundle

from ..conftest import assert_bundle_matches_schema

pytestmark = pytest.mark.filterwarnings("ignore")


def _export(tiny15_dir, folder, kv_cache):
    model = load(tiny15_dir)
    result = export(model, folder, ExportConfig(quant="8da4w", options=ExecuTorchOptions(kv_cache=kv_cache)),
                    source=tiny15_dir)
    return model, result, verify_bundle(folder, model=model, eager_programs=result.programs)


@pytest.fixture(scope="module")
def int8_bundle(tiny15_dir, tmp_path_factory):
    return _export(tiny15_dir, tmp_path_factory.mktemp("kv") / "int8", "int8")


@pytest.mark.parametrize("cls,dtype,bytes_", [(Int8CacheAttention, torch.int8, 1), (Fp16CacheAttention, torch.float16, 2)])
def test_small_caches_match_the_float_cache_closely(cls, dtype, bytes_):
    torch.manual_seed(0)
    f, q = CustomSdpaAttention(8, 2, 16, 64, torch.float32), cls(8, 2, 16, 64, torch.float32)
    for start, s in ((0, 12), (12, 1), (13, 5)):
        args = (torch.randn(1, s, 8, 16), torch.randn(1, s, 2, 16), torch.randn(1, s, 2, 16), start)
        a, b = f(*args), q(*args)
        assert b.dtype == torch.float32 and torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), 0) > 0.999
    assert q.k_cache.dtype == dtype and q.k_cache.element_size() == bytes_


def test_int8_bundle_passes_parity_with_its_follow_up(int8_bundle):
    _, result, rep = int8_bundle
    assert rep["pass"], {k: v["failures"] for k, v in rep["vs_eager_recipe"].items() if not v["pass"]}
    assert rep["vs_eager_recipe"]["followup"]["pass"] and rep["checks"]["runner_conversation"]["pass"]
    m = json.loads((result.bundle / "manifest.json").read_text())
    assert m["export"]["options"]["kv_cache"] == "int8"
    assert_bundle_matches_schema(result.bundle)


def test_fp16_bundle_passes_parity_with_its_follow_up(tiny15_dir, tmp_path):
    _, result, rep = _export(tiny15_dir, tmp_path / "fp16", "fp16")
    assert rep["pass"] and rep["checks"]["runner_conversation"]["pass"]
    assert rep["vs_eager_recipe"]["followup"]["cosine"] > 0.999


def test_wrong_cache_scales_fail_parity(int8_bundle, tiny15_dir, monkeypatch):
    """The eager twin with scales written 10% too large: the artifact must no longer match it."""
    from sfllava_mobile.export import executorch_attention as ea
    from sfllava_mobile.export.executorch import eager_twin
    from sfllava_mobile.manifest import read_manifest

    model, result, _ = int8_bundle
    good = ea._per_token_int8
    monkeypatch.setattr(ea, "_per_token_int8", lambda x: (lambda q, s, z: (q, s * 1.1, z))(*good(x)))
    twin = eager_twin(load(tiny15_dir), read_manifest(result.bundle), result.bundle)
    rep = verify_bundle(result.bundle, model=model, eager_programs=twin)
    dec = rep["vs_eager_recipe"]["text_decoder"]
    assert not rep["pass"] and not dec["pass"], dec


def test_int8_cache_needs_the_custom_attention():
    for kv in ("int8", "fp16"):
        with pytest.raises(ConfigError, match="--attention custom"):
            ExecuTorchOptions(kv_cache=kv, attention="generic")
    with pytest.raises(ConfigError, match="kv_cache must be one of"):
        ExecuTorchOptions(kv_cache="bf16")
