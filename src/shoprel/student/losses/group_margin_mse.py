"""Margin-MSE over all item pairs of each query in a batch."""

from __future__ import annotations

from typing import Any

import torch
from sentence_transformers.cross_encoder.losses import MarginMSELoss
from torch import Tensor


class GroupMarginMSELoss(MarginMSELoss):
    """Margin-MSE between the student's and the teacher's score margins within each query.

    For each query group in the batch, over every pair of its items ``i < j``, the mean of
    ``((s_i - s_j) - (t_i - t_j))²``, with ``s`` the student's logits (after ``activation_fn``) and
    ``t`` the teacher's scores; the loss is the mean of that over the groups with two or more items.
    Items of different groups are never compared, and adding a constant to all of one group's
    student (or teacher) scores leaves the margin term unchanged: margins alone leave the level
    of the scores free, which costs AUC across queries and any reading of the score as a grade.
    ``pointwise_weight`` adds ``w * mean((s - t)²)`` over all items, which pins the level to the
    teacher's while the margins still carry the order within a query. Unlike the library's
    ``MarginMSELoss``,
    a group may hold any number of items; the batch must keep each query's items together (see
    :class:`shoprel.student.sampler.QueryGroupBatchSampler`).

    Args:
        model: a ``CrossEncoder`` with ``num_labels == 1``.
        activation_fn: applied to the logits before the margins (defaults to identity).
        pointwise_weight: weight of the pointwise MSE term (0: margins only).

    References:
        - Knowledge Distillation for Enhancing Walmart E-commerce Search Relevance Using Large
          Language Models: https://arxiv.org/abs/2505.07105
        - Improving Efficient Neural Ranking Models with Cross-Architecture Knowledge Distillation:
          https://arxiv.org/abs/2010.02666

    Inputs:
        +-------------------------------------+----------------------------+---------------------+
        | Inputs                              | Labels                     | Model output labels |
        +=====================================+============================+=====================+
        | (query, document, group id) columns | teacher score of each pair | 1                   |
        +-------------------------------------+----------------------------+---------------------+
        | (query, document) columns           | teacher score of each pair | 1                   |
        +-------------------------------------+----------------------------+---------------------+

        Without a group-id column the query text is the group.

    Example:
        ::

            from datasets import Dataset
            from sentence_transformers.cross_encoder import (
                CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments,
            )
            from shoprel.student.losses import GroupMarginMSELoss
            from shoprel.student.sampler import QueryGroupBatchSampler

            model = CrossEncoder("minilm-dir", num_labels=1)
            train = Dataset.from_dict({
                "query": ["drill", "drill", "drill", "rug"],
                "text": ["cordless drill", "drill bits", "hammer", "area rug"],
                "query_id": ["q1", "q1", "q1", "q2"],
                "label": [0.9, 0.5, 0.1, 1.0],
            })
            args = CrossEncoderTrainingArguments("out", batch_sampler=QueryGroupBatchSampler)
            trainer = CrossEncoderTrainer(
                model=model, args=args, train_dataset=train, loss=GroupMarginMSELoss(model)
            )
            trainer.train()
    """

    def __init__(self, model: Any, pointwise_weight: float = 0.0, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        if not pointwise_weight >= 0:  # NaN too
            raise ValueError(f"pointwise_weight: expected >= 0, got {pointwise_weight}")
        self.pointwise_weight = pointwise_weight

    def forward(
        self,
        inputs: list[list[str]],
        labels: Tensor,
        prompt: str | None = None,
        task: str | None = None,
    ) -> Tensor:
        if len(inputs) not in (2, 3):
            raise ValueError(
                f"{type(self).__name__} expects (query, document) or (query, document, group id) "
                f"columns, but got {len(inputs)} columns."
            )
        queries, documents = inputs[0], inputs[1]
        groups = inputs[2] if len(inputs) == 3 else queries
        if labels is None or labels.numel() != len(queries):
            got = "no labels" if labels is None else f"{labels.numel()} labels"
            raise ValueError(
                f"{type(self).__name__} expects one teacher score per pair ({len(queries)}), "
                f"but got {got}."
            )
        scores = self.logits_from_pairs(
            list(zip(queries, documents, strict=True)), prompt=prompt, task=task
        ).float()  # under bf16 autocast too: targets and per-group sums keep fp32's precision
        teacher = labels.view(-1).to(scores)
        loss = group_margin_mse(scores, teacher, group_index(groups))
        if self.pointwise_weight:
            loss = loss + self.pointwise_weight * (scores - teacher).square().mean()
        return loss

    def get_config_dict(self) -> dict[str, Any]:
        return super().get_config_dict() | {"pointwise_weight": self.pointwise_weight}


def group_index(groups: list) -> Tensor:
    """Each item's group as an integer 0..G-1, in order of first appearance."""
    ids: dict = {}
    return torch.tensor([ids.setdefault(g, len(ids)) for g in groups], dtype=torch.long)


def group_margin_mse(student: Tensor, teacher: Tensor, groups: Tensor) -> Tensor:
    """Mean over groups of the mean over pairs ``i < j`` of ``((s_i - s_j) - (t_i - t_j))²``."""
    groups = groups.to(student.device)
    gap = student - teacher.detach()
    margins = gap.unsqueeze(1) - gap.unsqueeze(0)  # (s_i - s_j) - (t_i - t_j)
    upper = torch.ones_like(margins, dtype=torch.bool).triu(diagonal=1)
    paired = upper & (groups.unsqueeze(1) == groups.unsqueeze(0))
    n_groups = int(groups.max()) + 1 if groups.numel() else 0
    sums = student.new_zeros(n_groups).index_add(0, groups, (margins.square() * paired).sum(1))
    counts = student.new_zeros(n_groups).index_add(0, groups, paired.sum(1).to(student.dtype))
    has_pairs = counts > 0
    if not has_pairs.any():
        return student.sum() * 0.0  # no pair in this batch: a zero that keeps the graph
    return (sums[has_pairs] / counts[has_pairs]).mean()
