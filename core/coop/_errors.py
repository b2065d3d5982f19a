"""The one exception hierarchy of coop.

Everything coop raises on purpose derives from :class:`CoopError`, so callers can
catch one class; subclasses also derive from the matching builtin where natural.

    CoopError
    ├── ConfigError (ValueError)            .path .line .key
    │   └── MissingSecretError              .variable
    ├── PluginError                         .plugin .distribution
    │   ├── DuplicateNameError              .kind .name .distributions
    │   └── UnknownPluginError (LookupError) .kind .name .available
    ├── ValidationError (ValueError)        .field .value
    │   └── UnsupportedParameterError       a target cannot honour a request parameter
    ├── UnknownModelError (LookupError)     .name .available
    ├── UpstreamError                       .status .body .provider .deployment
    │   ├── BadRequestError                 400, 422
    │   │   └── ContextWindowExceededError
    │   ├── AuthenticationError             401, 403
    │   ├── UpstreamNotFoundError           404
    │   ├── RateLimitError                  429, .retry_after
    │   ├── UpstreamTimeoutError (TimeoutError)
    │   ├── UpstreamUnavailableError        5xx
    │   ├── UpstreamConnectionError (ConnectionError)
    │   └── UpstreamProtocolError           garbage, wrong content type, cut streams
    ├── NoHealthyDeploymentError            every deployment cooling down or failing
    ├── RoutingError
    ├── CooperationError                    .failures
    └── ServiceError
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import Any

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ConfigError",
    "ContextWindowExceededError",
    "CoopError",
    "CooperationError",
    "DuplicateNameError",
    "MissingSecretError",
    "NoHealthyDeploymentError",
    "PluginError",
    "RateLimitError",
    "RoutingError",
    "ServiceError",
    "UnknownModelError",
    "UnknownPluginError",
    "UnsupportedParameterError",
    "UpstreamConnectionError",
    "UpstreamError",
    "UpstreamNotFoundError",
    "UpstreamProtocolError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
    "ValidationError",
    "did_you_mean",
]


def did_you_mean(name: str, options: Sequence[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the nearest option, or ``""``."""
    import difflib

    near = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f" (did you mean {near[0]!r}?)" if near else ""


class CoopError(Exception):
    """Root of every error coop raises on purpose."""

    #: OpenAI error ``type`` and HTTP status used when this error reaches the wire.
    error_type = "server_error"
    http_status = 500


class ConfigError(CoopError, ValueError):
    """coop.toml, .env or the environment holds something coop cannot use."""

    error_type = "invalid_request_error"
    http_status = 400

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.path, self.line, self.key = path, line, key
        self.reason = message
        where = ""
        if path:
            where = f"{path}:{line}" if line else str(path)
        if key:
            where = f"{where} {key}" if where else key
        super().__init__(f"{where}: {message}" if where else message)


class MissingSecretError(ConfigError):
    """An ``env:NAME`` reference points to an unset variable."""

    def __init__(self, variable: str, *, key: str | None = None) -> None:
        self.variable = variable
        super().__init__(
            f"environment variable {variable} is not set (export it or put it in .env)",
            key=key,
        )


class PluginError(CoopError):
    """A plugin failed to load, register or behave."""

    def __init__(
        self, message: str, *, plugin: str | None = None, distribution: str | None = None
    ) -> None:
        self.plugin, self.distribution = plugin, distribution
        super().__init__(message)


class DuplicateNameError(PluginError):
    """Two plugins registered the same name for the same kind."""

    def __init__(self, kind: str, name: str, distributions: Sequence[str]) -> None:
        self.kind, self.name, self.distributions = kind, name, tuple(distributions)
        first, second = [*distributions, "?", "?"][:2]
        super().__init__(
            f"{kind} {name!r} is registered by both {first} and {second}; "
            f"uninstall one or disable it with [plugins] disabled",
            plugin=name,
            distribution=second,
        )


class UnknownPluginError(PluginError, LookupError):
    """A name in the config matches no registered plugin of that kind."""

    def __init__(self, kind: str, name: str, available: Sequence[str]) -> None:
        self.kind, self.name, self.available = kind, name, sorted(available)
        super().__init__(
            f"unknown {kind} {name!r}{did_you_mean(name, self.available)}; "
            f"available: {', '.join(self.available) or 'none'}",
            plugin=name,
        )

    def __str__(self) -> str:  # LookupError would quote the message otherwise
        return self.args[0]


class ValidationError(CoopError, ValueError):
    """A request or object field holds an invalid value."""

    error_type = "invalid_request_error"
    http_status = 400

    def __init__(self, message: str, *, field: str | None = None, value: Any = None) -> None:
        self.field, self.value = field, value
        super().__init__(f"{field}: {message}" if field else message)


class UnsupportedParameterError(ValidationError):
    """The request asks for something its target cannot honour (``tools`` on a synthesis).

    Raised before any model is called, so nothing is dropped silently and nothing is spent.
    """


class UnknownModelError(CoopError, LookupError):
    """A request names a model that is neither configured nor a cooperation."""

    error_type = "invalid_request_error"
    http_status = 404

    def __init__(self, name: str, available: Sequence[str]) -> None:
        self.name, self.available = name, sorted(available)
        super().__init__(
            f"model {name!r} does not exist{did_you_mean(name, self.available)}; "
            f"available models: {', '.join(self.available) or 'none'}"
        )

    def __str__(self) -> str:
        return self.args[0]


