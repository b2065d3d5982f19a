"""The ``openai`` provider: OpenAI's own API, its catalogue and prices.

The protocol is :class:`coop.OpenAICompatibleProvider`'s. What this plugin adds is
the reasoning models' quirks: o1, o3, o4-mini and gpt-5 reject ``max_tokens`` (they
want ``max_completion_tokens``) and the sampling parameters. coop fails over and
routes between models, so a request written for gpt-4o must still work when it
lands on o3-mini: the limit is renamed and the rejected parameters are dropped
rather than turned into a 400 the client cannot act on.
"""

from __future__ import annotations

import re
from typing import Any

from coop import (
    ChatRequest,
    ModelInfo,
    OpenAICompatibleProvider,
    Preset,
    ProviderCall,
    hookimpl,
)

__all__ = ["PRESET", "OpenAIProvider", "is_reasoning_model"]

PRESET = Preset(
    name="openai",
    base_url="https://api.openai.com/v1",
    api_key_env="OPENAI_API_KEY",
    description="OpenAI (GPT-4o, GPT-4.1, GPT-5, o-series reasoning models).",
    models=(
        ModelInfo("gpt-4o-mini", 128_000, 0.15, 0.60, tier="light", alias="gpt_4o_mini"),
        ModelInfo("gpt-4o", 128_000, 2.50, 10.00, tier="complex", alias="gpt_4o"),
        ModelInfo("gpt-4.1-nano", 1_047_576, 0.10, 0.40, tier="light", alias="gpt_4_1_nano"),
        ModelInfo("gpt-4.1-mini", 1_047_576, 0.40, 1.60, tier="light", alias="gpt_4_1_mini"),
        ModelInfo("gpt-4.1", 1_047_576, 2.00, 8.00, tier="complex", alias="gpt_4_1"),
        ModelInfo("o3-mini", 200_000, 1.10, 4.40, tier="reasoning", alias="o3_mini"),
        ModelInfo("o4-mini", 200_000, 1.10, 4.40, tier="reasoning", alias="o4_mini"),
        ModelInfo("o3", 200_000, 2.00, 8.00, tier="reasoning", alias="o3"),
        ModelInfo("o1", 200_000, 15.00, 60.00, tier="reasoning", alias="o1"),
        ModelInfo("gpt-5-nano", 400_000, 0.05, 0.40, tier="light", alias="gpt_5_nano"),
        ModelInfo("gpt-5-mini", 400_000, 0.25, 2.00, tier="light", alias="gpt_5_mini"),
        ModelInfo("gpt-5", 400_000, 1.25, 10.00, tier="complex", alias="gpt_5"),
    ),
)

# o1, o3-mini, o4-mini..., gpt-5 and its snapshots; not gpt-5-chat-latest (a chat model).
_REASONING = re.compile(r"^(?:[\w.-]+/)?(?:o\d|gpt-5)(?![\w.-]*-chat)", re.IGNORECASE)

#: Parameters OpenAI's reasoning models answer with "Unsupported parameter".
REASONING_UNSUPPORTED = (
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "logit_bias",
)


def is_reasoning_model(model: str) -> bool:
    """Whether ``model`` is one of OpenAI's reasoning models (o-series, gpt-5)."""
    return _REASONING.match(model) is not None


class OpenAIProvider(OpenAICompatibleProvider):
    """OpenAI's chat completions, with the reasoning models' parameter rules applied.

    Endpoint option ``drop_unsupported = false`` forwards the sampling parameters
    to reasoning models untouched (OpenAI then answers 400).
    """

    name = "openai"
    preset = PRESET

    def prepare_body(
        self, request: ChatRequest, call: ProviderCall, *, stream: bool
    ) -> dict[str, Any]:
        body = super().prepare_body(request, call, stream=stream)
        if is_reasoning_model(call.model):
            limit = body.pop("max_tokens", None)
            if limit is not None and body.get("max_completion_tokens") is None:
                body["max_completion_tokens"] = limit
            options = getattr(self.endpoint, "options", None) or {}
            if options.get("drop_unsupported", True):
                for key in REASONING_UNSUPPORTED:
                    body.pop(key, None)
        return body


@hookimpl
def coop_register_providers(register: Any) -> None:
    register(OpenAIProvider)
