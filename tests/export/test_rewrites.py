import copy

import torch
from torch import nn
from transformers.models.qwen2.modeling_qwen2 import Qwen2RMSNorm

from sfllava_mobile import presets
from sfllava_mobile.export.rewrites import (LinearMeanLayerNorm, LinearMeanRMSNorm, rewrite_norms,
                                            use_bmm_attention)
from sfllava_mobile.model import VideoLLM


def test_rms_norm_twin():
    torch.manual_seed(0)
    ref = Qwen2RMSNorm(48, eps=1e-6)
    nn.init.normal_(ref.weight)
    x = torch.randn(2, 5, 48) * 3
    torch.testing.assert_close(LinearMeanRMSNorm(ref.weight, ref.variance_epsilon)(x), ref(x), rtol=1e-5, atol=1e-5)


def test_layer_norm_twin():
    torch.manual_seed(0)
    ref = nn.LayerNorm(40, eps=1e-6)
    nn.init.normal_(ref.weight)
    nn.init.normal_(ref.bias)
    x = torch.randn(3, 7, 40) * 2 + 1
    torch.testing.assert_close(LinearMeanLayerNorm(ref)(x), ref(x), rtol=1e-5, atol=1e-5)


def test_rewrites_keep_the_model_outputs():
    torch.manual_seed(0)
    model = VideoLLM(presets.get("tiny")).eval()
    other = copy.deepcopy(model)
    assert rewrite_norms(other) == 2 * 2 + 2 * 2 + 1  # vision: 2 per block; text: 2 per layer + final
    assert use_bmm_attention(other.vision_tower) == 1  # one config object shared by the blocks
    pixels = torch.randn(8, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(other.embed_video(pixels), model.embed_video(pixels), rtol=1e-4, atol=1e-4)
        e = torch.randn(1, 9, 64)
        torch.testing.assert_close(other.decoder_logits(e), model.decoder_logits(e), rtol=1e-4, atol=1e-4)
    assert not any(isinstance(m, (nn.LayerNorm, Qwen2RMSNorm)) for m in other.modules())
