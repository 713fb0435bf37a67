import math

import pytest
import torch
import torch.nn.functional as F

from ssgan import losses


def test_unsupervised_closed_form_at_zero_logits():
    # K=2 zero logits: LSE = log 2, softplus(log 2) = log 3.
    zeros = torch.zeros(4, 2)
    expected = -0.5 * math.log(2) + 0.5 * math.log(3) + 0.5 * math.log(3)
    assert losses.unsupervised_kplus1(zeros, zeros).item() == pytest.approx(expected, rel=1e-6)


def test_unsupervised_equals_explicit_k_plus_1_softmax():
    torch.manual_seed(0)
    real, fake = torch.randn(16, 10) * 3, torch.randn(16, 10) * 3
    def p_real(logits):  # softmax over K real logits and an explicit fake logit 0
        full = torch.cat([logits, torch.zeros(len(logits), 1)], dim=1)
        return 1 - F.softmax(full, dim=1)[:, -1]
    expected = 0.5 * -torch.log(p_real(real)).mean() + 0.5 * -torch.log(1 - p_real(fake)).mean()
    assert losses.unsupervised_kplus1(real, fake).item() == pytest.approx(expected.item(), rel=1e-5)


def test_unsupervised_is_stable_for_large_logits():
    big = torch.full((2, 3), 500.0)
    assert torch.isfinite(losses.unsupervised_kplus1(big, -big))


def test_supervised_ce_hand_computed():
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    labels = torch.tensor([0, 1])
    expected = 0.5 * (-math.log(math.exp(2) / (math.exp(2) + 1)) + math.log(2))
    assert losses.supervised_ce(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_feature_matching_hand_computed():
    real = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # mean (2, 3)
    fake = torch.tensor([[0.0, 0.0], [2.0, 2.0]])  # mean (1, 1)
    assert losses.feature_matching(real, fake).item() == pytest.approx((1 + 4) / 2)
    assert losses.feature_matching(real, real).item() == 0.0


@pytest.mark.parametrize("step, factor", [(0, 1.0), (70, 1.0), (85, 0.5), (100, 0.0), (120, 0.0)])
def test_linear_decay(step, factor):
    assert losses.linear_decay(step, 100, 0.3) == pytest.approx(factor)


def test_linear_decay_off():
    assert losses.linear_decay(99, 100, 0.0) == 1.0
