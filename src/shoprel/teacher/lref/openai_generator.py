"""Rationales from any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama, an API).

    shoprel teacher train ... --cot ee,ra,dr --cot-generator openai \\
        --cot-url http://localhost:8000/v1 --cot-model Qwen/Qwen2.5-7B-Instruct

Requests go to ``URL/chat/completions`` with at most ``max_concurrency`` in flight; a 429, a 5xx
or a network error is retried with exponential back-off (``Retry-After`` wins where the server
sends it). Every answer is cached on disk by a hash of its request, so a rerun sends only the
requests never answered.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shoprel.data.schema import GradeScale
from shoprel.io import read_json, write_json
from shoprel.progress import progress_bar
from shoprel.teacher.config import EndpointError, OpenAIConfig
from shoprel.teacher.lref.rationales import (
    ITEM_FIELDS,
    Rationale,
    RationaleGenerator,
    RationaleRequest,
)
from shoprel.teacher.lref.rules import RelevanceRules

logger = logging.getLogger(__name__)
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
LABEL_LINE = re.compile(r"label\s*[:：]\s*\**\s*([a-z]+)", re.IGNORECASE)
SYSTEM = "You are an expert rater of product search relevance. Grades, lowest first: {grades}."
ASK = {
    "ee": (
        "{pair}\n\nThe correct grade is {grade}. In two or three sentences, explain why: name the "
        "product type the query asks for and any brand, colour, size or other attribute that "
        "matches, conflicts or is missing. End with the line 'Label: {grade}'."
    ),
    "ra": (
        "Relevance rules (the first that holds decides):\n{rules}\n\n{pair}\n\nApply the rules "
        "step by step and end with the line 'Label: <grade>', the grade one of: {grades}."
    ),
    "dr": (
        "{pair}\n\nA judge graded this pair '{wrong}'. That is wrong; the right grade is {grade}. "
        "In two or three sentences, explain why '{wrong}' is wrong. End with the line "
        "'Label: {grade}'."
    ),
}


class OpenAIGenerator(RationaleGenerator):
    """EE, RA and DR rationales written by a chat model behind an OpenAI-compatible endpoint."""

    def __init__(
        self,
        cfg: OpenAIConfig,
        rules: RelevanceRules,
        scale: GradeScale,
        cache_dir: str | Path,
    ) -> None:
        if not cfg.url or not cfg.model:
            raise ValueError("the openai generator needs a URL and a model name (cot.openai)")
        try:
            import httpx  # noqa: F401
        except ImportError:
            raise ImportError(
                "the openai rationale generator needs httpx: pip install 'shoprel[serve]'"
            ) from None
        self.cfg, self.rules, self.scale = cfg, rules, scale
        self.cache_dir = Path(cache_dir)
        self.requests_sent = 0

    def generate(
        self, requests: Sequence[RationaleRequest], progress: bool = False
    ) -> list[Rationale | None]:
        payloads = [self.payload(r) for r in requests]
        answers = asyncio.run(self._answer_all(payloads, progress))
        return [self.parse(r, a) for r, a in zip(requests, answers, strict=True)]

    def payload(self, request: RationaleRequest) -> dict[str, Any]:
        grades = ", ".join(self.scale.grades)
        user = ASK[request.kind].format(
            pair=pair_text(request),
            grade=request.grade,
            wrong=request.wrong,
            grades=grades,
            rules=self.rules.describe(self.scale) if request.kind == "ra" else "",
        )
        return {
            "model": self.cfg.model,
            "messages": [
                {"role": "system", "content": SYSTEM.format(grades=grades)},
                {"role": "user", "content": user},
            ],
            "temperature": self.cfg.temperature,
            "max_tokens": self.cfg.max_tokens,
        }

    def parse(self, request: RationaleRequest, answer: str) -> Rationale | None:
        """Reasoning before the last ``Label:`` line; RA's grade is the answer's, EE and DR end on
        the true grade. ``None`` where the answer has no reasoning or RA no grade of the scale."""
        found = list(LABEL_LINE.finditer(answer))
        reasoning = (answer[: found[-1].start()] if found else answer).strip()
        if not reasoning:
            return None
        if request.kind != "ra":
            return Rationale(request.kind, reasoning, request.grade)
        word = found[-1].group(1).lower() if found else ""
        grade = self.scale.aliases.get(word, word)
        return Rationale("ra", reasoning, grade) if grade in self.scale.grades else None

    # ------------------------------------------------------------------ transport and cache

    def _cache_path(self, payload: dict[str, Any]) -> Path:
        key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        return self.cache_dir / key[:2] / f"{key}.json"

    async def _answer_all(self, payloads: list[dict[str, Any]], progress: bool) -> list[str]:
        import httpx

        limit = asyncio.Semaphore(self.cfg.max_concurrency)
        limits = httpx.Limits(max_connections=self.cfg.max_concurrency)
        async with httpx.AsyncClient(
            timeout=self.cfg.timeout_s, limits=limits, headers=self._headers()
        ) as client:
            with progress_bar(
                len(payloads), "rationales", disable=not progress, unit="text"
            ) as bar:

                async def one(payload: dict[str, Any]) -> str:
                    async with limit:
                        answer = await self._answer(client, payload)
                    bar.update(1)
                    return answer

                return list(await asyncio.gather(*(one(p) for p in payloads)))

    async def _answer(self, client: Any, payload: dict[str, Any]) -> str:
        path = self._cache_path(payload)
        if path.is_file():
            return read_json(path)["content"]
        body = await self._post(client, payload)
        try:
            content = body["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise EndpointError(
                f"{self._url()}: not a chat completion: {str(body)[:300]}"
            ) from None
        write_json({"request": payload, "content": content}, path)
        return content

    async def _post(self, client: Any, payload: dict[str, Any]) -> dict[str, Any]:
        import httpx

        problem, retry_after = "", None
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                await asyncio.sleep(self._wait(attempt, retry_after))
            try:
                self.requests_sent += 1
                response = await client.post(self._url(), json=payload)
            except httpx.TransportError as error:
                problem, retry_after = f"network error {error!r}", None
                continue
            if response.status_code == 200:
                return response.json()
            problem = f"HTTP {response.status_code}: {response.text[:300]}"
            if response.status_code not in RETRY_STATUS:
                raise EndpointError(f"{self._url()}: {problem}")
            retry_after = response.headers.get("retry-after")
            logger.info("%s: %s; retrying", self._url(), problem)
        raise EndpointError(
            f"{self._url()}: gave up after {self.cfg.max_retries + 1} attempts; last: {problem}"
        )

    def _wait(self, attempt: int, retry_after: str | None) -> float:
        """``Retry-After`` seconds where the server sent them, else the doubling back-off."""
        try:
            return max(0.0, float(retry_after)) if retry_after else self._backoff(attempt)
        except ValueError:  # an HTTP date: fall back to the back-off
            return self._backoff(attempt)

    def _backoff(self, attempt: int) -> float:
        return self.cfg.backoff_s * 2 ** (attempt - 1)

    def _url(self) -> str:
        return self.cfg.url.rstrip("/") + "/chat/completions"

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.cfg.api_key_env, "") if self.cfg.api_key_env else ""
        return {"Authorization": f"Bearer {key}"} if key else {}


def pair_text(request: RationaleRequest) -> str:
    lines = [f"Query: {request.query}"]
    for name in ITEM_FIELDS:
        value = str(request.item.get(name) or "").strip()
        if value:
            label = "Product" if name == "title" else name.capitalize()
            lines.append(f"{label}: {value[:400]}")
    return "\n".join(lines)
