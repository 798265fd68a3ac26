"""Fused ops with a reference implementation, a fake kernel for export, and backend lowerings."""

from .slowfast_pool import (
    decompositions,
    slow_frame_indices,
    slowfast_pool,
    slowfast_pool_reference,
    slowfast_token_count,
    slowfast_token_counts,
)

__all__ = ["decompositions", "slow_frame_indices", "slowfast_pool", "slowfast_pool_reference",
           "slowfast_token_count", "slowfast_token_counts"]
