"""The ``shoprel`` command: thin wrappers, each parsing options and calling one library function."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from shoprel.config import read_yaml

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
data_app = typer.Typer(no_args_is_help=True, help="Prepare labeled data.")
models_app = typer.Typer(no_args_is_help=True, help="Base models shipped as packages.")
teacher_app = typer.Typer(no_args_is_help=True, help="The LLM relevance judge.")
student_app = typer.Typer(no_args_is_help=True, help="Cross-encoders.")
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")
app.add_typer(teacher_app, name="teacher")
app.add_typer(student_app, name="student")
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, soft_wrap=True)


def _parse_columns(pairs: list[str], yaml_file: Path | None) -> tuple[dict[str, str], dict]:
    """``--column query=search_term`` flags over a YAML file with ``columns:`` (and loader keys)."""
    extra: dict = {}
    columns: dict[str, str] = {}
    if yaml_file is not None:
        extra = read_yaml(yaml_file)
        if not isinstance(extra, dict):
            raise typer.BadParameter(f"{yaml_file}: expected a mapping with columns:")
        unknown = set(extra) - {"columns", "scale", "encoding"}
        if unknown:
            raise typer.BadParameter(
                f"{yaml_file}: unknown key(s) {sorted(unknown)}; expected columns, scale, encoding"
            )
        columns = dict(extra.pop("columns", {}) or {})
    columns |= dict(_name_value(item, "--column") for item in pairs)
    return columns, extra


@data_app.command("prepare")
def data_prepare(
    source: Annotated[str, typer.Option(help="homedepot | esci | wands | table | demo")],
    out: Annotated[Path, typer.Option(help="output data dir")],
    input: Annotated[list[Path], typer.Option("--input", help="file or dir (repeatable)")] = [],  # noqa: B006
    seed: Annotated[int, typer.Option(help="split seed")] = 0,
    dev_frac: Annotated[float, typer.Option(help="share of queries in dev")] = 0.1,
    test_frac: Annotated[float, typer.Option(help="share of queries in test")] = 0.1,
    test_only: Annotated[bool, typer.Option(help="every pair goes to the test split")] = False,
    strict: Annotated[bool, typer.Option(help="any rejected row is an error")] = False,
    label_smoothing: Annotated[float, typer.Option(help="uniform mix into soft targets")] = 0.0,
    locale: Annotated[str | None, typer.Option(help="esci: product locale ('' keeps all)")] = "us",
    version: Annotated[str, typer.Option(help="esci: small | large | all")] = "small",
    column: Annotated[list[str], typer.Option(help="table: NAME=COLUMN (repeatable)")] = [],  # noqa: B006
    columns: Annotated[
        Path | None, typer.Option(help="table: YAML with columns/scale/encoding")
    ] = None,
    scale: Annotated[
        str | None, typer.Option(help="table: homedepot | esci | wands | binary")
    ] = None,
    encoding: Annotated[str | None, typer.Option(help="text encoding of CSV/TSV inputs")] = None,
) -> None:
    """Load a dataset, reject bad rows, split by query, write train/dev/test.parquet."""
    from shoprel.data.loaders import LoaderOptions
    from shoprel.data.prepare import PrepareConfig, prepare

    mapping, extra = _parse_columns(column, columns)
    options = LoaderOptions(
        locale=locale or None,
        version=version,
        columns=mapping,
        scale=scale or extra.get("scale"),
        encoding=encoding or extra.get("encoding"),
        seed=seed,
    )
    cfg = PrepareConfig(
        source=source,
        inputs=list(input),
        seed=seed,
        test_only=test_only,
        strict=strict,
        fractions=(1 - dev_frac - test_frac, dev_frac, test_frac),
        label_smoothing=label_smoothing,
        loader=options,
    )
    with console.status(f"preparing {source}"):
        card = prepare(cfg, out)
    console.print(
        f"{card['rows_read']} rows read, {card['rows_written']} written, "
        f"{card['rows_rejected']} rejected {card['rejects_by_reason'] or ''}"
    )
    for name, split in card["splits"].items():
        console.print(
            f"  {name}: {split['pairs']} pairs, {split['queries']} queries -> {out / name}.parquet"
        )


@app.command()
def evaluate(
    data: Annotated[Path, typer.Option(help="prepared data dir")],
    scores: Annotated[Path, typer.Option(help="scores file with pair_id, score")],
    split: Annotated[str, typer.Option(help="split to evaluate")] = "test",
    dev_scores: Annotated[Path | None, typer.Option(help="dev scores to fit the label map")] = None,
    out: Annotated[Path | None, typer.Option(help="write metrics JSON here")] = None,
) -> None:
    """Every metric for one scores file on one split."""
    from shoprel.eval.evaluate import evaluate as run
    from shoprel.eval.table import metrics_table

    result = run(data, split, scores, dev_scores_path=dev_scores, out=out)
    console.print(metrics_table({scores.stem: result}, title=f"{data} / {split}"))
    console.print_json(json.dumps(result))


@app.command()
def baseline(
    name: Annotated[str, typer.Argument(help="bm25 | biencoder")],
    data: Annotated[Path, typer.Option(help="prepared data dir")],
    out: Annotated[Path, typer.Option(help="scores file to write (.parquet)")],
    split: Annotated[str, typer.Option(help="split to score")] = "test",
) -> None:
    """Score a split with a baseline that needs no training."""
    from shoprel.eval.baselines import run_baseline

    with console.status(f"{name} on {split}"):
        frame = run_baseline(name, data, split, out)
    console.print(f"{len(frame)} scores -> {out}")


@teacher_app.command("train")
def teacher_train(
    data: Annotated[Path, typer.Option(help="prepared data dir")],
    out: Annotated[Path, typer.Option(help="output dir of the judge")],
    base: Annotated[str | None, typer.Option(help="causal LM alias, dir or hub id")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML with TeacherTrainConfig keys")] = None,
    target: Annotated[str | None, typer.Option(help="soft | hard")] = None,
    epochs: Annotated[float | None, typer.Option(help="passes over the train pairs")] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr", help="peak learning rate")] = None,
    batch_size: Annotated[int | None, typer.Option(help="pairs per step")] = None,
    grad_accum: Annotated[int | None, typer.Option(help="gradient accumulation steps")] = None,
    lora_r: Annotated[int | None, typer.Option(help="LoRA rank")] = None,
    full: Annotated[bool, typer.Option(help="fine-tune every weight instead of LoRA")] = False,
    head: Annotated[
        str | None, typer.Option(help="grade logits from: verbalizer | classifier (trained)")
    ] = None,
    max_train_pairs: Annotated[
        int | None, typer.Option(help="sample of train pairs (0: all)")
    ] = None,
    max_dev_pairs: Annotated[int | None, typer.Option(help="dev pairs scored per epoch")] = None,
    save_steps: Annotated[int | None, typer.Option(help="checkpoint every N steps")] = None,
    seed: Annotated[int | None, typer.Option(help="sampling and init seed")] = None,
    resume: Annotated[bool, typer.Option(help="continue from the last checkpoint in OUT")] = False,
    select: Annotated[
        str | None, typer.Option("--select", help="LREF data selection: none | random | lref")
    ] = None,
    select_frac: Annotated[float | None, typer.Option(help="share of train pairs kept")] = None,
    aux_base: Annotated[
        str | None, typer.Option(help="base of the selection's IM/CI/MS (LM or encoder)")
    ] = None,
    cot: Annotated[
        str | None, typer.Option("--cot", help="Multi-CoT kinds after SFT, e.g. ee,ra,dr")
    ] = None,
    cot_generator: Annotated[str | None, typer.Option(help="rationales: rules | openai")] = None,
    cot_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible base URL, e.g. http://host:8000/v1")
    ] = None,
    cot_model: Annotated[str | None, typer.Option(help="model name at --cot-url")] = None,
    rules: Annotated[Path | None, typer.Option(help="relevance rules YAML (RA)")] = None,
    dpo: Annotated[
        bool | None, typer.Option("--dpo/--no-dpo", help="DPO against optimistic errors")
    ] = None,
    dpo_beta: Annotated[float | None, typer.Option(help="DPO beta")] = None,
) -> None:
    """Fine-tune a causal LM as a relevance judge on soft targets (and the LREF stages)."""
    from dataclasses import replace

    from shoprel.config import load_config
    from shoprel.teacher.config import with_stage_overrides
    from shoprel.teacher.train import TeacherTrainConfig, train_teacher

    overrides = dict(
        base=base,
        lora=False if full else None,
        head=head,
        max_train_pairs=max_train_pairs,
        max_dev_pairs=max_dev_pairs,
        seed=seed,
    )
    cfg = load_config(TeacherTrainConfig, config, overrides)
    if lora_r is not None:
        cfg = replace(cfg, peft=cfg.peft | {"r": lora_r})
    cfg = with_stage_overrides(
        cfg,
        select={"method": select, "frac": select_frac, "aux_base": aux_base},
        sft={
            "target": target,
            "args": {
                "num_train_epochs": epochs,
                "learning_rate": learning_rate,
                "per_device_train_batch_size": batch_size,
                "gradient_accumulation_steps": grad_accum,
                "save_steps": save_steps,
            },
        },
        cot={
            "kinds": cot,
            "generator": cot_generator,
            "rules": str(rules) if rules else None,
            "openai": {"url": cot_url, "model": cot_model},
        },
        dpo={"enabled": dpo, "args": {"beta": dpo_beta}},
    )
    path = train_teacher(cfg, data, out, resume=resume)
    stages = " -> ".join(["sft", *[s for s in cfg.lref_stages if s != "select"]])
    console.print(f"judge saved -> {path}" + (f" (stages {stages})" if cfg.lref_stages else ""))


@teacher_app.command("ensemble")
def teacher_ensemble(
    data: Annotated[Path, typer.Option(help="prepared data dir (its dev split fits the weights)")],
    out: Annotated[Path, typer.Option(help="output dir of the ensemble")],
    member: Annotated[list[str], typer.Option(help="NAME=MODEL_DIR (repeatable, at least two)")],
) -> None:
    """Combine judges and cross-encoders with weights fitted on dev."""
    from shoprel.eval.table import metrics_table
    from shoprel.teacher.ensemble import fit_ensemble

    members = dict(_name_value(item, "--member") for item in member)
    result = fit_ensemble(data, members, out)
    console.print(metrics_table(result["dev"], title="dev (the ensemble is fitted on it)"))
    console.print(f"weights {result['weights']}, intercept {result['intercept']:.3f} -> {out}")


@app.command()
def augment(
    data: Annotated[Path, typer.Option(help="prepared data dir")],
    out: Annotated[Path, typer.Option(help="output dir (pairs.parquet, report.json)")],
    catalog: Annotated[
        Path | None, typer.Option(help="extra products (CSV/JSONL/Parquet: product_id, title…)")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML with AugmentConfig keys")] = None,
    bm25_k: Annotated[int | None, typer.Option(help="BM25 candidates per query")] = None,
    dense_k: Annotated[int | None, typer.Option(help="dense candidates per query")] = None,
    random_k: Annotated[int | None, typer.Option(help="random items per query")] = None,
    synthetic_queries: Annotated[
        int | None, typer.Option(help="synthetic queries written from products")
    ] = None,
    max_queries: Annotated[
        int | None, typer.Option(help="sample of train queries (0: all)")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="sampling seed")] = None,
) -> None:
    """Unlabeled query-item pairs for the teacher: BM25, dense, random and synthetic queries."""
    from shoprel.augment.candidates import AugmentConfig
    from shoprel.augment.candidates import augment as build
    from shoprel.config import load_config

    overrides = {
        "bm25_k": bm25_k,
        "dense_k": dense_k,
        "random_k": random_k,
        "synthetic_queries": synthetic_queries,
        "max_queries": max_queries,
        "seed": seed,
    }
    report = build(load_config(AugmentConfig, config, overrides), data, out, catalog)
    report.pop("config")
    console.print_json(json.dumps(report))
    console.print(f"{report['pairs']:,} pairs -> {out / 'pairs.parquet'}")


@app.command()
def label(
    teacher: Annotated[Path, typer.Option(help="teacher dir (judge, ensemble, cross-encoder)")],
    pairs: Annotated[Path, typer.Option(help="pairs file (augment's pairs.parquet or a split)")],
    out: Annotated[Path, typer.Option(help="output dir (shards, labels.parquet)")],
    shard_size: Annotated[int, typer.Option(help="pairs per shard, the unit of resume")] = 2000,
    int8: Annotated[bool, typer.Option(help="dynamic int8 for LLM judges (CPU)")] = False,
    batch_size: Annotated[int, typer.Option(help="pairs per forward pass")] = 32,
    ray_address: Annotated[
        str | None, typer.Option(help="'local' starts Ray here; else a cluster address")
    ] = None,
    workers: Annotated[int, typer.Option(help="Ray actors")] = 1,
    gpus_per_worker: Annotated[
        float | None,
        typer.Option(help="GPUs per Ray actor (default: this machine's shared out; 0: CPU)"),
    ] = None,
) -> None:
    """Score pairs with the teacher, shard by shard; a rerun finishes an interrupted job."""
    from shoprel.labeling.run import LabelConfig, label_pairs

    cfg = LabelConfig(
        shard_size=shard_size,
        int8=int8,
        batch_size=batch_size,
        ray_address=ray_address,
        workers=workers,
        gpus_per_worker=gpus_per_worker,
    )
    summary = label_pairs(teacher, pairs, out, cfg)
    console.print(
        f"{summary['pairs']:,} pairs labeled ({summary['shards_scored_now']} shards now, "
        f"{summary['seconds']} s) -> {out / summary['labels']}"
    )


@app.command()
def pipeline(
    config: Annotated[Path, typer.Option(help="pipeline YAML (configs/*.yaml)")],
    data: Annotated[
        list[str], typer.Option(help="input file or dir, replaces data.inputs (repeatable)")
    ] = [],  # noqa: B006
    out: Annotated[Path | None, typer.Option(help="run dir (default runs/<name>)")] = None,
    from_stage: Annotated[
        str | None, typer.Option("--from", help="redo this stage and the ones after it")
    ] = None,
    show_config: Annotated[
        bool, typer.Option(help="print every key of the config, defaults filled in, and stop")
    ] = False,
) -> None:
    """Every stage from one config; stages whose inputs did not change are skipped."""
    from shoprel.pipeline.config import config_yaml, load_pipeline_config
    from shoprel.pipeline.runner import run_pipeline
    from shoprel.pipeline.stages import STAGES

    cfg = load_pipeline_config(config, data)
    if show_config:
        typer.echo(config_yaml(cfg), nl=False)
        return
    run_dir = out or Path("runs") / cfg.name
    records = run_pipeline(cfg, run_dir, STAGES, from_stage)
    for name, record in records.items():
        state = "skipped" if record["skipped"] else f"{record['seconds']} s"
        console.print(f"{name:>10}: {state}")
    console.print(f"run -> {run_dir}")


def _name_value(item: str, flag: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name or not value:
        raise typer.BadParameter(f"{flag} expects NAME=VALUE, got {item!r}")
    return name.strip(), value.strip()


@student_app.command("train")
def student_train(
    data: Annotated[Path, typer.Option(help="prepared data dir")],
    out: Annotated[Path, typer.Option(help="output dir of the cross-encoder")],
    base: Annotated[str | None, typer.Option(help="encoder alias, dir or hub id")] = None,
    layers: Annotated[
        int | None, typer.Option(help="keep the base's first N transformer layers (0: all)")
    ] = None,
    ffn_width: Annotated[
        int | None,
        typer.Option(help="keep each feed-forward block's N most important units (0: all)"),
    ] = None,
    loss: Annotated[
        str | None, typer.Option(help="margin-mse (default with --labels) | mse | labels")
    ] = None,
    pointwise_weight: Annotated[
        float | None, typer.Option(help="margin-mse: weight of a pointwise MSE term beside it")
    ] = None,
    labels: Annotated[
        list[Path], typer.Option("--labels", help="teacher label dir (repeatable)")
    ] = [],  # noqa: B006
    augment_frac: Annotated[
        float | None, typer.Option(help="share of the augmented pairs kept, by whole query")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML with StudentTrainConfig keys")] = None,
    epochs: Annotated[float | None, typer.Option(help="passes over the train pairs")] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr", help="peak learning rate")] = None,
    batch_size: Annotated[int | None, typer.Option(help="pairs per step")] = None,
    max_train_pairs: Annotated[
        int | None, typer.Option(help="sample of train pairs (0: all)")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="sampling seed")] = None,
    save_steps: Annotated[
        int | None, typer.Option(help="checkpoint every N steps and each epoch (0: none)")
    ] = None,
    resume: Annotated[bool, typer.Option(help="continue from the last checkpoint in OUT")] = False,
) -> None:
    """Train a cross-encoder (sentence-transformers) on human labels or a teacher's scores."""
    from shoprel.config import load_config
    from shoprel.student.train import StudentTrainConfig, train_cross_encoder

    overrides = dict(
        base=base,
        layers=layers,
        ffn_width=ffn_width,
        loss=loss,
        pointwise_weight=pointwise_weight,
        labels=[str(d) for d in labels] or None,
        augment_frac=augment_frac,
        epochs=epochs,
        learning_rate=learning_rate,
        batch_size=batch_size,
        max_train_pairs=max_train_pairs,
        seed=seed,
        save_steps=save_steps,
    )
    cfg = load_config(StudentTrainConfig, config, overrides)
    path = train_cross_encoder(cfg, data, out, resume=resume)
    console.print(f"cross-encoder saved -> {path}")


