"""DPO de-biasing: which pairs are made, and that training moves the judge away from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shoprel.data.schema import SCALES
from shoprel.teacher.lref.dpo import answer_logps, optimistic_pairs, train_dpo, warn_if_one_kind
from shoprel.teacher.prompts import PromptBuilder
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
    with caplog.at_level("WARNING", logger="shoprel.teacher.lref.dpo"):
        warn_if_one_kind(one_kind, ESCI)
    assert "all 3 pairs prefer 'complement' over 'substitute'" in caplog.text
    caplog.clear()
    mixed = one_kind.assign(chosen=[0, 1, 1])
    with caplog.at_level("WARNING", logger="shoprel.teacher.lref.dpo"):
        warn_if_one_kind(mixed, ESCI)
        warn_if_one_kind(one_kind.head(1), ESCI)
    assert caplog.text == ""


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
        lora_r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        logging_steps=1,
        dpo={
            "enabled": True,
            "beta": 0.5,
            "epochs": epochs,
            "learning_rate": 3e-2,
            "batch_size": batch_size,
        },
    )
    tuned = train_dpo(cfg, model, tokenizer, prompts, chosen, rejected, tmp_path)
    after = margin(tuned)
    # the tiny judge's grade logits span under one nat, so a fall of 0.2 is a large one
    assert after < before - least_fall, (before, after)
    assert any("lora" in name for name, _ in tuned.named_parameters())
