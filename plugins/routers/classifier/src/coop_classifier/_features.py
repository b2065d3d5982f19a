"""Turn a request into sparse features: text n-grams plus the rules router's evidence.

Why both: n-grams learn what labelled data says ("将以下文本分类" is
classification) while the rules' scores carry hand-written knowledge that
generalises to phrasings the data never showed. Features are plain strings so
the model file stays readable and a feature can be looked up by eye.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

from coop_rules import Evidence, collect_evidence

__all__ = ["FEATURE_SETTINGS", "featurize", "featurize_evidence"]

#: Recorded in every model file; a model is only valid with the settings it was trained with.
FEATURE_SETTINGS: dict[str, Any] = {
    "name": "ngram-rules-v1",
    "head_chars": 300,
    "tail_chars": 150,
    "max_tokens": 160,
    "head_tokens": 12,
    "tail_tokens": 10,
    "ngrams": [1, 2],
    "rules_buckets": [1.5, 4.0, 8.0],
}

_HEAD = FEATURE_SETTINGS["head_chars"]
_TAIL = FEATURE_SETTINGS["tail_chars"]
_MAX_TOKENS = FEATURE_SETTINGS["max_tokens"]
_HEAD_TOKENS = FEATURE_SETTINGS["head_tokens"]
_TAIL_TOKENS = FEATURE_SETTINGS["tail_tokens"]
_BUCKETS = FEATURE_SETTINGS["rules_buckets"]

#: Latin words, single CJK characters, digit runs (as "0"), and meaningful punctuation.
_TOKEN = re.compile(r"[a-z][a-z'+#]*|[\u3400-\u9fff]|\d+|[?？:：!！`{}()=]")


def _window(text: str) -> str:
    if len(text) <= _HEAD + _TAIL:
        return text
    return text[:_HEAD] + " " + text[-_TAIL:]


def _tokens(text: str) -> list[str]:
    tokens = _TOKEN.findall(_window(text).lower())
    if len(tokens) > _MAX_TOKENS:
        half = _MAX_TOKENS // 2
        tokens = tokens[:half] + tokens[-half:]
    return ["0" if t[0].isdigit() else t for t in tokens]


def _text_features(tokens: list[str]) -> list[str]:
    feats = list(tokens)
    feats += [f"{a} {b}" for a, b in pairwise(tokens)]
    head = tokens[:_HEAD_TOKENS]
    feats += ["h:" + t for t in head]
    feats += [f"h:{a} {b}" for a, b in pairwise(head)]
    if len(tokens) > _HEAD_TOKENS:
        tail = tokens[-_TAIL_TOKENS:]
        feats += ["t:" + t for t in tail]
        feats += [f"t:{a} {b}" for a, b in pairwise(tail)]
    return feats


def _bucket(value: float, edges: tuple[float, ...] | list[float]) -> int:
    level = 0
    for edge in edges:
        if value > edge:
            level += 1
    return level


def _meta_features(ev: Evidence) -> list[str]:
    feats: list[str] = []
    ranked = ev.ranked()
    for task, score in ranked[:6]:
        for level in range(1, _bucket(score, _BUCKETS) + 1):
            feats.append(f"r:{task}:{level}")
    if ranked:
        feats.append("rtop:" + ranked[0][0])
        if len(ranked) > 1:
            feats.append("r2:" + ranked[1][0])
    conv = ev.conversation
    feats.append(f"num:{min(ev.numbers, 3)}")
    feats.append(f"numw:{min(ev.number_words, 2)}")
    if ev.formulas:
        feats.append("formula")
    if ev.code_syntax:
        feats.append(f"codesyn:{min(ev.code_syntax, 2)}")
    feats.append("lang:" + ev.language)
    chars = conv.main_chars
    feats.append(f"len:{_bucket(chars, (20, 60, 150, 400, 1000))}")
    if conv.main.rstrip().endswith(("?", "？")):
        feats.append("endq")
    if ev.enumerations >= 2:
        feats.append("enum")
    if conv.attachments:
        feats.append("attach")
    if conv.user_turns > 1:
        feats.append("multiturn")
    if conv.system:
        feats.append("system")
    return feats


def featurize_evidence(ev: Evidence) -> tuple[list[str], list[str]]:
    """(text features, meta features) of evidence the rules router already collected.

    The text is the last user turn, plus the system prompt and the previous turn
    prefixed ``c:`` when the last turn is short (a follow-up like "and in Python?").
    """
    conv = ev.conversation
    text_feats = _text_features(_tokens(conv.main))
    if len(conv.main) < 40 and (conv.history or conv.system):
        context = (conv.system + "\n" + conv.history)[-300:]
        text_feats += ["c:" + t for t in _tokens(context)[-40:]]
    return text_feats, _meta_features(ev)


def featurize(messages: Any) -> tuple[list[str], list[str]]:
    """Features of OpenAI-shaped ``messages`` (or a bare prompt string)."""
    return featurize_evidence(collect_evidence(messages))
