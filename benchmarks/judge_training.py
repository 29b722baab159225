"""Judge training speed: LoRA dropout against none, whole prompts against shared prefixes.

    python benchmarks/judge_training.py                  # SmolLM2-135M, quickstart train pairs
    python benchmarks/judge_training.py --quick
    python benchmarks/judge_training.py --base gemma3-270m --fields brand
    python benchmarks/judge_training.py --base qwen2.5-coder-0.5b --data runs/hd/data

(with ``HF_HUB_OFFLINE=1 PYTHONPATH=src .venv/bin/python`` from the repository root). Times the
SFT stage's training step (grade-logit forward, soft-target loss, backward, AdamW step) of one
LoRA judge per setting on the same train pairs, in the dtype shoprel picks for the device; the
settings take turns, one step each, after a warmup step:

- ``lora_dropout 0.05, whole prompts``: PEFT's default dropout draws a fresh random mask for each
  adapted layer's input, seven masks per decoder layer, each about the cost of a small matmul;
- ``no dropout, whole prompts``: pairs in random batches, each prompt run whole;
- ``no dropout, shared prefixes`` (``sft.share_prefix``, the default): the same pairs in batches of
  few queries (:class:`~shoprel.teacher.grade_trainer.QueryGroupedSampler`), the prompt head and
  each query run once a batch.

Prints a table, then one JSON object (the last line): pairs/s per setting, ``no_dropout_speedup``
and ``shared_prefix_speedup`` (shared prefixes over whole prompts, both without dropout).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from quickstart_run import fill
from rich.console import Console
from rich.table import Table
from transformers import set_seed

from shoprel.data.splits import read_split
from shoprel.devices import cpu_name, pick_device, pick_dtype
from shoprel.models import resolve_model
from shoprel.teacher.config import LORA_ARGS, TeacherTrainConfig
from shoprel.teacher.grade_trainer import (
    PadCollator,
    QueryGroupedSampler,
    batch_grade_logits,
    encode_pairs,
    soft_target_loss,
    targets_for,
)
from shoprel.teacher.judge_io import load_base, load_tokenizer
from shoprel.teacher.prompts import PromptBuilder, PromptConfig
from shoprel.teacher.scorer import set_cpu_threads

DEFAULT_DROPOUT = LORA_ARGS["lora_dropout"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 timed steps of 8 pairs")
    parser.add_argument("--data", type=Path, help="prepared data dir (default: the quickstart's)")
    parser.add_argument("--base", default="smollm2-135m-instruct", help="causal LM alias or dir")
    parser.add_argument("--fields", nargs="*", help="product fields in the prompt (default: all)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per setting")
    args = parser.parse_args()
    if args.quick:
        args.steps = min(args.steps, 3)
    fill(args, data="data")
    return args


DROPOUT = f"lora_dropout {DEFAULT_DROPOUT:g}, whole prompts"
WHOLE = "no dropout, whole prompts"
SHARED = "no dropout, shared prefixes"
JSON_KEYS = {
    DROPOUT: f"lora_dropout_{DEFAULT_DROPOUT:g}",
    WHOLE: "lora_dropout_0",
    SHARED: "shared_prefix",
}


def batches(
    args: argparse.Namespace, pairs: pd.DataFrame, builder: PromptBuilder, share: bool
) -> list[dict[str, torch.Tensor]]:
    """``steps + 1`` batches (the first is the warmup) of the same pairs, whole queries in the
    order of the trainer's sampler: as they come (shared prefixes) or shuffled (whole prompts)."""
    order = list(QueryGroupedSampler(pairs["query"].tolist(), seed=0))
    pairs = pairs.iloc[order[: args.batch_size * (args.steps + 1)]].reset_index(drop=True)
    if not share:
        pairs = pairs.sample(frac=1.0, random_state=0).reset_index(drop=True)
    targets = targets_for(pairs, builder.scale, "soft")
    encoded = encode_pairs(builder, pairs, 256, share)
    rows = [{**e, "target": targets[i]} for i, e in enumerate(encoded)]
    collate = PadCollator(builder.tokenizer.pad_token_id)
    return [collate(rows[i : i + args.batch_size]) for i in range(0, len(rows), args.batch_size)]


