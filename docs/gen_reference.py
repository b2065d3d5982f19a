"""Generate the reference pages of the docs site from the code itself.

- ``docs/reference/configuration.md`` from coop.toml's schema: the key specs in
  ``coop._config`` (``_SERVER_KEYS``, ``_ENDPOINT_KEYS``, ... and any ``_<SECTION>_KEYS``
  a new section adds), each key's type from its checker, its default from the attrs
  class behind the section, and its meaning from the ``#:`` comment on that class's
  field, else from the comment beside the key in a ``# coop.toml`` example of docs/*.md.
- ``docs/reference/cli.md`` from the cyclopts application (every command's help).

Run by mkdocs as a hook (``on_pre_build``) so the site never shows a stale reference,
or by hand: ``python docs/gen_reference.py``.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

DOCS = Path(__file__).resolve().parent
REFERENCE = DOCS / "reference"

#: Where each table's keys are checked, its attrs class, and how it is written.
#: A section missing here is found by convention: ``[foo]`` → ``_FOO_KEYS``, ``FooConfig``.
SECTIONS: list[tuple[str, str, str | None, str]] = [
    # (path shown, spec name in coop._config, attrs class, how the table is written)
    ("server", "_SERVER_KEYS", "ServerConfig", "[server]"),
    ("endpoints.NAME", "_ENDPOINT_KEYS", "EndpointConfig", "[endpoints.NAME]"),
    ("models.NAME", "_MODEL_KEYS", "ModelConfig", "[models.NAME]"),
    (
        "models.NAME.deployments[]",
        "_DEPLOYMENT_KEYS",
        "DeploymentConfig",
        "deployments = [{ ... }, ...] in [models.NAME]",
    ),
    ("models.NAME.price", "price", "Price", "price = { input = ..., output = ... }"),
    ("routing", "_ROUTING_KEYS", "RoutingConfig", "[routing]"),
    ("cooperations.NAME", "_COOP_KEYS", "CooperationConfig", "[cooperations.NAME]"),
    (
        "cooperations.NAME.stages[]",
        "stages",
        None,
        "stages = [{ model = ..., task = ... }, ...] in a pipeline",
    ),
    ("plugins", "plugins", "PluginsConfig", "[plugins]"),
    ("resilience", "_RESILIENCE_KEYS", "ResilienceConfig", "[resilience]"),
    ("monitoring", "_MONITORING_KEYS", "MonitoringConfig", "[monitoring]"),
    ("monitoring.alerts[]", "_ALERT_KEYS", "AlertRule", "[[monitoring.alerts]]"),
]

#: Keys checked inline in ``_build`` rather than through a ``_*_KEYS`` table.
INLINE_SPECS: dict[str, dict[str, str]] = {
    "price": {"input": "_nonneg", "output": "_nonneg"},
    "stages": {"model": "_str", "task": "_str", "prompt": "_str"},
    "plugins": {"disabled": "_str_list"},
}

#: Meanings the code does not carry as a ``#:`` comment nor the examples as a comment.
MEANINGS: dict[str, str] = {
    "log_level": "Logging level (also `LOG_LEVEL`).",
    "balancing": "How a model's deployments share traffic.",
    "server": "The gateway (`coop serve`).",
    "endpoints": "Endpoints: a provider plugin plus its settings.",
    "models": "Logical models: what clients and cooperations name.",
    "routing": 'How `model="auto"` picks a target.',
    "cooperations": "Named cooperations, also served as models.",
    "plugins": "Which installed plugins load.",
    "resilience": "Retries, circuits and key blocks (reliability.md).",
    "monitoring": "Alert rules, webhooks and tracing (monitoring.md).",
    "models.NAME.deployments": "Several deployments of one logical model, balanced.",
    "models.NAME.price": "USD per million tokens.",
    "models.NAME.price.input": "USD per million input (prompt) tokens.",
    "models.NAME.price.output": "USD per million output (completion) tokens.",
    "models.NAME.deployments[].endpoint": "The endpoint serving this deployment.",
    "models.NAME.deployments[].path": "The upstream model id on that endpoint.",
    "models.NAME.deployments[].weight": "Share of traffic relative to the other deployments.",
    "models.NAME.deployments[].max_concurrency": "Requests in flight to this deployment.",
    "models.NAME.endpoint": "The endpoint serving the model (one deployment).",
    "models.NAME.path": "The upstream model id.",
    "models.NAME.weight": "Weight of the single deployment.",
    "models.NAME.max_concurrency": "Requests in flight to the single deployment.",
    "cooperations.NAME.stages": "A pipeline's stages, run in order.",
    "cooperations.NAME.stages[].model": "The model (or cooperation) running this stage.",
    "cooperations.NAME.stages[].task": "A built-in task (analysis, summary, ...) or a `templates` key.",
    "cooperations.NAME.stages[].prompt": "This stage's own prompt template.",
    "plugins.disabled": "Plugins not to load (`simulated` and `rules` are essential).",
    "monitoring.alerts": "Alert rules (`[[monitoring.alerts]]`).",
    "monitoring.alerts[].name": "The alert's name in events and `coop alerts`.",
    "monitoring.alerts[].metric": "What is watched.",
    "monitoring.alerts[].labels": 'Narrow the metric, e.g. `{ model = "qwen3_8b" }`.',
    "monitoring.alerts[].op": "Comparison with the threshold.",
    "monitoring.alerts[].threshold": "The value compared with.",
    "state": "Where managed keys, limits, spend and shared health live.",
    "server.host": "Address the gateway listens on (also `SERVER_HOST`).",
    "server.port": "Port the gateway listens on (also `SERVER_PORT`).",
    "server.workers": "Worker processes serving the gateway.",
    "endpoints.NAME.base_url": "The upstream's API root; default: the provider's preset.",
    "endpoints.NAME.api_key": "One key (same as `api_keys = [...]` with one item).",
    "endpoints.NAME.connect_timeout": "Seconds to open a connection.",
    "endpoints.NAME.headers": "Extra HTTP headers sent upstream.",
    "models.NAME.description": "Shown by `coop models` and `GET /v1/models`.",
    "routing.reasoning": "Target (model or cooperation) of the reasoning tier.",
    "routing.complex": "Target (model or cooperation) of the complex tier.",
    "cooperations.NAME.models": "Members of a sequential or parallel cooperation.",
    "resilience.cooldown_max": "Longest cooldown of a circuit, in seconds.",
    "monitoring.webhooks": "URLs alert events are POSTed to.",
    "endpoints.NAME.provider": "The provider plugin serving the endpoint (required; `coop plugins` lists them).",
    "models.NAME.tier": "The tier the model serves: light, reasoning or complex.",
    "models.NAME.context_window": "Tokens the model accepts (prompt and answer); longer prompts are refused before the call.",
    "routing.light": "Target (model or cooperation) of the light tier.",
    "resilience.error_window": "Seconds over which `error_rate` is measured.",
    "server.max_body_bytes": "Largest request body in bytes (413 past it).",
    "server.url": "The gateway `coop health`/`coop status` call.",
    "server.allow_unauthenticated": "Serve without `api_keys` on a non-loopback address.",
}

_TYPES = {
    "_str": "string",
    "_port": "integer 1-65535",
    "_str_list": "array of strings",
    "_pos_int": "integer > 0",
    "_positive": "number > 0",
    "_nonneg": "number ≥ 0",
    "_bool": "boolean",
    "_fraction": "number in (0, 1]",
    "_str_map": "table of strings",
    "_any_table": "table",
    "_number": "number",
}


@attrs.frozen
class Key:
    """One documented coop.toml key."""

    path: str
    type: str
    default: str
    meaning: str
    table: str


def _config() -> Any:
    from coop import _config

    return _config


def _type(check: Any) -> str:
    if check is None:
        return "table"
    if isinstance(check, str):
        return _TYPES.get(check, check)
    name = getattr(check, "__name__", "")
    if name in _TYPES:
        return _TYPES[name]
    closure = dict(
        zip(
            getattr(check, "__code__", None).co_freevars if hasattr(check, "__code__") else (),
            (cell.cell_contents for cell in (check.__closure__ or ())),
            strict=False,
        )
    )
    if "options" in closure:
        return "one of " + ", ".join(f"`{o}`" for o in closure["options"])
    return name.strip("_") or "value"


def _field_comments(cls: type) -> dict[str, str]:
    """``#:`` comments above each field of ``cls`` (Sphinx's attribute doc comments)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    lines = source.splitlines()
    found: dict[str, str] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.AnnAssign | ast.Assign):
            continue
        target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
        if not isinstance(target, ast.Name):
            continue
        comment: list[str] = []
        row = node.lineno - 2
        while row >= 0 and lines[row].strip().startswith("#:"):
            comment.insert(0, lines[row].strip()[2:].strip())
            row -= 1
        if comment:
            found[target.id] = " ".join(comment)
    return found


