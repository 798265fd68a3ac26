"""ExecuTorch export of the tiny model: float and 8da4w, parity through the runtime and the C++ runner."""

import json

import pytest
import torch

from sfllava_mobile import ConfigError, load
from sfllava_mobile.cli import main
from sfllava_mobile.export.config import ExportConfig, resolve
from sfllava_mobile.export import export
from sfllava_mobile.export.executorch_runtime import PteDriver
from sfllava_mobile.export.parity import verify_bundle

from ..conftest import assert_bundle_matches_schema

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def model(tiny15_dir):
    return load(tiny15_dir)


@pytest.fixture(scope="module", params=["none", "8da4w"])
def exported(request, exported_bundle):
    e = exported_bundle("ours", request.param)  # shared with every other export test
    return request.param, e.result, e.report


def test_bundle_contents_and_manifest(exported):
    quant, result, _ = exported
    files = {p.name for p in result.bundle.iterdir()}
    assert files == {"model.pte", "tokenizer.json", "tokenizer_config.json", "manifest.json", "golden.json", "parity.json"}
    assert_bundle_matches_schema(result.bundle)
    m = json.loads((result.bundle / "manifest.json").read_text())
    vision_input = m["methods"]["vision_encoder"]["inputs"][0]
    assert m["visual_tokens"] == 96 and vision_input["shape"] == [1, 3, 8 * 64, 64]
    assert vision_input["layout"] == "tall_image" and vision_input["dtype"] == "uint8"
    assert m["executorch"]["metadata_methods"]["get_max_seq_len"] >= m["visual_tokens"]
    assert m["executorch"]["metadata_methods"]["get_eos_ids"] == [511, 509]
    assert m["quantization"]["recipe"] == quant and m["parity"]["pass"]
    rows = m["quantization"]["coverage"]
    linears = [r for r in rows if r["kind"] == "linear"]
    assert len(linears) == 2 * 6 + 2 + 2 * 7 + 1  # vision blocks, projector, decoder layers, lm_head
    if quant == "8da4w":
        assert all(r["scheme"] != "float" for r in linears)
        fallback = [r for r in linears if r["note"]]  # the ViT's fc2 has width 136, not a multiple of 32
        assert fallback and all(r["shape"][1] % 32 and r["bits"] == 8 and r["group"] == 0 for r in fallback)
        assert any(r["kind"] == "embedding" and r["scheme"].startswith("int4") for r in rows)
    else:
        assert all(r["scheme"] == "float" for r in rows)
    golden = json.loads((result.bundle / "golden.json").read_text())
    assert golden["frame_indices"]["cases"]["128"] == [8, 24, 40, 56, 72, 88, 104, 120]
    assert len(golden["resize_small"]["uint8_hwc"]) == 7 * 9 * 3


def test_methods_and_metadata_through_the_runtime(exported):
    _, result, _ = exported
    pte = PteDriver(result.bundle / "model.pte")
    assert set(pte.program.method_names) >= {"vision_encoder", "token_embedding", "text_decoder", "get_max_seq_len",
                                             "get_max_context_len", "get_eos_ids", "use_kv_cache",
                                             "enable_dynamic_shape"}
    assert list(pte.metadata("get_eos_ids")) == [511, 509] and pte.metadata("use_kv_cache")[0] is True
    image = torch.zeros(1, 3, 8 * 64, 64, dtype=torch.uint8)
    assert tuple(pte.vision(image, None).shape) == (1, 96, 64)


def test_parity_passes_with_the_named_bounds(exported):
    quant, _, report = exported
    assert report["pass"], report
    assert report["checks"]["runner"]["text_equal"] and report["checks"]["runner"]["runner_pieces"]
    if quant == "none":
        assert report["vs_float"]["greedy"]["exact"] and report["vs_float"]["text_decoder"]["rel"] < 1e-4
    else:
        assert report["vs_eager_recipe"]["text_decoder"]["top1"] >= 0.9
        assert "vs_float" in report and report["vs_float"]["text_decoder"]["cosine"] > 0.8


def test_delegation_report_names_what_stays_outside(exported):
    quant, result, _ = exported
    d = result.manifest.executorch.delegation
    assert d["vision_encoder"].delegate_calls <= 4  # the 8da4w bundle's grouped ViT attention stays inside too
    assert result.manifest.export.options["vision_attention_frames"] == (1 if quant == "8da4w" else None)
    assert d["text_decoder"].outside_delegate["llama.update_cache.out"] == 4  # k and v, 2 layers
    assert "aten.native_layer_norm.out" not in d["vision_encoder"].outside_delegate


