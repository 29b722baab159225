"""DPO de-biasing: which pairs are made, and that training moves the judge away from them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from shoprel.data.schema import SCALES
from shoprel.teacher.config import DpoConfig
from shoprel.teacher.dpo import (
    answer_logps,
    balance_kinds,
    dpo_arguments,
    optimistic_pairs,
    pair_kinds,
    train_dpo,
    warn_if_one_kind,
)
from shoprel.teacher.prompts import PromptBuilder
from shoprel.teacher.stage_io import guard_verdict
from shoprel.teacher.train import TeacherTrainConfig

ESCI = SCALES["esci"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_pairs_are_optimistic_errors_with_the_truth_in_the_top_k() -> None:
    probs = np.array(
        [
            [0.30, 0.60, 0.10],  # top 1 > true 0, true 2nd      -> pair (0, 1)
            [0.10, 0.30, 0.60],  # top 2 > true 0, true 3rd      -> none (k=2), pair (k=3)
            [0.60, 0.10, 0.30],  # top 0 < true 2: pessimistic   -> none
            [0.10, 0.50, 0.40],  # top is the truth              -> none
            [0.05, 0.35, 0.60],  # top 2 > true 1, true 2nd      -> pair (1, 2)
            [0.40, 0.40, 0.20],  # a tie ranks the lower grade first: top 0 == true
        ]
    )
    true = np.array([0, 0, 2, 1, 1, 0])
    pairs = optimistic_pairs(probs, true, top_k=2)
    assert pairs.to_dict("list") == {"row": [0, 4], "chosen": [0, 1], "rejected": [1, 2]}
    wider = optimistic_pairs(probs, true, top_k=3)
    assert wider["row"].tolist() == [0, 1, 4] and wider["rejected"].tolist() == [1, 2, 2]
    assert (wider["rejected"] > wider["chosen"]).all()


def test_pairs_of_a_single_kind_are_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    one_kind = pd.DataFrame({"row": [0, 3, 5], "chosen": [1, 1, 1], "rejected": [2, 2, 2]})
    with caplog.at_level("WARNING", logger="shoprel.teacher.dpo"):
        warn_if_one_kind(one_kind, ESCI)
    assert "all 3 pairs prefer 'complement' over 'substitute'" in caplog.text
    caplog.clear()
    mixed = one_kind.assign(chosen=[0, 1, 1])
    with caplog.at_level("WARNING", logger="shoprel.teacher.dpo"):
        warn_if_one_kind(mixed, ESCI)
        warn_if_one_kind(one_kind.head(1), ESCI)
    assert caplog.text == ""


def test_balance_caps_the_common_kind_and_keeps_the_rare_ones() -> None:
    # 40 partial<exact, 6 irrelevant<partial, 2 irrelevant<exact (Home Depot's grades 0, 1, 2)
    kinds = [(1, 2)] * 40 + [(0, 1)] * 6 + [(0, 2)] * 2
    pairs = pd.DataFrame(
        {"row": range(48), "chosen": [c for c, _ in kinds], "rejected": [r for _, r in kinds]}
    )
    balanced = balance_kinds(pairs, seed=0)
    hd = SCALES["homedepot"]
    # the cap is max(rarest 2, 48 // (2 * 3) = 8)
    assert pair_kinds(balanced, hd) == {
        "irrelevant<partial": 6,
        "irrelevant<exact": 2,
        "partial<exact": 8,
    }
    assert balanced["row"].is_monotonic_increasing
    assert set(balanced["row"]) <= set(pairs["row"])
    assert balance_kinds(pairs, seed=0).equals(balanced)  # seeded
    one_kind = pairs.head(40)
    assert len(balance_kinds(one_kind, seed=0)) == 40  # nothing to balance against


def _dev(macro_f1: float, shares: list[float]) -> dict:
    return {"macro_f1": macro_f1, "predicted_share": dict(zip("abc", shares, strict=True))}


@pytest.mark.parametrize(
    ("after", "kept", "reason"),
    [
        (_dev(0.500, [0.3, 0.3, 0.4]), False, "change +0.000"),
        (_dev(0.495, [0.3, 0.3, 0.4]), False, "change -0.005"),
        (_dev(0.480, [0.3, 0.3, 0.4]), True, "macro-F1 fell by 0.020"),
        (_dev(0.600, [0.02, 0.93, 0.05]), True, "93% of dev predictions are 'b'"),
    ],
)
def test_guard_keeps_the_start_judge_when_dpo_hurts(after: dict, kept: bool, reason: str) -> None:
    verdict = guard_verdict(_dev(0.500, [0.3, 0.3, 0.4]), after, DpoConfig(enabled=True))
    assert verdict["kept_start"] is kept
    assert reason in verdict["reason"]


def test_guard_without_dev_pairs_keeps_the_tuned_judge() -> None:
    verdict = guard_verdict({}, {}, DpoConfig(enabled=True))
    assert not verdict["kept_start"] and "did not run" in verdict["reason"]


class DropoutLM(torch.nn.Module):
    """A language model whose logits go through dropout: random in train mode."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.dropout = torch.nn.Embedding(10, 10), torch.nn.Dropout(0.5)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(logits=self.dropout(self.embed(input_ids)))


