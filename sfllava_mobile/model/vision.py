"""Vision towers built from transformers' CLIP and SigLIP modules, truncated at the select layer.

State-dict keys follow transformers' vision models (``embeddings.*``, ``pre_layrnorm.*``,
``encoder.layers.N.*``); blocks after ``select_layer`` and the final norm/head are not built,
because they cannot change the selected features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPVisionConfig, SiglipVisionConfig
from transformers.models.clip.modeling_clip import CLIPEncoderLayer, CLIPVisionEmbeddings
from transformers.models.siglip.modeling_siglip import SiglipEncoderLayer, SiglipVisionEmbeddings

from ..config import VisionConfig


def hf_vision_config(cfg: VisionConfig):
    """The transformers config with the same shapes (used to build blocks and in parity tests)."""
    common = dict(hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
                  num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
                  patch_size=cfg.patch_size, hidden_act=cfg.hidden_act, layer_norm_eps=cfg.layer_norm_eps,
                  image_size=cfg.position_grid * cfg.patch_size)
    hf = CLIPVisionConfig(**common) if cfg.kind == "clip" else SiglipVisionConfig(**common)
    hf._attn_implementation = "sdpa"
    return hf


class ResizedPositionEmbeddings(SiglipVisionEmbeddings):
    """SigLIP patch embedding whose learned square table is resized to the input's patch grid.

    Oryx-ViT style native resolution: the table (``position_grid``^2 rows) is interpolated
    (bilinear by default, ``align_corners=False``) to ``H/patch x W/patch``; at the table's own
    size it is used as is.
    """

    def __init__(self, hf_config, cfg: VisionConfig):
        super().__init__(hf_config)
        self.grid_side = cfg.position_grid
        self.mode = cfg.position_interpolation

    def forward(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False) -> torch.Tensor:
        _, _, h, w = pixel_values.shape
        patches = self.patch_embedding(pixel_values.to(self.patch_embedding.weight.dtype))
        gh, gw = patches.shape[-2:]
        embeddings = patches.flatten(2).transpose(1, 2)
        table = self.position_embedding.weight
        if (gh, gw) != (self.grid_side, self.grid_side):
            d = table.shape[-1]
            grid = table.reshape(1, self.grid_side, self.grid_side, d).permute(0, 3, 1, 2)
            grid = F.interpolate(grid, size=(gh, gw), mode=self.mode, align_corners=False)
            table = grid.permute(0, 2, 3, 1).reshape(gh * gw, d)
        return embeddings + table.unsqueeze(0)


class _Encoder(nn.Module):
    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)


class VisionTower(nn.Module):
    """``pixel_values [T, 3, H, W]`` (normalized) -> per-frame features ``[T, gh*gw, hidden]``."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.cfg = cfg
        hf = hf_vision_config(cfg)
        if cfg.kind == "clip":
            self.embeddings = CLIPVisionEmbeddings(hf)
            self.pre_layrnorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
            layer_cls = CLIPEncoderLayer
        else:
            self.embeddings = ResizedPositionEmbeddings(hf, cfg)
            self.pre_layrnorm = None
            layer_cls = SiglipEncoderLayer
        self.encoder = _Encoder([layer_cls(hf) for _ in range(cfg.layers_used)])

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(pixel_values)
        if self.pre_layrnorm is not None:
            x = self.pre_layrnorm(x)
        for layer in self.encoder.layers:
            out = layer(x, None)
            x = out[0] if isinstance(out, tuple) else out
        return x[:, 1:] if self.cfg.drop_cls else x