class UpstreamError(CoopError):
    """An upstream API answered with an error or could not be reached.

    ``str()`` is a summary by class and status, safe to show anyone: it never carries the
    upstream's own text (which can quote the key coop sent) nor the HTTP client's exception
    text (class names, errno strings). For debugging in Python, ``.body`` keeps the start of
    the upstream's answer and ``.detail`` the message as raised; neither leaves the process.
    """

    error_type = "api_error"
    http_status = 502

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: str | None = None,
        provider: str | None = None,
        deployment: str | None = None,
    ) -> None:
        self.status, self.provider, self.deployment = status, provider, deployment
        self.body = (body or "")[:500]
        #: The message as raised (a transport error's may name the HTTP client's internals).
        self.detail = message
        super().__init__(message)

    @property
    def summary(self) -> str:
        """What went wrong, without the status and deployment (see ``str()``)."""
        cause = self.__cause__
        if cause is not None and not isinstance(cause, CoopError):
            return _transport_summary(cause, self)
        return self.detail

    def __str__(self) -> str:  # computed late: the engine fills in .deployment after raising
        parts = [self.summary]
        if self.status is not None:
            parts.append(f"(status {self.status})")
        if self.deployment:
            parts.append(f"[{self.deployment}]")
        return " ".join(parts)

    #: Whether another attempt (same or other deployment) may succeed.
    retryable = True


#: A transport exception (aiohttp, httpx, the OS) → what a reader needs to know, by class name
#: (most specific first along the exception's MRO), so the HTTP clients are not imported here.
_TRANSPORT = {
    "ClientPayloadError": "upstream closed the stream early",
    "TransferEncodingError": "upstream closed the stream early",
    "ContentLengthError": "upstream closed the stream early",
    "ServerDisconnectedError": "upstream closed the connection",
    "RemoteProtocolError": "upstream closed the connection early",
    "ClientConnectorDNSError": "upstream host does not resolve",
    "gaierror": "upstream host does not resolve",
    "ClientConnectorCertificateError": "upstream TLS certificate rejected",
    "ClientSSLError": "TLS with the upstream failed",
    "SSLError": "TLS with the upstream failed",
    "ConnectionTimeoutError": "upstream did not accept the connection in time",
    "ConnectTimeout": "upstream did not accept the connection in time",
    "ConnectionRefusedError": "upstream refused the connection",
    "ConnectionResetError": "connection reset by upstream",
    "ConnectionAbortedError": "connection reset by upstream",
    "BrokenPipeError": "connection reset by upstream",
    "ReadError": "connection reset by upstream",
    "WriteError": "connection reset by upstream",
    "ClientConnectorError": "cannot connect to upstream",
    "ConnectError": "cannot connect to upstream",
    "InvalidURL": "invalid upstream URL",
    "InvalidUrlClientError": "invalid upstream URL",
    "ClientResponseError": "upstream sent an invalid HTTP response",
    "ProtocolError": "upstream sent an invalid HTTP response",
    "TimeoutException": "upstream timed out",
    "ServerTimeoutError": "upstream timed out",
    "TimeoutError": "upstream timed out",
}
_ERRNO = {
    errno.ECONNRESET: "connection reset by upstream",
    errno.EPIPE: "connection reset by upstream",
    errno.ECONNREFUSED: "upstream refused the connection",
}


def _transport_summary(cause: BaseException, error: UpstreamError) -> str:
    code = getattr(cause, "errno", None)
    if code in _ERRNO:
        return _ERRNO[code]
    for klass in type(cause).__mro__:
        found = _TRANSPORT.get(klass.__name__)
        if found:
            return found
    if isinstance(error, TimeoutError):
        return "upstream timed out"
    if isinstance(error, ConnectionError):
        return "upstream connection failed"
    return "upstream error"


class BadRequestError(UpstreamError):
    error_type = "invalid_request_error"
    http_status = 400
    retryable = False


class ContextWindowExceededError(BadRequestError):
    """The prompt does not fit the model's context window."""


class AuthenticationError(UpstreamError):
    error_type = "authentication_error"
    http_status = 502  # coop's own credentials failed upstream: a gateway problem


class UpstreamNotFoundError(UpstreamError):
    error_type = "not_found_error"
    http_status = 502


class RateLimitError(UpstreamError):
    error_type = "rate_limit_error"
    http_status = 429

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class UpstreamTimeoutError(UpstreamError, TimeoutError):
    error_type = "timeout_error"
    http_status = 504


class UpstreamUnavailableError(UpstreamError):
    http_status = 503


class UpstreamConnectionError(UpstreamError, ConnectionError):
    http_status = 502


class UpstreamProtocolError(UpstreamError):
    """The upstream sent something that is not the protocol: garbage, a cut stream."""

    http_status = 502


class NoHealthyDeploymentError(CoopError):
    """Every deployment of a model (and its fallbacks) failed or is cooling down."""

    error_type = "service_unavailable"
    http_status = 503

    def __init__(self, message: str, *, errors: Sequence[BaseException] = ()) -> None:
        self.errors = list(errors)
        super().__init__(message)


class RoutingError(CoopError):
    """A router could not reach a decision it can act on."""


class CooperationError(CoopError):
    """A cooperation could not produce an answer; ``failures`` maps model → error."""

    http_status = 502

    def __init__(self, message: str, *, failures: dict[str, BaseException] | None = None) -> None:
        self.failures = dict(failures or {})
        if self.failures:
            detail = "; ".join(f"{m}: {e}" for m, e in self.failures.items())
            message = f"{message} ({detail})"
        super().__init__(message)


class ServiceError(CoopError):
    """An application service could not process its input."""

    error_type = "invalid_request_error"
    http_status = 400
