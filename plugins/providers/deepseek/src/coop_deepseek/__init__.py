"""The ``deepseek`` provider: DeepSeek's OpenAI-compatible API.

Two quirks matter, both about deepseek-reasoner (thinking mode):

* It answers with ``reasoning_content`` beside ``content``, in messages and in
  stream deltas. The wire types keep the field, so it reaches clients (LiteLLM
  users lost it: BerriAI/litellm#8799); and it is sent back upstream as the client
  gives it, because DeepSeek answers 400 when a thinking-mode tool-call turn comes
  back without its ``reasoning_content``.
* It rejects or ignores the sampling parameters (``temperature``, ``top_p``,
  penalties, ``logprobs``). coop routes and fails over between models, so those
  are dropped for it instead of failing a request written for deepseek-chat.
"""

from __future__ import annotations

from typing import Any

from coop import (
    ChatRequest,
    ModelInfo,
    OpenAICompatibleProvider,
    Preset,
    ProviderCall,
    hookimpl,
)

__all__ = ["PRESET", "REASONER_UNSUPPORTED", "DeepSeekProvider", "is_reasoner"]

PRESET = Preset(
    name="deepseek",
    base_url="https://api.deepseek.com/v1",
    api_key_env="DEEPSEEK_API_KEY",
    description="DeepSeek (deepseek-chat, deepseek-reasoner with reasoning_content).",
    models=(
        # deepseek-chat also serves the light tier well: it is as cheap as models get.
        ModelInfo("deepseek-chat", 131_072, 0.28, 0.42, tier="complex", alias="deepseek_chat"),
        ModelInfo(
            "deepseek-reasoner", 131_072, 0.28, 0.42, tier="reasoning", alias="deepseek_reasoner"
        ),
    ),
)

#: Parameters deepseek-reasoner rejects (``logprobs``) or silently ignores (the rest).
REASONER_UNSUPPORTED = (
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
)


def is_reasoner(model: str) -> bool:
    """Whether ``model`` runs in thinking mode (deepseek-reasoner, R1 snapshots)."""
    lowered = model.lower()
    return "reasoner" in lowered or "deepseek-r1" in lowered


class DeepSeekProvider(OpenAICompatibleProvider):
    """DeepSeek's ``/chat/completions`` with deepseek-reasoner's parameter rules."""

    name = "deepseek"
    preset = PRESET

    def prepare_body(
        self, request: ChatRequest, call: ProviderCall, *, stream: bool
    ) -> dict[str, Any]:
        body = super().prepare_body(request, call, stream=stream)
        if is_reasoner(call.model):
            for key in REASONER_UNSUPPORTED:
                body.pop(key, None)
        return body


@hookimpl
def coop_register_providers(register: Any) -> None:
    register(DeepSeekProvider)
