"""``sfllava::slowfast_pool``: the SlowFast token builder as one custom op.

One node in ``torch.export`` graphs (a fake kernel gives its shape), a reference implementation in
core ATen ops that backends can decompose into (``decompositions()``), and one token-count function
that every planner, manifest and graph uses.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ..config import SlowFastConfig
from ..errors import ConfigError


def slow_frame_indices(rule: str, param: int, num_frames: int) -> list[int]:
    """Frames the slow pathway keeps, for ``num_frames`` sampled frames.

    ``linspace``: ``floor(i * T / N)`` for ``i < N``, the exact value of the authors'
    ``int(torch.linspace(0, T, N + 1))[:-1]``. torch computes that in float32 and, for about 2% of
    (T, N) pairs, truncates one index down, by an amount that depends on the CPU's vector width;
    the exact integer form is the same on every backend and app. They agree for the presets'
    (T, N) = (50, 10) and (128, 32). ``stride``: ``range(0, T, param)``.
    """
    if num_frames < 1:
        raise ConfigError(f"slowfast_pool needs at least one frame, got {num_frames}")
    if rule == "linspace":
        return [i * num_frames // param for i in range(param)]
    if rule == "stride":
        return list(range(0, num_frames, param))
    raise ConfigError(f"unknown slow frame rule {rule!r}")


def _slow_param(config: SlowFastConfig) -> int:
    return config.slow_frames if config.slow_rule == "linspace" else config.slow_stride


def _slow_tokens_per_frame(slow_pool: str, kernel: tuple[int, int], grid: tuple[int, int]) -> int:
    gh, gw = grid
    if slow_pool.startswith("1d"):
        return (gh * gw) // 2
    return (gh // kernel[0]) * (gw // kernel[1])


def slowfast_token_counts(config: SlowFastConfig, num_frames: int, grid: tuple[int, int]) -> dict[str, int]:
    """Visual tokens per pathway: ``slow``, ``separator``, ``fast`` and ``total``."""
    n_slow = len(slow_frame_indices(config.slow_rule, _slow_param(config), num_frames))
    slow = n_slow * _slow_tokens_per_frame(config.slow_pool, config.slow_kernel, grid)
    fast = num_frames * config.fast_grid[0] * config.fast_grid[1]
    sep = 1 if config.separator else 0
    return {"slow_frames": n_slow, "slow": slow, "separator": sep, "fast": fast, "total": slow + sep + fast}


def slowfast_token_count(config: SlowFastConfig, num_frames: int, grid: tuple[int, int]) -> int:
    """How many rows ``slowfast_pool`` returns for ``num_frames`` frames of a ``grid`` patch grid."""
    return slowfast_token_counts(config, num_frames, grid)["total"]


def _runs(idx: list[int]) -> list[tuple[int, int, int]]:
    """``idx`` as maximal runs ``(start, count, step)`` with step >= 0 (0 = one frame repeated)."""
    runs: list[tuple[int, int, int]] = []
    i = 0
    while i < len(idx):
        step = idx[i + 1] - idx[i] if i + 1 < len(idx) else 1
        if step < 0:
            step = 1
        n = 1
        while i + n < len(idx) and idx[i + n] - idx[i + n - 1] == step:
            n += 1
        runs.append((idx[i], n, step))
        i += n
    return runs


def _frames(features: torch.Tensor, idx: list[int]) -> torch.Tensor:
    """``features[idx]`` from slices, expands and one cat: no index tensor. A constant index built
    with ``torch.tensor`` inside the graph traces to ``lift_fresh_copy`` + ``detach_``, which
    ``run_decompositions`` rejects as non-functional (v1's slow rule repeats frames when T < N)."""
    parts = []
    for start, n, step in _runs(idx):
        if step == 0:
            parts.append(features[start: start + 1].expand(n, -1, -1))
        else:
            parts.append(features[start: start + (n - 1) * step + 1: step])
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)


