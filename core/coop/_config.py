"""coop.toml: find it, read it, validate it into attrs objects.

Validation is hand-written rather than delegated to cattrs because the error is
the product here: every problem names the file, the line, the key path and the
fix (``coop.toml:14 models.qwen3_8b.endpoint: no endpoint 'aigbest' (did you mean
'aigcbest'?)``). Secrets stay ``env:NAME`` references until an endpoint is used,
so a missing variable only matters for the endpoint that needs it.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ._dotenv import read_dotenv
from ._errors import ConfigError, MissingSecretError, did_you_mean
from ._providers import ModelInfo

if TYPE_CHECKING:
    from ._plugins import Plugins

__all__ = [
    "CooperationConfig",
    "DeploymentConfig",
    "EndpointConfig",
    "ModelConfig",
    "Price",
    "ResilienceConfig",
    "RoutingConfig",
    "ServerConfig",
    "StateConfig",
    "SystemConfig",
    "default_config_path",
    "find_config",
    "resolve_secret",
]

TIERS = ("light", "reasoning", "complex")
MODES = ("sequential", "parallel", "pipeline")
MODEL_KINDS = ("chat", "embedding")
BALANCING = ("least-inflight", "weighted", "latency", "round-robin")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def resolve_secret(
    value: str, *, key: str | None = None, env: Mapping[str, str] | None = None
) -> str:
    """``env:NAME`` → the variable's value (:class:`MissingSecretError` when unset)."""
    if not value.startswith("env:"):
        return value
    name = value[4:].strip()
    found = (os.environ if env is None else env).get(name)
    if not found:
        raise MissingSecretError(name, key=key)
    return found


def user_config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "coop"


def user_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(base) / "coop"


def default_config_path() -> Path:
    return Path.cwd() / "coop.toml"


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The config file in force: ``--config``, ``$COOP_CONFIG``, ``./coop.toml``, user dir."""
    if explicit:
        return Path(explicit)
    if os.environ.get("COOP_CONFIG"):
        return Path(os.environ["COOP_CONFIG"])
    for candidate in (default_config_path(), user_config_dir() / "coop.toml"):
        if candidate.is_file():
            return candidate
    return None


# -- the objects -------------------------------------------------------------


@attrs.define
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    #: Raw key references (``env:COOP_API_KEY``) clients must send as Bearer keys.
    api_keys: list[str] = attrs.field(factory=list)
    workers: int = 1
    max_body_bytes: int = 4 * 1024 * 1024
    #: Seconds one request may take end to end.
    request_timeout: float = 600.0
    #: Seconds SIGTERM waits for in-flight requests.
    shutdown_timeout: float = 30.0
    #: ``text``, ``json`` or ``off``.
    access_log: str = "text"
    allow_unauthenticated: bool = False
    url: str | None = None
    #: Bytes of request line and headers one request may send (431 past it).
    max_header_bytes: int = 64 * 1024
    #: Seconds a client may take to send its body (408 past it; at most request_timeout).
    body_timeout: float = 30.0
    #: Model calls one ``/v1/cooperate`` request may make: members, stages, strategy calls.
    max_fanout: int = 16
    #: Host names an open (keyless) gateway answers besides localhost, 127.0.0.1 and [::1].
    allowed_hosts: list[str] = attrs.field(factory=list)
    #: Record request metrics for /metrics and /status (off: nothing is counted).
    metrics: bool = True

    def resolved_api_keys(self) -> list[str]:
        return [resolve_secret(k, key="server.api_keys") for k in self.api_keys]

    @property
    def base_url(self) -> str:
        if self.url:
            return self.url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"


@attrs.define
class EndpointConfig:
    """An upstream API: a provider plugin plus its settings."""

    name: str
    provider: str
    base_url: str | None = None
    #: Raw references; resolved only when the endpoint is used.
    api_keys: list[str] = attrs.field(factory=list)
    #: Seconds: total per attempt, connect, and between bytes.
    timeout: float = 60.0
    connect_timeout: float = 10.0
    read_timeout: float | None = None
    max_concurrency: int | None = None
    headers: dict[str, str] = attrs.field(factory=dict)
    #: Seconds between active health checks (0 disables them).
    health_check_interval: float = 30.0
    #: Provider-specific settings (the simulated provider's latency, say).
    options: dict[str, Any] = attrs.field(factory=dict)

    def resolved_api_keys(self) -> list[str]:
        """Every key's value; :class:`MissingSecretError` names the first unset variable."""
        return [resolve_secret(k, key=f"endpoints.{self.name}.api_keys") for k in self.api_keys]


@attrs.define
class Price:
    #: USD per million tokens.
    input: float = 0.0
    output: float = 0.0


@attrs.define
class DeploymentConfig:
    endpoint: str
    path: str
    weight: float = 1.0
    max_concurrency: int | None = None

    @property
    def id(self) -> str:
        return f"{self.endpoint}/{self.path}"


@attrs.define
class ModelConfig:
    """A logical model: what clients and cooperations name."""

    name: str
    deployments: list[DeploymentConfig]
    tier: str | None = None
    context_window: int | None = None
    price: Price = attrs.field(factory=Price)
    fallbacks: list[str] = attrs.field(factory=list)
    description: str = ""
    #: ``chat`` or ``embedding`` (served on /v1/embeddings only).
    kind: str = "chat"
    #: An embedding model's vector size when the request names none.
    dimensions: int | None = None


@attrs.define
class RoutingConfig:
    router: str = "rules"
    light: str | None = None
    reasoning: str | None = None
    complex: str | None = None
    #: task type → model or cooperation, overriding the tier's choice.
    overrides: dict[str, str] = attrs.field(factory=dict)
    #: Default per-request limits (a request field or header may lower them).
    max_cost: float | None = None
    max_latency: float | None = None
    #: Settings handed to the router plugin.
    options: dict[str, Any] = attrs.field(factory=dict)

    def target_for(self, tier: str) -> str | None:
        return {"light": self.light, "reasoning": self.reasoning, "complex": self.complex}.get(tier)