def run_tokens(batch: dict[str, torch.Tensor], head_ids: list[int]) -> int:
    """The tokens a batch runs through the decoder, padding included."""
    if "owner" not in batch:
        return batch["input_ids"].numel()
    return len(head_ids) + batch["query_ids"].numel() + batch["input_ids"].numel()


def trainer_step(judge: dict[str, Any], batch: dict[str, torch.Tensor]) -> float:
    """One optimizer step on ``batch``; its seconds."""
    model, optimizer = judge["model"], judge["optimizer"]
    started = time.perf_counter()
    logits = batch_grade_logits(model, batch, judge["grade_ids"], judge["head_ids"])
    soft_target_loss(logits, batch["target"].to(logits.dtype)).backward()
    optimizer.step()
    optimizer.zero_grad()
    if logits.device.type == "cuda":
        torch.cuda.synchronize()  # the step's kernels finished, not only queued
    return time.perf_counter() - started


def load_judges(path: Path, builder: PromptBuilder, device: torch.device) -> dict[str, Any]:
    judges = {}
    for name, dropout in ((DROPOUT, DEFAULT_DROPOUT), (WHOLE, 0.0), (SHARED, 0.0)):
        set_seed(0)
        cfg = TeacherTrainConfig(peft={"lora_dropout": dropout})
        model = load_base(path, cfg, device, builder.grade_ids)
        model.train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        judges[name] = {
            "model": model,
            "optimizer": torch.optim.AdamW(trainable, lr=1e-4),
            "grade_ids": torch.tensor(builder.grade_ids, device=device),
            "head_ids": builder.head_ids,
            "seconds": [],
        }
    return judges


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    set_cpu_threads()
    device = pick_device()
    path = Path(resolve_model(args.base))
    tokenizer = load_tokenizer(path)
    pairs, scale = read_split(args.data, "train")
    prompt = PromptConfig(fields=args.fields) if args.fields is not None else PromptConfig()
    builder = PromptBuilder(tokenizer, scale, prompt)
    inputs = (args, pairs, builder)
    data = {
        share: [{k: v.to(device) for k, v in b.items()} for b in batches(*inputs, share)]
        for share in (False, True)
    }
    if len(data[False]) < 2:
        raise SystemExit(f"{args.data}: too few train pairs for a warmup and a timed batch")
    judges = load_judges(path, builder, device)
    load_avg = os.getloadavg()[0]
    for i in range(len(data[False])):
        for name, judge in judges.items():
            seconds = trainer_step(judge, data[name == SHARED][i])
            if i:  # the first batch warms up
                judge["seconds"].append(seconds)
    timed_pairs = sum(len(b["target"]) for b in data[False][1:])
    rate = {name: timed_pairs / sum(j["seconds"]) for name, j in judges.items()}
    tokens = {
        share: float(np.mean([run_tokens(b, builder.head_ids) for b in data[share]]))
        for share in (False, True)
    }
    title = (
        f"Judge LoRA training, {args.base}, batch {args.batch_size} "
        f"({tokens[False] / args.batch_size:.0f} tokens a pair whole, "
        f"{tokens[True] / args.batch_size:.0f} shared), {cpu_name()}"
    )
    table = Table(title=title)
    for column in ("setting", "pairs/s", "s a step", "× default"):
        table.add_column(column, justify="right")
    for name, pairs_per_s in rate.items():
        step = np.mean(judges[name]["seconds"])
        speedup = pairs_per_s / rate[DROPOUT]
        table.add_row(name, f"{pairs_per_s:.2f}", f"{step:.2f}", f"{speedup:.2f}")
    Console(width=160).print(table)
    summary = {
        "quick": args.quick,
        "base": args.base,
        "cpu": cpu_name(),
        "dtype": str(pick_dtype(device)).removeprefix("torch."),
        "device": device.type,
        "batch_size": args.batch_size,
        "timed_steps": len(data[False]) - 1,
        "tokens_per_pair": round(tokens[False] / args.batch_size, 1),
        "shared_tokens_per_pair": round(tokens[True] / args.batch_size, 1),
        "torch_threads": torch.get_num_threads(),
        "load_avg_1m_at_start": round(load_avg, 2),
        **{f"{JSON_KEYS[name]}_pairs_per_s": round(r, 3) for name, r in rate.items()},
        "no_dropout_speedup": round(rate[WHOLE] / rate[DROPOUT], 3),
        "shared_prefix_speedup": round(rate[SHARED] / rate[WHOLE], 3),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