def slowfast_pool_reference(
    features: torch.Tensor, separator: Optional[torch.Tensor], grid_h: int, grid_w: int,
    slow_rule: str, slow_param: int, slow_pool: str, kernel_h: int, kernel_w: int,
    fast_h: int, fast_w: int,
) -> torch.Tensor:
    """The op in core ATen ops: ``[T, H*W, D] -> [N_visual, D]``, slow rows then separator then fast."""
    t, n, d = features.shape
    idx = slow_frame_indices(slow_rule, slow_param, t)
    slow = _frames(features, idx)
    ns = slow.shape[0]
    if slow_pool in ("1d_max", "1d_avg"):
        half = n // 2
        pairs = slow[:, : 2 * half].reshape(ns, half, 2, d)
        slow_out = pairs.amax(dim=2) if slow_pool == "1d_max" else pairs.mean(dim=2)
        slow_out = slow_out.reshape(ns * half, d)
    else:
        x = slow.reshape(ns, grid_h, grid_w, d).permute(0, 3, 1, 2)
        k = (kernel_h, kernel_w)
        x = F.max_pool2d(x, k, k) if slow_pool == "2d_max" else F.avg_pool2d(x, k, k)
        slow_out = x.permute(0, 2, 3, 1).reshape(-1, d)
    x = features.reshape(t, grid_h, grid_w, d).permute(0, 3, 1, 2)
    if grid_h % fast_h == 0 and grid_w % fast_w == 0:
        # Exact blocks: a plain average pool lowers everywhere; adaptive pooling does not.
        k = (grid_h // fast_h, grid_w // fast_w)
        x = F.avg_pool2d(x, k, k)
    else:
        x = F.adaptive_avg_pool2d(x, (fast_h, fast_w))
    fast_out = x.permute(0, 2, 3, 1).reshape(-1, d)
    parts = [slow_out] if separator is None else [slow_out, separator.reshape(1, d).to(features.dtype)]
    return torch.cat(parts + [fast_out], dim=0)


@torch.library.custom_op("sfllava::slowfast_pool", mutates_args=())
def _slowfast_pool_op(
    features: torch.Tensor, separator: Optional[torch.Tensor], grid_h: int, grid_w: int,
    slow_rule: str, slow_param: int, slow_pool: str, kernel_h: int, kernel_w: int,
    fast_h: int, fast_w: int,
) -> torch.Tensor:
    return slowfast_pool_reference(features, separator, grid_h, grid_w, slow_rule, slow_param,
                                   slow_pool, kernel_h, kernel_w, fast_h, fast_w).clone()


@_slowfast_pool_op.register_fake
def _slowfast_pool_fake(features, separator, grid_h, grid_w, slow_rule, slow_param, slow_pool,
                        kernel_h, kernel_w, fast_h, fast_w):
    t, _, d = features.shape
    n_slow = len(slow_frame_indices(slow_rule, slow_param, int(t)))
    rows = n_slow * _slow_tokens_per_frame(slow_pool, (kernel_h, kernel_w), (grid_h, grid_w))
    rows += (0 if separator is None else 1) + int(t) * fast_h * fast_w
    return features.new_empty((rows, d))


def _check(features: torch.Tensor, config: SlowFastConfig, grid: tuple[int, int], separator) -> None:
    if features.dim() != 3:
        raise ConfigError(f"slowfast_pool takes features [T, H*W, D], got shape {tuple(features.shape)}")
    gh, gw = grid
    if features.shape[1] != gh * gw:
        raise ConfigError(f"slowfast_pool: features have {features.shape[1]} tokens per frame, grid {gh}x{gw} needs {gh * gw}")
    if config.fast_grid[0] > gh or config.fast_grid[1] > gw:
        raise ConfigError(f"slowfast_pool: fast_grid {config.fast_grid} is larger than the grid {grid}")
    if config.separator and separator is None:
        raise ConfigError("slowfast config has separator=True but no separator row was given")
    if not config.separator and separator is not None:
        raise ConfigError("a separator row was given but the slowfast config has separator=False")


def slowfast_pool(features: torch.Tensor, config: SlowFastConfig, grid: tuple[int, int],
                  separator: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Build the visual token rows: ``features [T, H*W, D]`` -> ``[N_visual, D]`` (one op node)."""
    _check(features, config, grid, separator)
    return torch.ops.sfllava.slowfast_pool(
        features, separator, grid[0], grid[1], config.slow_rule, _slow_param(config), config.slow_pool,
        config.slow_kernel[0], config.slow_kernel[1], config.fast_grid[0], config.fast_grid[1])


def decompositions() -> dict:
    """Decomposition table for ``ExportedProgram.run_decompositions``: the op as core ATen ops."""
    return {torch.ops.sfllava.slowfast_pool.default: slowfast_pool_reference}