@app.command()
def score(
    model: Annotated[Path, typer.Option(help="a model dir made by shoprel")],
    data: Annotated[Path, typer.Option(help="prepared data dir")],
    out: Annotated[Path, typer.Option(help="scores file to write (.parquet)")],
    split: Annotated[str, typer.Option(help="split to score")] = "test",
    int8: Annotated[bool, typer.Option(help="dynamic int8 quantization (CPU)")] = False,
    prefix_sharing: Annotated[bool, typer.Option(help="run each query's prefix once")] = True,
    batch_size: Annotated[int, typer.Option(help="pairs per forward pass")] = 32,
    mode: Annotated[
        str, typer.Option(help="LLM judges: direct | cot (reasoning, then the grade)")
    ] = "direct",
    max_new_tokens: Annotated[int, typer.Option(help="--mode cot: reasoning tokens")] = 96,
) -> None:
    """Score a split with a trained model; writes pair_id, score and the grade distribution."""
    from shoprel.data.splits import read_split
    from shoprel.io import write_parquet
    from shoprel.scoring import load_scorer
    from shoprel.teacher.model import META_FILE as JUDGE_META

    options = {}
    if mode != "direct":
        if not (model / JUDGE_META).is_file():
            raise typer.BadParameter(f"--mode {mode} needs an LLM judge dir ({JUDGE_META})")
        options = {"mode": mode, "max_new_tokens": max_new_tokens}
    pairs, _ = read_split(data, split)
    scorer = load_scorer(
        model, int8=int8, batch_size=batch_size, prefix_sharing=prefix_sharing, **options
    )
    frame = scorer.predict(pairs, progress=True)
    write_parquet(frame, out)
    console.print(f"{len(frame)} scores -> {out}")


