import pytest

from sfllava_mobile import ConfigError, presets
from sfllava_mobile.ops import slowfast_token_count

EXPECTED = {"tiny", "tiny-v1", "sf-llava-7b", "sf-llava-34b", "sf-llava-1.5-1b", "sf-llava-1.5-3b", "sf-llava-1.5-7b"}


def test_names():
    assert set(presets.names()) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_preset_validates_and_inferred_paths_exist(name):
    cfg = presets.get(name)
    d = cfg.to_dict()
    for path in cfg.inferred:
        node = d
        for part in path.split("."):
            assert part in node, f"{name}: inferred path {path} does not name a field"
            node = node[part]
        presets.get(name, **{path: _same(node)})  # every inferred field can be overridden


def _same(v):
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    return str(v) if not isinstance(v, str) else v


def test_v1_presets_are_exact_and_count_3680_tokens():
    for name in ("sf-llava-7b",):
        cfg = presets.get(name)
        assert cfg.inferred == ()
        assert slowfast_token_count(cfg.slowfast, 50, cfg.vision.grid) == 3680
    big = presets.get("sf-llava-34b")
    assert (big.text.hidden_size, big.text.num_layers, big.text.num_kv_heads, big.text.vocab_size) == (7168, 60, 8, 64000)


@pytest.mark.parametrize("name,hidden,layers,vocab,tied", [
    ("sf-llava-1.5-1b", 1536, 28, 151936, True), ("sf-llava-1.5-3b", 2048, 36, 151936, True),
    ("sf-llava-1.5-7b", 3584, 28, 152064, False)])
def test_v15_reconstructions(name, hidden, layers, vocab, tied):
    cfg = presets.get(name)
    assert (cfg.text.hidden_size, cfg.text.num_layers, cfg.text.vocab_size, cfg.text.tie_word_embeddings) == (
        hidden, layers, vocab, tied)
    assert cfg.vision.grid == (24, 24) and cfg.vision.hidden_size == 1152 and cfg.vision.num_layers == 27
    assert slowfast_token_count(cfg.slowfast, 128, cfg.vision.grid) == 32 * 144 + 128 * 36 == 9216
    assert "slowfast.pool_position" in cfg.inferred and "text.family" in cfg.inferred


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'sf-llava-2'.*tiny"):
        presets.get("sf-llava-2")
