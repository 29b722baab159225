"""The canonical pair table and the grade scales of the datasets shoprel reads.

Every loader produces the same columns (``PAIR_COLUMNS``); every stage after ``prepare`` reads them.
A :class:`GradeScale` says how a dataset's labels map to grades, which labels count as *bad*
(for ROC-AUC and over-recall) and how far apart two labels must be for a pair to count in
pairwise accuracy.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import numpy as np

PAIR_COLUMNS: list[str] = [
    "pair_id",
    "query_id",
    "query",
    "product_id",
    "title",
    "brand",
    "category",
    "attributes",
    "description",
    "label",
    "target",
    "source",
]
TEXT_FIELDS: list[str] = ["title", "brand", "category", "attributes", "description"]
SPLITS: tuple[str, ...] = ("train", "dev", "test")


@dataclass(frozen=True)
class GradeScale:
    """Grades of one dataset, lowest first.

    Args:
        name: short name stored in ``card.json``.
        grades: grade words, lowest first (``["irrelevant", "partial", "exact"]``).
        values: the label value of each grade on the dataset's own scale.
        bad_threshold: labels ``<=`` this are *bad* (irrelevant).
        pair_min_diff: two items of a query form a pair for pairwise accuracy when their labels
            differ by at least this much.
        aliases: extra spellings of grade words (``{"e": "exact"}``), lower-case.
    """

    name: str
    grades: tuple[str, ...]
    values: tuple[float, ...]
    bad_threshold: float
    pair_min_diff: float
    aliases: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.grades) != len(self.values) or len(self.grades) < 2:
            raise ValueError(
                f"GradeScale {self.name!r}: expected >= 2 grades with one value each, "
                f"got {len(self.grades)} grades and {len(self.values)} values"
            )
        if list(self.values) != sorted(self.values):
            raise ValueError(f"GradeScale {self.name!r}: values must rise, got {self.values}")

    @property
    def n_grades(self) -> int:
        return len(self.grades)

    @property
    def low(self) -> float:
        return self.values[0]

    @property
    def high(self) -> float:
        return self.values[-1]

    def parse_label(self, raw: object) -> float:
        """A label on this scale from a number or a grade word; ``ValueError`` says why not."""
        if raw is None or (isinstance(raw, float) and np.isnan(raw)):
            raise ValueError("label is empty")
        text = str(raw).strip()
        if not text:
            raise ValueError("label is empty")
        word = self.aliases.get(text.lower(), text.lower())
        if word in self.grades:
            return float(self.values[self.grades.index(word)])
        try:
            value = float(text)
        except ValueError:
            raise ValueError(
                f"label {text!r} is neither a number nor one of {list(self.grades)}"
            ) from None
        if not np.isfinite(value) or not self.low <= value <= self.high:
            raise ValueError(f"label {value} is outside [{self.low}, {self.high}]")
        return value

    def soft_target(self, label: float, smoothing: float = 0.0) -> list[float]:
        """The distribution over grades whose mean is ``label``, on the two neighbouring grades.

        A label on a grade gives a one-hot vector; 2.33 on Home Depot's 1-3 scale gives
        67% on grade 2 and 33% on grade 3. ``smoothing`` mixes in the uniform distribution.
        """
        values = np.asarray(self.values, dtype=float)
        dist = np.zeros(self.n_grades)
        upper = int(np.searchsorted(values, label, side="left"))
        if upper < self.n_grades and np.isclose(values[upper], label):
            dist[upper] = 1.0
        else:
            lower = upper - 1
            share = (label - values[lower]) / (values[upper] - values[lower])
            dist[lower], dist[upper] = 1.0 - share, share
        dist = (1.0 - smoothing) * dist + smoothing / self.n_grades
        return [round(float(p), 6) for p in dist]

    def nearest_grade(self, labels: np.ndarray) -> np.ndarray:
        """Index of the grade nearest to each label (ties go to the lower grade)."""
        values = np.asarray(self.values, dtype=float)
        return np.abs(np.asarray(labels, dtype=float)[:, None] - values[None, :]).argmin(axis=1)

    def is_bad(self, labels: np.ndarray) -> np.ndarray:
        return np.asarray(labels, dtype=float) <= self.bad_threshold + 1e-9


SCALES: dict[str, GradeScale] = {
    "homedepot": GradeScale(
        name="homedepot",
        grades=("irrelevant", "partial", "exact"),
        values=(1.0, 2.0, 3.0),
        bad_threshold=1.67,
        pair_min_diff=0.5,
    ),
    "esci": GradeScale(
        name="esci",
        grades=("irrelevant", "complement", "substitute", "exact"),
        values=(0.0, 1.0, 2.0, 3.0),
        bad_threshold=0.0,
        pair_min_diff=1.0,
        aliases={"i": "irrelevant", "c": "complement", "s": "substitute", "e": "exact"},
    ),
    "wands": GradeScale(
        name="wands",
        grades=("irrelevant", "partial", "exact"),
        values=(0.0, 1.0, 2.0),
        bad_threshold=0.0,
        pair_min_diff=1.0,
    ),
    "binary": GradeScale(
        name="binary",
        grades=("irrelevant", "relevant"),
        values=(0.0, 1.0),
        bad_threshold=0.0,
        pair_min_diff=1.0,
    ),
}


def get_scale(name: str) -> GradeScale:
    try:
        return SCALES[name]
    except KeyError:
        raise ValueError(
            f"unknown grade scale {name!r}; expected one of {sorted(SCALES)}"
        ) from None


_SPACES = re.compile(r"\s+")


def normalize_query(query: str) -> str:
    """Lower-case with single spaces: two spellings that differ only so are one query."""
    return _SPACES.sub(" ", query.strip().lower())


def make_query_id(query: str) -> str:
    return "q" + hashlib.sha1(normalize_query(query).encode()).hexdigest()[:12]


def make_pair_id(query_id: str, product_id: str) -> str:
    return f"{query_id}/{product_id}"
