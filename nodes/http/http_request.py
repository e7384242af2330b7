"""The `tool.http` node: one HTTP request through the workflow's egress policy."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.contract import (
    HttpAuthField,
    Port,
    SecretHeadersField,
    StepContext,
    merge_headers,
    raise_for_status,
    register,
    response_output,
    secret_headers_of,
    send_with_secrets,
)


class HttpRequestConfig(BaseModel):
    """Config of `tool.http`."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, description="Full http(s) URL; the egress policy must allow its host")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = Field("GET", description="HTTP method")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Request headers",
        json_schema_extra={"format": "keyvalue"},
    )
    query: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Query-string parameters",
        json_schema_extra={"format": "keyvalue"},
    )
    body: Any = Field(
        None,
        description="JSON body; a string is sent as-is (set Content-Type yourself)",
        json_schema_extra={"format": "multiline"},
    )
    auth: HttpAuthField = None
    secret_headers: SecretHeadersField
    body_from_input: bool = Field(False, description="Send the input value as the JSON body instead")
    timeout_s: float = Field(10.0, gt=0, le=300, description="Seconds before the request gives up")
    expect_status: list[int] = Field(
        default_factory=list,
        description="Statuses that count as success; empty = any 2xx or 3xx",
    )


@register(
    "tool.http",
    category="tool",
    label="HTTP request",
    config=HttpRequestConfig,
    inputs={"in": Port("any", required=False, description="the JSON body when body_from_input is set")},
    outputs={"out": Port("object", description="{status, headers, body}")},
    icon="globe",
    # Query-string values are sent as written, as they always were (the engine's old list of
    # unrendered field names included "query" for every node type).
    unrendered_fields={"query"},
)
async def http_request(ctx: StepContext, cfg: HttpRequestConfig, inputs: dict[str, Any]) -> dict[str, Any]:
    """Send one HTTP request and return its status, headers and body."""
    secret = secret_headers_of(ctx, cfg.url, cfg.auth, cfg.secret_headers)  # refused before any request
    body = inputs.get("in") if cfg.body_from_input else cfg.body
    headers = merge_headers(dict(cfg.headers), secret)
    kwargs: dict[str, Any] = {"headers": headers or None, "params": dict(cfg.query) or None}
    if isinstance(body, str):
        kwargs["content"] = body.encode()
    elif body is not None:
        kwargs["json"] = body
    resp = await send_with_secrets(ctx, secret, cfg.method, cfg.url, timeout=cfg.timeout_s, **kwargs)
    raise_for_status(resp, cfg.expect_status, f"{cfg.method} {cfg.url}")
    return {"out": response_output(resp)}
