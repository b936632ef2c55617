import math

import pytest
import torch

from trainables.training.losses import (
    attention_kl,
    cross_entropy,
    distillation_kl,
    joint_mask,
    layerwise_representation_loss,
    masked_mse,
    relative_mse,
    span_candidates,
    span_cross_entropy,
    span_distillation_kl,
)

LN3 = math.log(3.0)


def hinton_loss(student, teacher, labels, *, temperature: float, alpha: float) -> torch.Tensor:
    """α·CE + (1−α)·T²·KL, as the training step mixes the two terms (kd_ratio = 1 − α)."""
    return alpha * cross_entropy(student, labels) + (1 - alpha) * distillation_kl(student, teacher, temperature)


def span_hinton_loss(s_start, s_end, t_start, t_end, start_pos, end_pos, valid, *, temperature, alpha):
    hard = span_cross_entropy(s_start, s_end, start_pos, end_pos, valid)
    return alpha * hard + (1 - alpha) * span_distillation_kl(s_start, s_end, t_start, t_end, temperature, valid)
# student probabilities (1/4, 3/4), teacher probabilities (3/4, 1/4) at T = 1.
STUDENT = torch.tensor([[0.0, LN3]])
TEACHER = torch.tensor([[LN3, 0.0]])


def test_cross_entropy_hand_value():
    assert cross_entropy(STUDENT, torch.tensor([1])).item() == pytest.approx(-math.log(0.75))


def test_distillation_kl_at_temperature_one():
    # KL(t‖s) = 3/4·ln(3/4 / 1/4) + 1/4·ln(1/4 / 3/4) = 1/2·ln 3
    assert distillation_kl(STUDENT, TEACHER, 1.0).item() == pytest.approx(0.5 * LN3, rel=1e-6)


def test_distillation_kl_at_temperature_two_is_scaled_by_t_squared():
    s3 = math.sqrt(3.0)
    p_t = (s3 / (1 + s3), 1 / (1 + s3))  # softmax((ln3, 0) / 2)
    p_s = (p_t[1], p_t[0])
    kl = sum(t * math.log(t / s) for t, s in zip(p_t, p_s))
    assert distillation_kl(STUDENT, TEACHER, 2.0).item() == pytest.approx(4.0 * kl, rel=1e-6)


def test_distillation_kl_is_zero_for_identical_logits_and_averages_over_batch():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]])
    assert distillation_kl(logits, logits, 3.0).item() == pytest.approx(0.0, abs=1e-5)
    two = torch.cat([STUDENT, STUDENT]), torch.cat([TEACHER, STUDENT])
    assert distillation_kl(*two, 1.0).item() == pytest.approx(0.25 * LN3, rel=1e-6)


def test_hinton_loss_mixes_hard_and_soft_terms():
    got = hinton_loss(STUDENT, TEACHER, torch.tensor([1]), temperature=1.0, alpha=0.3).item()
    assert got == pytest.approx(0.3 * -math.log(0.75) + 0.7 * 0.5 * LN3, rel=1e-6)


def test_teacher_gets_no_gradient_and_student_does():
    student = STUDENT.clone().requires_grad_()
    teacher = TEACHER.clone().requires_grad_()
    hinton_loss(student, teacher, torch.tensor([0]), temperature=2.0, alpha=0.5).backward()
    assert teacher.grad is None
    assert student.grad.abs().sum() > 0


def test_span_candidates_keep_cls_and_real_passage_tokens():
    qm = torch.tensor([[1, 1, 1, 0]])
    pm = torch.tensor([[1, 1, 0]])
    assert span_candidates(qm, pm).tolist() == [[True, False, False, False, True, True, False]]
    assert joint_mask(qm, pm).tolist() == [[True, True, True, False, True, True, False]]


def test_masked_positions_carry_no_mass_whatever_their_logits():
    valid = torch.tensor([[True, True, False]])
    base_s = torch.tensor([[0.0, LN3, 50.0]])
    base_t = torch.tensor([[LN3, 0.0, -80.0]])
    assert distillation_kl(base_s, base_t, 1.0, valid).item() == pytest.approx(0.5 * LN3, rel=1e-6)
    assert cross_entropy(base_s, torch.tensor([1]), valid).item() == pytest.approx(-math.log(0.75))


