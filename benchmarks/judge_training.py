"""Judge training speed: LoRA with its default dropout against none, in the same run.

    python benchmarks/judge_training.py                  # SmolLM2-135M, quickstart train pairs
    python benchmarks/judge_training.py --quick
    python benchmarks/judge_training.py --base qwen2.5-coder-0.5b --data runs/hd/data

(with ``HF_HUB_OFFLINE=1 PYTHONPATH=src .venv/bin/python`` from the repository root). PEFT's LoRA
drops out each adapted layer's input with a fresh random mask, seven masks per decoder layer,
and on a CPU drawing a mask costs about as much as a small matmul. This times the SFT stage's
training step (grade-logit forward, soft-target loss, backward, AdamW step) of one LoRA judge per
``lora_dropout`` on the same batches of train pairs, in the dtype shoprel picks for the device;
the settings take turns, one step each, after a warmup step. Prints a table, then one JSON
object (the last line): pairs/s per setting and ``no_dropout_speedup``.
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
from shoprel.teacher.grade_trainer import PadCollator, soft_target_loss, targets_for
from shoprel.teacher.judge_io import load_base, load_tokenizer
from shoprel.teacher.model import grade_logits
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


def batches(
    args: argparse.Namespace, pairs: pd.DataFrame, builder: PromptBuilder
) -> list[dict[str, torch.Tensor]]:
    """``steps + 1`` batches of the first ``pairs`` (the first batch is the warmup)."""
    pairs = pairs.head(args.batch_size * (args.steps + 1)).reset_index(drop=True)
    targets = targets_for(pairs, builder.scale, "soft")
    rows = [
        {"input_ids": builder.encode(row), "target": targets[i]}
        for i, row in enumerate(pairs.to_dict("records"))
    ]
    collate = PadCollator(builder.tokenizer.pad_token_id)
    return [collate(rows[i : i + args.batch_size]) for i in range(0, len(rows), args.batch_size)]


def trainer_step(judge: dict[str, Any], batch: dict[str, torch.Tensor]) -> float:
    """One optimizer step on ``batch``; its seconds."""
    model, optimizer, grade_ids = judge["model"], judge["optimizer"], judge["grade_ids"]
    started = time.perf_counter()
    logits = grade_logits(model, batch["input_ids"], batch["attention_mask"], grade_ids)
    soft_target_loss(logits, batch["target"].to(logits.dtype)).backward()
    optimizer.step()
    optimizer.zero_grad()
    if logits.device.type == "cuda":
        torch.cuda.synchronize()  # the step's kernels finished, not only queued
    return time.perf_counter() - started


def load_judges(path: Path, builder: PromptBuilder, device: torch.device) -> dict[str, Any]:
    judges = {}
    for dropout in (DEFAULT_DROPOUT, 0.0):
        set_seed(0)
        cfg = TeacherTrainConfig(peft={"lora_dropout": dropout})
        model = load_base(path, cfg, device, builder.grade_ids)
        model.train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        judges[f"lora_dropout {dropout:g}"] = {
            "model": model,
            "optimizer": torch.optim.AdamW(trainable, lr=1e-4),
            "grade_ids": torch.tensor(builder.grade_ids, device=device),
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
    data = [{k: v.to(device) for k, v in b.items()} for b in batches(args, pairs, builder)]
    if len(data) < 2:
        raise SystemExit(f"{args.data}: too few train pairs for a warmup and a timed batch")
    judges = load_judges(path, builder, device)
    load_avg = os.getloadavg()[0]
    for i, batch in enumerate(data):
        for judge in judges.values():
            seconds = trainer_step(judge, batch)
            if i:  # the first batch warms up
                judge["seconds"].append(seconds)
    timed_pairs = sum(len(b["input_ids"]) for b in data[1:])
    rate = {name: timed_pairs / sum(j["seconds"]) for name, j in judges.items()}
    tokens = float(np.mean([b["attention_mask"].sum().item() for b in data]))
    title = (
        f"Judge LoRA training, {args.base}, batch {args.batch_size} "
        f"({tokens / args.batch_size:.0f} tokens a pair), {cpu_name()}"
    )
    table = Table(title=title)
    for column in ("setting", "pairs/s", "s a step", "× default"):
        table.add_column(column, justify="right")
    default = rate[f"lora_dropout {DEFAULT_DROPOUT:g}"]
    for name, pairs_per_s in rate.items():
        step = np.mean(judges[name]["seconds"])
        table.add_row(name, f"{pairs_per_s:.2f}", f"{step:.2f}", f"{pairs_per_s / default:.2f}")
    Console(width=160).print(table)
    summary = {
        "quick": args.quick,
        "base": args.base,
        "cpu": cpu_name(),
        "dtype": str(pick_dtype(device)).removeprefix("torch."),
        "device": device.type,
        "batch_size": args.batch_size,
        "timed_steps": len(data) - 1,
        "tokens_per_pair": round(tokens / args.batch_size, 1),
        "torch_threads": torch.get_num_threads(),
        "load_avg_1m_at_start": round(load_avg, 2),
        **{f"{name.replace(' ', '_')}_pairs_per_s": round(r, 3) for name, r in rate.items()},
        "no_dropout_speedup": round(rate["lora_dropout 0"] / default, 3),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
