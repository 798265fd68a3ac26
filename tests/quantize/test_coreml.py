"""The Core ML quantization plan: every weight gets a coverage row, the package holds exactly the
planned compressed weights, and ``fake_quantize`` reproduces the package's values bit for bit."""

import numpy as np
import pytest
import torch

from sfllava_mobile.quantize import coreml as cq, recipes

pytestmark = pytest.mark.filterwarnings("ignore")


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(96, 64)
        self.k_proj = torch.nn.Linear(64, 32, bias=False)  # exactly 2048 elements: coremltools' threshold edge
        self.fc2 = torch.nn.Linear(136, 64)  # width 136 is not a multiple of the block of 32
        self.up = torch.nn.Linear(32, 136)
        self.table = torch.nn.Parameter(torch.randn(64, 64))  # multiplied, not matmul'd: stays fp16
        self.wide = torch.nn.Linear(64, 2112, bias=False)  # the converter adds a zero bias of 2112 > 2048

    def forward(self, ids):
        x = self.emb(ids) * self.table
        return self.fc2(self.up(self.k_proj(x))) + self.wide(x)[..., :64]


@pytest.fixture(scope="module")
def converted():
    import coremltools as ct

    torch.manual_seed(0)
    net = _Net().eval()
    ids = torch.zeros(1, 64, dtype=torch.long)
    ep = torch.export.export(net, (ids,), strict=False).run_decompositions({})
    ml = ct.convert(ep, minimum_deployment_target=ct.target.iOS18, skip_model_load=True,
                    inputs=[ct.TensorType(name="ids", shape=(1, 64), dtype=np.int32)])
    return net, ml


def test_plan_covers_every_weight_and_the_package_holds_it(converted):
    net, ml = converted
    cfg, rows = cq.plan(ml, recipes.get("int4", "coreml"), lambda fqn: "decoder", cq.constant_names(net))
    by = {r.name: r for r in rows}
    assert by["k_proj.weight"].scheme == "int4-block32" and by["emb.weight"].scheme == "int4-block32"
    assert by["fc2.weight"].scheme == "int8-per-channel" and "136" in by["fc2.weight"].note
    assert by["table"].scheme == "fp16" and "not a linear" in by["table"].note
    assert by["wide.weight"].scheme == "int4-block32"
    bias = [r for r in rows if r.shape == (2112,)]
    assert len(bias) == 1 and bias[0].scheme == "fp16" and "linear (as bias)" in bias[0].note
    q = cq.apply(ml, cfg)
    ops = [op for op in q._mil_program.functions["main"].operations if op.op_type.startswith("constexpr_")]
    assert len(ops) == sum(r.bits is not None for r in rows) == 5
    params = dict(net.named_parameters())
    for op in ops:
        name = next(r.name for r in rows if op.name.startswith("p_" + r.name.replace(".", "_")))
        got = op.materialized_val_inference().astype(np.float32)
        want = cq.fake_quantize(params[name], by[name].scheme).numpy()
        np.testing.assert_array_equal(got, want, err_msg=name)


def test_float_recipe_plans_nothing(converted):
    net, ml = converted
    cfg, rows = cq.plan(ml, recipes.get("none", "coreml"), lambda fqn: "decoder", cq.constant_names(net))
    assert cfg is None and rows and all(r.scheme == "fp16" for r in rows)
    assert cq.apply(ml, cfg) is ml


def test_fake_quantize_rejects_unknown_scheme():
    with pytest.raises(ValueError, match="unknown Core ML weight scheme"):
        cq.fake_quantize(torch.zeros(4, 32), "int3")
