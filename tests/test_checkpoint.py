import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import sfllava_mobile
from sfllava_mobile import CheckpointError, ConfigError, load
from sfllava_mobile.checkpoint import read_config, save
from sfllava_mobile.cli import main
from sfllava_mobile.model import VideoLLM

from .conftest import make_hf_llava, rewrite_json


def cli_fails(ckpt, message, capsys, *extra):
    """The CLI exits with 2 and one ``error:`` line holding ``message``."""
    capsys.readouterr()
    code = main(["-q", "generate", "--checkpoint", str(ckpt), "--video", "v.mp4", "--question", "q", *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1, err


def _state(path):
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def test_our_layout_round_trip(tiny15_dir, tmp_path):
    model = load(tiny15_dir)
    assert model.config.name == "tiny" and model.tokenizer is not None
    save(model, tmp_path / "again")
    again = load(tmp_path / "again")
    for (k, a), (k2, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)
    assert again.language_model.lm_head.weight is again.language_model.model.embed_tokens.weight  # tied


def test_llava_original_layout_loads_with_separate_tower(tinyv1_dir):
    model = load(tinyv1_dir)
    assert model.config.vision.kind == "clip" and model.config.vision.drop_cls
    assert model.config.slowfast.to_string() == "slowfast-slow_10frms_spatial_1d_max_pool-fast_4x4"
    assert model.config.prompt.template == "vicuna_v1" and model.config.text.bos_id == 1
    assert len(model.vision_tower.encoder.layers) == 2  # select_layer -2 of 3 blocks


def test_llava_original_weights_equal_what_was_written(tinyv1_dir):
    model = load(tinyv1_dir)
    llm = _state(tinyv1_dir / "model.safetensors")
    clip = _state(tinyv1_dir / "vision_tower" / "model.safetensors")
    assert torch.equal(model.projector.linear_1.weight, llm["model.mm_projector.0.weight"])
    assert torch.equal(model.language_model.lm_head.weight, llm["lm_head.weight"])
    assert torch.equal(model.vision_tower.encoder.layers[1].mlp.fc1.weight, clip["vision_model.encoder.layers.1.mlp.fc1.weight"])


def test_missing_vision_tower_folder_is_named(tinyv1_dir, tmp_path, capsys):
    ckpt = tmp_path / "v1"
    shutil.copytree(tinyv1_dir, ckpt)
    rewrite_json(ckpt / "config.json", mm_vision_tower="openai/clip-vit-large-patch14-336")
    with pytest.raises(CheckpointError, match="openai/clip-vit-large-patch14-336.*--vision-tower"):
        load(ckpt)
    model = load(ckpt, vision_tower_path=tinyv1_dir / "vision_tower")
    assert model.config.vision.kind == "clip"
    cli_fails(ckpt, "--vision-tower DIR", capsys)
    cli_fails(ckpt, "vision tower folder", capsys, "--vision-tower", str(tmp_path / "nowhere"))


@pytest.mark.parametrize("kind", ["llava", "llava_next", "llava_onevision"])
@pytest.mark.parametrize("naming", ["saved", "v4", "v5"])
def test_transformers_layouts_match_transformers_model(kind, naming, tmp_path):
    hf = make_hf_llava(kind, tmp_path / kind, naming)
    # The tiny towers have an 8x8 grid: the training-free default fast grid (4x4) fits.
    model = load(tmp_path / kind)
    cfg = model.config
    torch.manual_seed(1)
    pixels = torch.randn(3, 3, 56, 56)
    with torch.no_grad():
        ours = model.projector(model.vision_tower(pixels))
        out = hf.model.vision_tower(pixels, output_hidden_states=True)
        feats = out.hidden_states[hf.config.vision_feature_layer]
        if hf.config.vision_feature_select_strategy == "default":
            feats = feats[:, 1:]
        theirs = hf.model.multi_modal_projector(feats)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
        ids = torch.tensor([[3, 17, 99, 250, 7, 42]])
        ref = hf(input_ids=ids).logits
        mine = model.decoder_logits(model.embed_tokens()(ids))
        torch.testing.assert_close(mine, ref, rtol=1e-5, atol=1e-4)
    assert cfg.family == "v1" and cfg.slowfast.slow_frames == 10
    if kind == "llava":  # the public per-image path agrees too
        with torch.no_grad():
            public = hf.model.get_image_features(pixel_values=pixels)
        public = public.pooler_output if hasattr(public, "pooler_output") else public
        public = torch.stack(list(public)) if isinstance(public, (list, tuple)) else public
        torch.testing.assert_close(ours, public.reshape(ours.shape), rtol=1e-5, atol=1e-5)


def test_sharded_safetensors_with_index(tiny15_dir, tmp_path, capsys):
    ckpt = tmp_path / "sharded"
    ckpt.mkdir()
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(tiny15_dir / name, ckpt / name)
    state = _state(tiny15_dir / "model.safetensors")
    keys = sorted(state)
    shards = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    for fname, ks in shards.items():
        save_file({k: state[k] for k in ks}, str(ckpt / fname))
    index = {"metadata": {}, "weight_map": {k: f for f, ks in shards.items() for k in ks}}
    (ckpt / "model.safetensors.index.json").write_text(json.dumps(index))
    a, b = load(tiny15_dir), load(ckpt)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    (ckpt / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model-00002-of-00002.safetensors"):
        load(ckpt)
    cli_fails(ckpt, "lists 1 shard(s) that are not in", capsys)


def _copy_without_weights(src, dst):
    dst.mkdir()
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(src / name, dst / name)
    return _state(src / "model.safetensors")


def test_pickle_weights_refused_unless_allowed(tiny15_dir, tmp_path, capsys):
    ckpt = tmp_path / "pickled"
    state = _copy_without_weights(tiny15_dir, ckpt)
    torch.save(state, ckpt / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pickle.*--allow-pickle"):
        load(ckpt)
    model = load(ckpt, allow_pickle=True)
    assert torch.equal(model.projector.linear_1.weight, state["projector.linear_1.weight"])
    assert main(["plan", "--checkpoint", str(ckpt)]) == 0  # config only: no weights read
    cli_fails(ckpt, "holds only pickle weights (pytorch_model.bin)", capsys)


def test_pickle_with_objects_is_refused_even_when_allowed(tiny15_dir, tmp_path, capsys):
    ckpt = tmp_path / "evil"
    _copy_without_weights(tiny15_dir, ckpt)

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"x": Payload()}, ckpt / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load(ckpt, allow_pickle=True)
    cli_fails(ckpt, "torch.load(weights_only=True) refused", capsys, "--allow-pickle")


def test_mismatch_reports_missing_unexpected_misshaped_in_one_message(tiny15_dir, tmp_path, capsys):
    ckpt = tmp_path / "bad"
    state = _copy_without_weights(tiny15_dir, ckpt)
    del state["projector.linear_2.bias"]
    del state["language_model.model.norm.weight"]
    state["vision_tower.extra.weight"] = torch.zeros(2)
    state["projector.linear_1.weight"] = torch.zeros(3, 3)
    save_file(state, str(ckpt / "model.safetensors"))
    with pytest.raises(CheckpointError) as e:
        load(ckpt)
    msg = str(e.value)
    missing = msg.split("2 missing (")[1].split(")")[0]
    assert sorted(missing.split(", ")) == ["language_model.model.norm.weight", "projector.linear_2.bias"]
    assert "1 unexpected (vision_tower.extra.weight)" in msg
    assert "1 mis-shaped (projector.linear_1.weight: checkpoint [3, 3] vs model [64, 64])" in msg
    cli_fails(ckpt, "1 unexpected (vision_tower.extra.weight)", capsys)


def test_transformers_mismatch_uses_checkpoint_names(tmp_path, capsys):
    make_hf_llava("llava", tmp_path / "hf")
    path = tmp_path / "hf" / "model.safetensors"
    state = _state(path)
    del state["multi_modal_projector.linear_1.bias"]
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match=r"1 missing \(multi_modal_projector.linear_1.bias\)"):
        load(tmp_path / "hf")
    cli_fails(tmp_path / "hf", "does not match config", capsys)


def test_unsupported_transformers_settings_are_named(tmp_path, capsys):
    make_hf_llava("llava", tmp_path / "hf")
    rewrite_json(tmp_path / "hf" / "config.json", vision_feature_layer=[-2, -1])
    cli_fails(tmp_path / "hf", "features from several layers are not supported", capsys)
    rewrite_json(tmp_path / "hf" / "config.json", vision_feature_layer=-2, text_config={"model_type": "gpt2"})
    cli_fails(tmp_path / "hf", "text model_type 'gpt2' is not supported", capsys)
    rewrite_json(tmp_path / "hf" / "config.json", text_config={"model_type": "qwen2"})
    cli_fails(tmp_path / "hf", "lacks the key 'hidden_size'", capsys)


def test_llava_original_bad_projector_type(tinyv1_dir, tmp_path, capsys):
    ckpt = tmp_path / "v1"
    shutil.copytree(tinyv1_dir, ckpt)
    rewrite_json(ckpt / "config.json", mm_projector_type="linear")
    cli_fails(ckpt, "mm_projector_type 'linear' is not supported", capsys)


@pytest.mark.parametrize("setup,message", [
    (lambda d: None, "does not exist"),
    (lambda d: d.mkdir(), "no config.json"),
    (lambda d: (d.mkdir(), (d / "config.json").write_text("{nope")), "cannot parse"),
    (lambda d: (d.mkdir(), (d / "config.json").write_text('{"model_type": "bert"}')), "not a layout"),
    (lambda d: (d.mkdir(), (d / "config.json").write_text('{"format": "sfllava-mobile", "format_version": 9}')),
     "format_version 9"),
])
def test_folder_errors_exit_2(tmp_path, capsys, setup, message):
    d = tmp_path / "ckpt"
    setup(d)
    with pytest.raises(CheckpointError, match=message):
        load(d)
    cli_fails(d, message, capsys)


def test_missing_and_corrupt_weights(tiny15_dir, tmp_path, capsys):
    ckpt = tmp_path / "noweights"
    _copy_without_weights(tiny15_dir, ckpt)
    with pytest.raises(CheckpointError, match="no weights"):
        load(ckpt)
    cli_fails(ckpt, "no weights in", capsys)
    (ckpt / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="cannot read weights file"):
        load(ckpt)
    cli_fails(ckpt, "cannot read weights file", capsys)


def test_missing_tokenizer_and_mismatched_special_ids(tiny15_dir, tmp_path, capsys):
    ckpt = tmp_path / "notok"
    shutil.copytree(tiny15_dir, ckpt)
    (ckpt / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="no tokenizer.json"):
        load(ckpt)
    cli_fails(ckpt, "no tokenizer.json", capsys)
    (ckpt / "tokenizer.model").write_bytes(b"sp")
    cli_fails(ckpt, "convert it once with transformers", capsys)
    (ckpt / "tokenizer.json").write_text("{broken")
    cli_fails(ckpt, "cannot read tokenizer", capsys)
    shutil.copy(tiny15_dir / "tokenizer.json", ckpt / "tokenizer.json")
    with pytest.raises(CheckpointError, match="outside the tokenizer"):
        load(ckpt, **{"text.vocab_size": 2000, "text.eos_ids": "1500"})
    cli_fails(ckpt, "outside the tokenizer", capsys, "--set", "text.vocab_size=2000", "--set", "text.eos_ids=1500")


def test_overrides_apply_at_load(tiny15_dir):
    cfg, layout, _ = read_config(tiny15_dir, **{"slowfast.slow_frames": "2", "num_frames": "6"})
    assert layout == "sfllava" and cfg.slowfast.slow_frames == 2 and cfg.num_frames == 6
    model = load(tiny15_dir, slowfast__pool_position="after_projector", num_frames=6)
    assert model.config.num_frames == 6


def test_version_and_public_names():
    assert sfllava_mobile.__version__
    assert sfllava_mobile.VideoLLM is VideoLLM


def _bf16_copy(src, dst):
    """``src`` (our layout) with every tensor in bf16 except the decoder's final norm in fp32."""
    import shutil

    from safetensors import safe_open
    from safetensors.torch import save_file

    shutil.copytree(src, dst)
    with safe_open(str(src / "model.safetensors"), "pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
    state = {k: v if k == "language_model.model.norm.weight" else v.to(torch.bfloat16) for k, v in state.items()}
    save_file(state, str(dst / "model.safetensors"), metadata={"format": "pt"})
    return dst


def test_weights_load_in_their_stored_dtype(tiny15_dir, tmp_path):
    ckpt = _bf16_copy(tiny15_dir, tmp_path / "bf16")
    m = load(ckpt)
    assert m.text_dtype == torch.bfloat16 and m.dtype == torch.bfloat16
    # the odd fp32 tensor is converted to the component's dtype, one tensor, while reading
    assert m.language_model.model.norm.weight.dtype == torch.bfloat16
    f32 = load(ckpt, dtype="float32")
    assert {p.dtype for p in f32.parameters()} == {torch.float32}
    mixed = load(ckpt, dtype={"text": "bfloat16", "vision": "float32"})
    assert mixed.text_dtype == torch.bfloat16 and mixed.dtype == torch.float32
    assert mixed.vision_tower.encoder.layers[0].mlp.fc1.weight.dtype == torch.float32
    # converting per tensor equals converting the fp32 model: same values
    ref = load(tiny15_dir)
    a = f32.language_model.model.layers[0].mlp.up_proj.weight
    b = ref.language_model.model.layers[0].mlp.up_proj.weight.to(torch.bfloat16).float()
    assert torch.equal(a, b)
    # a mixed-dtype model runs (fp32 visual rows into a bf16 decoder) and stays close to fp32
    pixels = torch.rand(8, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    rows = mixed.embed_video(pixels)
    assert rows.dtype == torch.float32
    torch.testing.assert_close(rows, f32.embed_video(pixels), rtol=0, atol=0)  # same fp32 vision weights
    got, want = mixed.decoder_logits(rows).float().flatten(), f32.decoder_logits(rows).flatten()
    assert torch.nn.functional.cosine_similarity(got, want, dim=0) > 0.99
    with pytest.raises(ConfigError, match="dtype 'int8'"):
        load(ckpt, dtype="int8")
