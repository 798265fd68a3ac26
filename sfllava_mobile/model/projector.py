"""The LLaVA ``mlp2x_gelu`` projector; keys ``linear_1`` / ``linear_2`` as in transformers' LLaVA."""

from __future__ import annotations

import torch
from torch import nn
from transformers.activations import ACT2FN

from ..config import ProjectorConfig


class Projector(nn.Module):
    """``[..., input_size] -> [..., output_size]``: Linear, activation, Linear."""

    def __init__(self, cfg: ProjectorConfig):
        super().__init__()
        self.linear_1 = nn.Linear(cfg.input_size, cfg.output_size, bias=cfg.bias)
        self.act = ACT2FN[cfg.act]
        self.linear_2 = nn.Linear(cfg.output_size, cfg.output_size, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(x)))