def test_answer_logps_read_without_dropout_and_keep_the_mode() -> None:
    model = DropoutLM().train()
    prompts, answers = [[1, 2, 3], [4, 5]], [[6], [7, 8]]
    first = answer_logps(model, prompts, answers, pad_id=0)
    assert np.array_equal(first, answer_logps(model, prompts, answers, pad_id=0))
    assert model.training


def test_sft_weight_adds_trl_sft_loss(tiny_base: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_base)
    plain = TeacherTrainConfig(base=str(tiny_base), dpo={"enabled": True})
    args = dpo_arguments(plain, model, tmp_path, 16)
    assert list(args.loss_type) == ["sigmoid"]
    rpo_args = {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 0.5]}
    rpo = TeacherTrainConfig(base=str(tiny_base), dpo={"enabled": True, "args": rpo_args})
    args = dpo_arguments(rpo, model, tmp_path, 16)
    assert list(args.loss_type) == ["sigmoid", "sft"] and list(args.loss_weights) == [1.0, 0.5]


@pytest.mark.parametrize(
    ("epochs", "batch_size", "least_fall"),
    [(6, 8, 0.2), (1, 16, 1e-3)],  # 12 steps; and a single step, which warmup must not waste
)
def test_dpo_lowers_the_rejected_answer_against_the_chosen(
    tiny_base: Path,
    demo_data: Path,
    tmp_path: Path,
    epochs: int,
    batch_size: int,
    least_fall: float,
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base)
    builder = PromptBuilder(tokenizer, ESCI)
    pairs = pd.read_parquet(demo_data / "dev.parquet")
    pairs = pairs[pairs["label"] < 3].head(16)  # the judge called them exact: optimistic errors
    true = ESCI.nearest_grade(pairs["label"].to_numpy(float))
    rejected_grade = np.full(len(pairs), 3)
    prompts = [builder.encode(row) for row in pairs.to_dict("records")]
    chosen = [[builder.grade_ids[g]] for g in true]
    rejected = [[builder.grade_ids[g]] for g in rejected_grade]
    pad = tokenizer.pad_token_id

    def margin(m) -> float:
        gap = answer_logps(m, prompts, rejected, pad) - answer_logps(m, prompts, chosen, pad)
        return float(gap.mean())

    before = margin(model)
    cfg = TeacherTrainConfig(
        base=str(tiny_base),
        peft={"r": 4, "lora_alpha": 8, "lora_dropout": 0.0},
        dpo={
            "enabled": True,
            "args": {
                "beta": 0.5,
                "num_train_epochs": epochs,
                "learning_rate": 3e-2,
                "per_device_train_batch_size": batch_size,
                "logging_steps": 1,
            },
        },
    )
    tuned = train_dpo(cfg, model, tokenizer, prompts, chosen, rejected, tmp_path)
    after = margin(tuned)
    # the tiny judge's grade logits span under one nat, so a fall of 0.2 is a large one
    assert after < before - least_fall, (before, after)
    assert any("lora" in name for name, _ in tuned.named_parameters())


@pytest.mark.parametrize("queries", [1, 2, 5])
def test_the_dpo_hold_out_leaves_sft_a_query(queries: int) -> None:
    from shoprel.teacher.train import hold_out_queries

    pairs = pd.DataFrame({"query_id": [f"q{i % queries}" for i in range(10)], "pair_id": range(10)})
    rest, held = hold_out_queries(pairs, 0.99, seed=0)
    assert rest["query_id"].nunique() == 1 and held["query_id"].nunique() == queries - 1
    assert len(rest) + len(held) == 10


def test_a_hold_out_of_every_query_is_refused() -> None:
    with pytest.raises(ValueError, match="holdout_frac: expected < 1"):
        DpoConfig(holdout_frac=1.0)
