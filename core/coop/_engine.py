"""OpenAIEngine: logical models → deployments, with balancing, failover and cost.

The engine is the one place that decides *where* a request goes and what happens
when it fails: providers only speak a protocol. For each attempt it picks an
available deployment (balancing policy, concurrency caps, circuit state), an API
key (rotation), calls the provider under the endpoint's timeouts, and on failure
records health, backs off (exponential, jittered, honouring Retry-After) and
tries another deployment, then the model's ``fallbacks``. When every deployment
is cooling down it waits for the earliest one to come back, within the request's
budget, instead of failing at once (LiteLLM #3646). A stream is retried only
until its first chunk has been handed to the caller.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import attrs
import sniffio

from ._balancing import pick_deployment
from ._config import EndpointConfig, ModelConfig, ResilienceConfig, SystemConfig
from ._embeddings import EmbeddingRequest, EmbeddingResponse, EmbeddingResult, token_count
from ._errors import (
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    CoopError,
    MissingSecretError,
    NoHealthyDeploymentError,
    RateLimitError,
    UnknownModelError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    ValidationError,
)
from ._health import DeploymentState, KeyPool, KeyState
from ._http import HTTPClient, Timeouts, open_http_client
from ._metrics import Metrics, key_alias
from ._plugins import Plugins, load_plugins
from ._providers import NativeReply, Provider, ProviderCall
from ._tracing import tracing_for
from ._usage import cost_usd, estimate_messages_tokens, estimate_tokens
from ._wire import ChatChunk, ChatRequest, ChatResponse, Usage, from_wire, to_wire

__all__ = [
    "ChatResult",
    "InferenceRequest",
    "InferenceResponse",
    "NativeResult",
    "OpenAIEngine",
    "RetryPolicy",
]


@attrs.frozen
class RetryPolicy:
    """How hard one request tries, and when a deployment or a key is taken out of traffic.

    ``coop.toml``'s ``[resilience]`` table maps onto it (:meth:`from_config`); the
    defaults are the same and are documented in docs/reliability.md. Every wait, backoff
    and attempt is also capped by the request's own deadline.
    """

    #: Attempts in all, across deployments, keys and fallbacks (two rounds of three
    #: deployments). A 429 does not count, but no request makes more than 1.5 times as
    #: many upstream calls (one attempt is one call).
    max_attempts: int = 6
    #: Backoff before trying a deployment this request already tried: exponential from
    #: ``backoff_base``, jittered, at most ``backoff_max``. Moving to a fresh one is immediate.
    backoff_base: float = 0.1
    backoff_max: float = 2.0
    #: Longest single wait for a cooling deployment or key (a Retry-After included).
    max_wait: float = 10.0
    #: First cooldown of an opened circuit; doubles on each re-opening up to the max.
    base_cooldown: float = 5.0
    max_cooldown: float = 60.0
    #: Consecutive sick failures (timeouts, 5xx, dropped connections) that open a circuit.
    failure_threshold: int = 5
    #: Share of sick failures over ``error_window`` seconds that opens a circuit, judged
    #: once ``min_requests`` requests fell in the window (1.0 turns the rule off).
    error_rate: float = 0.5
    error_window: float = 30.0
    min_requests: int = 20
    #: Requests a half-open circuit lets through at once; the first success closes it.
    half_open_probes: int = 3
    #: Seconds a rejected key (for one model, or for the endpoint) stays out of rotation.
    key_block: float = 300.0
    #: A key rejected (401/403) on this many different models is disabled for the endpoint.
    auth_confirm_models: int = 2
    #: Seconds a key cools after a 429 that names no Retry-After.
    rate_limit_cooldown: float = 1.0

    @classmethod
    def from_config(cls, config: ResilienceConfig) -> RetryPolicy:
        """The policy ``coop.toml``'s ``[resilience]`` table describes."""
        return cls(
            max_attempts=config.max_attempts,
            backoff_base=config.backoff_base,
            backoff_max=config.backoff_max,
            max_wait=config.max_wait,
            base_cooldown=config.cooldown_base,
            max_cooldown=config.cooldown_max,
            failure_threshold=config.failure_threshold,
            error_rate=config.error_rate,
            error_window=config.error_window,
            min_requests=config.min_requests,
            half_open_probes=config.half_open_probes,
            key_block=config.key_block,
            auth_confirm_models=config.auth_confirm_models,
            rate_limit_cooldown=config.rate_limit_cooldown,
        )

    def apply(self, deployment: DeploymentState) -> None:
        """Set a deployment's circuit (and its key pool) to this policy."""
        deployment.base_cooldown = self.base_cooldown
        deployment.max_cooldown = self.max_cooldown
        deployment.failure_threshold = self.failure_threshold
        deployment.error_rate_threshold = self.error_rate
        deployment.error_window = self.error_window
        deployment.min_requests = self.min_requests
        deployment.half_open_probes = self.half_open_probes
        pool = deployment.keys
        pool.revoke_for = self.key_block
        pool.auth_confirm_models = self.auth_confirm_models
        pool.rate_limit_cooldown = self.rate_limit_cooldown


