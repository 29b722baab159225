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
    (d) prefix+int8: (c) with dynamic int8 quantization of the linear layers but the MLP's
                   down projection (what ``--int8`` does);
    (d') prefix+int8_all: (c) with every linear layer of the decoder in int8;
    (e) prefix+bf16: (c) with the weights in bf16 (what ``shoprel`` picks on a CPU whose bf16
                   matmul is at least 2x faster than fp32, and on CUDA).

(b) and (c) run in fp32 whatever the CPU. The JSON also has the CPU's model name and its bf16
matmul speedup as measured by :func:`shoprel.devices.cpu_bf16_speedup`, and, per kind of linear
layer (q_proj, ..., down_proj), the median and max relative error of its int8 output against the
float one on a few dev prompts (``int8_rel_error``): why (d) keeps the down projection float.

Each method is warmed up on a few pairs first; then the methods take turns on parts of the pairs
(``--rounds``), so that other processes on the machine slow them alike. Prints a table, then one
JSON object (the last line) with pairs/s, the ratios to (a) and (b), and agreement with (b): the
max abs score difference of (c), the Spearman correlation of (d)'s scores, and how often (a)'s
parsed grade is (b)'s argmax. The ``load`` column (the highest 1-minute load average after a
method's turns) flags other processes sharing the cores: this run alone adds about its torch
thread count.
"""

from __future__ import annotations

import argparse
import copy
import itertools
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
from shoprel.data.splits import read_split
from shoprel.devices import cpu_bf16_speedup, cpu_name
from shoprel.teacher.model import pad_right
from shoprel.teacher.scorer import TeacherScorer, int8_layer_names, quantize_int8, set_cpu_threads

DATA = Path(__file__).resolve().parents[1] / "../shared/data/home_depot_search_relevance/train.csv"
WARMUP_PAIRS = 8
ERROR_PAIRS = 16


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
    parser.add_argument(
        "--rounds", type=int, default=4, help="the methods take turns on this many parts"
    )
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
    keep = dev[dev["query_id"].isin(set(sizes.index[:n_queries]))]
    # each query's rows together, queries in the order of the dev split
    return pd.concat(group for _, group in keep.groupby("query_id", sort=False)).reset_index(
        drop=True
    )


def split_queries(pairs: pd.DataFrame, rounds: int) -> list[pd.DataFrame]:
    """``pairs`` (each query's rows together) in about equal parts of whole queries, in order."""
    bounds = np.linspace(0, len(pairs), rounds + 1).round().astype(int)[1:-1]
    starts = pairs.index[~pairs["query_id"].duplicated()].to_numpy()
    cuts = sorted({int(starts[np.searchsorted(starts, b)]) for b in bounds if b <= starts[-1]})
    edges = [0, *cuts, len(pairs)]
    return [pairs.iloc[a:b] for a, b in itertools.pairwise(edges) if b > a]


def load_scorers(args: argparse.Namespace) -> dict[str, TeacherScorer]:
    """fp32 scorers without and with prefix sharing (one model), two int8 ones and a bf16 one."""
    options = {"batch_size": args.batch_size, "dtype": torch.float32}
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
        "prefix_int8_all": TeacherScorer(
            quantize_int8(copy.deepcopy(fp32.model), float_layers=()), tokenizer, fp32.meta, **share
        ),
        "prefix_bf16": TeacherScorer(
            copy.deepcopy(fp32.model).to(torch.bfloat16), tokenizer, fp32.meta, **share
        ),
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
        """The grade named in ``text``; None if it names none, or several (an echo of the choices
        such as "irrelevant, partial" is no answer)."""
        found = {self.by_word[word.lower()] for word in self.pattern.findall(text)}
        return found.pop() if len(found) == 1 else None


def pad_left(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row)
        mask[i, width - len(row) :] = 1
    return ids, mask


Method = Callable[[pd.DataFrame], Any]


def run_methods(
    methods: dict[str, Method], pairs: pd.DataFrame, n_generate: int, rounds: int
) -> tuple[dict[str, dict[str, Any]], np.ndarray]:
    """Time each method on the same pairs; ``generate`` on about ``n_generate`` of them only.

    Every method is warmed up first. The pairs are then cut into ``rounds`` parts of whole queries
    and the methods take turns on each part, so that other processes sharing the cores slow them
    alike; ``generate`` takes the first pairs of each part. ``load_1m`` is the highest 1-minute
    load average seen after a method's turns. Also returns the mask of the pairs ``generate`` ran
    on."""
    for method in methods.values():
        method(pairs.head(WARMUP_PAIRS))
    runs = {name: {"seconds": 0.0, "pairs": 0, "load_1m": 0.0, "out": []} for name in methods}
    generated = np.zeros(len(pairs), dtype=bool)
    for part in split_queries(pairs, rounds):
        share = part.head(max(1, round(n_generate * len(part) / len(pairs))) if n_generate else 0)
        generated[share.index] = True
        for name, method in methods.items():
            chunk = share if name == "generate" else part
            if chunk.empty:
                continue
            started = time.perf_counter()
            runs[name]["out"].append(method(chunk))
            runs[name]["seconds"] += time.perf_counter() - started
            runs[name]["pairs"] += len(chunk)
            runs[name]["load_1m"] = max(runs[name]["load_1m"], os.getloadavg()[0])
    for run in runs.values():
        run["pairs_per_s"] = run["pairs"] / run["seconds"]
    return runs, generated


def generate_agreement(
    forward: pd.DataFrame, judge: GenerateJudge, texts: list[str], generated: np.ndarray
) -> dict[str, Any]:
    """How often (a)'s answer parses, and agrees with (b)'s argmax grade, on (a)'s pairs."""
    columns = [f"p_{g}" for g in judge.grades]
    probs = forward[generated][columns].to_numpy()
    argmax = np.array(judge.grades)[probs.argmax(axis=1)]
    parsed = [judge.parse(t) for t in texts]
    ok = [i for i, grade in enumerate(parsed) if grade is not None]
    return {
        "generate_parsed": len(ok),
        "generate_parse_rate": len(ok) / len(texts),
        "generate_agreement": float(np.mean([parsed[i] == argmax[i] for i in ok])) if ok else None,
        "generate_answers": dict(Counter(t.strip() for t in texts).most_common(8)),
    }


# the approximate methods and the prefix of their agreement keys in the JSON
APPROXIMATE = {"prefix_int8": "int8", "prefix_int8_all": "int8_all", "prefix_bf16": "bf16"}


def score_agreement(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """(c), (d), (d') and (e) against (b) on all pairs."""
    forward, prefix = runs["forward"]["frame"], runs["prefix"]["frame"]
    columns = [c for c in forward.columns if c.startswith("p_")]
    argmax = forward[columns].to_numpy().argmax(axis=1)
    agree = {
        "forward_score_std": float(forward["score"].std()),
        "prefix_max_abs_diff": float(np.abs(prefix["score"] - forward["score"]).max()),
        "prefix_max_abs_diff_prob": float(
            np.abs(prefix[columns].to_numpy() - forward[columns].to_numpy()).max()
        ),
    }
    for name, key in APPROXIMATE.items():
        frame = runs[name]["frame"]
        agree[f"{key}_spearman"] = float(spearmanr(frame["score"], forward["score"]).statistic)
        agree[f"{key}_max_abs_diff"] = float(np.abs(frame["score"] - forward["score"]).max())
        same = frame[columns].to_numpy().argmax(axis=1) == argmax
        agree[f"{key}_argmax_agreement"] = float(np.mean(same))
    return agree


def int8_layer_errors(
    scorer: TeacherScorer, int8: torch.nn.Module, pairs: pd.DataFrame
) -> dict[str, dict[str, float]]:
    """Per kind of linear layer, the median and max over layers of ``|int8(x) - f(x)| / |f(x)|``
    on the prompts of ``pairs`` (one plain forward pass, padding left out), where ``int8`` is the
    scorer's model with every layer quantized (:func:`quantize_int8` with no float layers)."""
    ids, mask = pad_right(
        [scorer.builder.encode(row) for row in pairs.to_dict("records")], scorer.pad_id
    )
    real = mask.bool()
    errors: dict[str, list[float]] = {}
    int8_layers = dict(int8.named_modules())

    def measure(name: str) -> Callable[..., None]:
        def hook(_: torch.nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            diff = (int8_layers[name](inputs[0]) - out)[real]
            errors.setdefault(name.rsplit(".", 1)[-1], []).append(
                float(diff.norm() / out[real].norm())
            )

        return hook

    layers = dict(scorer.model.named_modules())
    handles = [
        layers[name].register_forward_hook(measure(name))
        for name in int8_layer_names(scorer.model, float_layers=())
    ]
    try:
        with torch.inference_mode():
            scorer.model(input_ids=ids, attention_mask=mask)
    finally:
        for handle in handles:
            handle.remove()
    return {
        kind: {"median": round(float(np.median(e)), 4), "max": round(max(e), 4)}
        for kind, e in errors.items()
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
        **{
            name: f"Spearman {agree[key + '_spearman']:.4f}, "
            f"argmax = (b) {agree[key + '_argmax_agreement']:.3f}"
            for name, key in APPROXIMATE.items()
        },
    }
    out = Table(title=title)
    columns = ("method", "pairs", "seconds", "pairs/s", "× generate", "× forward", "load", "vs (b)")
    for column in columns:
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
            f"{run['load_1m']:.1f}",
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
    methods = {"generate": judge.answers, **{k: v.predict for k, v in scorers.items()}}
    runs, generated = run_methods(methods, pairs, n_generate, args.rounds)
    texts = [text for part in runs["generate"]["out"] for text in part]
    for name in scorers:
        runs[name]["frame"] = pd.concat(runs[name]["out"], ignore_index=True)
    agree = generate_agreement(runs["forward"]["frame"], judge, texts, generated)
    agree |= score_agreement(runs)
    layer_errors = int8_layer_errors(
        scorers["forward"], scorers["prefix_int8_all"].model, pairs.head(ERROR_PAIRS)
    )
    model = str(args.model) if args.model else args.base
    title = f"Teacher scoring, {model}, {len(pairs)} Home Depot dev pairs, {cpu_name()}"
    Console(width=160).print(table(runs, agree, title))
    print("int8 output error by layer kind (median / max over layers):")
    for kind, error in layer_errors.items():
        print(f"  {kind:10s} {error['median']:.3f} / {error['max']:.3f}")
    summary = {
        "quick": args.quick,
        "model": model,
        "cpu": cpu_name(),
        "cpu_bf16_matmul_speedup": round(cpu_bf16_speedup(), 2),
        "n_pairs": len(pairs),
        "n_queries": int(pairs["query_id"].nunique()),
        "generate_pairs": int(generated.sum()),
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "rounds": args.rounds,
        "torch_threads": torch.get_num_threads(),
        "load_avg_1m_at_start": round(load_avg, 2),
        **{f"{name}_pairs_per_s": round(run["pairs_per_s"], 3) for name, run in runs.items()},
        **{f"{name}_s": round(run["seconds"], 2) for name, run in runs.items()},
        **{f"{name}_load_1m": round(run["load_1m"], 2) for name, run in runs.items()},
        "ratios": {k: round(v, 3) for k, v in ratios(runs).items()},
        **agree,
        "int8_rel_error": layer_errors,
        "prepare_s": round(prepare_s, 1),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
