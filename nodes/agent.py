"""The `agent` node (minimal for now): one chat call to a language model."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.context import StepContext
from engine.errors import StepError
from nodes.llm import get_provider, provider_names
from nodes.registry import Port, register
from nodes.secret_refs import NAME_PATTERN, resolve_secret


class AgentConfig(BaseModel):
    """Config of `agent`."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field("openai", description="Model provider")
    model: str = Field(min_length=1, description="Model name, e.g. gpt-4o-mini")
    system_prompt: str = Field(
        "", description="Instructions for the model", json_schema_extra={"format": "multiline"}
    )
    prompt: str = Field(
        "",
        description="The user message (templated); empty = the input value",
        json_schema_extra={"format": "multiline"},
    )
    temperature: float = Field(0.2, ge=0, le=2, description="Sampling temperature")
    max_tokens: int = Field(1024, ge=1, le=200_000, description="Most tokens in the answer")
    base_url: str = Field(
        "", description="API base URL of an OpenAI-compatible server; empty = the provider's"
    )
    api_key_secret: str = Field(
        "",
        pattern=NAME_PATTERN,
        description="Name of the API key secret, read from the environment variable FLOWLOOM_SECRET_<NAME>",
        json_schema_extra={"format": "secret"},
    )

    @field_validator("provider")
    @classmethod
    def _provider_exists(cls, name: str) -> str:
        if name not in provider_names():
            raise ValueError(f"unknown provider {name!r}; known: {', '.join(provider_names())}")
        return name


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


@register(
    "agent",
    category="ai",
    label="Agent",
    config=AgentConfig,
    inputs={"in": Port("any", required=False, description="the user message when no prompt is set")},
    outputs={"out": Port("any", description="{text, usage}")},
    icon="bot",
)
async def agent(ctx: StepContext, cfg: AgentConfig, inputs: dict[str, Any]) -> dict[str, Any]:
    """Ask a language model once: system prompt plus the user's prompt."""
    prompt = cfg.prompt or _as_text(inputs.get("in"))
    if not prompt.strip():
        raise StepError("prompt: empty; write a prompt or connect an input", retryable=False)
    api_key = resolve_secret(cfg.api_key_secret, field="api_key_secret") or ""
    provider = get_provider(cfg.provider, base_url=cfg.base_url, api_key=api_key, http=ctx.http)
    messages = [{"role": "user", "content": prompt}]
    if cfg.system_prompt:
        messages.insert(0, {"role": "system", "content": cfg.system_prompt})
    result = await provider.chat(
        messages, model=cfg.model, temperature=cfg.temperature, max_tokens=cfg.max_tokens
    )
    return {"out": {"text": result.text, "usage": result.usage}}