@attrs.define
class InferenceRequest:
    """The seed's request: a prompt (or messages) for a logical model."""

    prompt: str | None = None
    model_name: str | None = None
    messages: list[dict[str, Any]] | None = None
    system_prompt: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stream: bool = False
    #: Any other OpenAI chat parameter (tools, response_format, seed, ...).
    params: dict[str, Any] = attrs.field(factory=dict)
    request_id: str | None = None

    def to_chat_request(self, default_model: str = "") -> ChatRequest:
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        if self.messages:
            messages.extend(self.messages)
        if self.prompt is not None:
            messages.append({"role": "user", "content": self.prompt})
        data: dict[str, Any] = {"model": self.model_name or default_model, "messages": messages}
        for name in ("max_tokens", "temperature", "top_p"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        data.update(self.params)
        from ._wire import parse_chat_request

        return parse_chat_request(data)


@attrs.define
class ChatResult:
    """A chat completion plus where it ran and what it cost."""

    response: ChatResponse
    model: str
    deployment: str
    provider: str
    usage: Usage
    cost: float
    latency: float
    attempts: int = 1
    errors: list[str] = attrs.field(factory=list)

    @property
    def text(self) -> str:
        return self.response.text


@attrs.define
class NativeResult:
    """An answer in the upstream's own API (:meth:`OpenAIEngine.native_messages`).

    ``body`` is the whole body, or for a stream its first bytes with ``rest`` the
    remaining ones; ``usage`` and ``cost`` of a stream are set once ``rest`` ends.
    """

    reply: NativeReply
    model: str
    deployment: str
    provider: str
    usage: Usage | None
    cost: float
    latency: float
    attempts: int = 1
    rest: AsyncIterator[bytes] | None = None

    @property
    def body(self) -> bytes:
        return self.reply.body


@attrs.define
class InferenceResponse:
    """The seed's response: text, model, usage, cost, latency, and success or error."""

    text: str
    model_name: str
    success: bool
    deployment: str | None = None
    provider: str | None = None
    usage: Usage | None = None
    cost: float = 0.0
    latency: float = 0.0
    error: str | None = None
    error_type: str | None = None
    request_id: str = ""
    response: ChatResponse | None = None


@attrs.define
class _Model:
    config: ModelConfig
    deployments: list[DeploymentState]
    price_input: float
    price_output: float
    #: This model's round-robin turn: balancing state belongs to the model.
    turn: Iterator[int] = attrs.field(factory=itertools.count, eq=False)


def _usage_of(request: ChatRequest, text: str, usage: Usage | None) -> Usage:
    if usage is not None and isinstance(usage.prompt_tokens, int):
        return usage
    prompt = estimate_messages_tokens(to_wire(request)["messages"])
    completion = estimate_tokens(text)
    estimated = from_wire(
        Usage,
        {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    )
    estimated.estimated = True
    return estimated


class OpenAIEngine:
    """Runs chat requests on logical models; ``async with OpenAIEngine(config):``."""

    def __init__(
        self,
        config: SystemConfig | None = None,
        *,
        plugins: Plugins | None = None,
        http_backend: str | None = None,
        retry: RetryPolicy | None = None,
        health_checks: bool = True,
    ) -> None:
        self.config = config if config is not None else SystemConfig()
        self.plugins = plugins
        self._retry = retry or RetryPolicy.from_config(self.config.resilience)
        self.metrics = Metrics(enabled=self.config.server.metrics)
        #: The alias (``key0``...) of the key of the last call ``_run`` returned; read
        #: right after ``await self._run(...)``, before anything else can run.
        self._key_used = "none"
        self.http: HTTPClient | None = None
        self.providers: dict[str, Provider] = {}
        self.models: dict[str, _Model] = {}
        self._http_backend = http_backend
        self._health_checks = health_checks
        self._task_group: Any = None
        self._initialized = False
        self._rng = random.Random()
        self._plans: dict[str, tuple[list[_Model], float]] = {}
        self._timeouts_cache: dict[str, Timeouts] = {}
        self._deadline: Callable[[float], AbstractAsyncContextManager[Any]] = _FailAfter
        #: OpenTelemetry spans ([monitoring] tracing); None when off, and then nothing of
        #: OpenTelemetry is imported and chat, embed, stream_chat and _run are unwrapped.
        self.tracing = tracing_for(self.config)
        if self.tracing is not None:
            self.tracing.instrument_engine(self)
        #: The shared state (coop._state.StateBackend) when a server opened one, else None.
        self.state: Any = None
        #: Health events between replicas (coop._state_events.ReplicaSync), set by the server.
        self.replicas: Any = None

    @property
    def retry(self) -> RetryPolicy:
        """The resilience policy; setting it applies it to every deployment and key pool."""
        return self._retry

    @retry.setter
    def retry(self, policy: RetryPolicy) -> None:
        self._retry = policy
        for model in self.models.values():
            for deployment in model.deployments:
                policy.apply(deployment)

    # -- lifecycle ------------------------------------------------------------

    async def initialize(self) -> None:
        """Open the shared HTTP client, build providers and deployments, start health checks."""
        if self._initialized:
            return
        if self.plugins is None:
            self.plugins = load_plugins(disabled=self.config.plugins.disabled)
        self._deadline = deadline_for(sniffio.current_async_library())
        self.http = open_http_client(backend=self._http_backend)
        pools: dict[str, KeyPool] = {}
        try:
            for name, endpoint in self.config.endpoints.items():
                cls = self.plugins.get("provider", endpoint.provider)
                self.providers[name] = cls(endpoint, self.http)
                pools[name] = KeyPool([])
        except BaseException:
            # a provider refused its settings: release the client we opened
            await self.http.aclose()
            self.http = None
            self.providers.clear()
            raise
        for name, model in self.config.models.items():
            deployments = []
            for dep in model.deployments:
                deployments.append(
                    DeploymentState(
                        model=name,
                        endpoint=dep.endpoint,
                        path=dep.path,
                        weight=dep.weight,
                        max_concurrency=dep.max_concurrency
                        or self.config.endpoints[dep.endpoint].max_concurrency,
                        provider=self.providers[dep.endpoint],
                        keys=pools[dep.endpoint],
                    )
                )
                self._retry.apply(deployments[-1])
            price_in, price_out = model.price.input, model.price.output
            if not price_in and not price_out:
                preset = type(self.providers[model.deployments[0].endpoint]).preset
                info = preset.model(model.deployments[0].path) if preset else None
                if info is not None:
                    price_in, price_out = info.price_input or 0.0, info.price_output or 0.0
            self.models[name] = _Model(model, deployments, price_in, price_out)
        self._pools = pools
        self._keys_loaded: set[str] = set()
        self._initialized = True
        if self._health_checks and any(
            e.health_check_interval > 0 for e in self.config.endpoints.values()
        ):
            self._task_group = anyio.create_task_group()
            await self._task_group.__aenter__()
            for name, endpoint in self.config.endpoints.items():
                if endpoint.health_check_interval > 0:
                    self._task_group.start_soon(
                        self._health_loop, name, endpoint.health_check_interval
                    )

    async def shutdown(self) -> None:
        """Stop health checks and close the HTTP client and providers."""
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()
            await self._task_group.__aexit__(None, None, None)
            self._task_group = None
        for provider in self.providers.values():
            await provider.aclose()
        if self.http is not None:
            await self.http.aclose()
            self.http = None
        self._initialized = False
        self._plans.clear()
        self._timeouts_cache.clear()

    async def __aenter__(self) -> OpenAIEngine:
        await self.initialize()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    # -- lookups ----------------------------------------------------------------

    def model_names(self) -> list[str]:
        return sorted(self.config.models)

    def _model(self, name: str) -> _Model:
        if not self._initialized:
            raise CoopError(
                "the engine is not initialized: call 'await engine.initialize()' or use 'async with'"
            )
        try:
            return self.models[name]
        except KeyError:
            raise UnknownModelError(name, self.config.served_names()) from None

    def _key_pool(self, endpoint: str) -> KeyPool:
        """The endpoint's keys, resolved on first use (so unused endpoints need no env)."""
        pool = self._pools[endpoint]
        if endpoint not in self._keys_loaded:
            config: EndpointConfig = self.config.endpoints[endpoint]
            keys = config.resolved_api_keys()
            provider = self.providers[endpoint]
            if not keys and provider.requires_api_key:
                preset = type(provider).preset
                raise MissingSecretError(
                    (preset.api_key_env if preset else None) or f"{endpoint.upper()}_API_KEY",
                    key=f"endpoints.{endpoint}.api_keys",
                )
            pool.keys = KeyPool(keys).keys
            self._keys_loaded.add(endpoint)
        return pool

    def _timeouts(self, endpoint: str) -> Timeouts:
        timeouts = self._timeouts_cache.get(endpoint)
        if timeouts is None:
            config = self.config.endpoints[endpoint]
            timeouts = self._timeouts_cache[endpoint] = Timeouts(
                connect=config.connect_timeout,
                read=config.read_timeout or config.timeout,
                total=config.timeout,
            )
        return timeouts

    def deployment_snapshot(self) -> dict[str, list[dict[str, Any]]]:
        return {
            name: [d.snapshot() for d in model.deployments]
            for name, model in sorted(self.models.items())
        }

    def healthy(self, name: str) -> bool:
        """Whether the model has a deployment that can take traffic: its circuit is not
        open and some API key of its endpoint may serve it (not disabled, not rejected
        for this model).

        Before :meth:`initialize` nothing has failed yet: a configured model is healthy
        (``coop route`` plans without opening connections).
        """
        model = self.models.get(name)
        if model is None:
            return not self._initialized and name in self.config.models
        return any(d.state() != "open" and d.keys.usable(d.path) for d in model.deployments)

    def retry_after(self, name: str) -> float:
        """Seconds until a deployment of ``name`` (or of a fallback) takes traffic again."""
        chain, _budget = self._plan(name)
        ready = min(d.ready_at() for m in chain for d in m.deployments)
        return max(0.0, ready - time.monotonic())

    # -- the retry / failover loop ------------------------------------------------

    def _plan(self, name: str) -> tuple[list[_Model], float]:
        """The models to try (``name``, then its fallbacks) and the request's time budget.

        Made once per model: the configuration does not change while the engine runs.
        """
        plan = self._plans.get(name)
        if plan is None:
            chain = [self._model(name)]
            for fallback in chain[0].config.fallbacks:
                model = self._model(fallback)
                if model not in chain:
                    chain.append(model)
            budget = max(
                self.config.endpoints[d.endpoint].timeout for m in chain for d in m.deployments
            )
            plan = self._plans[name] = (chain, budget)
        return plan

    async def _acquire(self, model: _Model, tried: set[int], deadline: float) -> DeploymentState:
        """A deployment that can take the request now: circuit, concurrency and keys.

        Untried deployments first. When none can, wait for the earliest to come back
        (LiteLLM #3646), at most ``max_wait`` and never past ``deadline``; past that,
        :class:`NoHealthyDeploymentError` with ``retry_after`` set.
        """
        deployments = model.deployments
        if not tried and len(deployments) == 1:
            only = deployments[0]
            if only.available() and only.keys.usable(only.path):
                return only  # the common case, without the lists below
        while True:
            usable = [d for d in deployments if d.usable()]
            fresh = [d for d in usable if id(d) not in tried]
            chosen = pick_deployment(
                fresh or usable, self.config.balancing, rng=self._rng, turn=model.turn
            )
            if chosen is not None:
                return chosen
            now = time.monotonic()
            ready = min(d.ready_at() for d in deployments)
            capped = any(
                d.max_concurrency is not None and d.in_flight >= d.max_concurrency
                for d in deployments
            )
            # a full half-open circuit or a concurrency cap frees up without a clock: poll
            wait = 0.01 if capped or ready <= now else ready - now + 0.001
            if wait > min(self._retry.max_wait, deadline - now):
                error = NoHealthyDeploymentError(
                    f"model {model.config.name!r}: no deployment can take the request "
                    f"({self._why_unavailable(deployments, now)})"
                )
                error.retry_after = max(0.0, ready - now)  # type: ignore[attr-defined]
                raise error
            await anyio.sleep(wait)

    @staticmethod
    def _why_unavailable(deployments: list[DeploymentState], now: float) -> str:
        reasons = []
        for d in deployments:
            if d.state() == "open":
                why = f"circuit open, ready in {max(0.0, d.cooldown_until - now):.1f}s"
            elif not d.keys.usable(d.path):
                back = max(0.0, d.keys.ready_at(d.path) - now)
                why = f"no usable API key for it for {back:.1f}s"
            elif d.max_concurrency is not None and d.in_flight >= d.max_concurrency:
                why = f"at max_concurrency {d.max_concurrency}"
            else:
                why = "half-open, probes in flight"
            reasons.append(f"{d.id}: {why}")
        return "; ".join(reasons)

    def _backoff(self, attempt: int) -> float:
        """Seconds to wait before trying an already-tried deployment again (jittered)."""
        delay = min(self._retry.backoff_max, self._retry.backoff_base * (2**attempt))
        return delay * (0.5 + self._rng.random() / 2)

    async def _judge_key(
        self,
        deployment: DeploymentState,
        pool: KeyPool,
        key: KeyState | None,
        error: AuthenticationError,
        deadline: float,
    ) -> None:
        """A 401/403 for ``key`` on this model: block the pair, and disable the key for the
        whole endpoint only if the endpoint confirms it is bad (its ``GET /models``
        rejects it too, or it was rejected on several models)."""
        if key is None:
            return
        pool.record(key, error, model=deployment.path)
        if pool.revoked(key):
            return
        limit = min(self._timeouts(deployment.endpoint).total, 5.0, deadline - time.monotonic())
        if limit <= 0:
            return
        call = ProviderCall(
            model="", api_key=key.value, timeouts=self._timeouts(deployment.endpoint)
        )
        try:
            async with self._deadline(limit):
                await deployment.provider.list_models(call)
        except AuthenticationError:
            pool.revoke(key)
        except (CoopError, TimeoutError):
            pass  # could not tell: the per-model block stands

    async def _run(
        self, name: str, runner: Any, until: float | None = None
    ) -> tuple[Any, DeploymentState, int, list[BaseException]]:
        """Run ``runner(deployment, call, seconds)`` with retries and failover.

        Returns its result, the deployment that gave it, the attempts made and the
        errors met on the way. ``until`` (``time.monotonic()``) is the request's own
        deadline: no wait, backoff or attempt runs past it (an attempt's ``seconds`` is
        the endpoint's timeout, or what is left of the deadline when that is less).
        """
        chain, budget = self._plan(name)
        retry = self._retry
        deadline = time.monotonic() + budget + retry.max_wait
        if until is not None and until < deadline:
            deadline = until
        errors: list[BaseException] = []
        attempt = 0  # upstream calls made
        spent = 0  # of max_attempts: a 429 sends the request elsewhere without spending one
        calls = retry.max_attempts + retry.max_attempts // 2  # 429s included
        for position, model in enumerate(chain):
            tried: set[int] = set()
            last = 0
            has_fallback = position + 1 < len(chain)
            while spent < retry.max_attempts and attempt < calls:
                if tried and len(tried) >= len(model.deployments):
                    if has_fallback:
                        break  # every deployment failed once: the fallback before any retry
                    delay = min(self._backoff(spent - 1), deadline - time.monotonic())
                    if delay > 0:
                        await anyio.sleep(delay)
                    # a new round over the deployments, the one that just failed last
                    tried.clear()
                    tried.add(last)
                if time.monotonic() >= deadline:
                    break
                try:
                    deployment = await self._acquire(model, tried, deadline)
                except NoHealthyDeploymentError as exc:
                    errors.append(exc)
                    break
                last = id(deployment)
                tried.add(last)
                pool = self._key_pool(deployment.endpoint)
                try:
                    key: KeyState | None = pool.pick(deployment.path)
                except (AuthenticationError, RateLimitError) as exc:
                    exc.deployment = deployment.id  # its keys just became known: choose again
                    errors.append(exc)
                    continue
                timeouts = self._timeouts(deployment.endpoint)
                limit = timeouts.total
                left = deadline - time.monotonic()
                if left < limit:
                    if left <= 0:
                        break
                    limit = left
                attempt += 1
                spent += 1
                call = ProviderCall(
                    model=deployment.path, api_key=key.value if key else None, timeouts=timeouts
                )
                probe = deployment.begin()
                started = time.perf_counter()
                try:
                    result = await runner(deployment, call, limit)
                except UpstreamError as exc:
                    latency = time.perf_counter() - started
                    exc.deployment = exc.deployment or deployment.id
                    deployment.record_failure(exc, latency)
                    self.metrics.record_attempt(
                        deployment.model, deployment.id, deployment.endpoint,
                        key_alias(None if key is None else key.index), type(exc).__name__,
                    )  # fmt: skip
                    errors.append(exc)
                    if isinstance(exc, AuthenticationError):
                        await self._judge_key(deployment, pool, key, exc, deadline)
                        continue
                    pool.record(key, exc, model=deployment.path)
                    if isinstance(exc, RateLimitError):
                        spent -= 1  # the upstream said "not now, not with this key": go elsewhere
                    if isinstance(exc, ContextWindowExceededError):
                        break  # a bigger model in the fallbacks may fit it
                    if isinstance(exc, BadRequestError):
                        raise
                    continue
                except TimeoutError:
                    latency = time.perf_counter() - started
                    if limit < timeouts.total and deadline == until:
                        # the request's own deadline, not the upstream's fault
                        raise TimeoutError(
                            f"the request's deadline passed after {attempt} attempts"
                        ) from None
                    error = UpstreamTimeoutError(
                        f"no answer within {limit:g}s", deployment=deployment.id
                    )
                    if limit >= timeouts.total:
                        deployment.record_failure(error, latency)
                    self.metrics.record_attempt(
                        deployment.model, deployment.id, deployment.endpoint,
                        key_alias(None if key is None else key.index), "UpstreamTimeoutError",
                    )  # fmt: skip
                    errors.append(error)
                    continue
                finally:
                    deployment.end(probe)
                deployment.record_success(time.perf_counter() - started)
                self._key_used = alias = key_alias(None if key is None else key.index)
                self.metrics.record_attempt(
                    deployment.model, deployment.id, deployment.endpoint, alias, "ok"
                )
                return result, deployment, attempt, errors
            if time.monotonic() >= deadline:
                break
        last = errors[-1] if errors else None
        if attempt == 0 and isinstance(last, NoHealthyDeploymentError):
            raise last  # nothing was tried: it says why, and when to come back
        if isinstance(last, ContextWindowExceededError) or (
            last is not None
            and len({type(e) for e in errors}) == 1
            and isinstance(last, UpstreamError)
        ):
            if isinstance(last, UpstreamUnavailableError) and last.status in (503, 529):
                last.retry_after = self.retry_after(name)  # type: ignore[attr-defined]
            raise last
        summary = "; ".join(
            f"{getattr(e, 'deployment', None) or ''} {type(e).__name__}: {e}".strip()
            for e in errors[-4:]
        )
        if time.monotonic() >= deadline:
            summary = f"the request's deadline passed; {summary}" if summary else "deadline passed"
        error = NoHealthyDeploymentError(
            f"model {name!r} failed after {attempt} attempts: {summary}", errors=errors
        )
        error.retry_after = self.retry_after(name)  # type: ignore[attr-defined]
        raise error

    # -- public calls -----------------------------------------------------------

    def _record_failure(self, name: str, started: float, exc: BaseException) -> None:
        """Count a request on ``name`` that failed after every attempt."""
        self.metrics.record(
            name, ok=False, latency=time.perf_counter() - started, error_type=type(exc).__name__
        )

    async def chat(
        self, request: ChatRequest, *, model: str | None = None, deadline: float | None = None
    ) -> ChatResult:
        """Run a chat request on a logical model; raises typed errors on failure.

        ``deadline`` (``time.monotonic()``) is the request's own: retries and waits for
        a cooling deployment stop there.
        """
        name = model or request.model
        started_all = time.perf_counter()

        async def runner(
            deployment: DeploymentState, call: ProviderCall, seconds: float
        ) -> ChatResponse:
            async with self._deadline(seconds):
                return await deployment.provider.chat(request, call)  # type: ignore[no-any-return]

        try:
            response, used, attempts, errors = await self._run(name, runner, deadline)
        except CoopError as exc:
            self._record_failure(name, started_all, exc)
            raise
        key = self._key_used
        latency = time.perf_counter() - started_all
        usage = _usage_of(
            request, response.text, response.usage if isinstance(response.usage, Usage) else None
        )
        model_state = self.models[used.model]
        cost = cost_usd(
            usage.prompt_tokens or 0,
            usage.completion_tokens or 0,
            model_state.price_input,
            model_state.price_output,
        )
        self.metrics.record(
            used.model,
            ok=True,
            latency=latency,
            prompt_tokens=usage.prompt_tokens or 0,
            completion_tokens=usage.completion_tokens or 0,
            cost=cost,
            deployment=used.id,
            endpoint=used.endpoint,
            key=key,
        )
        return ChatResult(
            response=response,
            model=used.model,
            deployment=used.id,
            provider=type(used.provider).name,
            usage=usage,
            cost=cost,
            latency=latency,
            attempts=attempts,
            errors=[str(e) for e in errors],
        )

    async def embed(
        self, request: EmbeddingRequest, *, deadline: float | None = None
    ) -> EmbeddingResult:
        """Embed ``request``'s inputs on an embedding model, with the same failover,
        balancing, key rotation and cost as :meth:`chat`."""
        request.check()
        name = request.model
        model = self._model(name)
        if model.config.kind != "embedding":
            raise ValidationError(
                f"{name!r} is a chat model; name an embedding model "
                f"({', '.join(self.embedding_models()) or 'none configured'})",
                field="model",
            )
        items = request.inputs()
        counts = [token_count(item) for item in items]
        window = model.config.context_window
        if window:
            for i, count in enumerate(counts):
                if count > window:
                    raise ValidationError(
                        f"input of ~{count} tokens is too long for {name!r} "
                        f"(at most {window} tokens per input)",
                        field="input" if len(items) == 1 else f"input[{i}]",
                    )
        if request.dimensions is None and model.config.dimensions is not None:
            request = attrs.evolve(request, dimensions=model.config.dimensions)
        started_all = time.perf_counter()

        async def runner(
            deployment: DeploymentState, call: ProviderCall, seconds: float
        ) -> EmbeddingResponse:
            async with self._deadline(seconds):
                return await deployment.provider.embed(request, call)  # type: ignore[no-any-return]

        try:
            response, used, attempts, errors = await self._run(name, runner, deadline)
        except CoopError as exc:
            self._record_failure(name, started_all, exc)
            raise
        if len(response.vectors) != len(items):
            raise UpstreamProtocolError(
                f"asked for {len(items)} embeddings, got {len(response.vectors)}",
                deployment=used.id,
            )
        latency = time.perf_counter() - started_all
        estimated = response.prompt_tokens is None
        tokens = sum(counts) if estimated else int(response.prompt_tokens or 0)
        model_state = self.models[used.model]
        cost = cost_usd(tokens, 0, model_state.price_input, model_state.price_output)
        self.metrics.record(used.model, ok=True, latency=latency, prompt_tokens=tokens, cost=cost)
        return EmbeddingResult(
            vectors=response.vectors,
            model=used.model,
            deployment=used.id,
            provider=type(used.provider).name,
            prompt_tokens=tokens,
            cost=cost,
            latency=latency,
            attempts=attempts,
            errors=[str(e) for e in errors],
            estimated=estimated,
        )

    async def embeddings(
        self, model: str, inputs: str | list[str], *, dimensions: int | None = None
    ) -> EmbeddingResult:
        """``embed`` for the common case: ``(await engine.embeddings(m, ["a", "b"])).vectors``."""
        return await self.embed(EmbeddingRequest(model=model, input=inputs, dimensions=dimensions))

    def embedding_models(self) -> list[str]:
        """The configured embedding models."""
        return sorted(n for n, m in self.config.models.items() if m.kind == "embedding")

    async def stream_chat(
        self,
        request: ChatRequest,
        *,
        model: str | None = None,
        on_start: Callable[[str, str], None] | None = None,
        on_finish: Callable[[Usage, float], None] | None = None,
        deadline: float | None = None,
    ) -> AsyncIterator[ChatChunk]:
        """Stream a chat request. Failover happens only before the first chunk is yielded.

        ``on_start(deployment_id, model_name)`` is called once the upstream answered,
        before the first chunk (the gateway sends its headers then);
        ``on_finish(usage, cost)`` when the stream ends, however it ends. Usage comes from
        the upstream's final chunk, or is estimated; the usage chunk is passed on only
        when the client asked for it (``stream_options.include_usage``).
        """
        name = model or request.model
        started_all = time.perf_counter()
        wants_usage = bool(
            getattr(request, "stream_options", None)
            and _get(request.stream_options, "include_usage")
        )

        async def runner(deployment: DeploymentState, call: ProviderCall, seconds: float) -> Any:
            iterator = deployment.provider.stream(request, call).__aiter__()
            async with self._deadline(seconds):
                first = await iterator.__anext__()
            return iterator, first

        try:
            (iterator, first), used, _attempts, _errors = await self._run(name, runner, deadline)
            key, ttft = self._key_used, time.perf_counter() - started_all
        except StopAsyncIteration:
            raise UpstreamError("upstream stream was empty") from None
        except CoopError as exc:
            self._record_failure(name, started_all, exc)
            raise
        if on_start is not None:
            on_start(used.id, used.model)
        text_parts: list[str] = []
        usage: Usage | None = None
        ok = False
        error_type = None
        used.in_flight += 1
        try:
            chunk: ChatChunk | None = first
            while chunk is not None:
                if isinstance(chunk.usage, Usage):
                    usage = chunk.usage
                for choice in chunk.choices or ():
                    content = getattr(choice.delta, "content", None)
                    if isinstance(content, str):
                        text_parts.append(content)
                is_usage_only = not chunk.choices and isinstance(chunk.usage, Usage)
                if not is_usage_only or wants_usage:
                    if not wants_usage and isinstance(chunk.usage, Usage):
                        chunk.usage = None
                    yield chunk
                try:
                    chunk = await iterator.__anext__()
                except StopAsyncIteration:
                    chunk = None
            ok = True
        except UpstreamError as exc:
            error_type = type(exc).__name__
            exc.deployment = exc.deployment or used.id
            used.record_failure(exc)
            raise
        except BaseException as exc:
            error_type = type(exc).__name__
            raise
        finally:
            used.in_flight -= 1
            with anyio.CancelScope(shield=True):
                aclose = getattr(iterator, "aclose", None)
                if aclose is not None:
                    # the stream may already have failed: keep the first error
                    with contextlib.suppress(Exception):
                        await aclose()
            final = _usage_of(request, "".join(text_parts), usage)
            state = self.models[used.model]
            cost = cost_usd(
                final.prompt_tokens or 0,
                final.completion_tokens or 0,
                state.price_input,
                state.price_output,
            )
            if on_finish is not None:
                on_finish(final, cost)
            self.metrics.record(
                used.model,
                ok=ok,
                latency=time.perf_counter() - started_all,
                prompt_tokens=final.prompt_tokens or 0,
                completion_tokens=final.completion_tokens or 0,
                cost=cost,
                error_type=error_type,
                deployment=used.id,
                endpoint=used.endpoint,
                key=key,
                ttft=ttft,
            )

    # -- native APIs: the upstream's own bytes, same failover ------------------------------

    def serves_native_messages(self, name: str) -> bool:
        """Whether every deployment ``name`` (and its fallbacks) may run on serves the
        Messages API natively (:meth:`coop.Provider.serves_native_messages`)."""
        if name not in self.config.models or self.config.models[name].kind == "embedding":
            return False
        chain, _budget = self._plan(name)
        return all(type(d.provider).serves_native_messages() for m in chain for d in m.deployments)

    async def native_messages(
        self,
        body: Mapping[str, Any],
        *,
        model: str,
        stream: bool = False,
        headers: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> NativeResult:
        """Send a Messages API ``body`` to ``model``'s deployments as is (the model id
        replaced by each deployment's), through the same retry and failover as
        :meth:`chat`; usage, cost and metrics are read from the upstream's answer.

        For a stream, failover happens before the first event; iterate ``rest`` to the
        end (or close it) so the request is recorded.
        """
        started_all = time.perf_counter()
        extra = dict(headers or {})

        async def runner(
            deployment: DeploymentState, call: ProviderCall, seconds: float
        ) -> NativeReply:
            sent = {**body, "model": call.model}
            async with self._deadline(seconds):
                return await deployment.provider.native_messages(  # type: ignore[no-any-return]
                    sent, call, stream=stream, headers=extra
                )

        try:
            reply, used, attempts, _errors = await self._run(model, runner, deadline)
        except CoopError as exc:
            self._record_failure(model, started_all, exc)
            raise
        key, ttft = self._key_used, time.perf_counter() - started_all
        state = self.models[used.model]
        result = NativeResult(
            reply=reply,
            model=used.model,
            deployment=used.id,
            provider=type(used.provider).name,
            usage=reply.usage,
            cost=0.0,
            latency=ttft,
            attempts=attempts,
        )

        def record(ok: bool, error_type: str | None) -> None:
            usage = reply.usage
            if usage is None:  # the upstream said nothing: estimate from the request
                prompt = estimate_messages_tokens(
                    [m for m in body.get("messages") or () if isinstance(m, Mapping)]
                )
                usage = from_wire(
                    Usage,
                    {"prompt_tokens": prompt, "completion_tokens": 0, "total_tokens": prompt},
                )
                usage.estimated = True
            result.usage = usage
            result.cost = cost_usd(
                usage.prompt_tokens or 0,
                usage.completion_tokens or 0,
                state.price_input,
                state.price_output,
            )
            result.latency = time.perf_counter() - started_all
            self.metrics.record(
                used.model,
                ok=ok,
                latency=result.latency,
                prompt_tokens=usage.prompt_tokens or 0,
                completion_tokens=usage.completion_tokens or 0,
                cost=result.cost,
                error_type=error_type,
                deployment=used.id,
                endpoint=used.endpoint,
                key=key,
                ttft=ttft if stream else None,
            )

        if reply.rest is None:
            record(True, None)
            return result

        async def relay(rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
            ok, error_type = False, None
            used.in_flight += 1
            try:
                async for chunk in rest:
                    yield chunk
                ok = reply.error is None
                error_type = reply.error
            except UpstreamError as exc:
                error_type = type(exc).__name__
                exc.deployment = exc.deployment or used.id
                used.record_failure(exc)
                raise
            except BaseException as exc:
                error_type = type(exc).__name__
                raise
            finally:
                used.in_flight -= 1
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await reply.aclose()
                record(ok, error_type)

        result.rest = relay(reply.rest)
        return result

    async def inference(self, request: InferenceRequest) -> InferenceResponse:
        """The seed's call: never raises for upstream failures, reports ``success``/``error``."""
        request_id = request.request_id or uuid.uuid4().hex
        name = request.model_name or self._default_model()
        started = time.perf_counter()
        try:
            chat_request = request.to_chat_request(name)
            result = await self.chat(chat_request, model=name)
        except CoopError as exc:
            if isinstance(exc, UnknownModelError | MissingSecretError):
                raise
            return InferenceResponse(
                text="",
                model_name=name,
                success=False,
                error=str(exc),
                error_type=type(exc).__name__,
                latency=time.perf_counter() - started,
                request_id=request_id,
            )
        return InferenceResponse(
            text=result.text,
            model_name=result.model,
            success=True,
            deployment=result.deployment,
            provider=result.provider,
            usage=result.usage,
            cost=result.cost,
            latency=result.latency,
            request_id=request_id,
            response=result.response,
        )

    async def stream(self, request: InferenceRequest) -> AsyncIterator[str]:
        """The seed's streaming call: yields text pieces as they arrive."""
        name = request.model_name or self._default_model()
        chat_request = request.to_chat_request(name)
        async for chunk in self.stream_chat(chat_request, model=name):
            for choice in chunk.choices or ():
                content = getattr(choice.delta, "content", None)
                if content:
                    yield content

    def _default_model(self) -> str:
        routing = self.config.routing
        for candidate in (routing.light, routing.reasoning, *self.config.models):
            if candidate in self.config.models:
                return candidate
        raise UnknownModelError("(none given)", self.config.served_names())

    # -- active health checks -----------------------------------------------------

    async def check_endpoint(self, endpoint: str) -> dict[str, Any]:
        """List the endpoint's models (cheap, never a paid completion); record the outcome."""
        provider = self.providers[endpoint]
        started = time.perf_counter()
        error: BaseException | None = None
        models: list[str] = []
        key: KeyState | None = None
        try:
            pool = self._key_pool(endpoint)
            key = pool.pick()
            call = ProviderCall(
                model="", api_key=key.value if key else None, timeouts=self._timeouts(endpoint)
            )
            with anyio.fail_after(call.timeouts.total):
                models = await provider.list_models(call)
        except (CoopError, TimeoutError) as exc:
            error = exc
            if isinstance(exc, AuthenticationError) and key is not None:
                pool.revoke(key)  # the endpoint itself rejects the key: out for every model
        for model in self.models.values():
            for deployment in model.deployments:
                if deployment.endpoint == endpoint:
                    deployment.record_health_check(error is None, error)
        return {
            "endpoint": endpoint,
            "ok": error is None,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "models": len(models),
            "error": None if error is None else f"{type(error).__name__}: {error}",
        }

    async def _health_loop(self, endpoint: str, interval: float) -> None:
        while True:
            await anyio.sleep(interval * (0.9 + 0.2 * self._rng.random()))
            try:
                await self.check_endpoint(endpoint)
            except Exception:  # a health check must never kill the engine
                continue


def deadline_for(library: str) -> Callable[[float], AbstractAsyncContextManager[Any]]:
    """The cheapest "raise :class:`TimeoutError` after ``seconds``" on ``library``.

    On asyncio that is the native ``asyncio.timeout``: a fraction of the cost of anyio's
    cancel scope on the request path (measured ~55 µs per request). Elsewhere it is
    anyio's ``fail_after``.
    """
    if library == "asyncio":
        import asyncio

        return asyncio.timeout
    return _FailAfter


class _FailAfter:
    """anyio's ``fail_after`` as an async context manager, like ``asyncio.timeout``."""

    __slots__ = ("_scope",)

    def __init__(self, seconds: float) -> None:
        self._scope = anyio.fail_after(seconds)

    async def __aenter__(self) -> None:
        self._scope.__enter__()

    async def __aexit__(self, *exc: Any) -> bool | None:
        return self._scope.__exit__(*exc)


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)
