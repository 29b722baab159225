"""The judge's training config: ``shoprel teacher train`` and the pipeline's ``teacher.judge``.

Plain dataclasses, no torch: loading a config or printing it imports no training code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shoprel.teacher.lref.config import CotConfig, DpoConfig, SelectConfig, nested
from shoprel.teacher.prompts import PromptConfig


@dataclass
class TeacherTrainConfig:
    """Training the judge.

    Model:
        base (str, defaults to ``smollm2-135m-instruct``): causal LM alias, local dir or hub id.
        lora (bool, defaults to True): train LoRA adapters; False fine-tunes every weight.
        lora_r (int, defaults to 16), lora_alpha (int, defaults to 32), lora_dropout (float, 0.05).
    Data:
        target (str, defaults to ``soft``): ``soft`` or ``hard`` targets.
        max_train_pairs (int, defaults to 0 = all): a seeded sample of the train split.
        max_dev_pairs (int, defaults to 1000): dev pairs scored after each epoch (0: none).
        max_length (int, defaults to 256): prompts are cut to this many tokens.
    Training:
        epochs (float, 1.0), learning_rate (float, 2e-4), batch_size (int, 16),
        grad_accum (int, 1), save_steps (int, 200: a checkpoint every N optimizer steps),
        seed (int, 0), logging_steps (int, 10).
    LREF stages (:mod:`shoprel.teacher.lref.config`):
        select (SelectConfig, defaults to ``method: none``): which train pairs SFT learns.
        cot (CotConfig, defaults to no kinds): Multi-CoT tuning after SFT.
        dpo (DpoConfig, defaults to ``enabled: false``): DPO against optimistic errors.
    """

    base: str = "smollm2-135m-instruct"
    lora: bool = True
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target: str = "soft"
    max_train_pairs: int = 0
    max_dev_pairs: int = 1000
    max_length: int = 256
    epochs: float = 1.0
    learning_rate: float = 2e-4
    batch_size: int = 16
    grad_accum: int = 1
    save_steps: int = 200
    logging_steps: int = 10
    seed: int = 0
    prompt: PromptConfig = field(default_factory=PromptConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    cot: CotConfig = field(default_factory=CotConfig)
    dpo: DpoConfig = field(default_factory=DpoConfig)

    def __post_init__(self) -> None:
        if self.target not in ("soft", "hard"):
            raise ValueError(f"target: expected 'soft' or 'hard', got {self.target!r}")
        if isinstance(self.prompt, dict):
            self.prompt = PromptConfig(**self.prompt)
        self.select = nested(SelectConfig, self.select, "select")
        self.cot = nested(CotConfig, self.cot, "cot")
        self.dpo = nested(DpoConfig, self.dpo, "dpo")

    @property
    def lref_stages(self) -> list[str]:
        """The LREF stages switched on, in order (empty: plain SFT, as ``train_teacher``)."""
        on = {"select": self.select.enabled, "cot": self.cot.enabled, "dpo": self.dpo.enabled}
        return [name for name, enabled in on.items() if enabled]