def _defaults(cls: type | None) -> dict[str, Any]:
    if cls is None or not attrs.has(cls):
        return {}
    out: dict[str, Any] = {}
    for field in attrs.fields(cls):
        default = field.default
        if default is attrs.NOTHING:
            continue
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            if default.takes_self:
                continue
            default = default.factory()
        out[field.name.rstrip("_")] = default
    return out


def _toml(value: Any) -> str:
    if value is None or value == [] or value == {}:
        return ""
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    if isinstance(value, int | float):
        return f"`{value}`"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "`[" + ", ".join(f'"{v}"' for v in value) + "]`"
    return ""


_HEADER = re.compile(r"^\s*\[\[?([A-Za-z0-9_.\"-]+)\]\]?")
_LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=.*?\s#\s*(.+)$")


def _generic(section: str) -> str:
    parts = section.split(".")
    if parts[0] in ("endpoints", "models", "cooperations") and len(parts) > 1:
        return f"{parts[0]}.NAME"
    if section == "monitoring.alerts":
        return "monitoring.alerts[]"
    return section


def _example_comments(docs: Path = DOCS) -> dict[str, str]:
    """``key = value  # meaning`` in the docs' TOML examples, by generic key path."""
    found: dict[str, str] = {}
    fence = re.compile(r"^```toml[^\n]*\n(.*?)^```", re.S | re.M)
    for page in sorted(docs.glob("*.md")):
        for block in fence.findall(page.read_text(encoding="utf-8")):
            section = ""
            for line in block.splitlines():
                header = _HEADER.match(line)
                if header:
                    section = _generic(header.group(1).replace('"', ""))
                    continue
                match = _LINE.match(line)
                if not match:
                    continue
                key, comment = match.groups()
                path = f"{section}.{key}" if section else key
                found.setdefault(path, comment.strip())
    return found


