"""Where shoprel's models run: the device and, on it, the dtype.

CUDA where present, else the CPU; bf16 on a GPU that supports it and on a CPU whose bf16 matmul
measurably pays, fp32 elsewhere. ``$SHOPREL_DTYPE`` overrides the judge's dtype.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
import re
import time
from pathlib import Path

import torch

logger = logging.getLogger(__name__)


def pick_device(name: str | None = None) -> torch.device:
    """``name`` where given, else CUDA where present, else the CPU."""
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


DTYPE_ENV = "SHOPREL_DTYPE"  # "bfloat16" or "float32" overrides the choice below
DTYPES = {
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float32": torch.float32,
    "fp32": torch.float32,
}


def read_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no flags to read, fp32
        return ""


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), for benchmark records."""
    found = re.search(r"^model name\s*:\s*(.+)$", read_cpuinfo(), re.MULTILINE)
    return found.group(1).strip() if found else platform.processor() or "unknown CPU"


@functools.cache
def cpu_has_bf16() -> bool:
    """True where the CPU has bf16 instructions (AVX512-BF16 or AMX-BF16 on x86, BF16 on Arm)."""
    return re.search(r"\b(avx512_bf16|amx_bf16|bf16)\b", read_cpuinfo()) is not None


@functools.cache
def cpu_bf16_speedup() -> float:
    """fp32 time over bf16 time of a matmul the judge's size, measured once: the two take turns
    five times and each keeps its best, so that load from other processes hits both alike.

    Having the instructions is not enough: on some CPUs with AVX512-BF16 the bf16 kernels run
    slower than fp32 (a Xeon without AMX: 0.6-0.7x), on others 3-4.6x faster (a Xeon with AMX,
    an AMD EPYC Zen 5).
    """
    left, right = torch.randn(256, 1024), torch.randn(1024, 1024)
    operands = {
        dtype: (left.to(dtype), right.to(dtype)) for dtype in (torch.float32, torch.bfloat16)
    }
    best = dict.fromkeys(operands, float("inf"))
    for _ in range(6):  # the first turn warms up kernels and memory
        for dtype, (a, b) in operands.items():
            start = time.perf_counter()
            for _ in range(4):
                a @ b
            best[dtype] = min(best[dtype], time.perf_counter() - start)
    return best[torch.float32] / best[torch.bfloat16]


# Below this the CPU keeps fp32: bf16 costs accuracy for too little, and a probe run beside other
# processes once read 1.5x on a CPU that is 0.6x when quiet.
BF16_MIN_SPEEDUP = 2.0


def pick_dtype(device: torch.device) -> torch.dtype:
    """bf16 where it pays (CUDA with bf16, or a CPU with bf16 instructions whose bf16 matmul is at
    least 2x faster than fp32, measured), fp32 elsewhere; ``$SHOPREL_DTYPE`` (``bfloat16`` |
    ``float32``) overrides."""
    forced = os.environ.get(DTYPE_ENV, "").strip().lower()
    if forced:
        if forced not in DTYPES:
            raise ValueError(f"{DTYPE_ENV}={forced!r}: expected one of {', '.join(DTYPES)}")
        return DTYPES[forced]
    if device.type == "cuda":
        return torch.bfloat16 if cuda_has_bf16() else torch.float32
    if device.type != "cpu" or not cpu_has_bf16():
        return torch.float32
    speedup = cpu_bf16_speedup()
    chosen = torch.bfloat16 if speedup >= BF16_MIN_SPEEDUP else torch.float32
    _log_cpu_choice(speedup, chosen)
    return chosen


@functools.cache
def _log_cpu_choice(speedup: float, dtype: torch.dtype) -> None:
    logger.info(
        "CPU bf16 matmul %.2fx fp32: the judge runs in %s (set %s to choose)",
        speedup,
        str(dtype).removeprefix("torch."),
        DTYPE_ENV,
    )


def cuda_has_bf16() -> bool:
    """True on a CUDA device with bf16 (mixed-precision training of the student)."""
    # not emulated: a T4 or V100 "supports" bf16 by emulation, slower than fp32
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
