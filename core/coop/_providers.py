"""What a provider plugin implements: one upstream protocol behind coop's wire types.

A provider is constructed once per configured endpoint and is stateless per call:
the engine picks the deployment and the API key, the provider only speaks the
protocol. That keeps balancing, retries and key rotation in one place (the engine).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from ._http import Timeouts

if TYPE_CHECKING:
    from ._http import HTTPClient
    from ._wire import ChatChunk, ChatRequest, ChatResponse

__all__ = ["ModelInfo", "Preset", "Provider", "ProviderCall"]


@attrs.frozen
class ModelInfo:
    """One model of a preset's catalogue."""

    id: str
    context_window: int | None = None
    #: USD per million tokens.
    price_input: float | None = None
    price_output: float | None = None
    #: The tier a model of this size naturally serves: light, reasoning or complex.
    tier: str | None = None
    #: A short logical name suggested for coop.toml (``qwen3_8b``).
    alias: str | None = None


@attrs.frozen
class Preset:
    """Defaults for an endpoint of a provider: ``coop config preset --name NAME``."""

    name: str
    base_url: str
    api_key_env: str | None = None
    models: tuple[ModelInfo, ...] = ()
    description: str = ""

    def model(self, model_id: str) -> ModelInfo | None:
        for info in self.models:
            if model_id in (info.id, info.alias):
                return info
        return None


@attrs.frozen
class ProviderCall:
    """Everything a provider needs for one upstream call, chosen by the engine."""

    #: The upstream model id (``Qwen/Qwen3-8B``).
    model: str
    api_key: str | None
    timeouts: Timeouts = attrs.field(factory=Timeouts)
    extra_headers: Mapping[str, str] = attrs.field(factory=dict)


class Provider(abc.ABC):
    """Base class of provider plugins.

    Subclasses set ``name`` (unique among providers) and may set ``preset``.
    ``endpoint`` is the :class:`coop.EndpointConfig` the provider serves and
    ``http`` the engine's shared :class:`coop.HTTPClient`: providers never build
    their own, so pooling and the transport choice stay in one place.
    Errors must be raised as :class:`coop.UpstreamError` subclasses.
    """

    name: ClassVar[str]
    #: Defaults (base URL, catalogue, prices) offered by ``coop config preset``.
    preset: ClassVar[Preset | None] = None
    #: Whether the endpoint needs an API key (local servers often don't).
    requires_api_key: ClassVar[bool] = True

    def __init__(self, endpoint: Any, http: HTTPClient | None = None) -> None:
        self.endpoint = endpoint
        self.http = http

    @abc.abstractmethod
    async def chat(self, request: ChatRequest, call: ProviderCall) -> ChatResponse:
        """Send one non-streaming chat request and return the whole response."""

    @abc.abstractmethod
    def stream(self, request: ChatRequest, call: ProviderCall) -> AsyncIterator[ChatChunk]:
        """Send one streaming chat request; yield OpenAI-shaped chunks as they arrive."""

    async def list_models(self, call: ProviderCall) -> list[str]:
        """Upstream model ids; also the cheap active health check."""
        return [m.id for m in self.preset.models] if self.preset else []

    async def aclose(self) -> None:
        """Release what the provider holds (the shared client is not its own)."""
        return None
