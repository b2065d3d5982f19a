"""OpenAI chat wire types: the vocabulary every layer of coop speaks.

Design points, and why:

* **Lossless.** A gateway must forward what it does not understand, so every class keeps
  unknown keys in ``extra`` and writes them back, and optional fields default to the
  sentinel :data:`UNSET` so that an absent key stays absent while an explicit ``null``
  stays ``null``: ``to_wire(from_wire(ChatRequest, d)) == d``.
* **Strict.** A wrong type is an error naming the full path and the value
  (``messages[2].content: expected a string, an array or null, got 5``); nothing is
  coerced (``"0.5"`` is not a number, ``True`` is not an integer). Optional fields
  accept ``null`` everywhere because many SDKs send nulls for unset parameters.
* **Fast.** The structure and unstructure functions of each class are built once at
  import from its type hints (no per-call reflection) and registered on a cattrs
  :data:`converter`, so ``converter.structure(x, list[ChatMessage])`` works too.
  Values of ``dict``/``Any`` fields and of ``extra`` are shared, not copied.
"""

from __future__ import annotations

import enum
import json
import os
import time
import types
from collections.abc import Callable, Iterable
from typing import Any, Final, Literal, TypeAlias, TypeVar, Union, get_args, get_origin

import attrs
import cattrs

from ._errors import ValidationError

__all__ = [
    "MESSAGE_ROLES",
    "SSE_DONE",
    "UNSET",
    "ChatChunk",
    "ChatMessage",
    "ChatRequest",
    "ChatResponse",
    "Choice",
    "ChunkChoice",
    "ContentPart",
    "Delta",
    "FunctionCall",
    "FunctionDefinition",
    "Tool",
    "ToolCall",
    "Unset",
    "Usage",
    "chunk_to_sse",
    "converter",
    "from_wire",
    "parse_chat_request",
    "response_json",
    "to_wire",
    "validate_request",
]


class _UnsetType(enum.Enum):
    """Type of :data:`UNSET`; an enum so ``x is UNSET`` narrows for type checkers."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


#: Default of optional fields: the key was absent on the wire (``None`` means ``null``).
UNSET: Final = _UnsetType.UNSET
Unset: TypeAlias = Literal[_UnsetType.UNSET]

MESSAGE_ROLES: Final = ("system", "developer", "user", "assistant", "tool", "function")

_T = TypeVar("_T")
_W = TypeVar("_W", bound="_Wire")


def _new_id() -> str:
    return "chatcmpl-" + os.urandom(12).hex()


def _now() -> int:
    return int(time.time())


class _Wire:
    """Base of the wire classes: compact repr and ``to_wire``/``from_wire`` shortcuts."""

    __slots__ = ()

    def __repr__(self) -> str:
        parts = []
        for a in attrs.fields(type(self)):  # type: ignore[arg-type]
            v = getattr(self, a.name)
            if v is not UNSET and not (a.name == "extra" and not v):
                parts.append(f"{a.name}={v!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict of this object (see :func:`to_wire`)."""
        return _UNSTRUCTURE[type(self)](self)  # type: ignore[no-any-return]

    @classmethod
    def from_wire(cls: type[_W], data: Any) -> _W:
        """Build and type-check from decoded JSON (see :func:`from_wire`)."""
        return from_wire(cls, data)


# --------------------------------------------------------------------------- classes


@attrs.define(kw_only=True, repr=False)
class ContentPart(_Wire):
    """One part of a multi-part message content (text, image, audio, file, refusal)."""

    type: str
    text: str | Unset | None = UNSET
    image_url: dict[str, Any] | Unset | None = UNSET
    input_audio: dict[str, Any] | Unset | None = UNSET
    file: dict[str, Any] | Unset | None = UNSET
    refusal: str | Unset | None = UNSET
    extra: dict[str, Any] = attrs.field(factory=dict)


@attrs.define(kw_only=True, repr=False)
class FunctionCall(_Wire):
    """A function name and its JSON-encoded arguments (partial in stream deltas)."""

    name: str | Unset | None = UNSET
    arguments: str | Unset | None = UNSET
    extra: dict[str, Any] = attrs.field(factory=dict)


@attrs.define(kw_only=True, repr=False)
class ToolCall(_Wire):
    """A tool call of an assistant message; ``index`` only appears in stream deltas."""

    index: int | Unset | None = UNSET
    id: str | Unset | None = UNSET
    type: str | Unset | None = UNSET
    function: FunctionCall | Unset | None = UNSET
    #: Custom (free-form input) tool calls: ``{"name", "input"}``.
    custom: dict[str, Any] | Unset | None = UNSET
    extra: dict[str, Any] = attrs.field(factory=dict)