def test_span_losses_average_start_and_end():
    valid = torch.ones(1, 2, dtype=torch.bool)
    start_pos, end_pos = torch.tensor([1]), torch.tensor([0])
    # start: student (1/4, 3/4), label 1 -> -ln 3/4; end: same logits, label 0 -> -ln 1/4
    ce = span_cross_entropy(STUDENT, STUDENT, start_pos, end_pos, valid).item()
    assert ce == pytest.approx(0.5 * (-math.log(0.75) - math.log(0.25)))
    # start KL = 1/2 ln 3 (mismatched), end KL = 0 (identical)
    kl = span_distillation_kl(STUDENT, STUDENT, TEACHER, STUDENT, 1.0, valid).item()
    assert kl == pytest.approx(0.25 * LN3, rel=1e-6)
    total = span_hinton_loss(
        STUDENT, STUDENT, TEACHER, STUDENT, start_pos, end_pos, valid, temperature=1.0, alpha=0.25
    ).item()
    assert total == pytest.approx(0.25 * ce + 0.75 * kl, rel=1e-6)


def test_masked_mse_ignores_padding():
    student = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])  # (1, 3, 2)
    target = torch.tensor([[[0.0, 0.0], [3.0, 2.0], [0.0, 0.0]]])
    mask = torch.tensor([[1, 1, 0]])
    # squared errors on real tokens: 1, 4, 0, 4 -> mean 9/4
    assert masked_mse(student, target, mask).item() == pytest.approx(2.25)


def test_masked_mse_question_padding_does_not_contribute():
    torch.manual_seed(0)
    qm, pm = torch.tensor([[1, 1, 0, 0]]), torch.tensor([[1, 1, 1]])
    mask = joint_mask(qm, pm)
    a, b = torch.randn(1, 7, 4), torch.randn(1, 7, 4)
    b_changed = b.clone()
    b_changed[:, 2:4] += 1000.0  # question-side padding
    assert masked_mse(a, b, mask).item() == pytest.approx(masked_mse(a, b_changed, mask).item())


def test_relative_mse_is_scale_free_and_ignores_padding():
    student = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])  # (1, 3, 2)
    target = torch.tensor([[[0.0, 2.0], [3.0, 2.0], [5.0, 5.0]]])
    mask = torch.tensor([[1, 1, 0]])
    # real tokens: squared errors 1 + 0 + 0 + 4 = 5 over target energy 4 + 9 + 4 = 17
    assert relative_mse(student, target, mask).item() == pytest.approx(5.0 / 17.0)
    assert relative_mse(10 * student, 10 * target, mask).item() == pytest.approx(5.0 / 17.0)
    assert relative_mse(target, target, mask).item() == 0.0


def test_attention_kl_per_real_query_hand_value():
    mask = torch.tensor([[1, 1, 0]])
    teacher = torch.tensor([[[[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.2, 0.8, 0.0]]]])  # (1, 1, 3, 3)
    student = torch.tensor([[[[0.25, 0.75, 0.0], [0.5, 0.5, 0.0], [0.9, 0.1, 0.0]]]])
    # query 0: ½ln(½/¼) + ½ln(½/¾); query 1: ln(1/½); the padded query row 2 does not count
    expected = (0.5 * math.log(2.0) + 0.5 * math.log(2.0 / 3.0) + math.log(2.0)) / 2
    assert attention_kl(student, teacher, mask).item() == pytest.approx(expected, rel=1e-6)
    assert attention_kl(teacher, teacher, mask).item() == pytest.approx(0.0, abs=1e-7)
    two_heads = attention_kl(torch.cat([student, teacher], 1), torch.cat([teacher, teacher], 1), mask).item()
    assert two_heads == pytest.approx(expected / 2, rel=1e-6)  # averaged over heads


def test_lrs_averages_upper_layers_only():
    mask = torch.ones(1, 1)
    student = [torch.full((1, 1, 1), v) for v in (0.0, 0.0, 0.0, 1.5)]  # embeddings + 3 layers
    teacher = [torch.full((1, 1, 1), v) for v in (7.0, 5.0, 1.0, 3.0)]
    # split 1: layers 2 and 3 -> ((0-1)²/1 + (1.5-3)²/9) / 2
    assert layerwise_representation_loss(student, teacher, 1, mask).item() == pytest.approx(0.625)
    assert layerwise_representation_loss(student, teacher, 2, mask).item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="split=3"):
        layerwise_representation_loss(student, teacher, 3, mask)
