import pytest
import torch

from sfllava_mobile import load
from sfllava_mobile.model.kv_decoder import KVCacheDecoder


@pytest.fixture(scope="module")
def model(tiny15_dir):
    return load(tiny15_dir)


def _ref_logits(model, embeds):
    with torch.no_grad():
        return model.decoder_logits(embeds)[0]


def test_prefill_then_steps_equal_full_sequence(model):
    torch.manual_seed(0)
    embeds = torch.randn(1, 11, model.config.text.hidden_size)
    ref = _ref_logits(model, embeds)
    dec = KVCacheDecoder(model.language_model, max_context=32, last_logits_only=False).eval()
    with torch.no_grad():
        first = dec(embeds[:, :7], torch.tensor([0]))
        torch.testing.assert_close(first[0], ref[:7], rtol=1e-4, atol=1e-4)
        for i in range(7, 11):
            step = dec(embeds[:, i:i + 1], torch.tensor([i]))
            torch.testing.assert_close(step[0, 0], ref[i], rtol=1e-4, atol=1e-4)


def test_last_logits_only_and_reset(model):
    embeds = torch.randn(1, 5, model.config.text.hidden_size)
    dec = KVCacheDecoder(model.language_model, max_context=16).eval()
    with torch.no_grad():
        a = dec(embeds, torch.tensor([0]))
        dec.reset()
        b = dec(embeds, torch.tensor([0]))
    assert a.shape == (1, model.config.text.vocab_size)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a[0], _ref_logits(model, embeds)[-1], rtol=1e-4, atol=1e-4)


def test_exports_with_dynamic_length(model):
    dec = KVCacheDecoder(model.language_model, max_context=32).eval()
    seq = torch.export.Dim("seq", min=1, max=32)
    ep = torch.export.export(dec, (torch.randn(1, 4, 64), torch.tensor([0])),
                             dynamic_shapes=({1: seq}, None), strict=True)
    # Functionalized (as to_edge does), the caches are buffers the program mutates in place.
    mutated = ep.run_decompositions({}).graph_signature.buffers_to_mutate
    assert len(mutated) == 2 * model.config.text.num_layers
    embeds = torch.randn(1, 9, 64)
    with torch.no_grad():
        out = ep.module()(embeds, torch.tensor([0]))
    torch.testing.assert_close(out[0], _ref_logits(model, embeds)[-1], rtol=1e-4, atol=1e-4)
