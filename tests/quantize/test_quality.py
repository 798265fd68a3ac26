"""Text quality scoring as llama-perplexity scores it: chunks, scored positions, KL / top-1 / PPL."""

import math

import pytest
import torch

from sfllava_mobile.quantize import quality


def test_chunks_score_the_second_half_and_put_bos_first():
    c = quality.make_chunks(list(range(100)), 10, bos_id=7)
    assert len(c.tokens) == 10 and c.first == 5 and c.scored_per_chunk == 4 and c.scored == 40
    assert c.tokens[1] == [7, 11, 12, 13, 14, 15, 16, 17, 18, 19]
    assert c.targets(1).tolist() == [16, 17, 18, 19]  # positions 5..8 predict tokens 6..9
    assert len(quality.make_chunks(list(range(100)), 10, 3).tokens) == 3
    with pytest.raises(ValueError, match="fewer than one chunk"):
        quality.make_chunks(list(range(9)), 10)


def test_identical_logits_have_zero_kl_and_equal_perplexity():
    c = quality.make_chunks(list(range(40)), 8)
    ref = quality.scored_logits(lambda ids: torch.randn(1, ids.shape[1], 50, generator=torch.Generator().manual_seed(0)), c)
    r = quality.compare(ref, ref, c)
    assert r["mean_kl"] == 0 and r["same_top1"] == 1 and r["ppl"] == r["ppl_reference"]
    assert r["scored_tokens"] == 5 * 3


def test_perturbed_logits_raise_kl_and_match_a_direct_computation():
    c = quality.make_chunks(list(range(24)), 8)
    g = torch.Generator().manual_seed(1)
    ref = [torch.randn(3, 30, generator=g) for _ in c.tokens]
    test = [r + 2 * torch.randn(3, 30, generator=g) for r in ref]
    r = quality.compare(ref, test, c)
    p = torch.cat([torch.softmax(x.double(), -1) for x in ref])
    q = torch.cat([torch.softmax(x.double(), -1) for x in test])
    kl = float((p * (p.log() - q.log())).sum(-1).mean())
    assert r["mean_kl"] == pytest.approx(kl, abs=1e-6) and r["mean_kl"] > 0.1
    targets = torch.cat([c.targets(i) for i in range(len(c.tokens))])
    nll = -q.log()[torch.arange(len(targets)), targets].mean()
    assert r["ppl"] == pytest.approx(math.exp(float(nll)), rel=1e-4)
    assert r["same_top1"] < 1
