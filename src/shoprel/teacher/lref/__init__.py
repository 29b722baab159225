"""What LREF's stages share beyond the judge: explicit relevance signals, the relevance rules,
rationale generators (rules, or an OpenAI-compatible endpoint), Multi-CoT prompts and ``cot``-mode
scoring. The stages themselves are :mod:`shoprel.teacher.select`, :mod:`shoprel.teacher.cot` and
:mod:`shoprel.teacher.dpo`, run in order by :mod:`shoprel.teacher.train`.
"""
