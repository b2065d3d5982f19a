"""coop: route LLM requests to the right model and make several models cooperate.

The public API; implementation lives in private modules. ``tests/test_exported.py``
checks that ``__all__`` is sorted and complete.
"""

from importlib.metadata import PackageNotFoundError, version

from ._answers import (
    Answer,
    answers_match,
    extract_answer,
    normalize_answer,
    parse_number,
)
from ._config import (
    CooperationConfig,
    DeploymentConfig,
    EndpointConfig,
    ModelConfig,
    Price,
    RoutingConfig,
    ServerConfig,
    SystemConfig,
)
from ._coop_eval import CooperationReport, evaluate_voting
from ._dispatch import (
    Dispatcher,
    DispatchResult,
    Progress,
)
from ._embeddings import EmbeddingRequest, EmbeddingResponse, EmbeddingResult
from ._engine import (
    ChatResult,
    InferenceRequest,
    InferenceResponse,
    OpenAIEngine,
    RetryPolicy,
)
from ._errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ContextWindowExceededError,
    CooperationError,
    CoopError,
    DuplicateNameError,
    MissingSecretError,
    NoHealthyDeploymentError,
    PluginError,
    RateLimitError,
    RoutingError,
    ServiceError,
    UnknownModelError,
    UnknownPluginError,
    UnsupportedParameterError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamNotFoundError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    ValidationError,
    did_you_mean,
)
from ._http import (
    HTTPClient,
    HTTPResponse,
    Timeouts,
    open_http_client,
)
from ._jsonl import read_jsonl
from ._keys import KeyManager, KeyRefusedError
from ._openai_compat import (
    OpenAICompatibleProvider,
)
from ._plan import Limits, Plan, honourable_parameters
from ._plugins import (
    PluginInfo,
    Plugins,
    load_plugins,
)
from ._providers import (
    ModelInfo,
    NativeReply,
    Preset,
    Provider,
    ProviderCall,
)
from ._route_eval import RoutingReport, evaluate_routing, outcome_curve
from ._route_policy import (
    RoutingPolicy,
)
from ._routing import (
    COMPLEXITIES,
    TASK_TYPES,
    TIERS,
    Analysis,
    CascadeOutcome,
    CascadingRouter,
    RouteDecision,
    Router,
)
from ._scheduler import (
    CooperationResult,
    CooperationScheduler,
    ModelOutput,
)
from ._services import (
    Completion,
    Service,
    ServiceContext,
    ServiceManager,
    ServiceParameter,
    ServiceResponse,
    ServiceResult,
)
from ._sse import (
    SSEDecoder,
    SSEEvent,
    aiter_sse,
)
from ._strategies import (
    HONOURABLE,
    Candidate,
    Integration,
    Strategy,
    StrategyContext,
)
from ._upstream import (
    error_from_payload,
    error_from_response,
    parse_retry_after,
)
from ._usage import (
    cost_usd,
    estimate_messages_tokens,
    estimate_tokens,
)
from ._wire import (
    UNSET,
    ChatChunk,
    ChatMessage,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkChoice,
    ContentPart,
    Delta,
    FunctionCall,
    FunctionDefinition,
    Tool,
    ToolCall,
    Usage,
    chunk_to_sse,
    from_wire,
    parse_chat_request,
    response_json,
    to_wire,
)
from .hookspecs import (
    hookimpl,
)

try:
    __version__ = version("llm-coop")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0"

__all__ = [
    "COMPLEXITIES",
    "HONOURABLE",
    "TASK_TYPES",
    "TIERS",
    "UNSET",
    "Analysis",
    "Answer",
    "AuthenticationError",
    "BadRequestError",
    "Candidate",
    "CascadeOutcome",
    "CascadingRouter",
    "ChatChunk",
    "ChatMessage",
    "ChatRequest",
    "ChatResponse",
    "ChatResult",
    "Choice",
    "ChunkChoice",
    "Completion",
    "ConfigError",
    "ContentPart",
    "ContextWindowExceededError",
    "CoopError",
    "CooperationConfig",
    "CooperationError",
    "CooperationReport",
    "CooperationResult",
    "CooperationScheduler",
    "Delta",
    "DeploymentConfig",
    "DispatchResult",
    "Dispatcher",
    "DuplicateNameError",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "EmbeddingResult",
    "EndpointConfig",
    "FunctionCall",
    "FunctionDefinition",
    "HTTPClient",
    "HTTPResponse",
    "InferenceRequest",
    "InferenceResponse",
    "Integration",
    "KeyManager",
    "KeyRefusedError",
    "Limits",
    "MissingSecretError",
    "ModelConfig",
    "ModelInfo",
    "ModelOutput",
    "NativeReply",
    "NoHealthyDeploymentError",
    "OpenAICompatibleProvider",
    "OpenAIEngine",
    "Plan",
    "PluginError",
    "PluginInfo",
    "Plugins",
    "Preset",
    "Price",
    "Progress",
    "Provider",
    "ProviderCall",
    "RateLimitError",
    "RetryPolicy",
    "RouteDecision",
    "Router",
    "RoutingConfig",
    "RoutingError",
    "RoutingPolicy",
    "RoutingReport",
    "SSEDecoder",
    "SSEEvent",
    "ServerConfig",
    "Service",
    "ServiceContext",
    "ServiceError",
    "ServiceManager",
    "ServiceParameter",
    "ServiceResponse",
    "ServiceResult",
    "Strategy",
    "StrategyContext",
    "SystemConfig",
    "Timeouts",
    "Tool",
    "ToolCall",
    "UnknownModelError",
    "UnknownPluginError",
    "UnsupportedParameterError",
    "UpstreamConnectionError",
    "UpstreamError",
    "UpstreamNotFoundError",
    "UpstreamProtocolError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
    "Usage",
    "ValidationError",
    "__version__",
    "aiter_sse",
    "answers_match",
    "chunk_to_sse",
    "cost_usd",
    "did_you_mean",
    "error_from_payload",
    "error_from_response",
    "estimate_messages_tokens",
    "estimate_tokens",
    "evaluate_routing",
    "evaluate_voting",
    "extract_answer",
    "from_wire",
    "honourable_parameters",
    "hookimpl",
    "load_plugins",
    "normalize_answer",
    "open_http_client",
    "outcome_curve",
    "parse_chat_request",
    "parse_number",
    "parse_retry_after",
    "read_jsonl",
    "response_json",
    "to_wire",
]
