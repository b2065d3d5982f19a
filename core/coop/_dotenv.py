"""A small ``.env`` reader: ``KEY=value`` lines, ``export``, quotes and comments.

Hand-written because the format needs twenty lines, not a dependency.
"""

from __future__ import annotations

import re
from pathlib import Path

from ._errors import ConfigError

__all__ = ["read_dotenv", "set_dotenv_value"]

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse ``path``; an unreadable file or a malformed line is a :class:`ConfigError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read .env: {exc}", path=str(path)) from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            raise ConfigError(
                "expected KEY=value (letters, digits and _ in KEY)", path=str(path), line=number
            )
        key, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
            if line.split("=", 1)[1].strip()[0] == '"':
                value = value.replace("\\n", "\n").replace('\\"', '"')
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0]
        values[key] = value
    return values


def set_dotenv_value(path: Path, key: str, value: str) -> None:
    """Set ``key`` in ``path`` (created with mode 0600), keeping every other line."""
    from ._files import atomic_write

    lines: list[str] = []
    if path.exists():
        read_dotenv(path)  # refuse to rewrite a file we cannot parse
        lines = path.read_text(encoding="utf-8").splitlines()
    quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    entry = f"{key}={quoted}"
    for i, line in enumerate(lines):
        match = _LINE.match(line)
        if match and match.group(1) == key:
            lines[i] = entry
            break
    else:
        lines.append(entry)
    atomic_write(path, "\n".join(lines) + "\n", secret=True)