@attrs.define(kw_only=True, repr=False)
class FunctionDefinition(_Wire):
    """A function the model may call: name, description, JSON-schema parameters."""

    name: str
    description: str | Unset | None = UNSET
    parameters: dict[str, Any] | Unset | None = UNSET
    strict: bool | Unset | None = UNSET
    extra: dict[str, Any] = attrs.field(factory=dict)


@attrs.define(kw_only=True, repr=False)
class Tool(_Wire):
    """A tool offered to the model: ``function`` tools, or ``custom`` ones."""

    type: str
    function: FunctionDefinition | Unset | None = UNSET
    custom: dict[str, Any] | Unset | None = UNSET
    extra: dict[str, Any] = attrs.field(factory=dict)


@attrs.define(kw_only=True, repr=False)
class ChatMessage(_Wire):
    """A message of a request's conversation, or the message of a response choice."""

    role: str = attrs.field(metadata={"expects": "one of " + ", ".join(MESSAGE_ROLES)})
    content: str | list[ContentPart] | Unset | None = UNSET
    name: str | Unset | None = UNSET
    tool_calls: list[ToolCall] | Unset | None = UNSET
    tool_call_id: str | Unset | None = UNSET
    refusal: str | Unset | None = UNSET
    #: DeepSeek-style reasoning text returned beside the answer.
    reasoning_content: str | Unset | None = UNSET
    audio: dict[str, Any] | Unset | None = UNSET
    function_call: FunctionCall | Unset | None = UNSET
    annotations: list[dict[str, Any]] | Unset | None = UNSET
    extra: dict[str, Any] = attrs.field(factory=dict)

    @property
    def text(self) -> str:
        """The text of the content: the string, or the text parts joined by newlines."""
        content = self.content
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "\n".join(p.text for p in content if isinstance(p.text, str))
        return ""


@attrs.define(kw_only=True, repr=False)
class ChatRequest(_Wire):
    """A ``POST /v1/chat/completions`` body with every OpenAI parameter typed."""

    model: str
    messages: list[ChatMessage]
    frequency_penalty: float | Unset | None = UNSET
    logit_bias: dict[str, float] | Unset | None = UNSET
    logprobs: bool | Unset | None = UNSET
    top_logprobs: int | Unset | None = UNSET
    max_tokens: int | Unset | None = UNSET
    max_completion_tokens: int | Unset | None = UNSET
    n: int | Unset | None = UNSET
    presence_penalty: float | Unset | None = UNSET
    response_format: dict[str, Any] | Unset | None = UNSET
    seed: int | Unset | None = UNSET
    service_tier: str | Unset | None = UNSET
    stop: str | list[str] | Unset | None = UNSET
    stream: bool | Unset | None = UNSET
    stream_options: dict[str, Any] | Unset | None = UNSET
    temperature: float | Unset | None = UNSET
    top_p: float | Unset | None = UNSET
    tools: list[Tool] | Unset | None = UNSET
    tool_choice: str | dict[str, Any] | Unset | None = UNSET
    parallel_tool_calls: bool | Unset | None = UNSET
    user: str | Unset | None = UNSET
    modalities: list[str] | Unset | None = UNSET
    audio: dict[str, Any] | Unset | None = UNSET
    prediction: dict[str, Any] | Unset | None = UNSET
    reasoning_effort: str | Unset | None = UNSET
    metadata: dict[str, str] | Unset | None = UNSET
    store: bool | Unset | None = UNSET
    web_search_options: dict[str, Any] | Unset | None = UNSET
    verbosity: str | Unset | None = UNSET
    prompt_cache_key: str | Unset | None = UNSET
    prompt_cache_retention: str | Unset | None = UNSET
    prompt_cache_options: dict[str, Any] | Unset | None = UNSET
    safety_identifier: str | Unset | None = UNSET
    moderation: dict[str, Any] | Unset | None = UNSET
    #: Deprecated by OpenAI in favour of ``tools``/``tool_choice``; still forwarded.
    functions: list[FunctionDefinition] | Unset | None = UNSET
    function_call: str | dict[str, Any] | Unset | None = UNSET
    extra: dict[str, Any] = attrs.field(factory=dict)
    #: The decoded JSON this request was parsed from by :func:`parse_chat_request`:
    #: providers copy it for the upstream body instead of writing the request out
    #: again. Never on the wire as a field, not compared, not copied by
    #: ``attrs.evolve``; code that changes a request in place must set it back to ``None``.
    source: dict[str, Any] | None = attrs.field(
        default=None, init=False, eq=False, metadata={"wire": False}
    )

    def wire_messages(self) -> list[dict[str, Any]]:
        """The messages as OpenAI-shaped dicts (what routers and templates read).

        The client's own JSON when the request was parsed from it: nothing is written
        out again. Read-only: a caller that edits them builds a new request instead.
        """
        source = self.source
        if source is not None:
            messages = source.get("messages")
            if isinstance(messages, list):
                return messages
        return [to_wire(message) for message in self.messages]

    def prompt_text(self) -> str:
        """The text of every message, joined by newlines (what routers analyse)."""
        return "\n".join(t for t in (m.text for m in self.messages) if t)