def test_parity_catches_a_broken_artifact(exported, model, tmp_path):
    """Swap in a program exported from different weights: parity must fail, not shrug."""
    quant, result, _ = exported
    import shutil

    other = load(result.manifest.export.source)
    with torch.no_grad():
        other.projector.linear_2.weight.mul_(-1.0)
    broken = tmp_path / "broken"
    export(other, broken, ExportConfig(quant=quant))
    shutil.copytree(result.bundle, tmp_path / "b")
    shutil.copy(broken / "model.pte", tmp_path / "b" / "model.pte")
    report = verify_bundle(tmp_path / "b", model=model, eager_programs=None if quant == "none" else result.programs)
    assert not report["pass"]
    section = report["vs_float"] if quant == "none" else report["vs_eager_recipe"]
    assert not section["vision_encoder"]["pass"]


def test_export_config_is_validated_before_tracing(model, tmp_path):
    with pytest.raises(ConfigError, match="unknown executorch quantization recipe 'int3'"):
        ExportConfig(quant="int3")
    with pytest.raises(ConfigError, match="max_seq_len 50 < 96 visual tokens"):
        resolve(ExportConfig(max_seq_len=50), model.config)
    with pytest.raises(ConfigError, match="exceeds the decoder's 1024 positions"):
        resolve(ExportConfig(frames=200), model.config)
    with pytest.raises(ConfigError, match="backend 'tflite'"):
        ExportConfig(backend="tflite")
    assert not (tmp_path / "x").exists()


def test_cli_export_refuses_existing_output_and_bad_recipe(tiny15_dir, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    code = main(["-q", "export", "--checkpoint", str(tiny15_dir), "--quant", "8da4w", "--out", str(tmp_path / "out")])
    assert code == 2 and "already exists" in capsys.readouterr().err
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
    code = main(["-q", "export", "--checkpoint", str(tiny15_dir), "--quant", "int3", "--out", str(tmp_path / "o2")])
    assert code == 2 and "unknown executorch quantization recipe" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cli_verify_json(exported, capsys):
    _, result, _ = exported
    assert main(["-q", "verify", str(result.bundle), "--json", "--cases", "1", "--steps", "4"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pass"] and out["steps"] == 4


def test_fold_recipe_ships_its_scales_and_verify_reapplies_them(exported_bundle, tmp_path):
    """8da4w-awq: calibrated scales in the bundle, held-out quality in the manifest; verify rebuilds the
    eager twin with the bundle's scales, so scales that differ from the program's fail parity."""
    import shutil

    from safetensors.torch import load_file, save_file

    e = exported_bundle("ours", "8da4w-awq")
    assert e.report["pass"]
    assert_bundle_matches_schema(e.bundle)
    m = json.loads((e.bundle / "manifest.json").read_text())
    cal = m["quantization"]["calibration"]
    assert cal["method"] == "awq" and cal["tokens"] == 2048 and cal["scales"] == "fold_scales.safetensors"
    assert m["artifacts"]["fold_scales"] == "fold_scales.safetensors"
    mode = {f: (e.bundle / f).stat().st_mode & 0o777 for f in ("fold_scales.safetensors", "manifest.json")}
    assert mode["fold_scales.safetensors"] == mode["manifest.json"], mode  # safetensors alone writes 0600
    scales = load_file(str(e.bundle / "fold_scales.safetensors"))
    assert len(scales) == cal["groups_scaled"] > 0
    q = cal["quality"]
    assert q["scored_tokens"] > 100 and 0 < q["mean_kl"] < 5 and 0 < q["same_top1"] <= 1
    head = [r for r in m["quantization"]["coverage"] if r["name"].endswith("lm_head")]
    assert head and head[0]["bits"] == 4  # 8da4w-awq keeps the head at 4 bits (8da4w-awq-h8 does not)

    broken = tmp_path / "broken"
    shutil.copytree(e.bundle, broken)
    # Reversed channel order (a uniform factor would not do: the fold is invariant to it).
    save_file({k: v.flip(0).contiguous() for k, v in scales.items()}, str(broken / "fold_scales.safetensors"))
    report = verify_bundle(broken, model=e.model)
    assert not report["pass"]


def test_fold_recipes_are_validated():
    from sfllava_mobile.quantize.recipes import Recipe, Scheme

    with pytest.raises(ConfigError, match="fold must be one of"):
        Recipe("x", Scheme(4, 32), None, None, "", fold="gptq")
    with pytest.raises(ConfigError, match="8-bit dynamic activations"):
        Recipe("x", Scheme(4, 32, dynamic_act8=False), None, None, "", fold="awq")
    with pytest.raises(ConfigError, match="weight_algorithm"):
        Recipe("x", Scheme(4, 32), None, None, "", weight_algorithm="gptq")
