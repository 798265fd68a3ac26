"""Core ML export: the tiny 1.5 and v1 checkpoints and a transformers llava checkpoint, fp16 and
int4, three packages whose MIL programs pass parity through the app's call sequence (evaluated
with numpy on this host)."""

import json
import shutil

import numpy as np
import pytest

from sfllava_mobile import ConfigError
from sfllava_mobile.cli import main
from sfllava_mobile.export.config import CoreMLOptions, ExportConfig, resolve
from sfllava_mobile.export.parity import verify_bundle

from ..conftest import assert_bundle_matches_schema

pytestmark = pytest.mark.filterwarnings("ignore")

MATRIX = [("ours", "none"), ("ours", "int4"), ("llava_repo", "none"), ("llava_repo", "int4"), ("llava", "none"),
          ("llava", "int4")]


@pytest.mark.parametrize("layout,quant", MATRIX)
def test_exports_and_passes_parity(exported_bundle, layout, quant):
    e = exported_bundle(layout, quant, "coreml")
    rep = e.report
    failing = {f"{sec}.{k}": v["failures"] for sec in ("vs_float", "vs_eager_recipe") if sec in rep
               for k, v in rep[sec].items() if not v["pass"]}
    assert rep["pass"], failing
    assert rep["backend"] == "coreml" and "semantics, not Apple's kernels" in rep["engine"]
    assert_bundle_matches_schema(e.bundle)
    files = {p.name for p in e.bundle.iterdir()}
    assert files == {"vision_encoder.mlpackage", "token_embedding.mlpackage", "text_decoder.mlpackage",
                     "tokenizer.json", "tokenizer_config.json", "manifest.json", "golden.json", "parity.json"}
    m = json.loads((e.bundle / "manifest.json").read_text())
    cm, layers = m["coreml"], e.model.config.text.num_layers
    assert cm["minimum_deployment_target"] == "iOS18" and cm["compute_precision"] == "float16"
    assert cm["functions"]["text_decoder.mlpackage"] == ["decode", "prefill"]
    assert len(cm["states"]) == 2 * layers and all(s["dtype"] == "float16" for s in cm["states"])
    assert cm["slowfast_pool_ops"] >= 3 and m.get("executorch") is None
    dec_ops = cm["mil_ops"]["text_decoder.mlpackage"]
    assert dec_ops["read_state"] == 2 * layers and dec_ops["coreml_update_state"] == 2 * layers
    assert dec_ops["scaled_dot_product_attention"] == layers
    rows = m["quantization"]["coverage"]
    held = sum(n.get("constexpr_blockwise_shift_scale", 0) for n in cm["mil_ops"].values())
    if quant == "int4":
        linears = [r for r in rows if r["kind"] == "linear"]
        assert linears and all(r["scheme"] in ("int4-block32", "int8-per-channel") for r in linears)
        assert all(r["shape"][1] % 32 for r in rows if r["scheme"] == "int8-per-channel")
        assert held == sum(r["bits"] is not None for r in rows)  # every planned weight is compressed in a package
        assert rep["vs_eager_recipe"]["text_decoder"]["kl"] < 0.02
        # weight.bin alone is near the floor; tiny packages are mostly program text (ratio_to_floor 2-4)
        assert sum(cm["weight_bin_bytes"].values()) < 1.8 * m["size"]["floor_bytes"]
    else:
        assert held == 0 and all(r["scheme"] == "fp16" for r in rows)
        assert rep["vs_float"]["text_decoder"]["rel"] < 0.01 and rep["vs_float"]["greedy"]["exact"]


def test_int4_is_smaller_than_fp16(exported_bundle):
    size = {q: json.loads((exported_bundle("ours", q, "coreml").bundle / "manifest.json").read_text())["size"]
            for q in ("none", "int4")}
    assert size["int4"]["total_bytes"] < 0.6 * size["none"]["total_bytes"]


def _weight_bin(bundle, package):
    return bundle / package / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"


def _largest_blob_span(data: bytes) -> tuple[int, int]:
    """(start, end) of the largest compressed (not fp16/fp32) blob's data in weight.bin: each blob
    starts with a 64-byte header (0xDEADBEEF sentinel, storage dtype, data size). Float blobs are
    skipped: the RoPE tables grow with the context and can outsize a tiny model's weights, and their
    far rows are never read by a short parity run."""
    import struct

    blobs = []
    for i in range(0, len(data) - 3, 64):
        if data[i:i + 4] == b"\xef\xbe\xad\xde":
            _, dtype, size = struct.unpack_from("<IIQ", data, i)
            if dtype not in (1, 2):  # 1: float16, 2: float32
                blobs.append((size, i + 64))
    size, start = max(blobs)
    return start, start + size


@pytest.mark.parametrize("package,component", [("text_decoder.mlpackage", "text_decoder"),
                                               ("vision_encoder.mlpackage", "vision_encoder")])
def test_parity_catches_corrupted_weights(exported_bundle, tmp_path, package, component):
    """Overwrite the middle of a package's largest int4 weight with noise: parity must fail."""
    e = exported_bundle("ours", "int4", "coreml")
    broken = tmp_path / "b"
    shutil.copytree(e.bundle, broken)
    path = _weight_bin(broken, package)
    data = bytearray(path.read_bytes())
    lo, hi = _largest_blob_span(bytes(data))
    mid = (hi - lo) // 4
    data[lo + mid:hi - mid] = np.random.default_rng(0).integers(0, 256, hi - lo - 2 * mid, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    report = verify_bundle(broken, model=e.model, eager_programs=e.result.programs, cases=1, steps=4)
    assert not report["pass"] and not report["vs_eager_recipe"][component]["pass"]


def test_unreadable_package_is_a_one_line_error(exported_bundle, tmp_path, capsys):
    e = exported_bundle("ours", "int4", "coreml")
    broken = tmp_path / "b"
    shutil.copytree(e.bundle, broken)
    _weight_bin(broken, "text_decoder.mlpackage").write_bytes(b"\0" * 64)
    assert main(["-q", "verify", str(broken), "--cases", "1", "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "text_decoder.mlpackage: not a readable Core ML package" in err
    assert err.count("\n") == 1


def test_options_are_validated_before_tracing(exported_bundle):
    with pytest.raises(ConfigError, match="minimum_deployment_target >= iOS18"):
        CoreMLOptions(minimum_deployment_target="iOS17")
    with pytest.raises(ConfigError, match="unknown coreml quantization recipe '8da4w'"):
        ExportConfig(backend="coreml", quant="8da4w")
    model = exported_bundle("ours", "int4", "coreml").model
    with pytest.raises(ConfigError, match="prefill_chunk"):
        resolve(ExportConfig(backend="coreml", options=CoreMLOptions(prefill_chunk=2048)), model.config)


def test_cli_refuses_the_other_backends_flags(tiny15_dir, tmp_path, capsys):
    code = main(["-q", "export", "--checkpoint", str(tiny15_dir), "--backend", "coreml", "--partitioner", "single",
                 "--out", str(tmp_path / "o")])
    assert code == 2 and "--partitioner is an option of --backend executorch" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
