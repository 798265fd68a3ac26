"""Export config and backend options: every bad value fails at construction, naming the limit and the fix."""

import pytest

from sfllava_mobile import ConfigError
from sfllava_mobile.cli import main
from sfllava_mobile.export.config import CoreMLOptions, ExecuTorchOptions, ExportConfig, resolve
from sfllava_mobile.presets import get as preset


def test_each_backend_gets_its_own_options_and_recipes():
    assert isinstance(ExportConfig().options, ExecuTorchOptions)
    c = ExportConfig(backend="coreml", quant="int4")
    assert isinstance(c.options, CoreMLOptions) and c.options.minimum_deployment_target == "iOS18"
    with pytest.raises(ConfigError, match="takes CoreMLOptions, not ExecuTorchOptions"):
        ExportConfig(backend="coreml", quant="int4", options=ExecuTorchOptions())
    with pytest.raises(ConfigError, match="unknown coreml quantization recipe '8da4w'; choose one of: none, int4"):
        ExportConfig(backend="coreml", quant="8da4w")
    with pytest.raises(ConfigError, match="unknown executorch quantization recipe 'int4'"):
        ExportConfig(backend="executorch", quant="int4")


@pytest.mark.parametrize("kwargs, message", [
    ({"minimum_deployment_target": "iOS17"}, "need minimum_deployment_target >= iOS18"),
    ({"compute_precision": "int8"}, "compute_precision must be one of"),
    ({"prefill_chunk": 0}, "prefill_chunk must be in 1..4096"),
])
def test_coreml_options_are_validated(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        CoreMLOptions(**kwargs)


def test_executorch_options_are_validated():
    with pytest.raises(ConfigError, match="attention must be one of"):
        ExecuTorchOptions(attention="flash")
    with pytest.raises(ConfigError, match="partitioner must be one of"):
        ExecuTorchOptions(partitioner="none")
    with pytest.raises(ConfigError, match="vision_attention_frames must be >= 0"):
        ExecuTorchOptions(vision_attention_frames=-1)
    with pytest.raises(ConfigError, match="needs the ViT attention rewrite"):
        ExecuTorchOptions(vision_attention_frames=2, rewrites=False)


def test_prefill_chunk_longer_than_a_decoder_call_is_refused():
    cfg = preset("tiny")
    with pytest.raises(ConfigError, match="prefill_chunk 2000 > max_seq_len"):
        resolve(ExportConfig(backend="coreml", quant="int4", options=CoreMLOptions(prefill_chunk=2000)), cfg)


def test_decoder_call_length_stays_below_the_cache():
    r = resolve(ExportConfig(max_seq_len=500, max_context_len=300), preset("tiny"))
    assert r.max_seq_len == 299 and r.max_context_len == 300


def test_default_context_holds_the_conversation_turns():
    import dataclasses

    tiny = preset("tiny")
    cfg = dataclasses.replace(tiny, text=dataclasses.replace(tiny.text, max_position_embeddings=4096))
    n = resolve(ExportConfig(turns=1), cfg).visual_tokens
    assert resolve(ExportConfig(turns=1), cfg).max_context_len == n + 256 + 128
    assert resolve(ExportConfig(), cfg).max_context_len == n + 256 + 128 + 3 * (128 + 64)
    short = dataclasses.replace(cfg, text=dataclasses.replace(cfg.text, max_position_embeddings=n + 500))
    assert resolve(ExportConfig(), short).max_context_len == n + 500  # capped at the decoder's positions
    with pytest.raises(ConfigError, match="turns"):
        ExportConfig(turns=0)


def test_cli_refuses_the_other_backends_flags(tiny15_dir, tmp_path, capsys):
    code = main(["-q", "export", "--checkpoint", str(tiny15_dir), "--backend", "coreml", "--attention", "generic",
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "--attention is an option of --backend executorch, not of --backend coreml" in err
    code = main(["-q", "export", "--checkpoint", str(tiny15_dir), "--prefill-chunk", "8", "--out", str(tmp_path / "o")])
    assert code == 2 and "--prefill-chunk is an option of --backend coreml" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