def _sections() -> Iterator[tuple[str, dict[str, Any], type | None, str]]:
    cfg = _config()
    known = {spec for _, spec, _, _ in SECTIONS}
    for path, spec_name, cls_name, written in SECTIONS:
        spec = INLINE_SPECS.get(spec_name) or getattr(cfg, spec_name, None)
        if spec is None:
            continue
        yield path, spec, getattr(cfg, cls_name, None) if cls_name else None, written
    # sections added later by convention: [foo] → _FOO_KEYS and FooConfig
    for name, check in cfg._TOP_KEYS.items():
        spec_name = f"_{name.upper()}_KEYS"
        if check is not None or name in {p.split(".")[0] for p, *_ in SECTIONS}:
            continue
        if spec_name in known:
            continue
        spec = getattr(cfg, spec_name, None)
        if spec is None:
            raise LookupError(
                f"[{name}] has no key spec: expected coop._config.{spec_name} "
                "(or add the section to SECTIONS in docs/gen_reference.py)"
            )
        cls = getattr(cfg, f"{name.capitalize()}Config", None)
        yield name, spec, cls, f"[{name}]"


def config_keys(docs: Path = DOCS) -> list[Key]:
    """Every coop.toml key the schema accepts, with its type, default and meaning."""
    cfg = _config()
    examples = _example_comments(docs)
    keys: list[Key] = []
    top_defaults = _defaults(cfg.SystemConfig)
    for name, check in cfg._TOP_KEYS.items():
        meaning = MEANINGS.get(name) or examples.get(name, "")
        default = _toml(top_defaults.get(name)) if check is not None else ""
        keys.append(Key(name, _type(check), default, meaning, "top level"))
    for section, spec, cls, written in _sections():
        comments = _field_comments(cls) if cls is not None else {}
        defaults = _defaults(cls)
        for key, check in spec.items():
            path = f"{section}.{key}"
            meaning = (
                MEANINGS.get(path)
                or comments.get(key)
                or comments.get(f"{key}_")
                or examples.get(path.replace("[]", ""))
                or examples.get(path)
                or ""
            )
            kind = _type(check)
            if check is None and key in ("deployments", "stages", "alerts"):
                kind = "array of tables"
            keys.append(Key(path, kind, _toml(defaults.get(key)), meaning, written))
    return keys