@attrs.define
class CooperationConfig:
    name: str
    mode: str = "parallel"
    models: list[str] = attrs.field(factory=list)
    strategy: str | None = None
    stages: list[dict[str, Any]] = attrs.field(factory=list)
    #: Models that must answer for a parallel task to succeed (default: 1).
    quorum: int | None = None
    #: Seconds each model may take.
    timeout: float | None = None
    #: Strategy settings (judge, aggregator, weights, rounds, ...).
    options: dict[str, Any] = attrs.field(factory=dict)
    #: Pipeline stage prompt templates, task → template with {query} and {previous}.
    templates: dict[str, str] = attrs.field(factory=dict)


@attrs.define
class ResilienceConfig:
    """``[resilience]``: retries, circuits and key blocks (see docs/reliability.md)."""

    #: Attempts per request in all, across deployments, keys and fallbacks (a 429 does
    #: not count; upstream calls stay within 1.5 times this).
    max_attempts: int = 6
    #: Seconds of jittered exponential backoff before re-trying an already-tried deployment.
    backoff_base: float = 0.1
    backoff_max: float = 2.0
    #: Longest single wait for a cooling deployment or key (Retry-After included).
    max_wait: float = 10.0
    #: Consecutive sick failures (timeouts, 5xx, dropped connections) that open a circuit.
    failure_threshold: int = 5
    #: Share of sick failures over ``error_window`` seconds that opens a circuit, judged
    #: once ``min_requests`` requests fell in the window (1.0 turns the rule off).
    error_rate: float = 0.5
    error_window: float = 30.0
    min_requests: int = 20
    #: Seconds an opened circuit cools down; doubles on each re-opening up to the max.
    cooldown_base: float = 5.0
    cooldown_max: float = 60.0
    #: Requests a half-open circuit lets through at once; the first success closes it.
    half_open_probes: int = 3
    #: Seconds a rejected key (for one model, or for the whole endpoint) stays out.
    key_block: float = 300.0
    #: A key rejected (401/403) on this many different models is disabled for its endpoint.
    auth_confirm_models: int = 2
    #: Seconds a key cools after a 429 that names no Retry-After.
    rate_limit_cooldown: float = 1.0


#: What an alert rule may watch (docs/monitoring.md, "Alerts").
ALERT_METRICS = (
    "error_rate",
    "latency_p99_ms",
    "latency_p50_ms",
    "requests_per_minute",
    "cost_usd_per_hour",
    "open_circuits",
    "healthy_models",
)
ALERT_OPS = (">", "<", ">=", "<=")


@attrs.define
class AlertRule:
    """One ``[[monitoring.alerts]]`` rule: fire when ``metric op threshold`` held ``for_`` s."""

    name: str
    metric: str
    threshold: float
    op: str = ">"
    labels: dict[str, str] = attrs.field(factory=dict)
    #: Seconds the metric is computed over (deltas of counters across the window).
    window: float = 60.0
    #: Seconds the condition must hold before the alert fires (0: at once).
    for_: float = 0.0


@attrs.define
class MonitoringConfig:
    """``[monitoring]``: alert rules and where their events go."""

    #: Seconds between two evaluations of the alert rules.
    interval: float = 5.0
    webhooks: list[str] = attrs.field(factory=list)
    #: Seconds one webhook POST may take.
    webhook_timeout: float = 5.0
    #: POSTs of one event to one webhook at most (the first included).
    webhook_attempts: int = 4
    #: Seconds before the first retry; doubles on each further retry.
    webhook_backoff: float = 1.0
    #: Events waiting per webhook; when full the oldest is dropped (and counted).
    webhook_queue: int = 100
    alerts: list[AlertRule] = attrs.field(factory=list)
    #: OpenTelemetry spans for every request (docs/monitoring.md, "Tracing"); needs
    #: ``pip install 'llm-coop[tracing]'``. Off: nothing of OpenTelemetry is imported.
    tracing: bool = False
    #: otlp (OTLP over HTTP), console (stderr) or none (the process's global provider).
    tracing_exporter: str = "otlp"
    #: The OTLP traces URL; default: ``OTEL_EXPORTER_OTLP_*`` or http://localhost:4318/v1/traces.
    tracing_endpoint: str | None = None
    #: ``service.name`` of the spans coop exports.
    tracing_service_name: str = "coop"


STATE_BACKENDS = ("sqlite", "memory", "redis")


@attrs.define
class StateConfig:
    """``[state]``: where managed keys, limits, spend and shared health live (coop._state)."""

    #: sqlite (the embedded default: a file beside coop.toml), memory (this process only)
    #: or redis (shared by every worker and replica).
    backend: str = "sqlite"
    #: The SQLite file; relative paths are relative to coop.toml. Default: beside it,
    #: ``coop-state.sqlite3`` (or in the user data directory when there is no coop.toml).
    path: str | None = None
    #: ``redis://[:password@]host:port/db`` (``rediss://`` for TLS); ``env:NAME`` allowed.
    url: str | None = None
    #: Prefix of every Redis key and channel, so several gateways can share one Redis.
    prefix: str = "coop:"
    #: Seconds between re-syncs of the local copy (keys, revocations) with the backend.
    sync_interval: float = 0.5

    def resolved_url(self) -> str | None:
        return None if self.url is None else resolve_secret(self.url, key="state.url")


@attrs.define
class PluginsConfig:
    disabled: list[str] = attrs.field(factory=list)