@attrs.define(kw_only=True, repr=False)
class Usage(_Wire):
    """Token counts; ``estimated`` (coop-only, never on the wire) marks local counts."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = attrs.field(
        default=attrs.Factory(lambda s: s.prompt_tokens + s.completion_tokens, takes_self=True)
    )
    prompt_tokens_details: dict[str, Any] | Unset | None = UNSET
    completion_tokens_details: dict[str, Any] | Unset | None = UNSET
    #: True when coop counted the tokens itself because the upstream did not say.
    estimated: bool = attrs.field(default=False, metadata={"wire": False})
    extra: dict[str, Any] = attrs.field(factory=dict)


def _response_message(msg: ChatMessage) -> dict[str, Any]:
    """A response's message: OpenAI requires ``content`` and ``refusal``, even as null.

    Some upstreams leave them out; filling them here keeps coop's output schema-valid
    without making request messages (where they are optional) grow keys.
    """
    data: dict[str, Any] = _UNSTRUCTURE[ChatMessage](msg)
    if "content" not in data or "refusal" not in data:
        data = dict(data) if isinstance(msg, dict) else data  # never alter a caller's dict
        data.setdefault("content", None)
        data.setdefault("refusal", None)
    return data


def _or_stop(reason: str | None) -> str:
    return "stop" if reason is None else reason


@attrs.define(kw_only=True, repr=False)
class Choice(_Wire):
    """One choice of a response; ``finish_reason`` and ``logprobs`` are always written.

    OpenAI's schema allows no null ``finish_reason`` in a whole response, so a missing
    or null one (some upstreams) is written as ``"stop"``.
    """

    index: int = 0
    message: ChatMessage = attrs.field(metadata={"unstructure": _response_message})
    finish_reason: str | None = attrs.field(default="stop", metadata={"unstructure": _or_stop})
    logprobs: dict[str, Any] | None = None
    extra: dict[str, Any] = attrs.field(factory=dict)


@attrs.define(kw_only=True, repr=False)
class ChatResponse(_Wire):
    """A whole (non-streamed) chat completion."""

    id: str = attrs.field(factory=_new_id)
    object: str = "chat.completion"
    created: int = attrs.field(factory=_now)
    model: str
    choices: list[Choice] = attrs.field(factory=list)
    usage: Usage | Unset | None = UNSET
    system_fingerprint: str | Unset | None = UNSET
    service_tier: str | Unset | None = UNSET
    extra: dict[str, Any] = attrs.field(factory=dict)
    #: The upstream's JSON body, when it is exactly what coop would write for this
    #: response (a provider sets it; see ``OpenAICompatibleProvider.verbatim``): the
    #: gateway then sends these bytes instead of serialising again. Never on the wire
    #: as a field, not compared, not copied by ``attrs.evolve``; code that changes a
    #: response in place must set it back to ``None``.
    source: bytes | None = attrs.field(default=None, init=False, eq=False, metadata={"wire": False})

    @property
    def text(self) -> str:
        """The text of the first choice, or ``""``."""
        return self.choices[0].message.text if self.choices else ""

    @classmethod
    def build(
        cls,
        model: str,
        text: str | None,
        *,
        finish_reason: str = "stop",
        usage: Usage | None = None,
        id: str | None = None,
        created: int | None = None,
        reasoning_content: str | None = None,
        tool_calls: Iterable[ToolCall | dict[str, Any]] | None = None,
    ) -> ChatResponse:
        """A one-choice assistant response with every field OpenAI's schema requires.

        Engines and providers use this instead of assembling the nesting by hand, so
        ``refusal: null`` and ``logprobs: null`` are never forgotten.
        """
        message = ChatMessage(role="assistant", content=text, refusal=None)
        if reasoning_content is not None:
            message.reasoning_content = reasoning_content
        if tool_calls is not None:
            message.tool_calls = _tool_calls(tool_calls)
        return cls(
            id=id or _new_id(),
            created=_now() if created is None else created,
            model=model,
            choices=[Choice(message=message, finish_reason=finish_reason, logprobs=None)],
            usage=UNSET if usage is None else usage,
        )


@attrs.define(kw_only=True, repr=False)
class Delta(_Wire):
    """What one stream chunk adds to a choice's message."""

    role: str | Unset | None = UNSET
    content: str | Unset | None = UNSET
    tool_calls: list[ToolCall] | Unset | None = UNSET
    refusal: str | Unset | None = UNSET
    reasoning_content: str | Unset | None = UNSET
    function_call: FunctionCall | Unset | None = UNSET
    extra: dict[str, Any] = attrs.field(factory=dict)


