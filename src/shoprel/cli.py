"""The ``shoprel`` command: thin wrappers, each parsing options and calling one library function."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.logging import RichHandler

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
data_app = typer.Typer(no_args_is_help=True, help="Prepare labeled data.")
models_app = typer.Typer(no_args_is_help=True, help="Base models shipped as packages.")
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, soft_wrap=True)


def _parse_columns(pairs: list[str], yaml_file: Path | None) -> tuple[dict[str, str], dict]:
    """``--column query=search_term`` flags over a YAML file with ``columns:`` (and loader keys)."""
    extra: dict = {}
    columns: dict[str, str] = {}
    if yaml_file is not None:
        extra = yaml.safe_load(yaml_file.read_text()) or {}
        unknown = set(extra) - {"columns", "scale", "encoding"}
        if unknown:
            raise typer.BadParameter(
                f"{yaml_file}: unknown key(s) {sorted(unknown)}; expected columns, scale, encoding"
            )
        columns = dict(extra.pop("columns", {}) or {})
    for item in pairs:
        name, sep, column = item.partition("=")
        if not sep or not name or not column:
            raise typer.BadParameter(f"--column expects NAME=COLUMN, got {item!r}")
        columns[name.strip()] = column.strip()
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


@app.command()
def quickstart(
    out: Annotated[Path, typer.Option(help="run directory")] = Path("runs/quickstart"),
    seed: Annotated[int, typer.Option(help="demo catalog and split seed")] = 0,
) -> None:
    """The whole job on the embedded demo shop."""
    from shoprel.quickstart import run_quickstart

    run_quickstart(out, seed=seed, console=console)


def main() -> None:
    for noisy in ("bm25s", "sentence_transformers", "transformers", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.basicConfig(
        level=logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
    )
    from shoprel.data.readers import DataError

    try:
        app()
    except (DataError, ValueError, ImportError, FileNotFoundError) as error:
        err_console.print(f"[bold red]error:[/] {error}")
        sys.exit(2)


if __name__ == "__main__":
    main()