@attrs.define
class SystemConfig:
    """The whole configuration; ``SystemConfig()`` finds and loads it."""

    path: Path | None = None
    server: ServerConfig = attrs.field(factory=ServerConfig)
    endpoints: dict[str, EndpointConfig] = attrs.field(factory=dict)
    models: dict[str, ModelConfig] = attrs.field(factory=dict)
    routing: RoutingConfig = attrs.field(factory=RoutingConfig)
    cooperations: dict[str, CooperationConfig] = attrs.field(factory=dict)
    plugins: PluginsConfig = attrs.field(factory=PluginsConfig)
    resilience: ResilienceConfig = attrs.field(factory=ResilienceConfig)
    monitoring: MonitoringConfig = attrs.field(factory=MonitoringConfig)
    state: StateConfig = attrs.field(factory=StateConfig)
    log_level: str = "INFO"
    balancing: str = "least-inflight"
    #: True when no file and no keys were found: the embedded simulated setup.
    embedded: bool = False
    #: Where the settings came from: a file path, ``(environment)`` or ``(embedded default)``.
    source: str = ""

    def __attrs_post_init__(self) -> None:
        # ``SystemConfig()`` with nothing given means "find my configuration", as in the seed.
        if not self.source and self.path is None and not self.endpoints and not self.models:
            loaded = SystemConfig.discover()
            for field in attrs.fields(SystemConfig):
                setattr(self, field.name, getattr(loaded, field.name))

    @classmethod
    def discover(
        cls,
        explicit: str | os.PathLike[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        plugins: Plugins | None = None,
    ) -> SystemConfig:
        """Find coop.toml (``--config``, ``$COOP_CONFIG``, ``./coop.toml``, user dir), read
        ``.env`` and the seed's variables; fall back to the embedded simulated setup.

        Without a file the configuration depends on what is installed (a provider's
        preset for ``BASE_URL``, the best router): ``plugins`` is the loaded
        :class:`coop.Plugins`, loaded here when not given. With ``BASE_URL`` and no
        preset or ``MODELS``, this lists the endpoint's models (one bounded HTTP call).
        """
        path = find_config(explicit)
        load_env_file(path.parent / ".env" if path else Path.cwd() / ".env")
        if path is not None:
            return cls.load(path, env=env)
        if plugins is None:
            from ._plugins import load_plugins  # the plugin manager, never a plugin itself

            plugins = load_plugins()
        data = _seed_env_config(os.environ if env is None else env, plugins)
        if data is None:
            data = embedded_default(**_installed_choices(plugins))
            config = _build(data, source="(embedded default)", text="", env=env)
            config.embedded = True
            return config
        return _build(data, source="(environment)", text="", env=env)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None
    ) -> SystemConfig:
        """Load one file (no discovery, no fallback)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                "file not found (run 'coop init' to create one)", path=str(path)
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read: {exc}", path=str(path)) from None
        data = parse_toml(text, str(path))
        config = _build(data, source=str(path), text=text, env=env)
        config.path = path
        _anchor_files(config, path.resolve().parent)
        return config

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "(dict)") -> SystemConfig:
        """Build from an already-parsed mapping (tests, embedding apps)."""
        return _build(dict(data), source=source, text="", env=None)

    def model_names(self) -> list[str]:
        return sorted(self.models)

    def served_names(self) -> list[str]:
        """Everything a client may put in ``model``: models, cooperations and ``auto``."""
        return sorted({*self.models, *self.cooperations, "auto"})


# -- .env and the seed's variables -----------------------------------------------


def _anchor_files(config: SystemConfig, folder: Path) -> None:
    """Plugin options named ``*_file`` (a router's ``model_file``, a strategy's
    ``weights_file``) are paths relative to coop.toml, not to wherever coop was started."""

    def anchor(options: dict[str, Any]) -> None:
        for name, value in options.items():
            if name.endswith("_file") and isinstance(value, str) and value:
                expanded = Path(value).expanduser()
                if not expanded.is_absolute():
                    options[name] = str(folder / expanded)

    anchor(config.routing.options)
    for cooperation in config.cooperations.values():
        anchor(cooperation.options)


def load_env_file(path: Path) -> dict[str, str]:
    """Read ``.env`` into ``os.environ`` without overriding what is already set."""
    if not path.exists():
        return {}
    values = read_dotenv(path)
    for key, value in values.items():
        os.environ.setdefault(key, value)
    return values


def _seed_env_config(
    env: Mapping[str, str], plugins: Plugins | None = None
) -> dict[str, Any] | None:
    """The original system's variables → a configuration, or None when none is set.

    ``BASE_URL`` (+ ``API_KEY``) gives an endpoint named ``default`` and its models:
    ``MODELS=a,b`` names them; else, when ``BASE_URL`` is an installed provider's preset
    URL, that preset's catalogue (and that provider); else the models the endpoint lists
    at ``GET {BASE_URL}/models``. ``[routing]`` gets a target per tier. ``plugins`` (a
    :class:`coop.Plugins`) tells which presets, routers and strategies are installed.
    """
    server: dict[str, Any] = {}
    if env.get("SERVER_HOST"):
        server["host"] = env["SERVER_HOST"]
    if env.get("SERVER_PORT"):
        server["port"] = _env_int(env["SERVER_PORT"], "SERVER_PORT")
    if not env.get("BASE_URL"):
        if not server and not env.get("LOG_LEVEL"):
            return None
        data = embedded_default(**_installed_choices(plugins))
        data.setdefault("server", {}).update(server)
        if env.get("LOG_LEVEL"):
            data["log_level"] = env["LOG_LEVEL"].upper()
        return data
    base_url = env["BASE_URL"].strip()
    api_key = env.get("API_KEY") or None
    provider, preset = _preset_for(base_url, plugins.presets() if plugins is not None else {})
    endpoint: dict[str, Any] = {"provider": provider or "openai", "base_url": base_url}
    if api_key:
        endpoint["api_keys"] = ["env:API_KEY"]
    listed = [m.strip() for m in (env.get("MODELS") or "").split(",") if m.strip()]
    if listed:
        catalogue = [(preset.model(m) if preset else None) or ModelInfo(m) for m in listed]
    elif preset is not None:
        catalogue = list(preset.models)
    else:
        catalogue = [ModelInfo(m) for m in list_endpoint_models(base_url, api_key)]
    data: dict[str, Any] = {"endpoints": {"default": endpoint}}
    data.update(_seed_models(catalogue, **_installed_choices(plugins)))
    if server:
        data["server"] = server
    if env.get("LOG_LEVEL"):
        data["log_level"] = env["LOG_LEVEL"].upper()
    return data


def _installed_choices(plugins: Plugins | None) -> dict[str, Any]:
    """The best router installed (``classifier``, else the essential ``rules``) and
    whether the ``voting`` strategy is there for a council."""
    if plugins is None:
        return {"router": "rules", "voting": True}
    routers = plugins.names("router")
    return {
        "router": "classifier" if "classifier" in routers else "rules",
        "voting": "voting" in plugins.names("strategy"),
    }


def _url_key(url: str) -> str:
    return url.strip().rstrip("/").lower()


def _preset_for(base_url: str, presets: Mapping[str, Any]) -> tuple[str | None, Any]:
    """The provider whose preset serves ``base_url`` with a model catalogue, if any."""
    for provider, preset in presets.items():
        if preset.models and _url_key(preset.base_url) == _url_key(base_url):
            return provider, preset
    return None, None


# Tier heuristics for model ids the endpoint lists with nothing else known. Tokens are the
# id's parts between punctuation ("Qwen/Qwen3-8B" → qwen, qwen3, 8b).
_REASONING_WORDS = frozenset(
    {"reasoner", "reasoning", "r1", "thinking", "think", "qwq", "large", "opus", "pro", "ultra"}
)
_LIGHT_WORDS = frozenset(
    {"mini", "flash", "small", "tiny", "nano", "lite", "light", "haiku", "instant", "micro"}
)
_O_SERIES = re.compile(r"^o\d$")
_SIZE = re.compile(r"^(?:(\d+)x)?(\d+(?:\.\d+)?)b$")
#: Ids that are not chat models: embeddings, speech, images, moderation, legacy completions.
_NOT_CHAT = re.compile(
    r"embed|whisper|(?:^|[-_/.])tts(?:$|[-_/.])|dall-e|moderation|rerank|transcribe|realtime"
    r"|(?:^|[-_/.])image(?:$|[-_/.])|davinci|babbage",
    re.IGNORECASE,
)
#: A listed model with this many billion parameters or more is a reasoning-tier model.
_REASONING_SIZE = 30.0


def guess_tier(model_id: str) -> str:
    """The tier a model probably serves, from its id alone: ``light`` or ``reasoning``.

    In order: a reasoning word (reasoner, r1, o1/o3/o4, thinking, qwq, large, opus,
    pro, ...) → reasoning; a small-model word (mini, flash, small, nano, lite, haiku,
    ...) → light; a size (``8b``, ``70b``, ``8x7b``) → light under 30B, else reasoning;
    anything else (``gpt-4o``, ``deepseek-chat``) is taken for a full-size general
    model → reasoning.
    """
    tokens = [t for t in re.split(r"[^a-z0-9.]+", model_id.lower()) if t]
    if any(t in _REASONING_WORDS or _O_SERIES.match(t) for t in tokens):
        return "reasoning"
    if any(t in _LIGHT_WORDS for t in tokens):
        return "light"
    for token in tokens:
        size = _SIZE.match(token)
        if size:
            billions = float(size.group(2)) * int(size.group(1) or 1)
            return "reasoning" if billions >= _REASONING_SIZE else "light"
    return "reasoning"


def _logical_name(info: ModelInfo) -> str:
    """The preset's alias, else the id's last part in lower case with ``_`` for punctuation."""
    if info.alias:
        return info.alias
    return re.sub(r"[^A-Za-z0-9_]+", "_", info.id.split("/")[-1]).strip("_").lower() or "model"


def _seed_models(catalogue: list[ModelInfo], *, router: str, voting: bool) -> dict[str, Any]:
    """``models``, ``routing`` and maybe ``cooperations`` for one endpoint's catalogue.

    Each tier's target is its first model in catalogue order (light falls back to any
    model, reasoning to complex then light). ``complex`` is the first complex-tier model;
    without one, a parallel ``voting`` cooperation ``council`` of up to three distinct
    models (the reasoning and light targets first), else the reasoning target.
    """
    models: dict[str, dict[str, Any]] = {}
    tiers: dict[str, list[str]] = {tier: [] for tier in TIERS}
    for info in catalogue:
        name = base = _logical_name(info)
        n = 2
        while name in models or name in ("auto", "council"):
            name, n = f"{base}_{n}", n + 1
        tier = info.tier if info.tier in TIERS else guess_tier(info.id)
        model: dict[str, Any] = {"endpoint": "default", "path": info.id, "tier": tier}
        if info.context_window:
            model["context_window"] = info.context_window
        if info.price_input is not None or info.price_output is not None:
            model["price"] = {"input": info.price_input or 0.0, "output": info.price_output or 0.0}
        models[name] = model
        tiers[tier].append(name)
    data: dict[str, Any] = {"models": models, "routing": {"router": router}}
    if not models:
        return data
    light = (tiers["light"] or tiers["reasoning"] or tiers["complex"])[0]
    reasoning = (tiers["reasoning"] or tiers["complex"] or tiers["light"])[0]
    routing = data["routing"]
    routing.update(light=light, reasoning=reasoning, complex=reasoning)
    if tiers["complex"]:
        routing["complex"] = tiers["complex"][0]
    elif voting and len(models) >= 2:
        members = list(dict.fromkeys([reasoning, light, *tiers["reasoning"], *tiers["light"]]))
        data["cooperations"] = {
            "council": {"mode": "parallel", "models": members[:3], "strategy": "voting"}
        }
        routing["complex"] = "council"
    return data


#: Seconds listing an endpoint's models may take in all: start-up must never hang on it.
DISCOVERY_TIMEOUT = 5.0
_DISCOVERY_MAX_BYTES = 8 * 1024 * 1024


def list_endpoint_models(
    base_url: str, api_key: str | None, *, timeout: float = DISCOVERY_TIMEOUT
) -> list[str]:
    """The chat model ids ``GET {base_url}/models`` lists (OpenAI's list format).

    Bounded by ``timeout`` seconds in all. Any failure is a :class:`ConfigError` on
    ``BASE_URL`` naming the URL and the status (never the key, never the body).
    """
    import time

    import httpx

    url = base_url.rstrip("/") + "/models"
    shown = _redact_url(url)
    fix = "set MODELS=id1,id2 to name the models yourself, or write a coop.toml"

    def fail(reason: str) -> ConfigError:
        if api_key:
            reason = reason.replace(api_key, "***")
        return ConfigError(
            f"could not list the models at GET {shown}: {reason}; {fix}", key="BASE_URL"
        )

    headers = {"accept": "application/json"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    deadline = time.monotonic() + timeout
    body = bytearray()
    try:
        timeouts = httpx.Timeout(timeout, connect=min(timeout, 3.0))
        with httpx.stream("GET", url, headers=headers, timeout=timeouts) as response:
            if response.status_code >= 400:
                hint = " (check API_KEY)" if response.status_code in (401, 403) else ""
                raise fail(f"HTTP {response.status_code} {response.reason_phrase}{hint}")
            for chunk in response.iter_bytes():
                body += chunk
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("deadline")
                if len(body) > _DISCOVERY_MAX_BYTES:
                    raise fail("the answer is larger than 8 MB")
    except httpx.TimeoutException:
        raise fail(f"no complete answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise fail(f"{type(exc).__name__}: {exc}") from None
    try:
        payload = json.loads(bytes(body))
    except ValueError:
        raise fail(f"HTTP {response.status_code} but not JSON") from None
    items = payload.get("data") if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        raise fail('not in OpenAI\'s list format ({"data": [{"id": ...}]})')
    ids = [
        item["id"] for item in items if isinstance(item, dict) and isinstance(item.get("id"), str)
    ]
    chat = [i for i in dict.fromkeys(ids) if not _NOT_CHAT.search(i)]
    if not chat:
        raise fail(f"it lists no chat models ({len(ids)} models in all)")
    return chat


def _redact_url(url: str) -> str:
    """``url`` without a ``user:password@`` part."""
    return re.sub(r"^(\w+://)[^/@]*@", r"\1", url)


def _env_int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"expected an integer, got {value!r}", key=name) from None


def embedded_default(*, router: str = "rules", voting: bool = True) -> dict[str, Any]:
    """The offline setup used when there is no coop.toml and no keys: simulated models.

    ``router`` is the router to use (discovery picks ``classifier`` when it is
    installed, else the essential ``rules``); without the ``voting`` strategy there is
    no ``council`` and the complex tier goes to ``sim-large``.
    """
    data: dict[str, Any] = {
        "endpoints": {"simulated": {"provider": "simulated"}},
        "models": {
            "sim-light": {
                "endpoint": "simulated",
                "path": "sim-light",
                "tier": "light",
                "price": {"input": 0.1, "output": 0.2},
            },
            "sim-reasoning": {
                "endpoint": "simulated",
                "path": "sim-reasoning",
                "tier": "reasoning",
                "price": {"input": 1.0, "output": 4.0},
            },
            "sim-large": {
                "endpoint": "simulated",
                "path": "sim-large",
                "tier": "complex",
                "price": {"input": 3.0, "output": 12.0},
            },
            "sim-embedding": {
                "endpoint": "simulated",
                "path": "sim-embedding",
                "kind": "embedding",
                "dimensions": 256,
                "context_window": 8192,
                "price": {"input": 0.02},
            },
        },
        "routing": {
            "router": router,
            "light": "sim-light",
            "reasoning": "sim-reasoning",
            "complex": "council" if voting else "sim-large",
        },
    }
    if voting:
        data["cooperations"] = {
            "council": {
                "mode": "parallel",
                "models": ["sim-reasoning", "sim-large", "sim-light"],
                "strategy": "voting",
            }
        }
    return data


# -- parsing and validation ---------------------------------------------------------

_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


def parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        match = _TOML_POS.search(msg)
        line = int(match.group(1)) if match else None
        reason = _TOML_POS.sub("", msg).strip()
        if match:
            reason += f" (column {match.group(2)})"
        raise ConfigError(f"invalid TOML: {reason}", path=source, line=line) from None


def locate(text: str, keypath: str) -> int | None:
    """The 1-based line where ``keypath`` (``models.x.endpoint``) is set, best effort.

    Falls back to the line of the nearest enclosing key or table.
    """
    if not text:
        return None
    parts = keypath.split(".")
    best: tuple[int, int] | None = None  # (matched parts, line)
    prefix: list[str] = []
    header = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    assign = re.compile(r"^\s*([A-Za-z0-9_\-\"'. ]+?)\s*=")
    for number, line in enumerate(text.splitlines(), start=1):
        m = header.match(line)
        if m:
            prefix = [p.strip().strip("\"'") for p in m.group(1).split(".")]
            path = prefix
        else:
            m = assign.match(line)
            if not m:
                continue
            path = prefix + [p.strip().strip("\"'") for p in m.group(1).split(".")]
        matched = 0
        for a, b in zip(path, parts, strict=False):
            if a != b:
                break
            matched += 1
        if matched == len(path) and (best is None or matched > best[0]):
            best = (matched, number)
    return best[1] if best else None


class _Checker:
    """Walks the raw mapping; every error carries file, line and key path."""

    def __init__(self, source: str, text: str) -> None:
        self.source, self.text = source, text

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, path=self.source, line=locate(self.text, key), key=key)

    def table(self, value: Any, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(key, f"expected a table, got {_describe(value)}")
        return value

    def known(self, table: Mapping[str, Any], key: str, allowed: Mapping[str, Any]) -> None:
        for name in table:
            if name not in allowed:
                where = f"{key}.{name}" if key else name
                raise self.error(
                    where,
                    f"unknown key {name!r}{did_you_mean(name, list(allowed))}; "
                    f"valid keys: {', '.join(sorted(allowed))}",
                )

    def value(
        self, table: Mapping[str, Any], key: str, name: str, kind: Callable[..., Any], default: Any
    ) -> Any:
        if name not in table:
            return default
        return kind(self, table[name], f"{key}.{name}" if key else name)


def _describe(value: Any) -> str:
    names = {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        list: "an array",
        dict: "a table",
    }
    return (
        f"{names.get(type(value), type(value).__name__)} ({value!r})"
        if not isinstance(value, dict | list)
        else names[type(value)]
    )


def _str(c: _Checker, v: Any, key: str) -> str:
    if not isinstance(v, str):
        raise c.error(key, f"expected a string, got {_describe(v)}")
    return v


def _bool(c: _Checker, v: Any, key: str) -> bool:
    if not isinstance(v, bool):
        raise c.error(key, f"expected true or false, got {_describe(v)}")
    return v


def _int(c: _Checker, v: Any, key: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise c.error(key, f"expected an integer, got {_describe(v)}")
    return v


def _pos_int(c: _Checker, v: Any, key: str) -> int:
    v = _int(c, v, key)
    if v < 1:
        raise c.error(key, f"expected a positive integer, got {v}")
    return v


def _port(c: _Checker, v: Any, key: str) -> int:
    v = _int(c, v, key)
    if not 0 <= v <= 65535:
        raise c.error(key, f"expected a port 0-65535, got {v}")
    return v


def _number(c: _Checker, v: Any, key: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise c.error(key, f"expected a number, got {_describe(v)}")
    return float(v)


def _nonneg(c: _Checker, v: Any, key: str) -> float:
    v = _number(c, v, key)
    if v < 0:
        raise c.error(key, f"expected a number >= 0, got {v:g}")
    return v


def _positive(c: _Checker, v: Any, key: str) -> float:
    v = _number(c, v, key)
    if v <= 0:
        raise c.error(key, f"expected a number > 0, got {v:g}")
    return v


def _fraction(c: _Checker, v: Any, key: str) -> float:
    v = _number(c, v, key)
    if not 0 < v <= 1:
        raise c.error(key, f"expected a share between 0 (exclusive) and 1, got {v:g}")
    return v


def _str_list(c: _Checker, v: Any, key: str) -> list[str]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list):
        raise c.error(key, f"expected an array of strings, got {_describe(v)}")
    return [_str(c, item, f"{key}[{i}]") for i, item in enumerate(v)]


def _str_map(c: _Checker, v: Any, key: str) -> dict[str, str]:
    table = c.table(v, key)
    return {k: _str(c, item, f"{key}.{k}") for k, item in table.items()}


def _any_table(c: _Checker, v: Any, key: str) -> dict[str, Any]:
    return dict(c.table(v, key))


def _choice(
    options: tuple[str, ...], *, upper: bool = False
) -> Callable[[_Checker, Any, str], str]:
    def check(c: _Checker, v: Any, key: str) -> str:
        v = _str(c, v, key)
        if upper:
            v = v.upper()
        if v not in options:
            raise c.error(
                key, f"{v!r} is not one of {', '.join(options)}{did_you_mean(v, options)}"
            )
        return v

    return check


_SERVER_KEYS = {
    "host": _str,
    "port": _port,
    "api_keys": _str_list,
    "workers": _pos_int,
    "max_body_bytes": _pos_int,
    "request_timeout": _positive,
    "shutdown_timeout": _nonneg,
    "access_log": _choice(("text", "json", "off")),
    "allow_unauthenticated": _bool,
    "url": _str,
    "max_header_bytes": _pos_int,
    "body_timeout": _positive,
    "max_fanout": _pos_int,
    "allowed_hosts": _str_list,
    "metrics": _bool,
}
_ENDPOINT_KEYS = {
    "provider": _str,
    "base_url": _str,
    "api_keys": _str_list,
    "api_key": _str,
    "timeout": _positive,
    "connect_timeout": _positive,
    "read_timeout": _positive,
    "max_concurrency": _pos_int,
    "headers": _str_map,
    "health_check_interval": _nonneg,
    "options": _any_table,
}
_DEPLOYMENT_KEYS = {
    "endpoint": _str,
    "path": _str,
    "weight": _positive,
    "max_concurrency": _pos_int,
}
_MODEL_KEYS = {
    **_DEPLOYMENT_KEYS,
    "deployments": None,
    "tier": _choice(TIERS),
    "context_window": _pos_int,
    "price": None,
    "fallbacks": _str_list,
    "description": _str,
    "kind": _choice(MODEL_KINDS),
    "dimensions": _pos_int,
}
_ROUTING_KEYS = {
    "router": _str,
    "light": _str,
    "reasoning": _str,
    "complex": _str,
    "overrides": _str_map,
    "max_cost": _nonneg,
    "max_latency": _positive,
    "options": _any_table,
}
_COOP_KEYS = {
    "mode": _choice(MODES),
    "models": _str_list,
    "strategy": _str,
    "stages": None,
    "quorum": _pos_int,
    "timeout": _positive,
    "options": _any_table,
    "templates": _str_map,
}
_RESILIENCE_KEYS = {
    "max_attempts": _pos_int,
    "backoff_base": _nonneg,
    "backoff_max": _nonneg,
    "max_wait": _nonneg,
    "failure_threshold": _pos_int,
    "error_rate": _fraction,
    "error_window": _positive,
    "min_requests": _pos_int,
    "cooldown_base": _positive,
    "cooldown_max": _positive,
    "half_open_probes": _pos_int,
    "key_block": _nonneg,
    "auth_confirm_models": _pos_int,
    "rate_limit_cooldown": _nonneg,
}
_MONITORING_KEYS = {
    "interval": _positive,
    "webhooks": _str_list,
    "webhook_timeout": _positive,
    "webhook_attempts": _pos_int,
    "webhook_backoff": _nonneg,
    "webhook_queue": _pos_int,
    "alerts": None,
    "tracing": _bool,
    "tracing_exporter": _choice(("otlp", "console", "none")),
    "tracing_endpoint": _str,
    "tracing_service_name": _str,
}
_STATE_KEYS = {
    "backend": _choice(STATE_BACKENDS),
    "path": _str,
    "url": _str,
    "prefix": _str,
    "sync_interval": _positive,
}
_ALERT_KEYS = {
    "name": _str,
    "metric": _choice(ALERT_METRICS),
    "labels": _str_map,
    "op": _choice(ALERT_OPS),
    "threshold": _number,
    "window": _positive,
    "for": _nonneg,
}
_TOP_KEYS = {
    "server": None,
    "endpoints": None,
    "models": None,
    "routing": None,
    "cooperations": None,
    "plugins": None,
    "resilience": None,
    "monitoring": None,
    "state": None,
    "log_level": _choice(LOG_LEVELS, upper=True),
    "balancing": _choice(BALANCING),
}


def _fields(
    c: _Checker, table: Mapping[str, Any], key: str, spec: Mapping[str, Any]
) -> dict[str, Any]:
    c.known(table, key, spec)
    return {
        name: check(c, table[name], f"{key}.{name}" if key else name)
        for name, check in spec.items()
        if check is not None and name in table
    }


def _build(
    data: dict[str, Any], *, source: str, text: str, env: Mapping[str, str] | None
) -> SystemConfig:
    c = _Checker(source, text)
    c.known(data, "", _TOP_KEYS)
    top = _fields(c, data, "", _TOP_KEYS)
    server = ServerConfig(
        **_fields(c, c.table(data.get("server", {}), "server"), "server", _SERVER_KEYS)
    )
    environ = os.environ if env is None else env
    if ("server" not in data or "host" not in data["server"]) and environ.get("SERVER_HOST"):
        server.host = environ["SERVER_HOST"]
    if ("server" not in data or "port" not in data["server"]) and environ.get("SERVER_PORT"):
        server.port = _env_int(environ["SERVER_PORT"], "SERVER_PORT")
    if "log_level" not in data and environ.get("LOG_LEVEL"):
        top["log_level"] = _choice(LOG_LEVELS, upper=True)(c, environ["LOG_LEVEL"], "LOG_LEVEL")

    endpoints: dict[str, EndpointConfig] = {}
    for name, raw in c.table(data.get("endpoints", {}), "endpoints").items():
        key = f"endpoints.{name}"
        fields = _fields(c, c.table(raw, key), key, _ENDPOINT_KEYS)
        if "provider" not in fields:
            raise c.error(key, "missing 'provider' (the provider plugin, e.g. \"openai\")")
        if "api_key" in fields:
            fields.setdefault("api_keys", []).insert(0, fields.pop("api_key"))
        endpoints[name] = EndpointConfig(name=name, **fields)

    models: dict[str, ModelConfig] = {}
    for name, raw in c.table(data.get("models", {}), "models").items():
        key = f"models.{name}"
        table = c.table(raw, key)
        fields = _fields(c, table, key, _MODEL_KEYS)
        deployments = []
        if "deployments" in table:
            if "endpoint" in table or "path" in table:
                raise c.error(key, "give either endpoint/path or deployments, not both")
            items = table["deployments"]
            if not isinstance(items, list) or not items:
                raise c.error(f"{key}.deployments", "expected a non-empty array of tables")
            for i, item in enumerate(items):
                dkey = f"{key}.deployments[{i}]"
                dfields = _fields(c, c.table(item, dkey), dkey, _DEPLOYMENT_KEYS)
                for required in ("endpoint", "path"):
                    if required not in dfields:
                        raise c.error(dkey, f"missing {required!r}")
                deployments.append(DeploymentConfig(**dfields))
        else:
            if "endpoint" not in fields:
                raise c.error(key, "missing 'endpoint' (or 'deployments')")
            deployments.append(
                DeploymentConfig(
                    endpoint=fields.pop("endpoint"),
                    path=fields.pop("path", name),
                    weight=fields.pop("weight", 1.0),
                    max_concurrency=fields.pop("max_concurrency", None),
                )
            )
        for extra in ("endpoint", "path", "weight", "max_concurrency"):
            fields.pop(extra, None)
        price = Price()
        if "price" in table:
            pkey = f"{key}.price"
            price = Price(
                **_fields(
                    c, c.table(table["price"], pkey), pkey, {"input": _nonneg, "output": _nonneg}
                )
            )
        for i, dep in enumerate(deployments):
            if dep.endpoint not in endpoints:
                dkey = (
                    f"{key}.endpoint"
                    if len(deployments) == 1 and "deployments" not in table
                    else f"{key}.deployments[{i}].endpoint"
                )
                raise c.error(
                    dkey,
                    f"no endpoint {dep.endpoint!r}{did_you_mean(dep.endpoint, list(endpoints))}; "
                    f"defined endpoints: {', '.join(sorted(endpoints)) or 'none'}",
                )
        if fields.get("kind", "chat") == "chat":
            if "dimensions" in fields:
                raise c.error(
                    f"{key}.dimensions",
                    'only an embedding model (kind = "embedding") has dimensions',
                )
        elif "tier" in fields:
            raise c.error(
                f"{key}.tier", "an embedding model has no tier: it serves /v1/embeddings only"
            )
        models[name] = ModelConfig(name=name, deployments=deployments, price=price, **fields)

    cooperations: dict[str, CooperationConfig] = {}
    for name, raw in c.table(data.get("cooperations", {}), "cooperations").items():
        key = f"cooperations.{name}"
        table = c.table(raw, key)
        if name in models:
            raise c.error(key, f"{name!r} is already a model; a cooperation needs its own name")
        fields = _fields(c, table, key, _COOP_KEYS)
        stages = []
        if "stages" in table:
            if not isinstance(table["stages"], list):
                raise c.error(f"{key}.stages", "expected an array of tables")
            for i, stage in enumerate(table["stages"]):
                skey = f"{key}.stages[{i}]"
                sfields = _fields(
                    c, c.table(stage, skey), skey, {"model": _str, "task": _str, "prompt": _str}
                )
                if "model" not in sfields:
                    raise c.error(skey, "missing 'model'")
                stages.append(sfields)
        mode = fields.get("mode", "parallel")
        if mode == "pipeline" and not stages:
            raise c.error(key, "a pipeline needs 'stages' ([{ model = ..., task = ... }])")
        if mode != "pipeline" and not fields.get("models"):
            raise c.error(key, "missing 'models' (at least one model)")
        cooperations[name] = CooperationConfig(name=name, stages=stages, **fields)

    for name, coop in cooperations.items():
        named = list(coop.models) + [s["model"] for s in coop.stages]
        for i, model in enumerate(named):
            if model not in models:
                mkey = (
                    f"cooperations.{name}.models"
                    if i < len(coop.models)
                    else f"cooperations.{name}.stages"
                )
                raise c.error(
                    mkey,
                    f"no model {model!r}{did_you_mean(model, list(models))}; "
                    f"defined models: {', '.join(sorted(models)) or 'none'}",
                )
    for name, model in models.items():
        for fallback in model.fallbacks:
            if fallback not in models:
                raise c.error(
                    f"models.{name}.fallbacks",
                    f"no model {fallback!r}{did_you_mean(fallback, list(models))}",
                )
            if models[fallback].kind != model.kind:
                raise c.error(
                    f"models.{name}.fallbacks",
                    f"{fallback!r} is a {models[fallback].kind} model and {name!r} "
                    f"a {model.kind} model: a fallback must be of the same kind",
                )
    for name, coop in cooperations.items():
        for model_name in [*coop.models, *(s["model"] for s in coop.stages)]:
            if models[model_name].kind == "embedding":
                raise c.error(
                    f"cooperations.{name}",
                    f"{model_name!r} is an embedding model; cooperations use chat models",
                )

    routing = RoutingConfig(
        **_fields(c, c.table(data.get("routing", {}), "routing"), "routing", _ROUTING_KEYS)
    )
    targets = {*(m for m in models if models[m].kind == "chat"), *cooperations}
    for tier in TIERS:
        target = routing.target_for(tier)
        if target is not None and target not in targets:
            raise c.error(
                f"routing.{tier}",
                f"no model or cooperation {target!r}{did_you_mean(target, list(targets))}",
            )
    for task, target in routing.overrides.items():
        if target not in targets:
            raise c.error(
                f"routing.overrides.{task}",
                f"no model or cooperation {target!r}{did_you_mean(target, list(targets))}",
            )

    resilience = ResilienceConfig(
        **_fields(
            c,
            c.table(data.get("resilience", {}), "resilience"),
            "resilience",
            _RESILIENCE_KEYS,
        )
    )
    for low, high in (("backoff_base", "backoff_max"), ("cooldown_base", "cooldown_max")):
        if getattr(resilience, low) > getattr(resilience, high):
            raise c.error(
                f"resilience.{low}",
                f"{low} ({getattr(resilience, low):g}) is larger than {high} "
                f"({getattr(resilience, high):g}); make {low} <= {high}",
            )

    plugins_table = c.table(data.get("plugins", {}), "plugins")
    plugins = PluginsConfig(**_fields(c, plugins_table, "plugins", {"disabled": _str_list}))

    monitoring = _monitoring(c, data, models)
    state = StateConfig(**_fields(c, c.table(data.get("state", {}), "state"), "state", _STATE_KEYS))
    if state.backend == "redis" and not state.url:
        raise c.error("state.url", 'backend = "redis" needs url = "redis://host:6379/0"')

    return SystemConfig(
        source=source,
        server=server,
        endpoints=endpoints,
        models=models,
        routing=routing,
        cooperations=cooperations,
        plugins=plugins,
        resilience=resilience,
        monitoring=monitoring,
        state=state,
        **top,
    )


def _monitoring(
    c: _Checker, data: Mapping[str, Any], models: Mapping[str, Any]
) -> MonitoringConfig:
    """``[monitoring]`` and its ``[[monitoring.alerts]]`` rules."""
    table = c.table(data.get("monitoring", {}), "monitoring")
    fields = _fields(c, table, "monitoring", _MONITORING_KEYS)
    for i, url in enumerate(fields.get("webhooks", [])):
        if not url.startswith(("http://", "https://")):
            raise c.error(f"monitoring.webhooks[{i}]", f"expected an http(s) URL, got {url!r}")
    endpoint = fields.get("tracing_endpoint")
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise c.error("monitoring.tracing_endpoint", f"expected an http(s) URL, got {endpoint!r}")
    if fields.get("tracing"):
        from ._tracing import missing_packages

        missing = missing_packages(fields.get("tracing_exporter", "otlp"))
        if missing is not None:
            raise c.error(*missing)
    raw = table.get("alerts", [])
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        raise c.error("monitoring.alerts", "expected an array of tables ([[monitoring.alerts]])")
    rules: list[AlertRule] = []
    for i, item in enumerate(raw):
        key = f"monitoring.alerts[{i}]"
        rule = _fields(c, c.table(item, key), key, _ALERT_KEYS)
        for required in ("name", "metric", "threshold"):
            if required not in rule:
                extra = f" (one of {', '.join(ALERT_METRICS)})" if required == "metric" else ""
                raise c.error(key, f"missing {required!r}{extra}")
        if any(r.name == rule["name"] for r in rules):
            raise c.error(f"{key}.name", f"two alert rules are named {rule['name']!r}")
        for label, value in rule.get("labels", {}).items():
            if label != "model":
                raise c.error(
                    f"{key}.labels.{label}", f"unknown label {label!r}; valid labels: model"
                )
            if value not in models:
                raise c.error(
                    f"{key}.labels.model",
                    f"no model {value!r}{did_you_mean(value, list(models))}; "
                    f"defined models: {', '.join(sorted(models)) or 'none'}",
                )
        if "for" in rule:
            rule["for_"] = rule.pop("for")
        rules.append(AlertRule(**rule))
    return MonitoringConfig(alerts=rules, **fields)


def check_plugins(config: SystemConfig, plugins: Any) -> None:
    """Check names that need the plugin registry: providers, router, strategies."""
    text = ""
    source = config.source or "(config)"
    if config.path and config.path.is_file():
        try:
            text = config.path.read_text(encoding="utf-8")
        except OSError:
            text = ""
    c = _Checker(source, text)
    providers = plugins.names("provider")
    for name, endpoint in config.endpoints.items():
        if endpoint.provider not in providers:
            raise c.error(
                f"endpoints.{name}.provider",
                f"no provider plugin {endpoint.provider!r}{did_you_mean(endpoint.provider, providers)}; "
                f"installed: {', '.join(providers) or 'none'}",
            )
    routers = plugins.names("router")
    if config.routing.router not in routers:
        raise c.error(
            "routing.router",
            f"no router plugin {config.routing.router!r}{did_you_mean(config.routing.router, routers)}; "
            f"installed: {', '.join(routers) or 'none'}",
        )
    if config.routing.options:
        # A router's options are checked by the router itself; an error about one of
        # them (a threshold out of range) names this file and line, like any other key.
        try:
            plugins.get("router", config.routing.router)(config.routing.options)
        except ConfigError as exc:
            if exc.key and exc.key.startswith("routing.") and not exc.path:
                raise c.error(exc.key, exc.reason) from None
            raise
        except Exception:  # anything else surfaces where the router is built, as before
            pass
    strategies = plugins.names("strategy")
    for name, coop in config.cooperations.items():
        if coop.strategy and coop.strategy not in strategies:
            raise c.error(
                f"cooperations.{name}.strategy",
                f"no strategy plugin {coop.strategy!r}{did_you_mean(coop.strategy, strategies)}; "
                f"installed: {', '.join(strategies) or 'none'}",
            )
