"""The ``custom`` provider: any OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio).

Local servers differ from OpenAI in small ways this plugin absorbs:

* No key: ``requires_api_key`` is false, and no ``Authorization`` header is sent
  when the endpoint has none.
* No sensible default URL: ``base_url`` must be set on the endpoint; the error
  names ``endpoints.<name>.base_url`` instead of a request failing somewhere odd.
* Some reject ``stream_options`` (older llama.cpp and LM Studio builds): endpoint
  option ``stream_usage = false`` stops sending it; coop then estimates usage.
* Thinking models' text arrives as ``reasoning`` (Ollama, newer vLLM) rather than
  DeepSeek's ``reasoning_content``; it is renamed so clients see one field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coop import (
    UNSET,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ConfigError,
    OpenAICompatibleProvider,
    Preset,
    ProviderCall,
    hookimpl,
)

__all__ = ["PRESET", "CustomProvider"]

PRESET = Preset(
    name="custom",
    base_url="http://127.0.0.1:8000/v1",
    api_key_env="CUSTOM_API_KEY",
    description=(
        "Any OpenAI-compatible server; set base_url: vLLM http://127.0.0.1:8000/v1, "
        "Ollama http://127.0.0.1:11434/v1, llama.cpp http://127.0.0.1:8080/v1, "
        "LM Studio http://127.0.0.1:1234/v1. Add its models with coop config add-model."
    ),
)


def _rename_reasoning(holder: Any) -> None:
    """Move an upstream's ``reasoning`` text into ``reasoning_content``."""
    extra = holder.extra
    if extra and isinstance(extra.get("reasoning"), str) and holder.reasoning_content is UNSET:
        holder.reasoning_content = extra.pop("reasoning")


class CustomProvider(OpenAICompatibleProvider):
    """The OpenAI protocol against a URL the user gives, with or without a key."""

    name = "custom"
    preset = PRESET
    requires_api_key = False

    def _where(self) -> str:
        return f"endpoints.{getattr(self.endpoint, 'name', '?')}"

    @property
    def base_url(self) -> str:
        """The endpoint's own URL: the preset's is only an example to copy."""
        url = getattr(self.endpoint, "base_url", None)
        if not url:
            raise ConfigError(
                "the custom provider needs the server's URL, e.g. http://127.0.0.1:8000/v1",
                key=f"{self._where()}.base_url",
            )
        return str(url).rstrip("/")

    @property
    def stream_usage(self) -> bool:  # type: ignore[override]
        """Endpoint option ``stream_usage`` (default true): ask for a final usage chunk."""
        options = getattr(self.endpoint, "options", None) or {}
        value = options.get("stream_usage", True) if isinstance(options, Mapping) else True
        if not isinstance(value, bool):
            raise ConfigError(
                f"expected true or false, got {value!r}",
                key=f"{self._where()}.options.stream_usage",
            )
        return value

    def prepare_body(
        self, request: ChatRequest, call: ProviderCall, *, stream: bool
    ) -> dict[str, Any]:
        body = super().prepare_body(request, call, stream=stream)
        if stream and not self.stream_usage:
            # The server rejects the key itself, so the client's own copy goes too.
            body.pop("stream_options", None)
        return body

    def verbatim(self, data: Any) -> bool:
        """The body as it came, unless a message's ``reasoning`` is renamed below."""
        return self.is_complete(data) and not any(
            "reasoning" in (choice.get("message") or {}) for choice in data.get("choices") or ()
        )

    def parse_response(self, data: Any) -> ChatResponse:
        response = super().parse_response(data)
        for choice in response.choices:
            _rename_reasoning(choice.message)
        return response

    def parse_chunk(self, data: Any) -> ChatChunk:
        chunk = super().parse_chunk(data)
        for choice in chunk.choices:
            _rename_reasoning(choice.delta)
        return chunk


@hookimpl
def coop_register_providers(register: Any) -> None:
    register(CustomProvider)