@models_app.command("list")
def models_list() -> None:
    """The base-model aliases, whether their package is installed, and where they are cached."""
    from rich.table import Table

    from shoprel.models import list_models

    table = Table("alias", "kind", "installed", "path", "description")
    for info in list_models():
        table.add_row(
            info.alias,
            info.kind,
            "yes" if info.installed else "no",
            str(info.path or "-"),
            info.description,
        )
    console.print(table)


@models_app.command("fetch")
def models_fetch(
    alias: Annotated[str, typer.Argument(help="model alias (see `shoprel models list`)")],
    force: Annotated[bool, typer.Option(help="convert again even if cached")] = False,
) -> None:
    """Make an alias ready to load: convert a shipped GGUF once into a safetensors directory."""
    from shoprel.models import fetch_model

    with console.status(f"fetching {alias}"):
        path = fetch_model(alias, force=force)
    console.print(f"{alias} -> {path}")


@student_app.command("export")
def student_export(
    model: Annotated[Path, typer.Option(help="cross-encoder dir of `shoprel student train`")],
    out: Annotated[Path, typer.Option(help="output dir of the ONNX export")],
    int8: Annotated[
        bool, typer.Option(help="also write model_int8.onnx, then the export's default")
    ] = False,
    data: Annotated[
        Path | None, typer.Option(help="prepared data dir: its dev split gates int8 and calibrates")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="write the int8 model even if it fails the gate")
    ] = False,
    gate_pairs: Annotated[int, typer.Option(help="dev pairs (whole queries) for the gate")] = 2000,
) -> None:
    """Export a cross-encoder to ONNX (fp32, and int8 behind an accuracy gate on dev); with
    --data, its scores are calibrated on dev into P(relevant)."""
    from shoprel.serve.export import ExportConfig, export_onnx

    cfg = ExportConfig(int8=int8, data=data, force=force, gate_pairs=gate_pairs)
    meta = export_onnx(model, out, cfg)
    quantization = meta["quantization"]
    if quantization is not None:
        gate = quantization["gate"]
        verdict = "gate skipped (no --data)" if gate is None else json.dumps(gate["tried"])
        passed = "" if gate is None else (" passed" if gate["passed"] else " FAILED (--force)")
        console.print(f"int8 {quantization['setting']['name']}{passed}: {verdict}")
    if meta["calibration"] is not None:
        from shoprel.serve.calibration import Calibration

        console.print(Calibration.from_dict(meta["calibration"]).summary())
    console.print(f"ONNX export ({meta['onnx']['default']} by default) -> {out}")


