"""The demo shop, a tiny BERT with a word-level tokenizer trained here, and teacher label dirs."""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shoprel.data.schema import make_pair_id
from shoprel.io import write_parquet
from shoprel.student.data import LABELS_FILE


@pytest.fixture(scope="package", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models train faster on one thread, and far faster when another job holds the cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def word_tokenizer(texts: list[str]):
    """A BERT-style word-level tokenizer: ``[CLS] query [SEP] item [SEP]`` with segment ids."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    core.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=specials))
    cls, sep = core.token_to_id("[CLS]"), core.token_to_id("[SEP]")
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Path:
    """A random 2-layer, 32-wide BERT saved with its tokenizer, usable as ``--base``."""
    import torch
    from transformers import BertConfig, BertModel

    columns = ["query", "title", "brand", "category"]
    texts = [
        " ".join(row)
        for split in ("train", "dev", "test")
        for row in pd.read_parquet(demo_data / f"{split}.parquet")[columns].values
    ]
    tokenizer = word_tokenizer(texts)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
    )
    out = tmp_path_factory.mktemp("tiny-bert")
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def bag_of_words_teacher(titles: pd.Series) -> np.ndarray:
    """A tiny deterministic teacher on the 0-3 scale: the share of title words with an odd CRC."""

    def score(title: str) -> float:
        words = re.findall(r"\w+", title.lower())
        return 3.0 * sum(zlib.crc32(w.encode()) % 2 for w in words) / max(len(words), 1)

    return np.array([score(t) for t in titles])


@pytest.fixture(scope="session")
def teacher() -> Callable[[pd.Series], np.ndarray]:
    return bag_of_words_teacher


def write_label_dir(pairs: pd.DataFrame, directory: Path) -> Path:
    """A label dir as ``shoprel label`` writes it, scored by the bag-of-words teacher."""
    frame = pairs.drop(columns=["label", "target"], errors="ignore").assign(
        score=bag_of_words_teacher(pairs["title"]), teacher="bag-of-words"
    )
    write_parquet(frame.reset_index(drop=True), directory / LABELS_FILE)
    return directory


def augmented_pairs(train: pd.DataFrame, per_query: int, seed: int = 0) -> pd.DataFrame:
    """``per_query`` random catalog items for each train query, as source ``random``."""
    rng = np.random.default_rng(seed)
    products = train.drop_duplicates("product_id")
    rows = []
    for (query_id, query), group in train.groupby(["query_id", "query"]):
        others = products[~products["product_id"].isin(group["product_id"])]
        picked = others.iloc[rng.choice(len(others), size=per_query, replace=False)]
        rows.append(picked.assign(query_id=query_id, query=query, source="random"))
    frame = pd.concat(rows, ignore_index=True)
    frame["pair_id"] = [
        make_pair_id(q, p) for q, p in zip(frame["query_id"], frame["product_id"], strict=True)
    ]
    return frame


@pytest.fixture(scope="session")
def label_dirs(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Teacher scores on the train split (source human) and on augmented pairs (source random)."""
    root = tmp_path_factory.mktemp("labels")
    train = pd.read_parquet(demo_data / "train.parquet")
    return (
        write_label_dir(train, root / "train"),
        write_label_dir(augmented_pairs(train, per_query=4), root / "augmented"),
    )
