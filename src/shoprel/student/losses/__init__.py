"""Losses for the cross-encoder student, in the style of sentence-transformers' own."""

from __future__ import annotations

from shoprel.student.losses.group_margin_mse import GroupMarginMSELoss

__all__ = ["GroupMarginMSELoss"]
