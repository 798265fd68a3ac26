"""Parity metrics on inputs whose answers are known by hand."""

import math

import pytest
import torch

from sfllava_mobile.export.metrics import greedy_stats, logit_stats, merge, tensor_stats, token_stats


def test_tensor_stats_known_values():
    s = tensor_stats(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0]))
    assert s["max_abs"] == 1.0 and s["rel"] == pytest.approx(1 / math.sqrt(2))
    assert s["cosine"] == pytest.approx(1 / math.sqrt(2))
    same = tensor_stats(torch.ones(3), torch.ones(3))
    assert same["max_abs"] == same["rel"] == 0.0 and same["cosine"] == pytest.approx(1.0, abs=1e-12)
    assert tensor_stats(torch.zeros(2), torch.zeros(2))["cosine"] == 1.0
    assert tensor_stats(torch.zeros(2), torch.ones(2))["cosine"] == 0.0
    with pytest.raises(ValueError, match="shape mismatch"):
        tensor_stats(torch.zeros(2), torch.zeros(3))


def test_logit_stats_kl_top1_and_perplexity():
    ref = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]))
    test = torch.log(torch.tensor([[0.25, 0.5, 0.25], [0.1, 0.8, 0.1]]))
    s = logit_stats(test, ref, targets=[0, 1])
    kl0 = 0.5 * math.log(0.5 / 0.25) + 0.25 * math.log(0.25 / 0.5)
    assert s["kl"] == pytest.approx(kl0 / 2) and s["kl_max"] == pytest.approx(kl0)
    assert s["top1"] == 0.5 and s["positions"] == 2
    # only row 1 is confident (log 0.8 - log 0.1 > 1 nat): it agrees
    assert s["confident_positions"] == 1 and s["top1_confident"] == 1.0
    assert s["ppl_reference"] == pytest.approx(math.exp(-(math.log(0.5) + math.log(0.8)) / 2))
    assert s["ppl"] == pytest.approx(math.exp(-(math.log(0.25) + math.log(0.8)) / 2))
    assert s["ppl_ratio"] == pytest.approx(s["ppl"] / s["ppl_reference"])


def test_token_and_greedy_stats():
    assert token_stats([1, 2, 3], [1, 2, 4]) == {"exact": False, "prefix": 2, "agreement": 2 / 3,
                                                 "reference_len": 3, "test_len": 3}
    assert token_stats([], [])["agreement"] == 1.0
    rows = torch.log(torch.tensor([[0.9, 0.1, 0.0 + 1e-9], [0.6, 0.3, 0.1]]))
    g = greedy_stats([0, 1], rows, [0, 0], rows)
    assert g["prefix"] == 1 and g["divergence_margin"] == pytest.approx(math.log(0.6 / 0.3), rel=1e-6)
    assert greedy_stats([0, 0], rows, [0, 0], rows)["divergence_margin"] == 0.0


def test_merge_takes_the_worst_case():
    m = merge([{"max_abs": 1.0, "cosine": 0.9, "exact": True}, {"max_abs": 2.0, "cosine": 0.99, "exact": False}])
    assert m == {"max_abs": 2.0, "cosine": 0.9, "exact": False}
