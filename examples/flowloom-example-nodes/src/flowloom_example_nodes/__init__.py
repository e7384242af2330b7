"""An example node family for Flowloom: `example.reverse_text` reverses a text (docs/nodes.md).

Importing this module registers the node type; Flowloom imports it through the entry point in
this package's pyproject.toml. It imports nothing of Flowloom but the node contract.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine.contract import Port, StepContext, StepError, register


class ReverseTextConfig(BaseModel):
    """Config of `example.reverse_text`: the editor's side panel is drawn from this model."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field("", description="Text to reverse (templated); empty = the input")
    upper: bool = Field(False, description="Also turn the text into capitals")


@register(
    "example.reverse_text",
    category="tool",
    label="Reverse text (example)",
    config=ReverseTextConfig,
    inputs={"in": Port("text", required=False, description="the text, when no text is set")},
    outputs={"out": Port("text", description="the text, back to front")},
    icon="arrow-left-right",
)
def reverse_text(ctx: StepContext, cfg: ReverseTextConfig, inputs: dict[str, Any]) -> dict[str, Any]:
    """Reverse a text, character by character."""
    text = cfg.text or inputs.get("in")
    if not isinstance(text, str) or not text:
        raise StepError("text: nothing to reverse; fill in text or connect a text input", retryable=False)
    reversed_text = text[::-1]
    return {"out": reversed_text.upper() if cfg.upper else reversed_text}
