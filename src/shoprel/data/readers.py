"""Read CSV, TSV, JSONL and Parquet files into string frames that remember each row's line."""

from __future__ import annotations

import codecs
import csv
import json
import logging
from pathlib import Path

import pandas as pd

logger = logging.getLogger(__name__)

LINE = "_line"
FILE = "_file"
MALFORMED = "_malformed"
csv.field_size_limit(2**31 - 1)


class DataError(ValueError):
    """Input that shoprel cannot read: the message names the file and what is wrong."""


def read_records(
    path: str | Path, *, encoding: str | None = None, sep: str | None = None
) -> pd.DataFrame:
    """All columns as strings plus ``_file`` and ``_line`` (1-based; the row number for Parquet)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise DataError(f"{path}: unknown encoding {encoding!r}") from None
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame = pd.read_parquet(path).astype(object)
        frame = frame.where(frame.notna(), None)
        frame[LINE] = range(1, len(frame) + 1)
    elif suffix in (".jsonl", ".ndjson"):
        frame = _read_jsonl(path, encoding or "utf-8-sig")  # -sig: a byte-order mark is dropped
    else:
        frame = _read_delimited(path, encoding, sep or ("\t" if suffix == ".tsv" else None))
    frame[FILE] = str(path)
    return frame


def one_line(value: object) -> str:
    """A cell as one line of text: a missing cell (None, NaN, NA) is empty, every run of
    whitespace one space."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    return " ".join(str(value).split())


def row_problem(row: pd.Series, required: tuple[str, ...]) -> tuple[str | None, str | None]:
    """Why a row read by :func:`read_records` cannot be used, as (reason, detail): malformed, or
    the first of ``required`` that is empty (``empty_<column>``); (None, None) where it can."""
    if isinstance(row.get(MALFORMED), str):
        return "malformed_row", row[MALFORMED]
    for column in required:
        if not row[column]:
            return f"empty_{column}", f"{column} is empty"
    return None, None


def require_columns(frame: pd.DataFrame, path: str | Path, columns: list[str]) -> None:
    """Raise a ``DataError`` naming the file and the first column it lacks."""
    present = [c for c in frame.columns if c not in (LINE, FILE)]
    for column in columns:
        if column not in frame.columns:
            raise DataError(
                f"{path}: missing column {column!r} (the file has: {', '.join(present)})"
            )


def _read_jsonl(path: Path, encoding: str) -> pd.DataFrame:
    """One row per non-blank line; a line that is not a JSON object is kept as an empty row with
    ``_malformed`` saying why (``data prepare`` rejects it with its line, as a ragged CSV row)."""
    rows = [
        _json_row(text) | {LINE: number}
        for number, text in _decoded_lines(path, encoding)
        if text.strip()
    ]
    frame = pd.DataFrame(rows)
    if MALFORMED not in frame.columns:
        frame[MALFORMED] = None
    return frame


def _decoded_lines(path: Path, encoding: str) -> list[tuple[int, str]]:
    """The numbered lines of ``path``; an undecodable one is an error naming its line (where the
    encoding keeps a newline one byte: UTF-16 and UTF-32 are decoded whole)."""
    if not "ab\n".encode(encoding).endswith(b"ab\n"):
        try:
            return list(enumerate(path.read_text(encoding=encoding).splitlines(), start=1))
        except UnicodeDecodeError as error:
            raise DataError(f"{path}: cannot decode as {encoding} ({error.reason})") from None
    lines = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                lines.append((number, raw.decode(encoding)))
            except UnicodeDecodeError as error:
                where = f"{path}:{number}"
                raise DataError(f"{where}: cannot decode as {encoding} ({error.reason})") from None
    return lines


def _json_row(text: str) -> dict:
    try:
        row = json.loads(text)
    except json.JSONDecodeError as error:
        return {MALFORMED: f"not valid JSON ({error.msg})"}
    if not isinstance(row, dict):
        return {MALFORMED: f"expected a JSON object, got {type(row).__name__}"}
    return row | {MALFORMED: None}


def _read_delimited(path: Path, encoding: str | None, sep: str | None) -> pd.DataFrame:
    try:
        return _read_csv(path, encoding or "utf-8-sig", sep)
    except UnicodeDecodeError:
        if encoding is not None:
            raise DataError(f"{path}: cannot decode as {encoding}") from None
        logger.warning("%s is not UTF-8; reading it as latin-1", path)
        return _read_csv(path, "latin-1", sep)


def _read_csv(path: Path, encoding: str, sep: str | None) -> pd.DataFrame:
    with path.open(encoding=encoding, newline="") as handle:
        if sep is None:
            sep = "\t" if "\t" in handle.readline() else ","
            handle.seek(0)
        reader = csv.reader(handle, delimiter=sep)
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: the file is empty")
        header = [name.strip().lstrip("\ufeff") for name in header]
        rows, lines, malformed = [], [], []
        start = reader.line_num + 1
        for values in reader:
            if values:
                rows.append((values + [None] * len(header))[: len(header)])
                lines.append(start)
                wrong = len(values) != len(header)
                malformed.append(
                    f"expected {len(header)} fields, got {len(values)}" if wrong else None
                )
            start = reader.line_num + 1
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    frame[LINE] = lines
    frame[MALFORMED] = malformed
    return frame
