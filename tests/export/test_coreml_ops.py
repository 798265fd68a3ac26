"""``sfllava::slowfast_pool`` converts to Core ML as one named MIL composite that computes what
the op computes (evaluated from the converted program with the numpy MIL evaluator)."""

import numpy as np
import pytest
import torch

from sfllava_mobile.config import SlowFastConfig
from sfllava_mobile.ops import slowfast_pool

pytestmark = pytest.mark.filterwarnings("ignore")


class _Pool(torch.nn.Module):
    def __init__(self, cfg, grid, dim):
        super().__init__()
        self.cfg, self.grid = cfg, grid
        self.sep = torch.nn.Parameter(torch.randn(dim)) if cfg.separator else None

    def forward(self, x):
        return slowfast_pool(x, self.cfg, self.grid, self.sep)


def _convert(module, x):
    import coremltools as ct

    from sfllava_mobile.export import coreml_ops

    coreml_ops.register()
    ep = torch.export.export(module, (x,), strict=False).run_decompositions({})
    return ct.convert(ep, inputs=[ct.TensorType(name="x", shape=tuple(x.shape))], outputs=[ct.TensorType(name="y")],
                      minimum_deployment_target=ct.target.iOS18, compute_precision=ct.precision.FLOAT32,
                      skip_model_load=True)


CASES = [  # (slowfast config, T, grid): SF-LLaVA v1 (linspace, 1-D max, repeats), 1.5 (stride, 2-D), odd grids
    (SlowFastConfig(slow_frames=10, slow_rule="linspace", slow_pool="1d_max", fast_grid=(2, 2)), 4, (4, 4)),
    (SlowFastConfig(slow_frames=3, slow_rule="linspace", slow_pool="1d_avg", fast_grid=(2, 3)), 7, (5, 7)),
    (SlowFastConfig(slow_rule="stride", slow_stride=2, slow_pool="2d_avg", fast_grid=(2, 2), separator=True), 5, (4, 4)),
    (SlowFastConfig(slow_rule="stride", slow_stride=3, slow_pool="2d_max", slow_kernel=(3, 2), fast_grid=(2, 3)), 6,
     (6, 8)),
]


@pytest.mark.parametrize("cfg,t,grid", CASES)
def test_composite_is_whole_and_matches_the_op(cfg, t, grid):
    from sfllava_mobile.export.coreml_ops import PREFIX
    from sfllava_mobile.export.mil_eval import MilInterpreter

    torch.manual_seed(t)
    module = _Pool(cfg, grid, 6)
    x = torch.randn(t, grid[0] * grid[1], 6)
    mlmodel = _convert(module, x)
    fn = mlmodel._mil_program.functions["main"]
    ops = [op for op in fn.operations if op.op_type != "const"]
    # Every compute op of the program is the composite's: nothing of it was decomposed elsewhere.
    outside = [op.name for op in ops if PREFIX not in op.name and op.name != fn.outputs[0].op.name]
    assert not outside, outside
    assert sum(PREFIX in op.name for op in ops) >= 3
    got = MilInterpreter(program=mlmodel._mil_program).predict({"x": x.numpy()})["y"]
    want = module(x).detach().numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