@attrs.define(kw_only=True, repr=False)
class ChunkChoice(_Wire):
    """One choice of a stream chunk; ``finish_reason`` is always written (null until the end)."""

    index: int = 0
    delta: Delta = attrs.field(factory=Delta)
    finish_reason: str | None = None
    logprobs: dict[str, Any] | Unset | None = UNSET
    extra: dict[str, Any] = attrs.field(factory=dict)


@attrs.define(kw_only=True, repr=False)
class ChatChunk(_Wire):
    """One ``chat.completion.chunk`` of a stream."""

    id: str = attrs.field(factory=_new_id)
    object: str = "chat.completion.chunk"
    created: int = attrs.field(factory=_now)
    model: str
    choices: list[ChunkChoice] = attrs.field(factory=list)
    usage: Usage | Unset | None = UNSET
    system_fingerprint: str | Unset | None = UNSET
    service_tier: str | Unset | None = UNSET
    extra: dict[str, Any] = attrs.field(factory=dict)

    @property
    def text(self) -> str:
        """The content added to the first choice by this chunk, or ``""``."""
        if self.choices:
            content = self.choices[0].delta.content
            if isinstance(content, str):
                return content
        return ""

    @classmethod
    def build(
        cls,
        model: str,
        content: str | None = None,
        *,
        id: str | None = None,
        created: int | None = None,
        role: str | None = None,
        finish_reason: str | None = None,
        reasoning_content: str | None = None,
        tool_calls: Iterable[ToolCall | dict[str, Any]] | None = None,
        usage: Usage | None = None,
        index: int = 0,
    ) -> ChatChunk:
        """A one-choice chunk; pass the same ``id`` and ``created`` for a whole stream.

        Arguments left ``None`` are absent from the delta. A chunk given only ``usage``
        has no choices, as OpenAI sends the final usage chunk.
        """
        chunk = cls(
            id=id or _new_id(),
            created=_now() if created is None else created,
            model=model,
        )
        if usage is not None:
            chunk.usage = usage
            if (
                content is None
                and role is None
                and finish_reason is None
                and reasoning_content is None
                and tool_calls is None
            ):
                return chunk
        delta = Delta()
        if role is not None:
            delta.role = role
        if content is not None:
            delta.content = content
        if reasoning_content is not None:
            delta.reasoning_content = reasoning_content
        if tool_calls is not None:
            delta.tool_calls = _tool_calls(tool_calls)
        chunk.choices.append(
            ChunkChoice(index=index, delta=delta, finish_reason=finish_reason, logprobs=None)
        )
        return chunk


def _tool_calls(calls: Iterable[ToolCall | dict[str, Any]]) -> list[ToolCall]:
    return [c if isinstance(c, ToolCall) else from_wire(ToolCall, c) for c in calls]


_CLASSES: Final[tuple[type[_Wire], ...]] = (
    ContentPart,
    FunctionCall,
    ToolCall,
    FunctionDefinition,
    Tool,
    ChatMessage,
    ChatRequest,
    Usage,
    Choice,
    ChatResponse,
    Delta,
    ChunkChoice,
    ChatChunk,
)

# ------------------------------------------------------------ compiled (un)structuring

_Check: TypeAlias = Callable[[Any], Any]


