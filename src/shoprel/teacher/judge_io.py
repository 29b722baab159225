"""Loading, adapting and saving a judge; the trainer arguments every judge stage shares.

SFT (:mod:`shoprel.teacher.sft`), Multi-CoT and DPO (:mod:`shoprel.teacher.lref`) load a base or a
saved judge here, wrap it in the same LoRA block, train with the same warmup rule and precision,
and save it merged.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from shoprel.devices import pick_device, pick_dtype
from shoprel.teacher.config import TeacherTrainConfig
from shoprel.teacher.model import (
    GRADE_HEAD,
    META_FILE,
    TeacherMeta,
    attach_grade_head,
    fold_grade_head,
)
from shoprel.teacher.stage_io import drop_stale_model_files


def load_tokenizer(path: str | Path) -> Any:
    """The judge's tokenizer; the end-of-sequence token pads where there is no pad token."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base(
    path: str | Path, cfg: TeacherTrainConfig, device: torch.device, grade_ids: list[int]
) -> Any:
    """The base causal LM at ``path`` (``cfg.base`` resolved), with a classifier on the grades
    where ``cfg.head`` asks for one, LoRA-wrapped unless ``cfg.lora`` is off (the classifier is
    then trained and checkpointed beside the adapters)."""
    model = AutoModelForCausalLM.from_pretrained(path, dtype=pick_dtype(device)).to(device)
    extra: dict[str, Any] = {}
    if cfg.head == "classifier":
        attach_grade_head(model, grade_ids)
        extra["modules_to_save"] = [*(cfg.peft.get("modules_to_save") or []), GRADE_HEAD]
    if cfg.lora:
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(cfg, extra))
    return model


def load_judge(directory: Path) -> tuple[Any, Any, Any]:
    """Model (in the device's dtype, on the device), tokenizer and meta of a saved judge."""
    device = pick_device()
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=pick_dtype(device)).to(device)
    return model, load_tokenizer(directory), TeacherMeta.load(directory)


def lora_config(cfg: TeacherTrainConfig, extra: dict[str, Any] | None = None) -> Any:
    """The judge's one PEFT block (``cfg.peft`` over the defaults, ``extra`` over both), for
    every stage."""
    from peft import LoraConfig

    return library_config(LoraConfig, cfg.lora_kwargs() | (extra or {}), "peft")


def save_merged(model: Any, tokenizer: Any, meta: TeacherMeta, out: Path) -> None:
    """Merge LoRA weights in and save a plain model dir; the meta file is written last."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    fold_grade_head(model)
    (out / META_FILE).unlink(missing_ok=True)
    staging = out / ".model-tmp"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    saved = {path.name for path in staging.iterdir()}
    for name in saved:
        os.replace(staging / name, out / name)
    staging.rmdir()
    drop_stale_model_files(out, saved)
    meta.save(out)


def warmup_steps(
    examples: int, batch_size: int, grad_accum: int, epochs: float, max_steps: int = -1
) -> int:
    """5% of the optimizer steps (``max_steps`` where positive, as the trainer counts them),
    rounded down: a run of under 20 steps has no warmup (a one-step run that started from a
    learning rate of 0 would not move at all)."""
    steps = max_steps if max_steps > 0 else math.ceil(examples / (batch_size * grad_accum)) * epochs
    return int(0.05 * steps)


def trainer_precision(model: Any) -> dict[str, Any]:
    """TRL configs default to bf16; the judge trains in the dtype it was loaded in."""
    device = next(model.parameters()).device
    return {
        "bf16": next(model.parameters()).dtype == torch.bfloat16,
        "use_cpu": device.type == "cpu",
    }


def trainer_arguments(
    cfg: TeacherTrainConfig, model: Any, out: Path, examples: int, stage: dict[str, Any]
) -> dict[str, Any]:
    """The ``TrainingArguments`` keywords of one judge trainer (SFT's, and the TRL SFT and DPO
    configs of the LREF stages): what they all share (schedule, warmup, seeds, precision; nothing
    saved mid-run) with the stage's own keywords ``stage`` laid over it."""
    shared = {
        "output_dir": str(out),
        "activation_checkpointing": False,
        "lr_scheduler_type": "linear",
        "save_strategy": "no",
        "logging_steps": 10,
        "report_to": [],
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        "dataloader_num_workers": 0,
        **trainer_precision(model),
    }
    merged = shared | stage
    if "warmup_steps" not in stage and "warmup_ratio" not in stage:
        merged["warmup_steps"] = warmup_steps(
            examples,
            merged.get("per_device_train_batch_size", 8),
            merged.get("gradient_accumulation_steps", 1),
            merged.get("num_train_epochs", 1.0),
            merged.get("max_steps", -1),
        )
    check_disk_space(model, out, merged)
    return merged


GIB = 2**30


def checkpoint_bytes(model: Any) -> tuple[int, int]:
    """Bytes of ``model`` saved whole, and of one trainer checkpoint of it: the trainable
    weights (every weight where none is frozen) and AdamW's two moments of each."""
    params = list(model.parameters())
    whole = sum(p.numel() * p.element_size() for p in params)
    trained = sum(p.numel() * p.element_size() for p in params if p.requires_grad)
    weights = whole if trained == whole else trained
    return whole, weights + 2 * trained


def check_disk_space(model: Any, checkpoints: Path, args: dict[str, Any]) -> None:
    """Fail before training where the disk under ``checkpoints`` cannot hold the checkpoints the
    run keeps (one more while the oldest is rotated out) and the judge saved at the end."""
    whole, checkpoint = checkpoint_bytes(model)
    need = whole
    if args.get("save_strategy", "no") != "no":
        kept = (args.get("save_total_limit") or 1) + 1
        present = sum(f.stat().st_size for f in checkpoints.rglob("*") if f.is_file())
        need += max(0, kept * checkpoint - present)
    existing = next(p for p in (checkpoints, *checkpoints.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if free < need:
        raise OSError(
            f"{checkpoints}: {free / GIB:.1f} GiB free, but the run's checkpoints "
            f"({checkpoint / GIB:.1f} GiB each) and the saved judge need about {need / GIB:.1f} "
            "GiB; free some space, keep fewer checkpoints (save_total_limit) or train with LoRA"
        )


def library_config(cls: type, kwargs: dict[str, Any], where: str) -> Any:
    """``cls(**kwargs)``; a keyword ``cls`` does not know, or a value it refuses, is a
    ``ValueError`` that names the config section."""
    check_fields(cls, kwargs, where)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {cls.__name__} refused the settings: {error}") from error


def check_stage_args(cfg: TeacherTrainConfig) -> None:
    """Fail before any training where a stage's ``args`` name a field its library lacks."""
    from peft import LoraConfig
    from transformers import TrainingArguments
    from trl import DPOConfig, SFTConfig

    sections = [("peft", LoraConfig, cfg.peft), ("sft.args", TrainingArguments, cfg.sft.args)]
    if cfg.cot.enabled:
        sections.append(("cot.args", SFTConfig, cfg.cot.args))
    if cfg.dpo.enabled:
        sections.append(("dpo.args", DPOConfig, cfg.dpo.args))
    for where, cls, kwargs in sections:
        check_fields(cls, kwargs, where)


def check_fields(cls: type, kwargs: dict[str, Any], where: str) -> None:
    unknown = sorted(set(kwargs) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ValueError(f"{where}: {cls.__name__} has no field(s) {unknown}")
