"""The judge in bf16: on a CPU whose bf16 instructions pay, on CUDA by default; ranking as fp32."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from shoprel import devices
from shoprel.teacher.config import TeacherTrainConfig
from shoprel.teacher.scorer import TeacherScorer
from shoprel.teacher.train import config_for_this_machine, train_teacher


@pytest.fixture(scope="module")
def spread_judge(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny judge re-initialised with larger weights, so that its scores differ across pairs
    by more than bf16's rounding of a near-constant output."""
    config = LlamaConfig.from_pretrained(tiny_base)
    config.initializer_range = 0.3
    torch.manual_seed(1)
    out = tmp_path_factory.mktemp("spread-judge")
    LlamaForCausalLM(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_base).save_pretrained(out)
    return out


def _scores(
    base: Path,
    pairs: pd.DataFrame,
    dtype: str,
    monkeypatch: pytest.MonkeyPatch,
    device: str | None = None,
):
    monkeypatch.setenv(devices.DTYPE_ENV, dtype)
    scorer = TeacherScorer.from_base(str(base), "esci", batch_size=16, device=device)
    assert next(scorer.model.parameters()).dtype == devices.DTYPES[dtype]
    return scorer.predict(pairs)["score"].to_numpy()


def test_bf16_scores_rank_as_fp32(
    spread_judge: Path, demo_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = pd.read_parquet(demo_data / "dev.parquet").head(300)
    fp32 = _scores(spread_judge, pairs, "float32", monkeypatch)
    bf16 = _scores(spread_judge, pairs, "bfloat16", monkeypatch)
    assert fp32.std() > 0.05  # the scores spread, so agreement means something
    assert (bf16 != fp32).any()  # the two runs did differ in precision
    assert spearmanr(fp32, bf16).statistic >= 0.99


@pytest.mark.parametrize(
    ("cpuinfo", "speedup", "expected"),
    [
        ("flags\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n", 3.7, torch.bfloat16),
        ("flags\t: fpu avx2 amx_bf16 amx_tile\n", 2.4, torch.bfloat16),
        ("flags\t: fpu avx2 amx_bf16 amx_tile\n", 1.5, torch.float32),  # not enough to pay
        ("flags\t: fpu avx2 avx512f avx512_bf16\n", 0.7, torch.float32),  # has it, slower
        ("flags\t: fpu avx2 avx512f avx512_vnni\n", 9.9, torch.float32),  # no instructions
    ],
)
def test_cpu_dtype_follows_flags_and_measured_speed(
    cpuinfo: str,
    speedup: float,
    expected: torch.dtype,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(devices.DTYPE_ENV, raising=False)
    monkeypatch.setattr(devices, "read_cpuinfo", lambda: cpuinfo)
    monkeypatch.setattr(devices, "cpu_bf16_speedup", lambda: speedup)
    devices.cpu_has_bf16.cache_clear()
    try:
        assert devices.pick_dtype(torch.device("cpu")) == expected
    finally:
        devices.cpu_has_bf16.cache_clear()


def test_dtype_override_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(devices.DTYPE_ENV, "fp32")
    assert devices.pick_dtype(torch.device("cpu")) == torch.float32
    monkeypatch.setenv(devices.DTYPE_ENV, "half")
    with pytest.raises(ValueError, match="SHOPREL_DTYPE='half'"):
        devices.pick_dtype(torch.device("cpu"))


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@needs_cuda
def test_cuda_judge_defaults_to_bf16_and_ranks_as_cpu_fp32(
    spread_judge: Path, demo_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = pd.read_parquet(demo_data / "dev.parquet").head(300)
    cpu = _scores(spread_judge, pairs, "float32", monkeypatch, device="cpu")
    monkeypatch.delenv(devices.DTYPE_ENV, raising=False)
    scorer = TeacherScorer.from_base(str(spread_judge), "esci", batch_size=16)
    weights = next(scorer.model.parameters())
    assert weights.device.type == "cuda"
    assert weights.dtype == (
        torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float32
    )
    gpu = scorer.predict(pairs)["score"].to_numpy()
    assert cpu.std() > 0.05
    assert spearmanr(cpu, gpu).statistic >= 0.99


@pytest.mark.parametrize(("cuda", "bf16"), [(False, False), (True, False), (True, True)])
def test_device_and_dtype_follow_cuda(
    cuda: bool, bf16: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(devices.DTYPE_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)
    assert devices.pick_device().type == ("cuda" if cuda else "cpu")
    assert devices.pick_device("cpu").type == "cpu"  # a name given wins
    assert devices.cuda_has_bf16() is (cuda and bf16)
    if cuda:
        expected = torch.bfloat16 if bf16 else torch.float32
        assert devices.pick_dtype(torch.device("cuda")) == expected


def test_a_gpu_that_only_emulates_bf16_runs_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(devices.DTYPE_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    emulated = lambda including_emulation=True: including_emulation  # noqa: E731  (a T4, a V100)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", emulated)
    assert not devices.cuda_has_bf16()
    assert devices.pick_dtype(torch.device("cuda")) == torch.float32


def _two_judges(tiny_base: Path) -> TeacherTrainConfig:
    """A judge whose base does not exist, with a tiny base for where the judge runs in fp32."""
    return TeacherTrainConfig(
        base="no-such-judge",
        max_train_pairs=800,
        max_dev_pairs=0,
        peft={"r": 4, "lora_alpha": 8, "lora_dropout": 0.0},
        sft={"args": {"learning_rate": 5e-3, "per_device_train_batch_size": 4}},
        fp32={"base": str(tiny_base), "max_train_pairs": 16, "sft": {"args": {"save_steps": 2}}},
    )


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_fp32_section_is_laid_over_the_judge_where_it_runs_in_fp32(
    dtype: str, tiny_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(devices.DTYPE_ENV, dtype)
    cfg = config_for_this_machine(_two_judges(tiny_base))
    if dtype == "bfloat16":
        assert (cfg.base, cfg.max_train_pairs, cfg.fp32["base"]) == (
            "no-such-judge",
            800,
            str(tiny_base),
        )
        return
    assert (cfg.base, cfg.max_train_pairs, cfg.fp32) == (str(tiny_base), 16, {})
    # a section's keys are replaced one by one, the others kept
    expected_args = {"learning_rate": 5e-3, "per_device_train_batch_size": 4, "save_steps": 2}
    assert cfg.sft.args == expected_args
    assert cfg.peft["r"] == 4


def test_a_judge_trained_in_fp32_is_the_fp32_sections(
    tiny_base: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(devices.DTYPE_ENV, "float32")
    out = train_teacher(_two_judges(tiny_base), demo_data, tmp_path / "judge")
    meta = json.loads((out / "shoprel_teacher.json").read_text())
    assert meta["base"] == str(tiny_base)
    assert (meta["train"]["max_train_pairs"], meta["train"]["fp32"]) == (16, {})


@pytest.mark.parametrize(
    ("fp32", "message"),
    [
        ({"bsae": "x"}, "unknown key"),
        ({"select": {"method": "best"}}, "select"),
        ({"fp32": {}}, "fp32"),
        ("smollm2", "mapping"),
    ],
)
def test_a_bad_fp32_section_fails_on_every_machine(fp32: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TeacherTrainConfig(fp32=fp32)  # type: ignore[arg-type]