@app.command()
def serve(
    model: Annotated[Path, typer.Option(help="ONNX export or cross-encoder dir")],
    onnx_file: Annotated[
        str | None, typer.Option(help="model.onnx (fp32) or model_int8.onnx; default: the export's")
    ] = None,
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="SHOPREL_API_KEY", help="require 'Authorization: Bearer KEY'"),
    ] = None,
    max_items: Annotated[int, typer.Option(help="items per request")] = 1000,
    max_batch_items: Annotated[int, typer.Option(help="pairs per model call")] = 256,
    max_wait_ms: Annotated[float, typer.Option(help="wait for more requests to batch")] = 2.0,
    threads: Annotated[int, typer.Option(help="onnxruntime threads (0: one per core)")] = 0,
    batch_size: Annotated[
        int, typer.Option(min=1, help="pairs per onnxruntime run, length-sorted within a call")
    ] = 32,
    drain_s: Annotated[
        float, typer.Option(help="on SIGTERM, longest wait for requests in flight (s)")
    ] = 30.0,
) -> None:
    """Serve the reranker over HTTP: POST /v1/rerank, /v1/score, /v2/rerank (the Cohere-style API);
    /healthz, /readyz, /metrics.

    SIGTERM drains the requests in flight before exit; SIGHUP or POST /v1/admin/reload swaps in
    a new export without downtime."""
    from shoprel.serve.app import ServeSettings
    from shoprel.serve.app import serve as run

    settings = ServeSettings(
        model=model,
        onnx_file=onnx_file,
        host=host,
        port=port,
        api_key=api_key,
        max_items=max_items,
        max_batch_items=max_batch_items,
        max_wait_ms=max_wait_ms,
        threads=threads,
        batch_size=batch_size,
        drain_s=drain_s,
    )
    run(settings)


