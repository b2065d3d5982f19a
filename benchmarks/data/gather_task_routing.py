"""Rebuild ``task_routing.jsonl`` from local snapshots of the public sources.

Not run by tests or CI: it documents exactly which rows were taken and how each
source's own label became a coop task type (see README.md next to it). Point it
at git checkouts (or bare mirrors) of the repositories named in the README:

    python benchmarks/data/gather_task_routing.py --mirrors /path/to/mirrors

Each repository is looked for as ``<mirrors>/<owner>+<name>/repo`` (a bare git
directory) and read with ``git show HEAD:<path>``. Rows are sampled with a fixed
seed, so the output is the same on every run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "task_routing.jsonl"
SEED = 16


def show(mirrors: Path, repo: str, path: str) -> bytes:
    git_dir = mirrors / repo.replace("/", "+") / "repo"
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"HEAD:{path}"],
        check=True,
        capture_output=True,
    ).stdout


def jsonl(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode("utf-8").split("\n") if line.strip()]


def row(prompt: str, lang: str, source: str, label: str, task: str | None, tier: str) -> dict:
    out = {"prompt": prompt, "lang": lang, "source": source, "label": label}
    if task is not None:
        out["task_type"] = task
    out["tier"] = tier
    return out


def humaneval(mirrors: Path) -> list[dict]:
    data = gzip.decompress(show(mirrors, "openai/human-eval", "data/HumanEval.jsonl.gz"))
    return [
        row(r["prompt"], "en", "humaneval", "HumanEval", "code", "reasoning") for r in jsonl(data)
    ]


def humaneval_xl_zh(mirrors: Path) -> list[dict]:
    """Chinese docstrings: every Python stub, and 40 each in Java, JavaScript and Go."""
    rng = random.Random(SEED)
    rows = []
    for lang, take in (("python", None), ("java", 40), ("javascript", 40), ("go", 40)):
        items = jsonl(show(mirrors, "FloatAI/humaneval-xl", f"data/{lang}/Chinese.jsonl"))
        if take is not None:
            items = rng.sample(items, take)
        rows += [
            row(r["prompt"], "zh", "humaneval-xl-zh", f"HumanEval-XL {lang}", "code", "reasoning")
            for r in items
        ]
    return rows


def cmath(mirrors: Path) -> list[dict]:
    items = jsonl(show(mirrors, "XiaoMi/cmath", "datasets/cmath_dev.jsonl"))
    items = random.Random(SEED).sample(items, 200)
    return [
        row(r["input"], "zh", "cmath", f"grade {r['grade']}", "math", "reasoning") for r in items
    ]


def svamp(mirrors: Path) -> list[dict]:
    items = json.loads(show(mirrors, "arkilpatel/SVAMP", "SVAMP.json"))
    items = random.Random(SEED).sample(items, 200)
    rows = []
    for r in items:
        body = r["Body"].strip()
        body = body if body.endswith((".", "?", "!")) else body + "."
        rows.append(
            row(f"{body} {r['Question'].strip()}", "en", "svamp", r["Type"], "math", "reasoning")
        )
    return rows


#: Chinese-LLaMA-Alpaca's example categories → (task type or None, tier).
ALPACA_ZH = {
    "CODE": ("code", "reasoning"),
    "ENTERTAINMENT": ("qa", "light"),
    "LITERATURE": ("qa", "light"),
    "OQA": ("qa", "light"),
    "QA": ("qa", "light"),
    "GENERATION": ("creative", "light"),
    "TRANSLATION": ("translation", "light"),
    # "数值计算、推理" mixes arithmetic and puzzles: only the tier is certain.
    "REASONING": (None, "reasoning"),
    # Harmful requests to refuse: light, of no one task type.
    "ETHICS": (None, "light"),
}
_TABLE_ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*(.+?)\s*\|", re.MULTILINE)


def chinese_alpaca(mirrors: Path) -> list[dict]:
    repo = "ymcui/Chinese-LLaMA-Alpaca"
    dirs = ("f16-p7b-p13b-33b", "q8_13b-p7b-p13b", "q8_7b-13b-p7b", "q4_7b-13b")
    rows: list[dict] = []
    seen: set[str] = set()
    for category, (task, tier) in ALPACA_ZH.items():
        for d in dirs:
            try:
                text = show(mirrors, repo, f"examples/{d}/{category}.md").decode("utf-8")
            except subprocess.CalledProcessError:
                continue
            for m in _TABLE_ROW.finditer(text):
                prompt = m.group(2).replace("</br>", "\n").replace("<br>", "\n").strip()
                if len(prompt) < 4 or prompt in seen or prompt.startswith("Prompt"):
                    continue
                seen.add(prompt)
                rows.append(row(prompt, "zh", "chinese-llama-alpaca", category, task, tier))
    return rows


def _exam_prompt(item: dict) -> str:
    """Passage (when there is one), question and the lettered options, one a line."""
    parts = [str(item.get("passage") or "").strip(), str(item["question"]).strip()]
    text = "\n\n".join(p for p in parts if p)
    return text + "\n" + "\n".join(item.get("options") or [])


#: AGIEval subsets → (source, lang, task type, tier). Gaokao and SAT are MIT (Microsoft),
#: LSAT MIT (AR-LSAT); LogiQA, JEC-QA and MATH are left out (other licences).
AGIEVAL = {
    "gaokao-history": ("agieval-gaokao", "zh", "qa", "light"),
    "gaokao-geography": ("agieval-gaokao", "zh", "qa", "light"),
    "gaokao-biology": ("agieval-gaokao", "zh", "qa", "light"),
    "gaokao-mathqa": ("agieval-gaokao", "zh", "math", "reasoning"),
    "sat-en": ("agieval-sat-lsat", "en", "qa", "light"),
    "lsat-lr": ("agieval-sat-lsat", "en", "reasoning", "reasoning"),
    "lsat-ar": ("agieval-sat-lsat", "en", "reasoning", "reasoning"),
    "sat-math": ("agieval-sat-lsat", "en", "math", "reasoning"),
}


def agieval(mirrors: Path) -> list[dict]:
    """50 questions from each subset, exam-style: passage, question, options."""
    rows = []
    for subset, (source, lang, task, tier) in AGIEVAL.items():
        items = jsonl(show(mirrors, "microsoft/AGIEval", f"data/v1/{subset}.jsonl"))
        for item in random.Random(f"{SEED}-{subset}").sample(items, 50):
            rows.append(row(_exam_prompt(item), lang, source, subset, task, tier))
    return rows


SOURCES = {
    "humaneval": humaneval,
    "humaneval-xl-zh": humaneval_xl_zh,
    "cmath": cmath,
    "svamp": svamp,
    "chinese-llama-alpaca": chinese_alpaca,
    "agieval": agieval,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mirrors", type=Path, required=True)
    args = parser.parse_args()
    rows = []
    for name, build in SOURCES.items():
        got = build(args.mirrors)
        print(f"{name}: {len(got)} rows")
        rows += got
    with OUT.open("w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=True) + "\n")
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main()
