"""The OpenAI-compatible gateway (``coop serve``)."""

from ._app import GatewayApp, create_app
from ._serve import app_factory, serve

__all__ = ["GatewayApp", "app_factory", "create_app", "serve"]