@app.command()
def explore(
    run: Annotated[Path, typer.Option(help="a finished run dir (shoprel run / quickstart)")],
    compare: Annotated[
        Path | None, typer.Option(help="another run on the same data, to compare per query")
    ] = None,
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8080,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="SHOPREL_API_KEY", help="judging needs 'Authorization: Bearer KEY'"),
    ] = None,
    student: Annotated[
        Path | None, typer.Option(help="live search reranker (default: RUN/export)")
    ] = None,
    teacher: Annotated[
        Path | None, typer.Option(help="live search teacher (default: RUN/teacher/ensemble)")
    ] = None,
    encoder: Annotated[str, typer.Option(help="bi-encoder of the dense index")] = "minilm-l6",
) -> None:
    """A web page to see, compare and judge the run's rankings query by query; judgments go to
    RUN/judgments.jsonl (read back by shoprel data prepare --source table)."""
    from shoprel.explore.app import ExploreSettings
    from shoprel.explore.app import serve as run_explorer
    from shoprel.explore.search import SearchConfig

    search = SearchConfig(student=student, teacher=teacher, encoder=encoder)
    settings = ExploreSettings(
        run=run,
        compare=compare,
        api_key=api_key,
        search=search,
        host=host,
        port=port,
        warm=True,
    )
    console.print(f"shoprel explore: http://{host}:{port}/ (Ctrl-C stops)")
    run_explorer(settings)


