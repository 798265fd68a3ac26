"""Activation-aware scales folded into norms: float-identical, and lower quantized-layer error."""

import copy

import pytest
import torch

from sfllava_mobile import presets
from sfllava_mobile.model.language import build_decoder
from sfllava_mobile.model.kv_decoder import KVCacheDecoder
from sfllava_mobile.quantize import smooth


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(0)
    cfg = presets.get("tiny").text
    m = build_decoder(cfg).eval()
    with torch.no_grad():  # outlier input channels, as trained decoders have, so the fold has work to do
        for layer in m.model.layers:
            layer.input_layernorm.weight.mul_(1 + 20 * (torch.rand_like(layer.input_layernorm.weight) > 0.9))
    return m


def _batches(vocab):
    g = torch.Generator().manual_seed(3)
    return [torch.randint(0, vocab, (1, 64), generator=g) for _ in range(2)]


@pytest.mark.parametrize("method", ["awq", "smoothquant-0.5"])
def test_fold_leaves_float_logits_unchanged(lm, method):
    ids = _batches(lm.config.vocab_size)
    plan = smooth.calibrate(lm, ids, method)
    assert plan["scales"] and set(plan["scales"]) <= {f"layers.{i}.{n}" for i in range(2)
                                                       for n in ("attn_in", "mlp_in", "down_in")}
    folded = copy.deepcopy(lm)
    assert smooth.fold(folded, plan["scales"]) > 0
    x = ids[0]
    before, after = lm(input_ids=x).logits, folded(input_ids=x).logits
    assert torch.allclose(before, after, atol=1e-4, rtol=1e-4)
    assert not torch.equal(lm.model.layers[0].input_layernorm.weight, folded.model.layers[0].input_layernorm.weight) \
        or "layers.0.attn_in" not in plan["scales"]


def test_search_never_makes_a_group_worse_and_helps_with_outliers(lm):
    plan = smooth.calibrate(lm, _batches(lm.config.vocab_size), "awq")
    assert plan["error_ratio"] < 0.9  # outlier channels: the fold must cut the quantized error


def test_plan_applies_to_the_exported_decoder_modules(lm):
    scales = smooth.calibrate(lm, _batches(lm.config.vocab_size), "smoothquant-0.5")["scales"]
    kv = KVCacheDecoder(copy.deepcopy(lm), 64)
    todo = smooth.layer_scalings(kv, scales)
    layer = kv.layers[0]
    assert id(layer.q_proj) in todo and id(layer.input_layernorm) in todo
    assert [h for h, _ in todo[id(layer.mlp.up_proj)]] == ["columns", "rows"]  # consumer and producer


def test_fake_quant_matches_int4_and_int8_grids():
    w = torch.randn(4, 64)
    q = smooth.fake_quant_weight(w)
    scale = w.reshape(4, 2, 32).abs().amax(-1, keepdim=True) / 7.5
    levels = (q.reshape(4, 2, 32) / scale).round()
    assert levels.min() >= -8 and levels.max() <= 7
    x = torch.randn(5, 64)
    assert (smooth.fake_quant_act(x) - x).abs().max() < (x.amax(-1) - x.amin(-1)).max() / 255
