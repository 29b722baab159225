"""Teacher scoring speed: ``generate()`` as a chat judge vs one forward pass, prefix sharing, int8.

    python benchmarks/teacher_scoring.py                          # 600 Home Depot dev pairs
    python benchmarks/teacher_scoring.py --quick                  # ~120 pairs, generate on 40
    python benchmarks/teacher_scoring.py --model runs/teacher     # a trained teacher dir

(with ``HF_HUB_OFFLINE=1 PYTHONPATH=src .venv/bin/python`` from the repository root). On the same
pairs (the first whole queries of the dev split) it times

    (a) generate:  the prompt of ``PromptBuilder.encode``, left-padded batches, greedy
                   ``model.generate`` of a few tokens, the grade word parsed from the text;
    (b) forward:   ``TeacherScorer`` with ``prefix_sharing=False`` (one forward pass per pair);
    (c) prefix:    ``TeacherScorer`` with ``prefix_sharing=True``;
    (d) prefix+int8: (c) with dynamic int8 quantization of the linear layers.

Each method is warmed up on a few pairs first. Prints a table, then one JSON object (the last line)
with pairs/s, the ratios to (a) and (b), and agreement with (b): the max abs score difference of
(c), the Spearman correlation of (d)'s scores, and how often (a)'s parsed grade is (b)'s argmax.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from rich.table import Table
from scipy.stats import spearmanr

from shoprel.data.prepare import PrepareConfig, prepare
from shoprel.eval.evaluate import read_split
from shoprel.teacher.scorer import TeacherScorer, set_cpu_threads

DATA = Path(__file__).resolve().parents[1] / "../shared/data/home_depot_search_relevance/train.csv"
WARMUP_PAIRS = 8


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~120 pairs, generate on 40")
    parser.add_argument("--data", type=Path, default=DATA, help="Home Depot train.csv")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-teacher-scoring"))
    parser.add_argument("--model", type=Path, help="a teacher dir saved by shoprel")
    parser.add_argument("--base", default="smollm2-135m-instruct", help="zero-shot base model")
    parser.add_argument("--pairs", type=int, default=600, help="at least this many pairs")
    parser.add_argument("--generate-pairs", type=int, help="pairs for (a); default: all")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=3)
    args = parser.parse_args()
    if args.quick:
        args.pairs = min(args.pairs, 120)
        args.generate_pairs = args.generate_pairs or 40
    return args


def load_pairs(data: Path, out: Path, n_pairs: int) -> pd.DataFrame:
    """The first whole queries of the dev split, at least ``n_pairs`` pairs (if there are)."""
    if not data.is_file():
        raise SystemExit(f"Home Depot data not found at {data} (pass --data PATH/train.csv)")
    prepare(PrepareConfig(source="homedepot", inputs=[data]), out / "data")
    dev, _ = read_split(out / "data", "dev")
    sizes = dev.groupby("query_id", sort=False).size()
    n_queries = int(np.searchsorted(sizes.cumsum().to_numpy(), n_pairs)) + 1
    keep = set(sizes.index[:n_queries])
    return dev[dev["query_id"].isin(keep)].reset_index(drop=True)


def load_scorers(args: argparse.Namespace) -> dict[str, TeacherScorer]:
    """fp32 scorers without and with prefix sharing (one model), and an int8 one."""
    options = {"batch_size": args.batch_size}
    if args.model:
        fp32 = TeacherScorer.load(args.model, **options)
        int8 = TeacherScorer.load(args.model, int8=True, prefix_sharing=True, **options)
    else:
        fp32 = TeacherScorer.from_base(args.base, "homedepot", **options)
        int8 = TeacherScorer.from_base(
            args.base, "homedepot", int8=True, prefix_sharing=True, **options
        )
    tokenizer = fp32.builder.tokenizer
    share = {"batch_size": args.batch_size}
    return {
        "forward": TeacherScorer(fp32.model, tokenizer, fp32.meta, prefix_sharing=False, **share),
        "prefix": TeacherScorer(fp32.model, tokenizer, fp32.meta, prefix_sharing=True, **share),
        "prefix_int8": int8,
    }


class GenerateJudge:
    """The judge used as a chat model: greedy ``generate`` of the answer, the grade word parsed."""

    def __init__(self, scorer: TeacherScorer, batch_size: int, max_new_tokens: int) -> None:
        self.model = scorer.model
        self.builder = scorer.builder
        self.pad_id = scorer.pad_id
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.grades = list(scorer.grades)
        words = [re.escape(w.strip()) for w in self.builder.words]
        # a word that starts with a grade word counts ("exactly" -> exact), any case
        self.pattern = re.compile(r"\b(" + "|".join(words) + ")", re.IGNORECASE)
        self.by_word = {
            w.strip().lower(): g for w, g in zip(self.builder.words, self.grades, strict=True)
        }

    def answers(self, pairs: pd.DataFrame) -> list[str]:
        """The generated text of each pair, in the order of ``pairs``."""
        encoded = [self.builder.encode(row) for row in pairs.to_dict("records")]
        order = np.argsort([len(ids) for ids in encoded], kind="stable")
        texts = [""] * len(encoded)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            for row, text in zip(rows, self._generate([encoded[i] for i in rows]), strict=True):
                texts[row] = text
        return texts

    def _generate(self, prompts: list[list[int]]) -> list[str]:
        ids, mask = pad_left(prompts, self.pad_id)
        device = next(self.model.parameters()).device
        out = self.model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            pad_token_id=self.pad_id,
        )
        new = out[:, ids.shape[1] :]
        return self.builder.tokenizer.batch_decode(new, skip_special_tokens=True)

    def parse(self, text: str) -> str | None:
        """The grade of the first grade word in ``text``; None if there is none."""
        found = self.pattern.search(text)
        return self.by_word[found.group(1).lower()] if found else None


def pad_left(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row)
        mask[i, width - len(row) :] = 1
    return ids, mask


def timed(method: Callable[[pd.DataFrame], Any], pairs: pd.DataFrame) -> tuple[Any, float]:
    """Warm up on the first few pairs, then time the method on all of them."""
    method(pairs.head(WARMUP_PAIRS))
    started = time.perf_counter()
    result = method(pairs)
    return result, time.perf_counter() - started


def run_methods(
    scorers: dict[str, TeacherScorer], judge: GenerateJudge, pairs: pd.DataFrame, n_generate: int
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Each method's timing and its output: scores for the scorers, texts for generate."""
    runs: dict[str, dict[str, Any]] = {}
    texts, seconds = timed(judge.answers, pairs.head(n_generate))
    runs["generate"] = {"pairs": len(texts), "seconds": seconds}
    for name, scorer in scorers.items():
        frame, seconds = timed(scorer.predict, pairs)
        runs[name] = {"pairs": len(frame), "seconds": seconds, "frame": frame}
    for run in runs.values():
        run["pairs_per_s"] = run["pairs"] / run["seconds"]
    return runs, texts


