"""The judge's configs: one dataclass per stage, and the judge's own that holds them.

    judge:                       # TeacherTrainConfig
      base: qwen2.5-coder-0.5b
      peft: {r: 16}              # peft.LoraConfig keywords
      sft: {args: {learning_rate: 2.0e-4, per_device_train_batch_size: 16}}
      select: {method: lref, frac: 0.1}
      cot: {kinds: [ee, ra, dr], args: {learning_rate: 1.0e-4}}   # trl.SFTConfig keywords
      dpo: {enabled: true, args: {beta: 0.1}}                     # trl.DPOConfig keywords

A stage's ``args`` are keywords of the library's config class (``transformers.TrainingArguments``
for SFT, TRL's ``SFTConfig`` for CoT, ``DPOConfig`` for DPO), laid over the stage's defaults and
over what every judge trainer shares (:func:`shoprel.teacher.judge_io.trainer_arguments`); a
stage config holds only the fields of its own. Plain dataclasses, no torch: loading a config or
printing it imports no training code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any, ClassVar

from shoprel.teacher.prompts import PromptConfig

SELECT_METHODS = ("none", "random", "lref")
COT_KINDS = ("ee", "ra", "dr")  # also the order of training
GENERATORS = ("rules", "openai")
DPO_MODES = ("auto", "direct", "cot")
HEADS = ("verbalizer", "classifier")


def _help(text: str, **kwargs: Any) -> Any:
    return field(metadata={"help": text}, **kwargs)


def _share(name: str, value: float, *, open_low: bool = False) -> None:
    low_ok = value > 0 if open_low else value >= 0
    if not (low_ok and value <= 1):
        bound = "(0, 1]" if open_low else "[0, 1]"
        raise ValueError(f"{name}: expected a share in {bound}, got {value}")


def _check_guard(owner: str, stage: Any) -> None:
    if stage.max_f1_drop < 0:
        raise ValueError(f"{owner}.max_f1_drop: expected >= 0, got {stage.max_f1_drop}")
    _share(f"{owner}.max_grade_share", stage.max_grade_share, open_low=True)


def _positive(owner: str, obj: Any, names: tuple[str, ...]) -> None:
    for name in names:
        if getattr(obj, name) <= 0:
            raise ValueError(f"{owner}.{name}: expected a value > 0, got {getattr(obj, name)}")


def nested(cls: type, value: Any, where: str) -> Any:
    """A nested config from a mapping (unknown keys are an error) or as it is."""
    if isinstance(value, dict):
        from shoprel.config import from_dict

        return from_dict(cls, value, where)
    if not is_dataclass(value):
        raise ValueError(f"{where}: expected a mapping of {cls.__name__} keys, got {value!r}")
    return value


class EndpointError(RuntimeError):
    """The endpoint refused a request for good, or kept failing after every retry.

    Defined here, beside the endpoint's config, so that the CLI can catch it without importing
    the generator."""


@dataclass
class SelectConfig:
    """Which train pairs the judge is fine-tuned on.

    Selection:
        method (str, defaults to ``none``): ``none`` keeps every pair, ``random`` a seeded sample,
            ``lref`` the pairs the auxiliary models point to (IM wrong, CI right, MS silent).
        frac (float, defaults to 0.1): share of the train pairs kept (``random`` and ``lref``).
    Auxiliary models (``lref``):
        aux_base (str, defaults to ``""`` = the teacher's base): base of IM, CI and MS; a causal LM
            is trained as a judge (LoRA), an encoder (``minilm-l6``, a dir) as a cross-encoder.
        aux_frac (float, defaults to 0.3): share of the train pairs each auxiliary model learns:
            of those outside the judge's pool (``max_train_pairs``), else of the pool itself.
        aux_max_pairs (int, defaults to 2000; 0 = no cap): cap on those pairs.
        aux_epochs (float, defaults to 1.0): passes over them.
        aux_learning_rate (float, defaults to 0 = the teacher's): peak learning rate.
        frequency_column (str, defaults to ``query_frequency``): how often each query was searched,
            where the data has such a column; else a query's number of judged items stands in.
    """

    method: str = _help("none | random | lref", default="none")
    frac: float = _help("share of the train pairs kept", default=0.1)
    aux_base: str = _help("base of IM, CI and MS ('' = the teacher's base)", default="")
    aux_frac: float = _help("share of the train pairs each auxiliary model learns", default=0.3)
    aux_max_pairs: int = _help("cap on each auxiliary model's pairs (0 = none)", default=2000)
    aux_epochs: float = _help("passes of each auxiliary model", default=1.0)
    aux_learning_rate: float = _help(
        "learning rate of the auxiliary models (0 = teacher's)", default=0.0
    )
    frequency_column: str = _help("per-query search count column", default="query_frequency")

    def __post_init__(self) -> None:
        if self.method not in SELECT_METHODS:
            raise ValueError(
                f"select.method: expected one of {SELECT_METHODS}, got {self.method!r}"
            )
        _share("select.frac", self.frac, open_low=True)
        _share("select.aux_frac", self.aux_frac, open_low=True)
        _positive("select", self, ("aux_epochs",))
        if self.aux_max_pairs < 0 or self.aux_learning_rate < 0:
            raise ValueError("select.aux_max_pairs and select.aux_learning_rate must be >= 0")

    @property
    def enabled(self) -> bool:
        return self.method != "none"


@dataclass
class OpenAIConfig:
    """An OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama, a hosted API).

    Endpoint:
        url (str): base URL, e.g. ``http://localhost:8000/v1``; requests go to
            ``URL/chat/completions``.
        model (str): the model name the server knows.
        api_key_env (str, defaults to ``OPENAI_API_KEY``): environment variable holding the key,
            sent as ``Authorization: Bearer KEY`` when set.
    Requests:
        max_concurrency (int, defaults to 4): requests in flight at once.
        max_retries (int, defaults to 5): retries after a 429, a 5xx or a network error.
        backoff_s (float, defaults to 1.0): first wait before a retry, doubled each time (a
            ``Retry-After`` header wins).
        timeout_s (float, defaults to 60), temperature (float, 0.0), max_tokens (int, 256).
        cache_dir (str, defaults to ``""`` = ``OUT/cot/cache``): answers by request hash; a rerun
            sends only the requests not answered before.
    """

    url: str = _help("base URL of the chat endpoint", default="")
    model: str = _help("model name", default="")
    api_key_env: str = _help("environment variable with the API key", default="OPENAI_API_KEY")
    max_concurrency: int = _help("requests in flight at once", default=4)
    max_retries: int = _help("retries after 429, 5xx or network errors", default=5)
    backoff_s: float = _help("first wait before a retry (s), doubled each time", default=1.0)
    timeout_s: float = _help("request timeout (s)", default=60.0)
    temperature: float = _help("sampling temperature", default=0.0)
    max_tokens: int = _help("tokens per answer", default=256)
    cache_dir: str = _help("answer cache ('' = OUT/cot/cache)", default="")

    def __post_init__(self) -> None:
        _positive("cot.openai", self, ("max_concurrency", "timeout_s", "max_tokens"))
        if self.max_retries < 0 or self.backoff_s < 0:
            raise ValueError("cot.openai.max_retries and cot.openai.backoff_s must be >= 0")


def args_help(library: str, defaults: dict[str, Any]) -> dict[str, str]:
    """The help of a stage's ``args``: keywords of ``library``'s config class over ``defaults``."""
    shown = ", ".join(f"{k}={v}" for k, v in defaults.items())
    return {"help": f"{library} keywords (over {shown})"}


def _mapping(where: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{where}: expected a mapping of keywords, got {value!r}")
    return dict(value)


SFT_ARGS: dict[str, Any] = {
    "num_train_epochs": 1.0,
    "learning_rate": 2e-4,
    "per_device_train_batch_size": 16,
    "gradient_accumulation_steps": 1,
    "save_steps": 200,
}
COT_ARGS: dict[str, Any] = {
    "num_train_epochs": 1.0,
    "learning_rate": 1e-4,
    "per_device_train_batch_size": 8,
    "max_length": 384,
}
DPO_ARGS: dict[str, Any] = {
    "beta": 0.1,
    "loss_type": "sigmoid",
    "num_train_epochs": 1.0,
    "learning_rate": 5e-5,
    "per_device_train_batch_size": 8,
    "max_length": 512,
}
LORA_ARGS: dict[str, Any] = {
    "r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.05,
    "target_modules": "all-linear",
    "task_type": "CAUSAL_LM",
}


@dataclass
class SftConfig:
    """SFT of the judge: cross-entropy of its grade-token distribution against the targets.

    Targets:
        target (str, defaults to ``soft``): ``soft`` (the prepared grade distribution) or ``hard``
            (one-hot on the grade nearest to the label).
        max_length (int, defaults to 256): prompts are cut to this many tokens.
    Training:
        share_prefix (bool, defaults to True): batches hold the pairs of few queries, and each
            runs the prompt head once and each query once, the product suffixes after them: the
            same loss for fewer tokens where product prompts are short (``train_sampling_strategy``
            of ``args`` does not apply). False: pairs in random batches, every prompt run whole.
        args (dict): ``transformers.TrainingArguments`` keywords over :data:`SFT_ARGS`
            (``num_train_epochs`` 1, ``learning_rate`` 2e-4, ``per_device_train_batch_size`` 16,
            ``gradient_accumulation_steps`` 1, ``save_steps`` 200: a checkpoint every N optimizer
            steps for ``--resume``).
    """

    target: str = _help("soft | hard", default="soft")
    max_length: int = _help("prompt tokens kept", default=256)
    share_prefix: bool = _help("run each batch's prompt head and queries once", default=True)
    args: dict[str, Any] = field(
        default_factory=dict, metadata=args_help("TrainingArguments", SFT_ARGS)
    )

    def __post_init__(self) -> None:
        if self.target not in ("soft", "hard"):
            raise ValueError(f"sft.target: expected 'soft' or 'hard', got {self.target!r}")
        _positive("sft", self, ("max_length",))
        self.args = _mapping("sft.args", self.args)

    def trainer_kwargs(self) -> dict[str, Any]:
        return SFT_ARGS | self.args


@dataclass
class CotConfig:
    """Multi-CoT tuning after SFT: EE, then RA, then DR, each a short run of the same adapter.

    Rationales:
        kinds (list[str], defaults to none = no CoT stage): some of ``ee`` (why the pair has its
            grade), ``ra`` (the grade derived from the relevance rules), ``dr`` (why a wrong grade
            is wrong, then the right one); trained in that order.
        generator (str, defaults to ``rules``): ``rules`` (offline, from explicit signals) or
            ``openai`` (any OpenAI-compatible endpoint, see ``openai``).
        rules (str, defaults to ``""`` = the shipped ``relevance_rules.yaml``): the rules file.
        max_pairs (int, defaults to 1000): train pairs per kind.
        direct_frac (float, defaults to 0.5): direct-answer examples mixed in, per CoT example.
        reasoning (bool, defaults to True): False trains the control of the stage: each kind's
            run has as many examples, of the same pairs, all of them direct answers, so that the
            reasoning is the only difference from the stage.
        max_rationale_tokens (int, defaults to 96): a rationale is cut to this many tokens.
    Training:
        args (dict): TRL ``SFTConfig`` keywords over :data:`COT_ARGS` (``num_train_epochs`` 1 per
            kind, ``learning_rate`` 1e-4, ``per_device_train_batch_size`` 8, ``max_length`` 384
            tokens of prompt and answer); the loss is on the answer only.
    Evaluation:
        eval_pairs (int, defaults to 32; 0 = none): dev pairs scored in ``cot`` mode.
        max_new_tokens (int, defaults to 96): reasoning tokens generated in ``cot`` mode.
    Guard (as DPO's):
        max_f1_drop (float, defaults to 0.01), max_grade_share (float, defaults to 0.9): where
            dev macro-F1 after Multi-CoT is lower than the SFT judge's by more than
            ``max_f1_drop``, or ``max_grade_share`` of the dev predictions are one grade, the
            stage keeps the judge it started from and says so in its metrics and the log.
    """

    MOVED_KEYS: ClassVar[dict[str, str]] = {
        "epochs": "cot.args.num_train_epochs",
        "learning_rate": "cot.args.learning_rate",
        "batch_size": "cot.args.per_device_train_batch_size",
        "max_length": "cot.args.max_length",
    }

    kinds: list[str] = field(
        default_factory=list, metadata={"help": "ee, ra, dr (trained in this order)"}
    )
    generator: str = _help("rules | openai", default="rules")
    rules: str = _help("relevance rules YAML ('' = shipped)", default="")
    openai: OpenAIConfig = field(
        default_factory=OpenAIConfig, metadata={"help": "the openai generator's endpoint"}
    )
    max_pairs: int = _help("train pairs per kind", default=1000)
    direct_frac: float = _help("direct-answer examples per CoT example", default=0.5)
    reasoning: bool = _help("False: the equal-steps control, direct answers only", default=True)
    max_rationale_tokens: int = _help("tokens kept of a rationale", default=96)
    eval_pairs: int = _help("dev pairs scored in cot mode (0 = none)", default=32)
    max_new_tokens: int = _help("reasoning tokens generated in cot mode", default=96)
    max_f1_drop: float = _help("guard: largest dev macro-F1 drop kept", default=0.01)
    max_grade_share: float = _help("guard: largest share of one predicted grade", default=0.9)
    args: dict[str, Any] = field(
        default_factory=dict, metadata=args_help("trl.SFTConfig", COT_ARGS)
    )

    def __post_init__(self) -> None:
        if isinstance(self.kinds, str):
            self.kinds = [k.strip() for k in self.kinds.split(",") if k.strip()]
        unknown = [k for k in self.kinds if k not in COT_KINDS]
        if unknown or len(set(self.kinds)) != len(self.kinds):
            raise ValueError(f"cot.kinds: expected distinct kinds of {COT_KINDS}, got {self.kinds}")
        self.kinds = [k for k in COT_KINDS if k in self.kinds]
        if self.generator not in GENERATORS:
            raise ValueError(f"cot.generator: expected one of {GENERATORS}, got {self.generator!r}")
        self.openai = nested(OpenAIConfig, self.openai, "cot.openai")
        if (
            self.kinds
            and self.generator == "openai"
            and not (self.openai.url and self.openai.model)
        ):
            raise ValueError(
                "cot.generator 'openai' needs cot.openai.url and cot.openai.model "
                "(--cot-url http://host:port/v1 --cot-model NAME)"
            )
        _positive("cot", self, ("max_pairs", "max_rationale_tokens", "max_new_tokens"))
        if self.direct_frac < 0 or self.eval_pairs < 0:
            raise ValueError("cot.direct_frac and cot.eval_pairs must be >= 0")
        _check_guard("cot", self)
        self.args = _mapping("cot.args", self.args)

    @property
    def enabled(self) -> bool:
        return bool(self.kinds)

    def trainer_kwargs(self) -> dict[str, Any]:
        return COT_ARGS | self.args


@dataclass
class DpoConfig:
    """DPO against the judge's optimistic errors, on labeled pairs SFT did not train on.

    Pairs:
        enabled (bool, defaults to False): run the stage.
        top_k (int, defaults to 2): a pair is made where the judge's top grade is above the true
            one and the true grade is among its ``top_k`` most likely grades.
        mode (str, defaults to ``auto``): ``direct`` (grade words), ``cot`` (a rationale, then the
            grade) or ``auto`` (``cot`` after a CoT stage).
        holdout_frac (float, defaults to 0.1): share of the train queries kept out of every earlier
            stage for DPO; pairs left out by selection join them.
        max_pool_pairs (int, defaults to 2000; 0 = all): the pool the judge scores.
        balance (bool, defaults to True): no kind of pair (chosen grade, rejected grade) takes
            more than its share: each kind keeps at most max(the rarest kind's count, pairs / (2 x
            kinds)), a seeded sample. One kind alone teaches the judge to shun one grade.
    Training:
        args (dict): TRL ``DPOConfig`` keywords over :data:`DPO_ARGS` (``beta`` 0.1: higher keeps
            closer to the start, ``loss_type`` sigmoid, ``num_train_epochs`` 1,
            ``learning_rate`` 5e-5, ``per_device_train_batch_size`` 8 pairs, ``max_length`` 512).
            An SFT term on the chosen answer beside DPO (the RPO recipe; keeps the judge from
            drifting off the grades it got right): ``loss_type: [sigmoid, sft]``,
            ``loss_weights: [1.0, 1.0]``.
    Guard:
        max_f1_drop (float, defaults to 0.01): where dev macro-F1 after DPO is lower than before
            by more than this, or ``max_grade_share`` of the dev predictions are one grade, the
            stage keeps the judge it started from and says so in its metrics and the log.
        max_grade_share (float, defaults to 0.9).
    """

    MOVED_KEYS: ClassVar[dict[str, str]] = {
        "beta": "dpo.args.beta",
        "loss_type": "dpo.args.loss_type",
        "sft_weight": "dpo.args (loss_type: [sigmoid, sft], loss_weights: [1.0, W])",
        "epochs": "dpo.args.num_train_epochs",
        "learning_rate": "dpo.args.learning_rate",
        "batch_size": "dpo.args.per_device_train_batch_size",
        "max_length": "dpo.args.max_length",
    }

    enabled: bool = _help("run the DPO stage", default=False)
    top_k: int = _help("the true grade must be among this many top grades", default=2)
    mode: str = _help("auto | direct | cot", default="auto")
    holdout_frac: float = _help("share of train queries held out for DPO", default=0.1)
    max_pool_pairs: int = _help("pool pairs the judge scores (0 = all)", default=2000)
    balance: bool = _help("cap each (chosen, rejected) kind of pair", default=True)
    max_f1_drop: float = _help("guard: largest dev macro-F1 drop kept", default=0.01)
    max_grade_share: float = _help("guard: largest share of one predicted grade", default=0.9)
    args: dict[str, Any] = field(
        default_factory=dict, metadata=args_help("trl.DPOConfig", DPO_ARGS)
    )

    def __post_init__(self) -> None:
        if self.mode not in DPO_MODES:
            raise ValueError(f"dpo.mode: expected one of {DPO_MODES}, got {self.mode!r}")
        if self.top_k < 2:
            raise ValueError(
                f"dpo.top_k: expected >= 2 (the top grade and one more), got {self.top_k}"
            )
        _share("dpo.holdout_frac", self.holdout_frac)
        if self.holdout_frac == 1:
            raise ValueError("dpo.holdout_frac: expected < 1 (the rest of the pool trains SFT)")
        if self.max_pool_pairs < 0:
            raise ValueError(f"dpo.max_pool_pairs: expected >= 0, got {self.max_pool_pairs}")
        _check_guard("dpo", self)
        self.args = _mapping("dpo.args", self.args)

    def trainer_kwargs(self) -> dict[str, Any]:
        return DPO_ARGS | self.args


@dataclass
class TeacherTrainConfig:
    """The judge: its base, its adapter, the pairs it learns from, and each stage's config.

    Model:
        base (str, defaults to ``smollm2-135m-instruct``): causal LM alias, local dir or hub id.
        lora (bool, defaults to True): train LoRA adapters; False fine-tunes every weight.
        head (str, defaults to ``verbalizer``): what the grade logits are read from at the last
            token: ``verbalizer`` (the grade words' rows of the LM head, left as they are) or
            ``classifier`` (those rows copied into a classifier that SFT trains, folded back into
            the LM head when the judge is saved; a tied head is untied).
        peft (dict): ``peft.LoraConfig`` keywords over :data:`LORA_ARGS` (``r`` 16,
            ``lora_alpha`` 32, ``lora_dropout`` 0.05, ``target_modules`` all-linear); every stage
            trains this one adapter block.
        prompt (PromptConfig): the judge's prompt and grade words.
    Data:
        max_train_pairs (int, defaults to 0 = all): a seeded sample of the train split, the pool
            every stage draws from.
        max_dev_pairs (int, defaults to 1000): dev pairs each stage is checked on (0: none).
        seed (int, defaults to 0): sampling, adapter init and the trainers' seed.
    Stages, in order (each a section; a stage that is off is skipped):
        select (SelectConfig, ``method: none``): which train pairs SFT learns.
        sft (SftConfig): fine-tuning on soft targets; always on.
        cot (CotConfig, no kinds): Multi-CoT tuning after SFT.
        dpo (DpoConfig, ``enabled: false``): DPO against optimistic errors.
    Precision:
        fp32 (dict, defaults to {}): keys of this config laid over it where the judge runs in
            fp32 (a CPU whose bf16 does not pay, :func:`shoprel.devices.pick_dtype`), sections
            key by key: a smaller judge for the same time (``{base: smollm2-135m-instruct}``).
    """

    MOVED_KEYS: ClassVar[dict[str, str]] = {
        "target": "sft.target",
        "max_length": "sft.max_length",
        "epochs": "sft.args.num_train_epochs",
        "learning_rate": "sft.args.learning_rate",
        "batch_size": "sft.args.per_device_train_batch_size",
        "grad_accum": "sft.args.gradient_accumulation_steps",
        "save_steps": "sft.args.save_steps",
        "logging_steps": "sft.args.logging_steps",
        "lora_r": "peft.r",
        "lora_alpha": "peft.lora_alpha",
        "lora_dropout": "peft.lora_dropout",
    }

    base: str = "smollm2-135m-instruct"
    lora: bool = True
    head: str = "verbalizer"
    peft: dict[str, Any] = field(
        default_factory=dict, metadata=args_help("peft.LoraConfig", LORA_ARGS)
    )
    max_train_pairs: int = 0
    max_dev_pairs: int = 1000
    seed: int = 0
    prompt: PromptConfig = field(default_factory=PromptConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    sft: SftConfig = field(default_factory=SftConfig)
    cot: CotConfig = field(default_factory=CotConfig)
    dpo: DpoConfig = field(default_factory=DpoConfig)
    fp32: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"head: expected one of {HEADS}, got {self.head!r}")
        if isinstance(self.prompt, dict):
            self.prompt = PromptConfig(**self.prompt)
        self.peft = _mapping("peft", self.peft)
        for name, cls in STAGE_CONFIGS.items():
            setattr(self, name, nested(cls, getattr(self, name), name))
        self.fp32 = _mapping("fp32", self.fp32)
        if "fp32" in self.fp32:
            raise ValueError("fp32: a key of the judge's config, not of its fp32 section")
        self.in_fp32()  # an unknown or bad key fails here, on every machine

    def in_fp32(self) -> TeacherTrainConfig:
        """This config with its ``fp32`` keys laid over it (itself where there are none)."""
        if not self.fp32:
            return self
        from shoprel.config import from_dict

        values = _laid_over(asdict(self), self.fp32) | {"fp32": {}}
        return from_dict(TeacherTrainConfig, values, "fp32")

    @property
    def lref_stages(self) -> list[str]:
        """The LREF stages switched on, in order (empty: plain SFT)."""
        on = {"select": self.select.enabled, "cot": self.cot.enabled, "dpo": self.dpo.enabled}
        return [name for name, enabled in on.items() if enabled]

    def lora_kwargs(self) -> dict[str, Any]:
        return LORA_ARGS | self.peft


STAGE_CONFIGS: dict[str, type] = {
    "select": SelectConfig,
    "sft": SftConfig,
    "cot": CotConfig,
    "dpo": DpoConfig,
}


def _laid_over(values: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``values`` with ``changes`` laid over them, mappings key by key."""
    merged = dict(values)
    for key, value in changes.items():
        inner = merged.get(key)
        both = isinstance(inner, dict) and isinstance(value, dict)
        merged[key] = _laid_over(inner, value) if both else value
    return merged


def with_stage_overrides(cfg: TeacherTrainConfig, **sections: dict[str, Any]) -> Any:
    """``cfg`` with single keys of its stage sections replaced (``None`` values are left out);
    a mapping value (``args``, ``openai``) is merged into the current one."""
    changes = {}
    for name, values in sections.items():
        values = {k: v for k, v in values.items() if v is not None}
        known = {f.name for f in fields(STAGE_CONFIGS[name])}
        if set(values) - known:
            raise ValueError(f"{name}: unknown key(s) {sorted(set(values) - known)}")
        current = getattr(cfg, name)
        for key, value in list(values.items()):
            inner = getattr(current, key)
            if isinstance(value, dict):
                value = {k: v for k, v in value.items() if v is not None}
                values[key] = replace(inner, **value) if is_dataclass(inner) else inner | value
        if values:
            changes[name] = replace(current, **values)
    return replace(cfg, **changes) if changes else cfg
