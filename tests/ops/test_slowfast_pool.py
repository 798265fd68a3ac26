import numpy as np
import pytest
import torch

from sfllava_mobile.config import SlowFastConfig
from sfllava_mobile.errors import ConfigError
from sfllava_mobile.ops import (decompositions, slow_frame_indices, slowfast_pool, slowfast_token_count,
                                slowfast_token_counts)


def twin(features: np.ndarray, cfg: SlowFastConfig, grid, separator=None) -> np.ndarray:
    """Plain loops over numpy: an independent statement of what the op must compute."""
    t, n, d = features.shape
    gh, gw = grid
    if cfg.slow_rule == "linspace":
        idx = [int(np.floor(i * t / cfg.slow_frames)) for i in range(cfg.slow_frames)]
    else:
        idx = list(range(0, t, cfg.slow_stride))
    rows = []
    for f in idx:
        x = features[f]
        if cfg.slow_pool.startswith("1d"):
            for j in range(n // 2):
                pair = x[2 * j: 2 * j + 2]
                rows.append(pair.max(0) if cfg.slow_pool == "1d_max" else pair.mean(0))
        else:
            kh, kw = cfg.slow_kernel
            g = x.reshape(gh, gw, d)
            for r in range(gh // kh):
                for c in range(gw // kw):
                    block = g[r * kh:(r + 1) * kh, c * kw:(c + 1) * kw].reshape(-1, d)
                    rows.append(block.max(0) if cfg.slow_pool == "2d_max" else block.mean(0))
    if separator is not None:
        rows.append(separator)
    fh, fw = cfg.fast_grid
    for f in range(t):
        g = features[f].reshape(gh, gw, d)
        for r in range(fh):
            r0, r1 = (r * gh) // fh, -((-(r + 1) * gh) // fh)  # adaptive pooling bounds
            for c in range(fw):
                c0, c1 = (c * gw) // fw, -((-(c + 1) * gw) // fw)
                rows.append(g[r0:r1, c0:c1].reshape(-1, d).mean(0))
    return np.stack(rows)


MODES = ["1d_max", "1d_avg", "2d_max", "2d_avg"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("t", [1, 3, 10, 17])
@pytest.mark.parametrize("grid,fast", [((6, 6), (2, 2)), ((4, 6), (2, 3)), ((5, 7), (2, 3)), ((24, 24), (4, 4))])
@pytest.mark.parametrize("rule", ["linspace", "stride"])
def test_matches_plain_twin(mode, t, grid, fast, rule):
    cfg = SlowFastConfig(slow_frames=4, slow_rule=rule, slow_stride=3, slow_pool=mode, fast_grid=fast)
    torch.manual_seed(t)
    feats = torch.randn(t, grid[0] * grid[1], 5)
    out = slowfast_pool(feats, cfg, grid)
    ref = twin(feats.numpy(), cfg, grid)
    assert out.shape == (slowfast_token_count(cfg, t, grid), 5)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel", [(2, 2), (3, 2), (2, 4)])
def test_2d_kernels_and_separator(kernel):
    cfg = SlowFastConfig(slow_frames=2, slow_pool="2d_avg", slow_kernel=kernel, fast_grid=(3, 2), separator=True)
    feats = torch.randn(5, 6 * 8, 4)
    sep = torch.randn(4)
    out = slowfast_pool(feats, cfg, (6, 8), sep)
    ref = twin(feats.numpy(), cfg, (6, 8), sep.numpy())
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-6)
    counts = slowfast_token_counts(cfg, 5, (6, 8))
    assert torch.equal(out[counts["slow"]], sep)  # separator sits between slow and fast rows


def test_t_below_slow_frames_repeats_frames():
    assert slow_frame_indices("linspace", 10, 1) == [0] * 10
    assert slow_frame_indices("linspace", 10, 4) == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]
    cfg = SlowFastConfig.from_string("slowfast-slow_10frms_spatial_1d_max_pool-fast_4x4")
    feats = torch.randn(1, 576, 3)
    out = slowfast_pool(feats, cfg, (24, 24))
    assert out.shape == (10 * 288 + 16, 3)
    assert torch.equal(out[:288], out[288:576])  # frame 0 ten times


def test_sf_llava_v1_counts_and_indices():
    cfg = SlowFastConfig.from_string("slowfast-slow_10frms_spatial_1d_max_pool-fast_4x4")
    assert slow_frame_indices("linspace", 10, 50) == list(range(0, 50, 5))
    assert slowfast_token_counts(cfg, 50, (24, 24)) == {"slow_frames": 10, "slow": 2880, "separator": 0,
                                                         "fast": 800, "total": 3680}


@pytest.mark.parametrize("t,n", [(50, 10), (128, 32), (64, 16), (32, 8)])
def test_linspace_rule_equals_authors_torch_linspace_for_preset_shapes(t, n):
    assert slow_frame_indices("linspace", n, t) == torch.linspace(0, t, n + 1).to(torch.int32).tolist()[:-1]


def test_export_keeps_one_node_and_decomposes_exactly():
    cfg = SlowFastConfig(slow_frames=3, slow_pool="2d_max", fast_grid=(2, 2), separator=True)

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.sep = torch.nn.Parameter(torch.randn(8))

        def forward(self, x):
            return slowfast_pool(x, cfg, (4, 4), self.sep)

    m, x = M(), torch.randn(7, 16, 8)
    ep = torch.export.export(m, (x,))
    calls = [n for n in ep.graph.nodes if n.op == "call_function"]
    assert [str(n.target) for n in calls] == ["sfllava.slowfast_pool.default"]
    dec = ep.run_decompositions(decompositions())
    targets = {str(n.target) for n in dec.graph.nodes if n.op == "call_function"}
    assert not any("sfllava" in t for t in targets) and "aten.max_pool2d.default" in targets
    torch.testing.assert_close(dec.module()(x), m(x), rtol=0, atol=0)


def test_bad_inputs_name_the_problem():
    cfg = SlowFastConfig()
    with pytest.raises(ConfigError, match="grid 4x4 needs 16"):
        slowfast_pool(torch.randn(2, 15, 3), cfg, (4, 4))
    with pytest.raises(ConfigError, match="separator=True"):
        slowfast_pool(torch.randn(2, 16, 3), SlowFastConfig(separator=True, fast_grid=(2, 2)), (4, 4))
    with pytest.raises(ConfigError, match=r"\[T, H\*W, D\]"):
        slowfast_pool(torch.randn(16, 3), cfg, (4, 4))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("t,n", [(4, 10), (1, 10), (10, 4), (7, 3), (50, 10)])
def test_every_slow_rule_decomposes_into_a_functional_graph(mode, t, n):
    """Repeated (T < N) and irregular (10 frames, 4 slow: 0, 2, 5, 7) slow frames must decompose
    without a constant index tensor: ``run_decompositions`` rejects its ``detach_``."""
    cfg = SlowFastConfig(slow_frames=n, slow_pool=mode, fast_grid=(2, 2))

    class M(torch.nn.Module):
        def forward(self, x):
            return slowfast_pool(x * 2.0, cfg, (4, 4))

    m, x = M(), torch.randn(t, 16, 8)
    dec = torch.export.export(m, (x,)).run_decompositions(decompositions())
    targets = {str(nd.target) for nd in dec.graph.nodes if nd.op == "call_function"}
    assert not any("sfllava" in s or "lift_fresh" in s or "index_select" in s for s in targets)
    torch.testing.assert_close(dec.module()(x), m(x), rtol=0, atol=0)
    np.testing.assert_allclose(m(x).numpy(), twin((x * 2.0).numpy(), cfg, (4, 4)), rtol=1e-5, atol=1e-6)
