"""The all-pairs Margin-MSE within query groups, against hand computations."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from shoprel.student.losses import GroupMarginMSELoss
from shoprel.student.losses.group_margin_mse import group_index, group_margin_mse


def hand_margin_mse(student: list[float], teacher: list[float]) -> float:
    """The mean over i < j of ((s_i - s_j) - (t_i - t_j))², written out."""
    terms = [
        ((student[i] - student[j]) - (teacher[i] - teacher[j])) ** 2
        for i in range(len(student))
        for j in range(i + 1, len(student))
    ]
    return sum(terms) / len(terms)


def loss_of(student: list[float], teacher: list[float], groups: list[str]) -> float:
    return group_margin_mse(
        torch.tensor(student), torch.tensor(teacher), group_index(groups)
    ).item()


def test_one_group_equals_hand_computation() -> None:
    student, teacher = [1.0, 0.5, -0.2], [0.9, 0.1, 0.3]
    # ((1-.5)-(.9-.1))² = .09, ((1+.2)-(.9-.3))² = .36, ((.5+.2)-(.1-.3))² = .81
    assert hand_margin_mse(student, teacher) == pytest.approx((0.09 + 0.36 + 0.81) / 3)
    assert loss_of(student, teacher, ["q"] * 3) == pytest.approx(0.42)


def test_two_groups_in_one_batch_have_no_cross_group_pairs() -> None:
    a_student, a_teacher = [1.0, 0.5, -0.2], [0.9, 0.1, 0.3]
    b_student, b_teacher = [2.0, 0.0], [0.5, 1.5]
    expected = (hand_margin_mse(a_student, a_teacher) + hand_margin_mse(b_student, b_teacher)) / 2
    assert expected == pytest.approx((0.42 + 9.0) / 2)
    # interleaved rows: a, b, a, b, a
    student = [a_student[0], b_student[0], a_student[1], b_student[1], a_student[2]]
    teacher = [a_teacher[0], b_teacher[0], a_teacher[1], b_teacher[1], a_teacher[2]]
    groups = ["a", "b", "a", "b", "a"]
    assert loss_of(student, teacher, groups) == pytest.approx(expected)
    assert loss_of(student, teacher, ["a"] * 5) != pytest.approx(expected)


@settings(max_examples=50, deadline=None)
@given(
    teacher=st.lists(st.floats(-3, 3), min_size=2, max_size=12),
    offsets=st.lists(st.floats(-100, 100), min_size=3, max_size=3),
    group_of=st.lists(st.integers(0, 2), min_size=12, max_size=12),
)
def test_zero_when_margins_match_whatever_the_offset(
    teacher: list[float], offsets: list[float], group_of: list[int]
) -> None:
    groups = group_of[: len(teacher)]
    student = [t + offsets[g] for t, g in zip(teacher, groups, strict=True)]
    assert loss_of(student, teacher, [str(g) for g in groups]) == pytest.approx(0.0, abs=1e-6)


def test_a_batch_without_pairs_gives_a_differentiable_zero() -> None:
    student = torch.tensor([0.3, -1.0], requires_grad=True)
    loss = group_margin_mse(student, torch.tensor([1.0, 2.0]), group_index(["a", "b"]))
    loss.backward()
    assert loss.item() == 0.0 and student.grad is not None


@pytest.fixture(scope="module")
def untrained_cross_encoder(tiny_bert: Path) -> Any:
    from sentence_transformers.cross_encoder import CrossEncoder

    return CrossEncoder(str(tiny_bert), num_labels=1, max_length=32)


@pytest.fixture
def model(untrained_cross_encoder: Any) -> Any:
    return copy.deepcopy(untrained_cross_encoder)


def test_module_groups_by_id_column_else_by_query(
    model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    loss = GroupMarginMSELoss(model)
    logits = torch.tensor([1.0, 0.5, -0.2, 2.0, 0.0])
    monkeypatch.setattr(loss, "logits_from_pairs", lambda pairs, **_: logits)
    teacher = torch.tensor([0.9, 0.1, 0.3, 0.5, 1.5])
    queries = ["drill", "drill", "drill", "rug", "rug"]
    docs = ["d1", "d2", "d3", "r1", "r2"]
    by_query = loss([queries, docs], teacher).item()
    assert by_query == pytest.approx((0.42 + 9.0) / 2)
    one_group = loss([queries, docs, ["q"] * 5], teacher).item()
    assert one_group == pytest.approx(hand_margin_mse(logits.tolist(), teacher.tolist()))


def test_bf16_logits_are_scored_against_fp32_targets(
    model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    loss = GroupMarginMSELoss(model, pointwise_weight=0.5)
    logits = torch.tensor([1.0, 0.5, -0.25], dtype=torch.bfloat16)  # as under bf16 autocast
    monkeypatch.setattr(loss, "logits_from_pairs", lambda pairs, **_: logits)
    teacher = torch.tensor([0.9013, 0.1007, 0.3021])  # not representable in bf16
    value = loss([["drill"] * 3, ["a", "b", "c"]], teacher)
    expected = hand_margin_mse(logits.float().tolist(), teacher.tolist())
    expected += 0.5 * (logits.float() - teacher).square().mean().item()
    assert value.dtype == torch.float32 and value.item() == pytest.approx(expected, rel=1e-6)


def test_the_pointwise_term_pins_the_level_the_margins_leave_free(
    model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    teacher = torch.tensor([0.9, 0.1, 0.3, 0.5, 1.5])
    inputs = [["drill"] * 3 + ["rug"] * 2, ["d1", "d2", "d3", "r1", "r2"]]
    margins, weighted = GroupMarginMSELoss(model), GroupMarginMSELoss(model, pointwise_weight=0.5)
    for shift in (0.0, 2.0):  # the teacher's scores moved by a constant: same margins
        logits = teacher + shift
        for loss in (margins, weighted):
            monkeypatch.setattr(loss, "logits_from_pairs", lambda pairs, logits=logits, **_: logits)
        assert margins(inputs, teacher).item() == pytest.approx(0.0, abs=1e-9)
        assert weighted(inputs, teacher).item() == pytest.approx(0.5 * shift**2)
    assert weighted.get_config_dict()["pointwise_weight"] == 0.5
    with pytest.raises(ValueError, match="pointwise_weight"):
        GroupMarginMSELoss(model, pointwise_weight=-1.0)


def test_module_checks_its_inputs(model: Any, tiny_bert: Path) -> None:
    from sentence_transformers.cross_encoder import CrossEncoder

    loss = GroupMarginMSELoss(model)
    with pytest.raises(ValueError, match=r"GroupMarginMSELoss expects .* but got 1 columns"):
        loss([["drill"]], torch.tensor([1.0]))
    with pytest.raises(ValueError, match=r"one teacher score per pair \(2\), but got 3 labels"):
        loss([["drill", "drill"], ["a", "b"]], torch.tensor([1.0, 2.0, 3.0]))
    two_labels = CrossEncoder(str(tiny_bert), num_labels=2)
    with pytest.raises(ValueError, match="1 output label"):
        GroupMarginMSELoss(two_labels)


def test_gradient_reaches_the_encoder(model: Any) -> None:
    loss = GroupMarginMSELoss(model)
    value = loss(
        [["drill"] * 3, ["cordless drill", "drill bits", "area rug"], ["q1"] * 3],
        torch.tensor([0.9, 0.5, 0.0]),
    )
    value.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert value.item() > 0 and any(g.abs().sum() > 0 for g in grads)
