"""The OpenAI-compatible gateway (``coop serve``)."""

from ._app import GatewayApp, create_app
from ._serve import app_factory, check_bind, is_loopback, serve

__all__ = ["GatewayApp", "app_factory", "check_bind", "create_app", "is_loopback", "serve"]