@app.command()
def quickstart(
    out: Annotated[Path, typer.Option(help="run directory")] = Path("runs/quickstart"),
    seed: Annotated[int, typer.Option(help="demo catalog and split seed")] = 0,
    from_stage: Annotated[
        str | None, typer.Option("--from", help="redo this stage and the ones after it")
    ] = None,
) -> None:
    """The whole pipeline on the embedded demo shop (configs/quickstart.yaml)."""
    from shoprel.quickstart import run_quickstart

    run_quickstart(out, seed=seed, from_stage=from_stage, console=console)


def main() -> None:
    for noisy in ("bm25s", "sentence_transformers", "transformers", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.basicConfig(
        level=logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(logging.INFO, console=err_console, show_path=False)],
    )
    from rich.markup import escape

    from shoprel.data.readers import DataError
    from shoprel.pipeline.runner import StageError
    from shoprel.teacher.config import EndpointError

    try:
        app()
    except (StageError, EndpointError) as error:
        err_console.print(f"[bold red]error:[/] {escape(str(error))}")
        sys.exit(3)
    except (DataError, ValueError, ImportError, OSError) as error:  # OSError: an unwritable --out
        err_console.print(f"[bold red]error:[/] {escape(str(error))}")
        sys.exit(2)


if __name__ == "__main__":
    main()