def generate_agreement(
    forward: pd.DataFrame, judge: GenerateJudge, texts: list[str]
) -> dict[str, Any]:
    """How often (a)'s answer parses, and agrees with (b)'s argmax grade, on (a)'s pairs."""
    columns = [f"p_{g}" for g in judge.grades]
    probs = forward.head(len(texts))[columns].to_numpy()
    argmax = np.array(judge.grades)[probs.argmax(axis=1)]
    parsed = [judge.parse(t) for t in texts]
    ok = [i for i, grade in enumerate(parsed) if grade is not None]
    return {
        "generate_parsed": len(ok),
        "generate_parse_rate": len(ok) / len(texts),
        "generate_agreement": float(np.mean([parsed[i] == argmax[i] for i in ok])) if ok else None,
        "generate_answers": dict(Counter(t.strip() for t in texts).most_common(8)),
    }


def score_agreement(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """(c) and (d) against (b) on all pairs."""
    forward, prefix, int8 = (runs[k]["frame"] for k in ("forward", "prefix", "prefix_int8"))
    columns = [c for c in forward.columns if c.startswith("p_")]
    argmax = forward[columns].to_numpy().argmax(axis=1)
    return {
        "forward_score_std": float(forward["score"].std()),
        "prefix_max_abs_diff": float(np.abs(prefix["score"] - forward["score"]).max()),
        "prefix_max_abs_diff_prob": float(
            np.abs(prefix[columns].to_numpy() - forward[columns].to_numpy()).max()
        ),
        "int8_spearman": float(spearmanr(int8["score"], forward["score"]).statistic),
        "int8_max_abs_diff": float(np.abs(int8["score"] - forward["score"]).max()),
        "int8_argmax_agreement": float(np.mean(int8[columns].to_numpy().argmax(axis=1) == argmax)),
    }


def ratios(runs: dict[str, dict[str, Any]]) -> dict[str, float]:
    return {
        f"{name}_vs_{ref}": runs[name]["pairs_per_s"] / runs[ref]["pairs_per_s"]
        for ref in ("generate", "forward")
        for name in runs
        if name != ref
    }


def table(runs: dict[str, dict[str, Any]], agree: dict[str, Any], title: str) -> Table:
    notes = {
        "generate": f"parsed {agree['generate_parsed']}/{runs['generate']['pairs']}, "
        f"= argmax(b) {_fmt(agree['generate_agreement'])}",
        "forward": "reference",
        "prefix": f"max |Δscore| {agree['prefix_max_abs_diff']:.2e}",
        "prefix_int8": f"Spearman {agree['int8_spearman']:.4f}, "
        f"argmax = (b) {agree['int8_argmax_agreement']:.3f}",
    }
    out = Table(title=title)
    for column in ("method", "pairs", "seconds", "pairs/s", "× generate", "× forward", "vs (b)"):
        out.add_column(column, justify="left" if column in ("method", "vs (b)") else "right")
    for name, run in runs.items():
        rate = run["pairs_per_s"]
        out.add_row(
            name,
            str(run["pairs"]),
            f"{run['seconds']:.1f}",
            f"{rate:.2f}",
            f"{rate / runs['generate']['pairs_per_s']:.2f}",
            f"{rate / runs['forward']['pairs_per_s']:.2f}",
            notes[name],
        )
    return out


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    pairs = load_pairs(args.data, args.out, args.pairs)
    prepare_s = time.perf_counter() - started
    n_generate = min(args.generate_pairs or len(pairs), len(pairs))
    set_cpu_threads()
    load_avg = os.getloadavg()[0]
    scorers = load_scorers(args)
    judge = GenerateJudge(scorers["forward"], args.batch_size, args.max_new_tokens)
    runs, texts = run_methods(scorers, judge, pairs, n_generate)
    agree = generate_agreement(runs["forward"]["frame"], judge, texts) | score_agreement(runs)
    model = str(args.model) if args.model else args.base
    title = f"Teacher scoring, {model}, {len(pairs)} Home Depot dev pairs"
    Console(width=160).print(table(runs, agree, title))
    summary = {
        "quick": args.quick,
        "model": model,
        "n_pairs": len(pairs),
        "n_queries": int(pairs["query_id"].nunique()),
        "generate_pairs": n_generate,
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "torch_threads": torch.get_num_threads(),
        "load_avg_1m_at_start": round(load_avg, 2),
        **{f"{name}_pairs_per_s": round(run["pairs_per_s"], 3) for name, run in runs.items()},
        **{f"{name}_s": round(run["seconds"], 2) for name, run in runs.items()},
        "ratios": {k: round(v, 3) for k, v in ratios(runs).items()},
        **agree,
        "prepare_s": round(prepare_s, 1),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
