"""coop: route LLM requests to the right model and make several models cooperate."""

from importlib.metadata import PackageNotFoundError, version

from ._errors import *  # noqa: F403
from ._errors import __all__ as _errors_all
from ._plugins import PluginInfo, Plugins, load_plugins
from ._providers import ModelInfo, Preset, Provider, ProviderCall
from ._routing import Analysis, RouteDecision, Router
from ._services import Service, ServiceResult
from ._strategies import Candidate, Integration, Strategy, StrategyContext
from .hookspecs import hookimpl

try:
    __version__ = version("llm-coop")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

__all__ = sorted(
    [
        *_errors_all,
        "Analysis",
        "Candidate",
        "Integration",
        "ModelInfo",
        "PluginInfo",
        "Plugins",
        "Preset",
        "Provider",
        "ProviderCall",
        "RouteDecision",
        "Router",
        "Service",
        "ServiceResult",
        "Strategy",
        "StrategyContext",
        "__version__",
        "hookimpl",
        "load_plugins",
    ]
)
