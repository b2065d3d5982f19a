"""``coop plugin new KIND NAME``: scaffold a plugin distribution; ``coop completion SHELL``.

A scaffold is a complete distribution that installs and passes its own test at once:
``pyproject.toml`` declaring the ``coop`` entry point, ``src/coop_<name>/`` with a
working plugin of that kind, ``tests/`` loading it through the plugin manager and
running it on the offline ``simulated`` models, and a README.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from string import Template
from typing import Annotated, Literal

from cyclopts import App, Parameter

from .._errors import ValidationError

__all__ = ["KINDS", "completion", "plugin_app", "register", "scaffold"]

KINDS = ("provider", "router", "strategy", "service")
SHELLS = ("bash", "zsh", "fish")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,40}$")

plugin_app = App(name="plugin", help="Start a new plugin: coop plugin new KIND NAME.")


def register(app: App) -> None:
    app.command(plugin_app)
    app.command(completion)


@plugin_app.command(name="new")
def new(
    kind: str,
    name: str,
    /,
    *,
    dir: Annotated[Path | None, Parameter(name="--dir")] = None,
) -> int:
    """Scaffold a plugin distribution llm-coop-NAME of KIND (provider, router, strategy, service).

    Parameters
    ----------
    kind
        provider, router, strategy or service.
    name
        The plugin's name as coop.toml writes it: lower case letters, digits, '-' and '_'.
    dir
        Folder to create (default: ./llm-coop-NAME); it must not exist yet.
    """
    target = scaffold(kind, name, dir)
    print(f"created {target} (a {kind} plugin {name!r})")
    print(
        f"next: pip install -e {target} && pytest {target / 'tests'}"
        f"   # then: coop plugins | grep {name}"
    )
    return 0


def scaffold(kind: str, name: str, directory: Path | None = None) -> Path:
    """Write the distribution for plugin ``name`` of ``kind``; return its folder."""
    if kind not in KINDS:
        raise ValidationError(
            f"unknown plugin kind {kind!r}; valid kinds: {', '.join(KINDS)}", field="KIND"
        )
    if not _NAME.match(name):
        raise ValidationError(
            f"{name!r} is not a plugin name: use lower case letters, digits, '-' and '_', "
            "starting with a letter (e.g. 'shout')",
            field="NAME",
        )
    target = Path(directory) if directory is not None else Path(f"llm-coop-{name}")
    if target.exists():
        raise ValidationError(
            f"{target} already exists; choose another --dir or remove it", field="--dir"
        )
    package = "coop_" + name.replace("-", "_")
    words = re.split(r"[-_]", name)
    values = {
        "name": name,
        "dist": f"llm-coop-{name}",
        "package": package,
        "kind": kind,
        "Class": "".join(w.capitalize() for w in words if w),
        "hook": _HOOKS[kind],
    }
    files = {
        "pyproject.toml": _PYPROJECT,
        "README.md": _README,
        f"src/{package}/__init__.py": _MODULES[kind],
        f"tests/test_{package}.py": _TESTS[kind],
    }
    for relative, template in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(template).substitute(values), encoding="utf-8")
    return target


def completion(shell: Literal["bash", "zsh", "fish"], /) -> int:
    """Print the shell completion script for coop.

    Load it in the current shell with ``eval "$(coop completion bash)"``
    (zsh: ``source <(coop completion zsh)``; fish: ``coop completion fish | source``),
    or save it where your shell reads completions.

    Parameters
    ----------
    shell
        bash, zsh or fish.
    """
    from ._app import build_app

    sys.stdout.write(build_app().generate_completion(prog_name="coop", shell=shell))
    return 0


_HOOKS = {
    "provider": "coop_register_providers",
    "router": "coop_register_routers",
    "strategy": "coop_register_strategies",
    "service": "coop_register_services",
}

_PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.24"]
build-backend = "hatchling.build"

[project]
name = "$dist"
version = "0.1.0"
description = "coop $kind plugin: $name."
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["llm-coop"]

[project.optional-dependencies]
test = ["pytest>=8"]

# The entry point is what makes it a coop plugin: the group is `coop`,
# the name is the plugin's name (`coop plugins`, `[plugins] disabled`).
[project.entry-points.coop]
$name = "$package"

[tool.hatch.build.targets.wheel]
packages = ["src/$package"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

_README = """\
# $dist

A coop $kind plugin registering `$name`.

```sh
pip install -e .          # registers the entry point `$name` in the group `coop`
coop plugins              # lists $name, its distribution and what it registers
pytest                    # loads it through coop's plugin manager and runs it offline
```

Writing plugins: coop's guide, docs/plugins.md (one section per kind of plugin).
"""

_MODULES = {
    "provider": '''\
"""coop provider plugin `$name`: an upstream that answers by echoing the last user message.