class _Invalid(Exception):
    """Internal: a type error deep in a structure; callers prepend their key to ``path``."""

    def __init__(self, message: str, value: Any, key: str | int | None = None) -> None:
        self.message, self.value = message, value
        self.path: list[str | int] = [] if key is None else [key]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _json_kind(value: Any) -> str:
    """How a JSON user would name the value's type."""
    if value is None:
        return "null"
    for cls, name in _JSON_KINDS:
        if isinstance(value, cls):
            return name
    return type(value).__name__


_JSON_KINDS: Final = (
    (bool, "a boolean"),
    (int | float, "a number"),
    (str, "a string"),
    (list, "an array"),
    (dict, "an object"),
)


def _path(parts: Iterable[str | int]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def _to_error(exc: _Invalid, prefix: str = "") -> ValidationError:
    field = _path(reversed(exc.path))
    if prefix:
        field = f"{prefix}.{field}" if field and not field.startswith("[") else prefix + field
    return ValidationError(exc.message, field=field or None, value=exc.value)


class _Kind:
    """How one type hint is checked, unstructured and described in messages."""

    __slots__ = ("check", "classes", "desc", "unstructure")

    def __init__(
        self,
        check: _Check | None,
        unstructure: _Check | None,
        desc: str,
        classes: frozenset[type] | None,
    ) -> None:
        #: ``None`` means the value is taken and written as is.
        self.check, self.unstructure, self.desc = check, unstructure, desc
        #: The JSON value classes this kind accepts (``None``: any).
        self.classes = classes


_SCALARS: Final[dict[Any, tuple[str, frozenset[type]]]] = {
    str: ("a string", frozenset({str})),
    int: ("an integer", frozenset({int})),
    float: ("a number", frozenset({int, float})),
    bool: ("a boolean", frozenset({bool})),
}

_STRUCTURE: dict[type, _Check] = {}
_UNSTRUCTURE: dict[type, _Check] = {}


def _scalar_check(desc: str, classes: frozenset[type], tp: type) -> _Check:
    def check(v: Any) -> Any:
        if v.__class__ in classes:
            return v
        # Subclasses (a StrEnum, an IntEnum) are fine; bool is never a number.
        if (isinstance(v, tp) and not isinstance(v, bool)) or (tp is float and _is_int(v)):
            return v
        raise _Invalid(f"expected {desc}, got {_show(v)}", v)

    return check


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _compile(tp: Any) -> _Kind:
    if tp is Any:
        return _Kind(None, None, "any value", None)
    if tp in _SCALARS:
        desc, classes = _SCALARS[tp]
        return _Kind(_scalar_check(desc, classes, tp), None, desc, classes)
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return _compile_union(tp)
    if origin is list:
        return _compile_list(_compile(get_args(tp)[0]))
    if origin is dict:
        return _compile_dict(_compile(get_args(tp)[1]))
    if isinstance(tp, type) and issubclass(tp, _Wire):
        # Late-bound: the class's own functions may not exist yet (recursion).
        def check(v: Any) -> Any:
            return _STRUCTURE[tp](v)

        def unstructure(v: Any) -> Any:
            return _UNSTRUCTURE[v.__class__](v) if v.__class__ is not dict else v

        return _Kind(check, unstructure, "an object", frozenset({dict}))
    raise TypeError(f"coop._wire cannot compile the type {tp!r}")  # a bug in this module


def _compile_list(item: _Kind) -> _Kind:
    item_check, item_unstructure = item.check, item.unstructure

    def check(v: Any) -> Any:
        if v.__class__ is not list:
            raise _Invalid(f"expected an array, got {_show(v)}", v)
        if item_check is None:
            return v
        out = []
        for i, x in enumerate(v):
            try:
                out.append(item_check(x))
            except _Invalid as e:
                e.path.append(i)
                raise
        return out

    unstructure = None
    if item_unstructure is not None:
        u = item_unstructure

        def unstructure(v: Any) -> Any:
            return [u(x) for x in v]

    return _Kind(check, unstructure, "an array", frozenset({list}))


def _compile_dict(value: _Kind) -> _Kind:
    value_check = value.check

    def check(v: Any) -> Any:
        if not isinstance(v, dict):
            raise _Invalid(f"expected an object, got {_show(v)}", v)
        if value_check is not None:
            for k, x in v.items():
                try:
                    value_check(x)
                except _Invalid as e:
                    e.path.append(k)
                    raise
        return v

    return _Kind(check, None, "an object", frozenset({dict}))


def _compile_union(tp: Any) -> _Kind:
    args = [a for a in get_args(tp) if a != Unset]
    nullable = type(None) in args
    kinds = [_compile(a) for a in args if a is not type(None)]
    desc = ", ".join(k.desc for k in kinds)
    if nullable:
        desc = f"{desc} or null"
    elif len(kinds) > 1:
        head, _, last = desc.rpartition(", ")
        desc = f"{head} or {last}"
    if len(kinds) == 1:
        return _compile_optional(kinds[0], nullable, desc)
    return _compile_dispatch(kinds, nullable, desc)


def _compile_optional(kind: _Kind, nullable: bool, desc: str) -> _Kind:
    """``X | None``: null passes, anything else is checked as ``X``."""
    inner, inner_unstructure = kind.check, kind.unstructure
    if inner is None:
        return _Kind(None, None, "any value", None)
    if not nullable:
        return _Kind(inner, inner_unstructure, desc, kind.classes)
    check_inner = inner

    def check(v: Any) -> Any:
        return None if v is None else check_inner(v)

    unstructure = None
    if inner_unstructure is not None:
        u = inner_unstructure

        def unstructure(v: Any) -> Any:
            return None if v is None else u(v)

    return _Kind(check, unstructure, desc, kind.classes)


def _compile_dispatch(kinds: list[_Kind], nullable: bool, desc: str) -> _Kind:
    """Several JSON shapes (``str | list[ContentPart]``): dispatch on the value's class."""
    table: dict[type, _Check | None] = {}
    for kind in kinds:
        assert kind.classes is not None, "Any inside a union is not supported"
        for cls in kind.classes:
            table.setdefault(cls, kind.check)
    message = f"expected {desc}, got "
    u_list = next((k.unstructure for k in kinds if k.classes and list in k.classes), None)
    u_obj = next((k.unstructure for k in kinds if k.classes and dict in k.classes), None)

    def check(v: Any) -> Any:
        try:
            c = table[v.__class__]
        except KeyError:
            if v is None and nullable:
                return None
            for cls, c2 in table.items():  # subclasses of str, int...
                if isinstance(v, cls) and not isinstance(v, bool):
                    return v if c2 is None else c2(v)
            raise _Invalid(message + _show(v), v) from None
        return v if c is None else c(v)

    def unstructure(v: Any) -> Any:
        if v.__class__ is list:
            return v if u_list is None else u_list(v)
        if isinstance(v, _Wire) and u_obj is not None:
            return u_obj(v)
        return v

    return _Kind(check, unstructure, desc, frozenset(table))


_EXTRA: Final = object()


def _build(cls: type[_Wire]) -> tuple[_Check, _Check]:
    """The structure and unstructure functions of one wire class, made once."""
    hints = _hints(cls)
    table: dict[str, _Check | None] = {}
    required: list[tuple[str, str]] = []
    lines = [
        "def unstructure(o):",
        "    if o.__class__ is dict:",
        "        return o",
        "    d = {}",
    ]
    namespace: dict[str, Any] = {"UNSET": UNSET}
    for a in attrs.fields(cls):  # type: ignore[arg-type]
        if a.name == "extra" or not a.metadata.get("wire", True):
            continue
        kind = _compile(hints[a.name])
        table[a.name] = kind.check
        if a.default is attrs.NOTHING:
            required.append((a.name, a.metadata.get("expects", kind.desc)))
        value = "v"
        unstructure_value = a.metadata.get("unstructure", kind.unstructure)
        if unstructure_value is not None:
            namespace[f"u_{a.name}"] = unstructure_value
            value = f"u_{a.name}(v)"
        if a.default is UNSET:
            lines += [
                f"    v = o.{a.name}",
                "    if v is not UNSET:",
                f"        d[{a.name!r}] = {value}",
            ]
        elif value == "v":
            lines.append(f"    d[{a.name!r}] = o.{a.name}")
        else:
            lines += [f"    v = o.{a.name}", f"    d[{a.name!r}] = {value}"]
    lines += ["    e = o.extra", "    if e:", "        d.update(e)", "    return d"]
    exec("\n".join(lines), namespace)  # generated once per class, from its own field names
    unstructure: _Check = namespace["unstructure"]
    unstructure.__qualname__ = f"unstructure_{cls.__name__}"

    get = table.get
    missing = tuple(required)

    def structure(d: Any) -> Any:
        if not isinstance(d, dict):
            raise _Invalid(f"expected an object, got {_show(d)}", d)
        kw: dict[str, Any] = {}
        extra = None
        for k, v in d.items():
            c = get(k, _EXTRA)
            if c is None:
                kw[k] = v
            elif c is _EXTRA:
                if extra is None:
                    extra = {}
                extra[k] = v
            else:
                try:
                    kw[k] = c(v)  # type: ignore[operator]
                except _Invalid as e:
                    e.path.append(k)
                    raise
        for name, desc in missing:
            if name not in kw:
                raise _Invalid(f"required field is missing; expected {desc}", None, name)
        if extra is not None:
            kw["extra"] = extra
        return cls(**kw)

    structure.__qualname__ = f"structure_{cls.__name__}"
    return structure, unstructure


def _hints(cls: type) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(cls, globalns=globals(), localns={"Unset": Unset})


#: The cattrs converter carrying coop's hooks (``converter.structure(x, list[ChatMessage])``).
#: Without detailed validation so a :class:`ValidationError` propagates as it is.
converter: Final = cattrs.Converter(detailed_validation=False)

for _cls in _CLASSES:
    _STRUCTURE[_cls], _UNSTRUCTURE[_cls] = _build(_cls)


def _cattrs_hook(cls: type[_Wire]) -> Callable[[Any, Any], Any]:
    def hook(data: Any, _type: Any) -> Any:
        return from_wire(cls, data)

    return hook


for _cls in _CLASSES:
    converter.register_structure_hook(_cls, _cattrs_hook(_cls))
    converter.register_unstructure_hook(_cls, _UNSTRUCTURE[_cls])
del _cls


# ------------------------------------------------------------------------ public API


def from_wire(cls: type[_T], data: Any) -> _T:
    """Build ``cls`` from decoded JSON, checking every type on the way.

    Raises :class:`coop.ValidationError` whose ``field`` is the full path of the
    first offending value (``messages[2].content``) and whose ``value`` is that value.
    """
    fn = _STRUCTURE.get(cls)
    if fn is None:
        return converter.structure(data, cls)
    try:
        return fn(data)  # type: ignore[no-any-return]
    except _Invalid as e:
        raise _to_error(e) from None


def to_wire(obj: Any) -> Any:
    """The JSON-ready form of a wire object (a dict), or of a list of them.

    ``UNSET`` fields are left out, ``None`` is written as null and ``extra`` is merged
    back in (its keys win over declared fields of the same name).
    """
    fn = _UNSTRUCTURE.get(obj.__class__)
    if fn is not None:
        return fn(obj)
    return converter.unstructure(obj)


def _check_range(field: str, value: Any, low: float | None, high: float | None) -> None:
    if value is UNSET or value is None:
        return
    # Written so that NaN (which Python's json accepts) fails both bounds.
    if not ((low is None or value >= low) and (high is None or value <= high)):
        if high is None:
            valid = f"at least {low}"
        elif low is None:
            valid = f"at most {high}"
        else:
            valid = f"between {low} and {high}"
        raise ValidationError(f"must be {valid}, got {_show(value)}", field=field, value=value)


_CONTENT_ROLES: Final = frozenset({"system", "developer", "user", "tool"})
_TOOL_CHOICES: Final = ("none", "auto", "required")


def validate_request(req: ChatRequest) -> None:
    """Check what types cannot say: ranges, roles, message shapes.

    Types are already checked by :func:`from_wire`; this catches the requests an
    upstream would reject anyway, before coop spends a routing decision on them.
    """
    if not req.messages:
        raise ValidationError(
            "must contain at least one message, got []", field="messages", value=req.messages
        )
    for i, msg in enumerate(req.messages):
        _validate_message(msg, f"messages[{i}]")
    _check_range("temperature", req.temperature, 0, 2)
    _check_range("top_p", req.top_p, 0, 1)
    _check_range("presence_penalty", req.presence_penalty, -2, 2)
    _check_range("frequency_penalty", req.frequency_penalty, -2, 2)
    _check_range("n", req.n, 1, 128)
    _check_range("max_tokens", req.max_tokens, 1, None)
    _check_range("max_completion_tokens", req.max_completion_tokens, 1, None)
    _check_range("top_logprobs", req.top_logprobs, 0, 20)
    if isinstance(req.stop, list) and len(req.stop) > 4:
        raise ValidationError(
            f"expected a string or an array of up to 4 strings, got {len(req.stop)} strings",
            field="stop",
            value=req.stop,
        )
    if isinstance(req.logit_bias, dict):
        for token, bias in req.logit_bias.items():
            _check_range(f"logit_bias.{token}", bias, -100, 100)
    if isinstance(req.tool_choice, str) and req.tool_choice not in _TOOL_CHOICES:
        raise ValidationError(
            f"expected one of {', '.join(_TOOL_CHOICES)} or an object, got {_show(req.tool_choice)}",
            field="tool_choice",
            value=req.tool_choice,
        )
    if isinstance(req.tools, list):
        for i, tool in enumerate(req.tools):
            if tool.type == "function" and not isinstance(tool.function, FunctionDefinition):
                raise ValidationError(
                    "required for a 'function' tool; expected an object with a name",
                    field=f"tools[{i}].function",
                    value=_given(tool.function),
                )
            if tool.type == "custom" and not isinstance(tool.custom, dict):
                raise ValidationError(
                    "required for a 'custom' tool; expected an object with a name",
                    field=f"tools[{i}].custom",
                    value=_given(tool.custom),
                )


def _given(value: Any) -> Any:
    """The value for ``ValidationError.value``: ``None`` for an absent field."""
    return None if value is UNSET else value


def _validate_message(msg: ChatMessage, where: str) -> None:
    role = msg.role
    if role not in MESSAGE_ROLES:
        raise ValidationError(
            f"expected one of {', '.join(MESSAGE_ROLES)}, got {_show(role)}",
            field=f"{where}.role",
            value=role,
        )
    content = msg.content
    if role in _CONTENT_ROLES and (content is UNSET or content is None):
        raise ValidationError(
            f"required for a {role!r} message; expected a string or an array of content parts",
            field=f"{where}.content",
            value=None,
        )
    if role == "tool" and not isinstance(msg.tool_call_id, str):
        raise ValidationError(
            "required for a 'tool' message; expected a string",
            field=f"{where}.tool_call_id",
            value=_given(msg.tool_call_id),
        )
    if isinstance(content, list):
        for j, part in enumerate(content):
            if part.type == "text" and not isinstance(part.text, str):
                raise ValidationError(
                    "required for a 'text' part; expected a string",
                    field=f"{where}.content[{j}].text",
                    value=_given(part.text),
                )
            if part.type == "image_url" and not (
                isinstance(part.image_url, dict) and isinstance(part.image_url.get("url"), str)
            ):
                raise ValidationError(
                    "required for an 'image_url' part; expected an object with a string 'url'",
                    field=f"{where}.content[{j}].image_url",
                    value=_given(part.image_url),
                )


def parse_chat_request(data: Any) -> ChatRequest:
    """Parse and validate a chat request body (a decoded dict, or raw JSON bytes/str).

    The one entry point of the gateway: every error is a :class:`coop.ValidationError`
    (HTTP 400) naming the field, the value and what is valid.
    """
    if isinstance(data, bytes | bytearray | memoryview | str):
        try:
            data = json.loads(bytes(data) if isinstance(data, memoryview) else data)
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
            raise ValidationError(f"request body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValidationError(
            f"request body must be a JSON object, got {_json_kind(data)}",
            value=data,
        )
    req = from_wire(ChatRequest, data)
    validate_request(req)
    req.source = dict(data)  # the caller's dict may change after this; a copy may not
    return req


_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_ENCODE_ASCII = json.JSONEncoder(separators=(",", ":")).encode


def _dumps(data: Any) -> bytes:
    try:
        return _ENCODE(data).encode()
    except UnicodeEncodeError:  # a lone surrogate: escaped JSON stays valid and lossless
        return _ENCODE_ASCII(data).encode()


def response_json(resp: ChatResponse | dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON of a response (or of any wire object or dict).

    A response whose ``source`` is set is those bytes, unchanged.
    """
    if isinstance(resp, dict):
        return _dumps(resp)
    source = getattr(resp, "source", None)
    return source if source is not None else _dumps(to_wire(resp))


def chunk_to_sse(chunk: ChatChunk | dict[str, Any]) -> bytes:
    """One SSE event (``data: {...}\\n\\n``) carrying a stream chunk."""
    return b"data: " + _dumps(chunk if isinstance(chunk, dict) else to_wire(chunk)) + b"\n\n"


#: The bytes that end an OpenAI stream.
SSE_DONE: Final = b"data: [DONE]\n\n"
