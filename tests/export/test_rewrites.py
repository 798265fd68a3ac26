import copy

import torch
from torch import nn
from transformers.models.qwen2.modeling_qwen2 import Qwen2RMSNorm

from sfllava_mobile import presets
from sfllava_mobile.export.rewrites import (SCORES_BUDGET, LinearMeanLayerNorm, LinearMeanRMSNorm,
                                            attention_frames, rewrite_norms, use_bmm_attention)
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


def test_grouped_vit_attention_is_the_same_math():
    """Frames attending in groups (uneven, and more than 5 groups: a tree of cats) give what one call gives."""
    torch.manual_seed(0)
    model = VideoLLM(presets.get("tiny")).eval()
    pixels = torch.randn(8, 3, 64, 64)
    with torch.no_grad():
        ref = model.embed_video(pixels)
        for group in (0, 3, 1):
            other = copy.deepcopy(model)
            use_bmm_attention(other.vision_tower, group)
            torch.testing.assert_close(other.embed_video(pixels), ref, rtol=1e-5, atol=1e-5)


def test_attention_frames_keeps_the_scores_under_budget():
    for name in ("sf-llava-1.5-1b", "sf-llava-7b"):
        v = presets.get(name).vision
        tokens = v.grid[0] * v.grid[1] + (v.kind == "clip")
        g = attention_frames(None, v, 128)
        assert 1 <= g < 128 and g * v.num_heads * tokens ** 2 * 4 <= SCORES_BUDGET < (g + 1) * v.num_heads * tokens ** 2 * 4
    tiny = presets.get("tiny").vision
    assert attention_frames(None, tiny, 8) == 8  # small frames: one call, the graph as before
    assert (attention_frames(0, tiny, 8), attention_frames(3, tiny, 8), attention_frames(20, tiny, 8)) == (8, 3, 8)
