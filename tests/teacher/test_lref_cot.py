"""Multi-CoT: prompts and answers of each kind, completion-only loss, ``cot`` scoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from shoprel.data.schema import SCALES
from shoprel.teacher.cot import _direct_examples, sft_arguments, to_dataset, train_phases
from shoprel.teacher.lref.cot_prompts import CotPrompts, Example
from shoprel.teacher.lref.cot_scoring import reasoning_to_lead
from shoprel.teacher.lref.rules import RelevanceRules
from shoprel.teacher.prompts import PromptConfig
from shoprel.teacher.scorer import TeacherScorer
from shoprel.teacher.train import TeacherTrainConfig

ESCI = SCALES["esci"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def prompts(tiny_base: Path) -> CotPrompts:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    return CotPrompts(tokenizer, ESCI, PromptConfig(), RelevanceRules.load())


def test_each_kind_has_its_prompt_and_answers_end_on_the_grade(
    prompts: CotPrompts, demo_data: Path
) -> None:
    row = pd.read_parquet(demo_data / "dev.parquet").iloc[0].to_dict()
    decode = prompts.tokenizer.decode
    direct, ee = decode(prompts.prompt("direct", row)), decode(prompts.prompt("ee", row))
    assert direct.endswith("Relevance:") and "Relevance:" not in ee
    assert "first that holds decides" in prompts.builders["ra"].cfg.cot_system
    assert len(prompts.prompt("ra", row)) > len(prompts.prompt("ee", row)) + 20  # the rules
    dr = prompts.prompt("dr", row, wrong="complement")
    assert decode(dr).count("complement") == ee.count("complement") + 1  # the proposed grade
    answer = prompts.answer("the brand matches", grade=3, max_tokens=64)
    eos = prompts.tokenizer.eos_token_id
    assert answer[-3:] == [*prompts.lead, prompts.grade_ids[3], eos][-3:]
    assert answer[-2:] == [prompts.grade_ids[3], eos]
    assert len(prompts.answer("word " * 100, grade=0, max_tokens=5)) == 5 + len(prompts.lead) + 2
    assert prompts.direct(row, 2).answer == [prompts.grade_ids[2]]


def test_examples_fit_by_cutting_the_prompt_from_the_left() -> None:
    example = Example(prompt=list(range(10)), answer=[100, 101, 102])
    fitted = example.fitted(8)
    assert fitted.prompt == [5, 6, 7, 8, 9] and fitted.answer == [100, 101, 102]


def test_sft_trainer_learns_the_answers_only(
    tiny_base: Path, prompts: CotPrompts, demo_data: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM
    from trl import SFTTrainer

    rows = pd.read_parquet(demo_data / "dev.parquet").head(3).to_dict("records")
    examples = [
        Example(prompts.prompt("ee", r), prompts.answer("it fits", 3, 16)) for r in rows
    ] + [prompts.direct(rows[0], 1)]
    model = AutoModelForCausalLM.from_pretrained(tiny_base)
    cfg = TeacherTrainConfig(base=str(tiny_base), cot={"kinds": ["ee"]})
    trainer = SFTTrainer(
        model=model,
        args=sft_arguments(cfg, model, tmp_path, len(examples)),
        train_dataset=to_dataset(examples, max_length=384, seed=0),
        processing_class=prompts.tokenizer,
    )
    for item in trainer.train_dataset:
        labels, ids = np.array(item["labels"]), np.array(item["input_ids"])
        learned = ids[labels != -100].tolist()
        assert learned in [e.answer for e in examples]
        assert (labels[: len(ids) - len(learned)] == -100).all()


def test_direct_answers_take_every_pair_once_before_any_twice(
    prompts: CotPrompts, demo_data: Path
) -> None:
    pairs = pd.read_parquet(demo_data / "dev.parquet").head(5)
    true = ESCI.nearest_grade(pairs["label"].to_numpy(float))
    prompt_of = {
        tuple(prompts.prompt("direct", r)): i for i, r in enumerate(pairs.to_dict("records"))
    }
    taken = [prompt_of[tuple(e.prompt)] for e in _direct_examples(pairs, true, prompts, 12, seed=3)]
    assert sorted(taken[:5]) == sorted(taken[5:10]) == list(range(5)) and len(taken) == 12
    assert _direct_examples(pairs, true, prompts, 0, seed=3) == []


def test_the_control_trains_the_same_steps_on_direct_answers_only(
    tiny_base: Path, prompts: CotPrompts, demo_data: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    pairs = pd.read_parquet(demo_data / "dev.parquet").head(6)
    rows = pairs.to_dict("records")
    phases = {
        "ee": [Example(prompts.prompt("ee", r), prompts.answer("it fits", 3, 16)) for r in rows],
        "dr": [
            Example(prompts.prompt("dr", r, "exact"), prompts.answer("no", 1, 16)) for r in rows[:4]
        ],
    }
    records = {}
    for reasoning in (True, False):
        cfg = TeacherTrainConfig(
            base=str(tiny_base),
            cot={
                "kinds": ["ee", "dr"],
                "reasoning": reasoning,
                "args": {"per_device_train_batch_size": 2},
            },
        )
        model = AutoModelForCausalLM.from_pretrained(tiny_base)
        _, records[reasoning] = train_phases(
            cfg, model, prompts.tokenizer, phases, pairs, ESCI, prompts, tmp_path / str(reasoning)
        )
    stage, control = records[True], records[False]
    assert [r["cot_examples"] for r in stage] == [6, 4]
    assert [r["direct_examples"] for r in stage] == [3, 2]
    assert [r["cot_examples"] for r in control] == [0, 0]
    assert [r["direct_examples"] for r in control] == [9, 6]
    assert [r["steps"] for r in control] == [r["steps"] for r in stage] == [5, 3]


def test_reasoning_is_cut_at_the_label_lead() -> None:
    lead, stop = [7, 8], {0, 2}
    assert reasoning_to_lead([5, 6, 7, 8, 9, 9], lead, stop) == [5, 6, 7, 8]
    assert reasoning_to_lead([5, 6, 2, 0, 0], lead, stop) == [5, 6, 7, 8]
    assert reasoning_to_lead([5, 7, 6], lead, stop) == [5, 7, 6, 7, 8]


def test_cot_scoring_reads_the_grade_after_generated_reasoning(
    tiny_base: Path, demo_data: Path
) -> None:
    pairs = pd.read_parquet(demo_data / "dev.parquet").head(6)
    scorer = TeacherScorer.from_base(str(tiny_base), "esci", mode="cot", max_new_tokens=5)
    frame = scorer.predict(pairs)
    probs = frame[[f"p_{g}" for g in ESCI.grades]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1) and frame["_reasoning"].map(type).eq(str).all()
    assert frame["pair_id"].tolist() == pairs["pair_id"].tolist()
    direct = TeacherScorer.from_base(str(tiny_base), "esci").grade_probabilities(pairs)
    assert not np.allclose(probs, direct, atol=1e-4)  # another prompt, then the reasoning
    with pytest.raises(ValueError, match="scoring mode"):
        TeacherScorer.from_base(str(tiny_base), "esci", mode="verbose")


def test_warmup_is_five_percent_of_the_steps_and_none_for_short_runs() -> None:
    from shoprel.teacher.judge_io import warmup_steps

    assert warmup_steps(examples=4, batch_size=8, grad_accum=1, epochs=1) == 0
    assert warmup_steps(examples=300, batch_size=8, grad_accum=1, epochs=1) == 1  # 38 steps
    assert warmup_steps(examples=800, batch_size=8, grad_accum=1, epochs=2) == 10


def test_warmup_counts_the_steps_max_steps_sets(tmp_path: Path) -> None:
    from shoprel.teacher.judge_io import trainer_arguments

    model, cfg = torch.nn.Linear(2, 2), TeacherTrainConfig()
    stage = {"per_device_train_batch_size": 16, "max_steps": 100}
    assert trainer_arguments(cfg, model, tmp_path, 100_000, stage)["warmup_steps"] == 5
    del stage["max_steps"]  # 6,250 steps of one epoch
    assert trainer_arguments(cfg, model, tmp_path, 100_000, stage)["warmup_steps"] == 312
