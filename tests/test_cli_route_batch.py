"""``coop route --batch`` and ``coop eval routing`` read rows whose prompts hold U+0085 / U+2028."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROMPTS = [
    "Which number is prime?\u0085A. 4\u2028B. 7\u2029C. 9",
    "Translate to French: good morning",
]


def coop(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COOP_CONFIG", "BASE_URL", "API_KEY")}
    env["XDG_CONFIG_HOME"] = str(folder / ".xdg")
    return subprocess.run(
        [sys.executable, "-m", "coop", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )


def write_rows(folder: Path) -> Path:
    path = folder / "rows.jsonl"
    rows = [{"prompt": PROMPTS[0], "task_type": "qa"}, {"prompt": PROMPTS[1], "task_type": "chat"}]
    path.write_text(
        "\r\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n", encoding="utf-8"
    )
    assert "\u0085".encode() in path.read_bytes() and "\u2028".encode() in path.read_bytes()
    return path


def test_route_batch_one_decision_per_row(tmp_path: Path) -> None:
    path = write_rows(tmp_path)
    result = coop(tmp_path, "route", "--batch", str(path))
    assert result.returncode == 0, result.stderr
    decisions = [json.loads(line) for line in result.stdout.split("\n") if line]
    assert len(decisions) == 2 and all("task_type" in d for d in decisions)


def test_eval_routing_counts_every_row(tmp_path: Path) -> None:
    path = write_rows(tmp_path)
    result = coop(tmp_path, "eval", "routing", str(path), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rows"] == 2


def test_route_batch_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"prompt": "a"}\n{"prompt": "b"\n', encoding="utf-8")
    result = coop(tmp_path, "route", "--batch", str(path))
    assert result.returncode == 2
    assert f"{path}:2: invalid JSON" in result.stderr and "Traceback" not in result.stderr