Replace `chat` and `stream` with calls to your upstream (`self.send_json(...)` uses
coop's shared HTTP client, the endpoint's headers and timeouts). Users name it in
coop.toml as `[endpoints.X] provider = "$name"`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import coop
from coop import hookimpl

PRESET = coop.Preset(
    name="$name",
    base_url="$name://local",
    description="$name: echo models (a scaffold).",
    models=(coop.ModelInfo("$name-echo", 8192, 0.0, 0.0, tier="light", alias="${package}_echo"),),
)


class ${Class}Provider(coop.Provider):
    name = "$name"
    preset = PRESET
    requires_api_key = False  # True (the default) makes coop insist on [endpoints.X] api_keys

    def _prefix(self) -> str:
        # `[endpoints.X] options = { prefix = "..." }` arrives as self.endpoint.options.
        options = getattr(self.endpoint, "options", None) or {}
        return str(options.get("prefix", "echo: "))

    def _answer(self, request: coop.ChatRequest) -> str:
        messages = coop.to_wire(request)["messages"]
        users = [m for m in messages if m.get("role") == "user"]
        content = users[-1].get("content", "") if users else ""
        return self._prefix() + (content if isinstance(content, str) else str(content))

    async def chat(self, request: coop.ChatRequest, call: coop.ProviderCall) -> coop.ChatResponse:
        text = self._answer(request)
        return coop.from_wire(
            coop.ChatResponse,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:20]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": call.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": 1,
                    "completion_tokens": len(text.split()),
                    "total_tokens": 1 + len(text.split()),
                },
            },
        )

    async def stream(
        self, request: coop.ChatRequest, call: coop.ProviderCall
    ) -> AsyncIterator[coop.ChatChunk]:
        ident, created = f"chatcmpl-{uuid.uuid4().hex[:20]}", int(time.time())
        for delta, finish in (({"role": "assistant", "content": self._answer(request)}, None), ({}, "stop")):
            yield coop.from_wire(
                coop.ChatChunk,
                {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": call.model,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                },
            )

    async def list_models(self, call: coop.ProviderCall) -> list[str]:
        # The upstream's model ids; coop also calls it as the active health check.
        return [m.id for m in PRESET.models]

    async def aclose(self) -> None:
        # Release what this provider opened itself (never the shared self.http).
        return None


@hookimpl
def $hook(register):
    register(${Class}Provider)
''',
    "router": '''\
"""coop router plugin `$name`: long prompts go to the reasoning tier, the rest to light.

Users select it with `[routing] router = "$name"`; `[routing] options` arrive as
`self.settings`. The routing policy maps the tier to a model or cooperation.
"""

from __future__ import annotations

import coop
from coop import hookimpl


class ${Class}Router(coop.Router):
    name = "$name"
    description = "Long prompts to the reasoning tier, short ones to light."

    def __init__(self, settings=None):
        super().__init__(settings)
        self.threshold = int(self.settings.get("threshold", 40))  # words

    def analyze(self, messages):
        text = " ".join(m.get("content") or "" for m in messages if isinstance(m.get("content"), str))
        words = len(text.split())
        long = words >= self.threshold
        return coop.Analysis(
            task_type="reasoning" if long else "chat",  # one of coop.TASK_TYPES
            complexity="complex" if long else "simple",  # one of coop.COMPLEXITIES
            tier="reasoning" if long else "light",  # one of coop.TIERS
            reasons=[f"{words} words (threshold {self.threshold})"],
            signals={"words": words},
        )


@hookimpl
def $hook(register):
    register(${Class}Router)
''',
    "strategy": '''\
"""coop strategy plugin `$name`: keep the shortest answer.

Users select it with `[cooperations.X] strategy = "$name"`; `[cooperations.X] options`
arrive as `self.settings`.
"""

from __future__ import annotations

import coop
from coop import hookimpl


class ${Class}Strategy(coop.Strategy):
    name = "$name"

    async def integrate(self, candidates, context):
        best = min(candidates, key=lambda c: len(c.text))
        return coop.Integration(
            text=best.text,
            winner=best.model,
            confidence=1.0 / len(candidates),
            evidence={"lengths": {c.model: len(c.text) for c in candidates}},
        )


@hookimpl
def $hook(register):
    register(${Class}Strategy)
''',
    "service": '''\
"""coop service plugin `$name`: count the words with code, have a model title the text.

Users call it with `coop service $name --content "..."` or `POST /v1/services/$name`.
"""

from __future__ import annotations

import coop
from coop import hookimpl


class ${Class}Service(coop.Service):
    name = "$name"
    description = "Count the words (code), then have a model title the text."
    parameters = (coop.ServiceParameter("model", "model to ask", default="auto"),)

    async def process(self, content, parameters, context):
        if isinstance(content, bytes):
            raise coop.ServiceError("$name reads text only")
        words = len(content.split())
        title = await context.complete(
            f"A title for: {content}", model=parameters["model"], max_tokens=20
        )
        return coop.ServiceResult(result=f"# {title.text}\\n\\n{words} words", data={"words": words})


@hookimpl
def $hook(register):
    register(${Class}Service)
''',
}

_TEST_HEAD = '''\
"""Load `$name` through coop's plugin manager (its entry point) and run it offline."""

import anyio
import coop

import $package


def test_registered_through_the_entry_point():
    plugins = coop.load_plugins()
    info = plugins.infos["$name"]
    assert info.error is None, info.error
    assert info.distribution == "$dist"
    assert plugins.get("$kind", "$name") is $package.$registered
'''

_TESTS = {
    "provider": _TEST_HEAD.replace("$registered", "${Class}Provider")
    + """

def test_answers_through_the_dispatcher():
    config = coop.SystemConfig.from_dict({
        "endpoints": {"mine": {"provider": "$name", "options": {"prefix": "heard: "}}},
        "models": {"echo": {"endpoint": "mine", "path": "$name-echo", "tier": "light"}},
        "routing": {"light": "echo", "reasoning": "echo", "complex": "echo"},
    })

    async def main():
        async with coop.Dispatcher(config, health_checks=False) as dispatcher:
            request = coop.parse_chat_request(
                {"model": "echo", "messages": [{"role": "user", "content": "hello"}]}
            )
            return await dispatcher.run(dispatcher.plan(request))

    result = anyio.run(main)
    assert result.text == "heard: hello" and result.model == "echo"
""",
    "router": _TEST_HEAD.replace("$registered", "${Class}Router")
    + """

def test_routes_by_length():
    router = $package.${Class}Router({"threshold": 3})
    assert router.analyze([{"role": "user", "content": "hi"}]).tier == "light"
    assert router.analyze([{"role": "user", "content": "one two three four"}]).tier == "reasoning"


def test_picks_the_tier_target_through_the_dispatcher():
    config = coop.SystemConfig.from_dict({
        "endpoints": {"sim": {"provider": "simulated"}},
        "models": {
            "small": {"endpoint": "sim", "path": "sim-light", "tier": "light"},
            "big": {"endpoint": "sim", "path": "sim-reasoning", "tier": "reasoning"},
        },
        "routing": {"router": "$name", "light": "small", "reasoning": "big", "complex": "big",
                    "options": {"threshold": 3}},
    })

    async def main():
        async with coop.Dispatcher(config, health_checks=False) as dispatcher:
            short = coop.parse_chat_request({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
            long = coop.parse_chat_request(
                {"model": "auto", "messages": [{"role": "user", "content": "a b c d e f"}]}
            )
            return dispatcher.plan(short).target, dispatcher.plan(long).target

    assert anyio.run(main) == ("small", "big")
""",
    "strategy": _TEST_HEAD.replace("$registered", "${Class}Strategy")
    + """

def test_integrates_a_cooperation():
    config = coop.SystemConfig.from_dict({
        "endpoints": {"sim": {"provider": "simulated"}},
        "models": {
            "a": {"endpoint": "sim", "path": "sim-light", "tier": "light"},
            "b": {"endpoint": "sim", "path": "sim-large", "tier": "complex"},
        },
        "routing": {"light": "a", "reasoning": "b", "complex": "b"},
        "cooperations": {"pair": {"mode": "parallel", "models": ["a", "b"], "strategy": "$name"}},
    })

    async def main():
        async with coop.Dispatcher(config, health_checks=False) as dispatcher:
            request = coop.parse_chat_request(
                {"model": "pair", "messages": [{"role": "user", "content": "what is 2 + 3?"}]}
            )
            return await dispatcher.run(dispatcher.plan(request))

    result = anyio.run(main)
    lengths = result.cooperation.integration.evidence["lengths"]
    assert set(lengths) == {"a", "b"} and len(result.text) == min(lengths.values())
""",
    "service": _TEST_HEAD.replace("$registered", "${Class}Service")
    + """

def test_processes_through_the_service_manager():
    async def main():
        dispatcher = coop.Dispatcher(coop.SystemConfig(), health_checks=False)
        async with coop.ServiceManager(dispatcher) as manager:
            return await manager.process_request(service_type="$name", content="three small words")

    response = anyio.run(main)
    assert response.success, response.error
    assert response.data == {"words": 3} and response.calls == 1
""",
}
