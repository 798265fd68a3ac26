import pytest
import torch
from torch import nn

from sfllava_mobile import ConfigError
from sfllava_mobile.quantize import recipes
from sfllava_mobile.quantize.recipes import Scheme
from sfllava_mobile.quantize.coverage import summary as coverage_summary
from sfllava_mobile.quantize.torchao import quantize_module

pytestmark = pytest.mark.filterwarnings("ignore")


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 136), nn.GELU(), nn.Linear(136, 64)).eval()


def test_recipes_and_schemes_are_validated():
    assert set(recipes.RECIPES["executorch"]) == {"none", "8da4w", "8da4w-v8", "8da4w-e8", "8da4w-awq", "8da4w-awq-h8",
                                                  "8da4w-awq-v8", "8da4w-sq", "8da4w-h8", "8da4w-search", "8da4w-hqq"}
    from sfllava_mobile.export.config import DEFAULT_RECIPE

    awq = recipes.get("8da4w-awq")  # the decoder of the default: same bytes as 8da4w, measured better
    assert awq.fold == "awq" and awq.weight_algorithm == "search"
    assert awq.head_scheme == recipes.get("8da4w").decoder_linear and recipes.get("8da4w-awq-h8").head_scheme.weight_bits == 8
    v8 = recipes.get(DEFAULT_RECIPE["executorch"])  # the default: 8da4w-awq with an 8-bit encoder, nothing else
    assert v8.name == "8da4w-awq-v8" and v8.vision_linear.weight_bits == 8 and v8.vision_linear.dynamic_act8
    assert (v8.vision_linear, v8.fold, v8.decoder_linear) == (recipes.get("8da4w-v8").vision_linear, awq.fold,
                                                             awq.decoder_linear)
    assert set(recipes.RECIPES["coreml"]) == {"none", "int4"}
    assert recipes.get("none").is_float and not recipes.get("8da4w").is_float
    assert not recipes.get("int4", "coreml").decoder_linear.dynamic_act8  # Core ML int4 is weight-only
    with pytest.raises(ConfigError, match="unknown executorch quantization recipe 'q2'.*8da4w"):
        recipes.get("q2")
    with pytest.raises(ConfigError, match="no recipes for backend 'tflite'"):
        recipes.get("none", "tflite")
    with pytest.raises(ConfigError, match="weight_bits must be 4 or 8"):
        Scheme(3)
    with pytest.raises(ConfigError, match="power of two"):
        Scheme(4, 48)
    assert Scheme(4, 32).bits_per_weight(4096) == 4.5 and Scheme(8, 0).bits_per_weight(1024) == 8 + 16 / 1024


def test_width_not_divisible_by_group_falls_back_to_int8_per_channel():
    m = _mlp()
    x = torch.randn(3, 64)
    ref = m(x)
    rows = quantize_module(m, Scheme(4, 32), "vision", "linear")
    assert [r.name for r in rows] == ["0", "2"]
    assert (rows[0].bits, rows[0].group, rows[0].note) == (4, 32, "")
    assert (rows[1].bits, rows[1].group) == (8, 0) and "136 not divisible by group 32" in rows[1].note
    out = m(x)
    cos = torch.nn.functional.cosine_similarity(out.flatten(), ref.flatten(), dim=0)
    assert cos > 0.99 and not torch.equal(out, ref)  # quantized, and still close


def test_embeddings_and_float_rows():
    torch.manual_seed(0)
    torch.manual_seed(0)
    emb = nn.Sequential(nn.Embedding(100, 64))
    w = emb[0].weight.detach().clone()
    rows = quantize_module(emb, Scheme(4, 32, dynamic_act8=False), "embedding", "embedding")
    assert rows[0].scheme == "int4-weight-only-g32" and rows[0].bits_per_weight == 4.5
    ids = torch.tensor([[1, 5, 99]])
    got = emb(ids)[0]
    want = w[ids[0]]
    # 4-bit groups of 32: at most 16 distinct values per group, each within half a step of the float
    # weight (step = the group's max |w| / 7), and not the float weights themselves.
    groups, ref = got.reshape(3, 2, 32), want.reshape(3, 2, 32)
    step = ref.abs().amax(-1, keepdim=True) / 7
    assert all(len(torch.unique(g)) <= 16 for g in groups.reshape(-1, 32))
    assert ((groups - ref).abs() <= step * 0.5 + 1e-6).all() and not torch.equal(got, want)
    float_rows = quantize_module(_mlp(), None, "decoder", "linear")
    assert all(r.scheme == "float" and r.note == "recipe keeps float" for r in float_rows)
    s = coverage_summary(rows + float_rows)
    assert s["layers"] == 3 and s["quantized"] == 1 and s["float"] == 2


def test_searched_scales_are_positive_in_range_and_never_worse_than_max_over_7_5():
    from sfllava_mobile.quantize.torchao import searched_scales

    torch.manual_seed(0)
    w = torch.randn(16, 128) * torch.rand(16, 1)
    w[0, 5] = 9.0  # a positive outlier: the case llama.cpp's signed scale serves and XNNPACK cannot
    q, d = searched_scales(w, 32)
    assert q.dtype == torch.int8 and int(q.min()) >= -8 and int(q.max()) <= 7 and bool((d > 0).all())
    dq = (q.float().reshape(16, 4, 32) * d.unsqueeze(-1)).reshape(16, 128)
    g = w.reshape(16, 4, 32)
    s = g.abs().amax(-1, keepdim=True) / 7.5
    rtn = (torch.clamp(torch.round(g / s), -8, 7) * s).reshape(16, 128)
    err = (dq - w).pow(2).reshape(16, 4, 32).sum(-1)
    err_rtn = (rtn - w).pow(2).reshape(16, 4, 32).sum(-1)
    assert bool((err <= err_rtn + 1e-6).all()) and float(err.sum()) < 0.95 * float(err_rtn.sum())


def test_search_recipe_writes_its_codes_into_the_torchao_tensor():
    from torch import nn

    from sfllava_mobile.quantize.recipes import Scheme
    from sfllava_mobile.quantize.torchao import quantize_module, searched_scales

    torch.manual_seed(1)
    lin = nn.Linear(64, 8)
    w = lin.weight.detach().clone()
    quantize_module(nn.ModuleDict({"l": lin}), Scheme(4, 32), "decoder", "linear", "search")
    q, d = searched_scales(w, 32)
    assert torch.equal(lin.weight.qdata, q) and torch.allclose(lin.weight.scale, d)