def config_reference(docs: Path = DOCS) -> str:
    out = [
        "# Configuration reference",
        "",
        "<!-- generated by docs/gen_reference.py from coop._config: do not edit -->",
        "",
        "Every key `coop.toml` accepts, generated from the schema coop checks the file",
        "against, so it cannot fall behind. Unknown keys are errors. The guide with a",
        "complete example is [coop.toml](../configuration.md).",
        "",
    ]
    by_table: dict[str, list[Key]] = {}
    for key in config_keys(docs):
        by_table.setdefault(key.table, []).append(key)
    for table, keys in by_table.items():
        out += [f"## `{table}`" if table != "top level" else "## Top level", ""]
        out += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        for key in keys:
            meaning = key.meaning.replace("|", "\\|")
            kind = key.type.replace("|", "\\|")
            default = key.default.replace("|", "\\|")
            out.append(f"| `{key.path}` | {kind} | {default} | {meaning} |")
        out.append("")
    return "\n".join(out)


def cli_reference() -> str:
    os.environ.setdefault("COLUMNS", "100")
    from coop.cli._app import build_app

    body = build_app().generate_docs(output_format="markdown", heading_level=2)
    return "\n".join(
        [
            "# CLI reference",
            "",
            "<!-- generated by docs/gen_reference.py from the cyclopts app: do not edit -->",
            "",
            "Every `coop` command and option, generated from the application itself",
            "(`coop COMMAND --help` prints the same). Commands added by installed plugins",
            "(`coop_register_commands`) appear too. The guide is [the CLI](../cli.md).",
            "",
            body,
        ]
    )


def write(reference: Path = REFERENCE) -> list[Path]:
    reference.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("configuration.md", config_reference()), ("cli.md", cli_reference())):
        path = reference / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


#: Operations pages other features write; each joins the nav's Operations section once
#: it exists (mkdocs builds every page anyway, so strict mode checks their links either way).
OPERATIONS = (
    ("Deployment: Docker, Kubernetes, replicas", "deploy.md"),
    ("Managed keys", "keys.md"),
    ("Shared state: SQLite and Redis", "state.md"),
)


def on_config(config: Any, **_: Any) -> Any:
    """mkdocs hook: list the operations pages that exist under Operations."""
    docs = Path(config["docs_dir"])
    for section in config["nav"] or ():
        if isinstance(section, dict) and "Operations" in section:
            pages = section["Operations"]
            listed = {next(iter(p.values())) if isinstance(p, dict) else p for p in pages}
            for title, page in OPERATIONS:
                if (docs / page).is_file() and page not in listed:
                    pages.append({title: page})
    return config


def on_pre_build(config: Any, **_: Any) -> None:
    """mkdocs hook: regenerate the reference pages before every build."""
    write(Path(config["docs_dir"]) / "reference")


if __name__ == "__main__":
    for path in write():
        print(path)
