import math

import pytest
import torch
import torch.nn.functional as F

from ssgan.training import losses


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


def test_ema_warmup_follows_the_formula_then_the_nominal_decay():
    assert [losses.ema_decay_at(t, 0.999, True) for t in (0, 1, 2, 8)] == pytest.approx([0.1, 2 / 11, 3 / 12, 0.5])
    assert losses.ema_decay_at(10_000, 0.999, True) == 0.999  # (1 + t) / (10 + t) > 0.999 from t = 8992 on
    assert losses.ema_decay_at(3, 0.999, False) == 0.999


def test_consistency_mse_hand_computed():
    a = torch.tensor([[0.0, 0.0]])  # softmax (0.5, 0.5)
    b = torch.tensor([[math.log(3.0), 0.0]])  # softmax (0.75, 0.25)
    assert losses.consistency_mse(a, b).item() == pytest.approx((0.25 ** 2 + 0.25 ** 2) / 2)
    assert losses.consistency_mse(b, b).item() == 0.0


def test_kl_to_target_hand_computed_and_target_is_constant():
    target = torch.tensor([[math.log(3.0), 0.0]], requires_grad=True)  # p = (0.75, 0.25)
    logits = torch.tensor([[0.0, 0.0]], requires_grad=True)  # q = (0.5, 0.5)
    kl = losses.kl_to_target(target, logits)
    assert kl.item() == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5))
    kl.backward()
    assert target.grad is None and logits.grad is not None


def test_conditional_entropy_hand_computed():
    assert losses.conditional_entropy(torch.zeros(3, 4)).item() == pytest.approx(math.log(4))
    p = torch.tensor([[math.log(3.0), 0.0]])  # (0.75, 0.25)
    assert losses.conditional_entropy(p).item() == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))


def test_l2_normalize_gives_unit_norm_per_example():
    x = torch.tensor([[[[3.0, 4.0]]], [[[0.0, 2.0]]]])
    out = losses.l2_normalize(x)
    assert out.flatten(1).norm(dim=1).tolist() == pytest.approx([1.0, 1.0])
    assert out[0].flatten().tolist() == pytest.approx([0.6, 0.8])


def test_pseudo_label_mask_at_the_threshold_hand_computed():
    # Softmax of [log 9, 0] is [0.9, 0.1]; of [log 19, 0] is [0.95, 0.05]; of [0, log 3] is [0.25, 0.75].
    target = torch.tensor([[math.log(9), 0.0], [math.log(19), 0.0], [0.0, math.log(3)]])
    labels, mask = losses.confident_targets(target, 0.9)
    assert labels.tolist() == [0, 0, 1] and mask.tolist() == [1.0, 1.0, 0.0]
    _, mask = losses.confident_targets(target, 0.95 - 1e-6)
    assert mask.tolist() == [0.0, 1.0, 0.0]
    _, mask = losses.confident_targets(target, 0.5)
    assert mask.tolist() == [1.0, 1.0, 1.0]


def test_masked_cross_entropy_averages_over_the_whole_batch():
    # Student logits [0, 0]: CE = log 2 to either class. Two of four masked in: loss = 2 log 2 / 4.
    student = torch.zeros(4, 2)
    loss = losses.masked_cross_entropy(student, torch.tensor([0, 1, 0, 1]), torch.tensor([1.0, 0.0, 1.0, 0.0]))
    assert loss.item() == pytest.approx(math.log(2) / 2)
    assert losses.masked_cross_entropy(student, torch.tensor([0, 1, 0, 1]), torch.zeros(4)).item() == 0.0


def test_pseudo_labels_carry_no_gradient_to_the_target():
    target = torch.tensor([[3.0, 0.0]], requires_grad=True)
    student = torch.tensor([[0.0, 1.0]], requires_grad=True)
    labels, mask = losses.confident_targets(target, 0.5)
    losses.masked_cross_entropy(student, labels, mask).backward()
    assert target.grad is None and student.grad is not None


def test_sigmoid_rampup_closed_form():
    assert losses.sigmoid_rampup(0, 0) == 1.0 and losses.sigmoid_rampup(7, 0) == 1.0
    assert losses.sigmoid_rampup(0, 100) == pytest.approx(math.exp(-5.0))
    assert losses.sigmoid_rampup(50, 100) == pytest.approx(math.exp(-5.0 * 0.25))
    assert losses.sigmoid_rampup(100, 100) == 1.0 and losses.sigmoid_rampup(250, 100) == 1.0
