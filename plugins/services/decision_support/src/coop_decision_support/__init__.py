"""The ``decision_support`` service: frameworks with schema-checked output, scores by code.

``analysis_framework`` = strategic_options | swot | pros_cons | decision_matrix | risk.
The model answers in JSON; the answer is parsed and checked against the framework's
schema, and the model is asked again (``retries`` times at most) with the problem
named when it is not. Everything that can be computed is computed here, never by the
model: the decision matrix's normalised weights, weighted sums, ranking, sensitivity
to each weight and stability under perturbed weights; risk scores (likelihood ×
impact); strategic priorities (impact × feasibility); the pros/cons balance.

Options can come from several models at once (``models=a,b``: a parallel cooperation
whose members' answers are each validated and merged), and users can hand in their own
``options``, ``criteria``, ``weights`` or ``risks`` as JSON: a matrix given whole is
scored without asking any model for structure (the model only narrates).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import coop
from coop import (
    Service,
    ServiceContext,
    ServiceError,
    ServiceParameter,
    ServiceResult,
    ValidationError,
)

from ._schema import FRAMEWORKS, SCHEMAS, matrix_schema, parse_json, validate
from ._scoring import score_matrix, score_risks

__all__ = [
    "FRAMEWORKS",
    "JSON",
    "SCHEMAS",
    "DecisionSupport",
    "matrix_schema",
    "merge",
    "parse_json",
    "score_matrix",
    "score_risks",
    "validate",
]

MAX_RETRIES = 10
#: Problems quoted back to the model (and in the final error) at most.
MAX_PROBLEMS = 6


class JSON(str):
    """A parameter holding JSON: text from the CLI, or a list/object over HTTP and Python."""

    def __new__(cls, value: Any) -> JSON:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return super().__new__(cls, text)


LABELS = {
    "strategic_options": "strategic options analysis",
    "swot": "SWOT analysis",
    "pros_cons": "pros and cons analysis",
    "decision_matrix": "weighted decision matrix",
    "risk": "risk assessment",
    "options": "list of options",
}

INSTRUCTIONS = {
    "strategic_options": (
        "Lay out the distinct strategic options for the situation below: for each, a "
        "name, a one-sentence description, its advantages and disadvantages, its impact "
        "(1-5, 5 = largest) and its feasibility (1-5, 5 = easiest). Add a recommendation."
    ),
    "swot": (
        "Make a SWOT analysis of the situation below: strengths, weaknesses, "
        "opportunities and threats, each a list of short points."
    ),
    "pros_cons": (
        "List the pros and cons of the decision below, each point with a weight from "
        "1 (minor) to 5 (decisive)."
    ),
    "decision_matrix": (
        "Build a decision matrix for the decision below: the criteria that matter, each "
        "with a weight (its relative importance, any non-negative number), and the "
        "options, each scored from 1 to 10 on every criterion (10 = best; for a cost, "
        "10 = cheapest). Do not compute totals or rankings."
    ),
    "risk": (
        "List the main risks of the plan below, each with its likelihood (1-5), its "
        "impact (1-5) and a mitigation. Do not compute scores."
    ),
    "options": (
        "List the distinct options worth considering for the decision below: a short "
        "name and a one-sentence description each."
    ),
}

SYSTEM = (
    "You are a decision analyst. You answer with one JSON value only, exactly as the "
    "schema asks: no prose, no code fence."
)


class DecisionSupport(Service):
    """Strategic options, SWOT, pros and cons, decision matrix and risk analysis."""

    name = "decision_support"
    description = (
        "Decision analysis (strategic options, SWOT, pros/cons, weighted decision matrix, "
        "risk) with schema-checked JSON and scores, rankings and sensitivity computed by code."
    )
    parameters = (
        ServiceParameter(
            "analysis_framework",
            "the framework to apply",
            choices=FRAMEWORKS,
            default="strategic_options",
        ),
        ServiceParameter(
            "model", "logical model, cooperation or auto: structure and narration", default="auto"
        ),
        ServiceParameter(
            "models",
            "comma-separated logical models whose options are gathered in a parallel "
            "cooperation and merged",
            default="",
        ),
        ServiceParameter(
            "retries",
            "times the model is asked again after invalid JSON or a schema violation",
            type=int,
            default=2,
        ),
        ServiceParameter(
            "options",
            "JSON list of options: names, or {name, description, scores: {criterion: 1-10}}",
            type=JSON,
        ),
        ServiceParameter(
            "criteria",
            "JSON criteria (decision_matrix): names, [{name, weight}] or {name: weight}",
            type=JSON,
        ),
        ServiceParameter(
            "weights",
            "JSON {criterion: weight} (decision_matrix): sets or overrides the weights",
            type=JSON,
        ),
        ServiceParameter(
            "risks",
            "JSON [{risk, likelihood 1-5, impact 1-5, mitigation}] (risk): scored as given",
            type=JSON,
        ),
        ServiceParameter(
            "perturbation",
            "relative change applied to each weight in the stability check",
            type=float,
            default=0.2,
        ),
        ServiceParameter(
            "narrate", "have the model comment on the computed result", type=bool, default=True
        ),
        ServiceParameter("max_tokens", "answer tokens for each model call", type=int, default=1500),
    )

    async def process(
        self, content: str | bytes, parameters: Mapping[str, Any], context: ServiceContext
    ) -> ServiceResult:
        text = _text(content)
        framework: str = parameters["analysis_framework"]
        retries = parameters["retries"]
        if not 0 <= retries <= MAX_RETRIES:
            raise ValidationError(
                f"must be between 0 and {MAX_RETRIES}", field="retries", value=retries
            )
        perturbation = parameters["perturbation"]
        if not 0 < perturbation < 1:
            raise ValidationError(
                "must be above 0 and below 1 (0.2 = ±20%)", field="perturbation", value=perturbation
            )
        if parameters["max_tokens"] < 1:
            raise ValidationError(
                "must be at least 1", field="max_tokens", value=parameters["max_tokens"]
            )
        user = _user_inputs(parameters, framework)
        models = [m.strip() for m in (parameters["models"] or "").split(",") if m.strip()]
        asker = _Asker(context, framework, text, parameters, models)

        if framework == "decision_matrix":
            structure = await asker.matrix(user.get("criteria"), user.get("options"))
            computed = score_matrix(
                structure["criteria"], structure["options"], perturbation=perturbation
            )
        elif framework == "risk" and "risks" in user:
            structure = {"risks": user["risks"]}
            asker.source = "user"
        else:
            names = [o["name"] for o in user.get("options", [])]
            schema = SCHEMAS[framework]
            if names:  # strategic_options on the user's options
                schema = json.loads(json.dumps(schema))
                options = schema["properties"]["options"]
                options["items"]["properties"]["name"] = {"type": "string", "enum": names}
                options["minItems"] = len(names)
            structure = await asker.structured(framework, schema, _covers(names))
        if framework == "risk":
            structure = {"risks": [_plain(r) for r in structure["risks"]]}
            computed = {"risks": score_risks(structure["risks"])}
        elif framework != "decision_matrix":
            computed = _compute(framework, structure)

        markdown = render(framework, structure, computed)
        narrative = None
        if parameters["narrate"]:
            narrative = await asker.narrate(markdown)
            markdown += f"\n## Commentary\n\n{narrative.strip()}\n"
        data: dict[str, Any] = {
            "analysis_framework": framework,
            "structure": structure,
            "computed": computed,
            "narrative": narrative,
            "source": asker.source,
            "attempts": asker.attempts,
        }
        if asker.cooperation is not None:
            data["cooperation"] = asker.cooperation
        return ServiceResult(result=markdown, data=data)


# -- the input ------------------------------------------------------------------------------


def _text(content: str | bytes) -> str:
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8")
        except UnicodeDecodeError:
            raise ServiceError(
                "decision_support reads text (the decision or situation to analyse), "
                "not a binary file"
            ) from None
    if not content.strip():
        raise ValidationError("content is empty: describe the decision", field="content")
    return content.strip()


def _load(parameters: Mapping[str, Any], name: str) -> Any:
    raw = parameters.get(name)
    if raw is None or not str(raw).strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ValidationError(f"not valid JSON: {exc}", field=name, value=raw) from None


def _refuse(problems: list[str], name: str, value: Any) -> None:
    if problems:
        shown = "; ".join(problems[:MAX_PROBLEMS])
        more = len(problems) - MAX_PROBLEMS
        raise ValidationError(
            shown + (f" (and {more} more)" if more > 0 else ""), field=name, value=value
        )


def _user_inputs(parameters: Mapping[str, Any], framework: str) -> dict[str, Any]:
    """The user's JSON parameters, parsed, normalised and checked; errors name the parameter."""
    values = {n: _load(parameters, n) for n in ("options", "criteria", "weights", "risks")}
    allowed = {
        "options": ("decision_matrix", "strategic_options"),
        "criteria": ("decision_matrix",),
        "weights": ("decision_matrix",),
        "risks": ("risk",),
    }
    for name, value in values.items():
        if value is not None and framework not in allowed[name]:
            raise ValidationError(
                f"only used by analysis_framework={' or '.join(allowed[name])}, not {framework}",
                field=name,
            )
    user: dict[str, Any] = {}
    criteria = None
    if values["criteria"] is not None:
        criteria = _criteria(values["criteria"])
    if values["weights"] is not None:
        criteria = _weights(values["weights"], criteria)
    if values["options"] is not None:
        user["options"] = _options(values["options"], criteria)
        if criteria is None and framework == "decision_matrix":
            criteria = _implied_criteria(user["options"])
    if criteria is not None:
        if sum(c["weight"] for c in criteria) <= 0:
            raise ValidationError(
                "the weights add up to 0: give at least one positive weight",
                field="weights" if values["weights"] is not None else "criteria",
            )
        user["criteria"] = criteria
    if values["risks"] is not None:
        risks = values["risks"]
        if isinstance(risks, Mapping) and "risks" in risks:
            risks = risks["risks"]
        _refuse(validate(risks, SCHEMAS["risk"]["properties"]["risks"]), "risks", values["risks"])
        user["risks"] = risks
    return user


def _criteria(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, Mapping):
        value = [{"name": k, "weight": w} for k, w in value.items()]
    if isinstance(value, list):
        value = [{"name": v, "weight": 1} if isinstance(v, str) else v for v in value]
    schema = SCHEMAS["decision_matrix"]["properties"]["criteria"]
    _refuse(validate(value, schema), "criteria", value)
    _refuse(_duplicates([c["name"] for c in value], "criterion"), "criteria", value)
    return [{"name": c["name"].strip(), "weight": float(c["weight"])} for c in value]


def _weights(value: Any, criteria: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    schema = {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}}
    _refuse(validate(value, schema), "weights", value)
    if not value:
        raise ValidationError("give at least one criterion and its weight", field="weights")
    if criteria is None:
        return [{"name": k.strip(), "weight": float(w)} for k, w in value.items()]
    names = [c["name"] for c in criteria]
    unknown = [k for k in value if k not in names]
    if unknown:
        raise ValidationError(
            f"unknown criterion {unknown[0]!r}; the criteria are {', '.join(names)}",
            field="weights",
            value=value,
        )
    return [{**c, "weight": float(value.get(c["name"], c["weight"]))} for c in criteria]


def _options(value: Any, criteria: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if isinstance(value, Mapping) and "options" in value:
        value = value["options"]
    if isinstance(value, list):
        value = [{"name": v} if isinstance(v, str) else v for v in value]
    score = {"type": "number", "minimum": 1, "maximum": 10}
    scores: dict[str, Any] = {"type": "object", "additionalProperties": score}
    if criteria is not None:
        names = [c["name"] for c in criteria]
        scores = {
            "type": "object",
            "properties": {n: score for n in names},
            "additionalProperties": False,
        }
    item = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "description": {"type": "string"},
            "scores": scores,
        },
    }
    _refuse(validate(value, {"type": "array", "items": item, "minItems": 2}), "options", value)
    _refuse(_duplicates([o["name"] for o in value], "option"), "options", value)
    return [
        {**o, "name": o["name"].strip(), **({"scores": dict(o["scores"])} if "scores" in o else {})}
        for o in value
    ]


def _implied_criteria(options: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Equal weights over the score names when every option scores the same criteria."""
    keys = [tuple(o.get("scores", {})) for o in options]
    if keys and keys[0] and all(set(k) == set(keys[0]) for k in keys):
        return [{"name": name, "weight": 1.0} for name in keys[0]]
    return None


def _duplicates(names: Sequence[str], what: str) -> list[str]:
    seen: set[str] = set()
    problems = []
    for name in names:
        key = name.strip().casefold()
        if key in seen:
            problems.append(f"{what} {name!r} appears twice")
        seen.add(key)
    return problems


def _covers(names: Sequence[str]) -> Callable[[Any], list[str]]:
    def check(value: Any) -> list[str]:
        got = [o["name"] for o in value.get("options", [])]
        missing = [n for n in names if n not in got]
        problems = _duplicates(got, "option")
        if missing:
            problems.append(f"$.options: missing option(s) {', '.join(map(repr, missing))}")
        return problems

    return check


def _plain(risk: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in risk.items() if k not in ("score", "level", "rank")}


# -- asking the models ----------------------------------------------------------------------


class _Asker:
    """The service's model calls: JSON answers checked and asked again, cooperations merged."""

    def __init__(
        self,
        context: ServiceContext,
        framework: str,
        text: str,
        parameters: Mapping[str, Any],
        models: list[str],
    ) -> None:
        self.context = context
        self.framework = framework
        self.text = text
        self.model: str = parameters["model"]
        self.retries: int = parameters["retries"]
        self.max_tokens: int = parameters["max_tokens"]
        self.models = models
        self.source = "model"
        self.attempts: dict[str, int] = {}
        self.cooperation: dict[str, Any] | None = None

    def prompt(self, kind: str, schema: Mapping[str, Any], extra: str = "") -> str:
        return (
            f"{INSTRUCTIONS[kind]}\n{extra}\n"
            "Answer with only a JSON value matching this JSON Schema:\n"
            f"{json.dumps(schema, ensure_ascii=False)}\n\n"
            f"Situation:\n{self.text}"
        )

    async def structured(
        self,
        kind: str,
        schema: Mapping[str, Any],
        check: Callable[[Any], list[str]] | None = None,
        extra: str = "",
    ) -> dict[str, Any]:
        """The framework's structure from ``model``, or merged from the ``models``."""
        prompt = self.prompt(kind, schema, extra)
        if len(self.models) > 1:
            return await self._gather(kind, schema, prompt, check)
        model = self.models[0] if self.models else self.model
        return await self._ask(kind, schema, prompt, model, check)

    async def _ask(
        self,
        kind: str,
        schema: Mapping[str, Any],
        prompt: str,
        model: str,
        check: Callable[[Any], list[str]] | None,
    ) -> dict[str, Any]:
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": prompt},
        ]
        problem = ""
        answered_by = model
        for attempt in range(1, self.retries + 2):
            completion = await self.context.complete(
                messages, model=model, max_tokens=self.max_tokens
            )
            answered_by = completion.model
            value, problem = _check(completion.text, kind, schema, check)
            if value is not None:
                self.attempts[kind] = attempt
                return value
            messages = [
                *messages,
                {"role": "assistant", "content": completion.text[:4000]},
                {"role": "user", "content": _again(problem)},
            ]
        raise _gave_up(self.framework, kind, answered_by, self.retries + 1, problem, schema)

    async def _gather(
        self,
        kind: str,
        schema: Mapping[str, Any],
        prompt: str,
        check: Callable[[Any], list[str]] | None,
    ) -> dict[str, Any]:
        cooperation = coop.CooperationConfig(
            name="decision_support", mode="parallel", models=list(self.models), strategy="voting"
        )
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": prompt},
        ]
        problem = ""
        for attempt in range(1, self.retries + 2):
            completion = await self.context.cooperate(messages, cooperation)
            outputs = _outputs(completion)
            accepted: list[tuple[str, dict[str, Any]]] = []
            rejected: dict[str, str] = {}
            for model, ok, text in outputs:
                if not ok:
                    rejected[model] = f"failed: {text}"
                    continue
                value, why = _check(text, kind, schema, check)
                if value is None:
                    rejected[model] = why
                else:
                    accepted.append((model, value))
            if accepted:
                self.attempts[kind] = attempt
                self.cooperation = {
                    "models": list(self.models),
                    "mode": "parallel",
                    "accepted": [m for m, _ in accepted],
                    "rejected": rejected,
                }
                return merge(kind, accepted)
            problem = "; ".join(f"{m}: {p}" for m, p in rejected.items())
            messages = [
                *messages[:2],
                {"role": "user", "content": _again(problem, several=True)},
            ]
        raise _gave_up(
            self.framework, kind, ", ".join(self.models), self.retries + 1, problem, schema
        )

    async def matrix(
        self,
        criteria: list[dict[str, Any]] | None,
        options: list[dict[str, Any]] | None,
    ) -> dict[str, Any]:
        """The decision matrix: the user's as given when complete, else filled by models."""
        names = [c["name"] for c in criteria] if criteria else []
        given = criteria is not None or options is not None
        if (
            criteria is not None
            and options is not None
            and all(set(names) <= set(o.get("scores", {})) for o in options)
        ):
            self.source = "user"
            return {"criteria": criteria, "options": options}
        if options is None and len(self.models) > 1:
            gathered = await self.structured("options", SCHEMAS["options"], _covers([]))
            options = gathered["options"]
            self.source = "cooperation"
        option_names = [o["name"] for o in options] if options else []
        schema = matrix_schema(names or None, option_names or None)
        extra = []
        if names:
            extra.append(f"Use exactly these criteria: {', '.join(names)}.")
        if option_names:
            extra.append(f"Score exactly these options: {', '.join(option_names)}.")
        known = {o["name"]: o["scores"] for o in options or [] if o.get("scores")}
        if known:
            extra.append(f"Scores already known (keep them): {json.dumps(known)}.")
        model = self.model
        prompt = self.prompt("decision_matrix", schema, "\n".join(extra))
        answer = await self._ask(
            "decision_matrix", schema, prompt, model, _matrix_check(names, option_names)
        )
        if criteria is None:
            criteria = [
                {"name": c["name"].strip(), "weight": float(c["weight"])}
                for c in answer["criteria"]
            ]
            names = [c["name"] for c in criteria]
        by_name = {o["name"].strip(): o for o in answer["options"]}
        if options is None:
            options = [
                {k: v for k, v in o.items() if k != "scores"} | {"name": o["name"].strip()}
                for o in answer["options"]
            ]
        merged = []
        for option in options:
            given_scores = {k.strip(): v for k, v in by_name[option["name"]]["scores"].items()}
            scores = {c: given_scores[c] for c in names}
            scores.update({c: v for c, v in option.get("scores", {}).items() if c in names})
            described = option.get("description") or by_name[option["name"]].get("description")
            merged.append(
                {**option, "scores": scores, **({"description": described} if described else {})}
            )
        if self.source != "cooperation":
            self.source = "user+model" if given else "model"
        return {"criteria": criteria, "options": merged}

    async def narrate(self, facts: str) -> str:
        label = LABELS[self.framework]
        prompt = (
            f"The decision below was analysed with a {label}; the figures were computed by "
            "code and are correct: do not recompute or change them. In 3 to 6 sentences, "
            "say what they mean for the decision and what to watch.\n\n"
            f"{facts}\n\nDecision:\n{self.text}"
        )
        completion = await self.context.complete(
            prompt, model=self.model, max_tokens=min(self.max_tokens, 600)
        )
        return completion.text


def _outputs(completion: coop.Completion) -> list[tuple[str, bool, str]]:
    """Each member's (model, success, text or error) of a cooperation call."""
    result = completion.result
    cooperation = result.cooperation if result is not None else None
    if cooperation is None:
        return [(completion.model, True, completion.text)]
    return [
        (o.model, o.success, o.text if o.success else (o.error or "no answer"))
        for o in cooperation.outputs
    ]


def _check(
    text: str,
    kind: str,
    schema: Mapping[str, Any],
    check: Callable[[Any], list[str]] | None,
) -> tuple[dict[str, Any] | None, str]:
    """The answer's structure when valid, else ``(None, the problems)``."""
    value, problem = parse_json(text)
    if problem is not None:
        begins = " ".join(text.split())[:40]
        return None, f"{problem} (the answer begins {begins!r})" if begins else problem
    if kind == "risk" and isinstance(value, list):
        value = {"risks": value}  # a bare list of risks is fine
    problems = validate(value, schema)
    if not problems and check is not None:
        problems = check(value)
    if problems:
        more = len(problems) - MAX_PROBLEMS
        return None, "; ".join(problems[:MAX_PROBLEMS]) + (
            f" (and {more} more)" if more > 0 else ""
        )
    return value, ""


def _again(problem: str, several: bool = False) -> str:
    what = "The answers were" if several else "That answer was"
    return (
        f"{what} not usable: {problem}. Answer again with only a JSON value that "
        "matches the schema."
    )


def _gave_up(
    framework: str, kind: str, model: str, attempts: int, problem: str, schema: Any
) -> ServiceError:
    step = "" if kind == framework else f" (its {LABELS[kind]})"
    keys = ", ".join(schema.get("required", []))
    return ServiceError(
        f"{framework}{step}: {model} gave no valid JSON answer in {attempts} attempt(s); "
        f"last problem: {problem} (expected a JSON object with {keys}; see "
        "coop_decision_support.SCHEMAS)"
    )


def _matrix_check(criteria: Sequence[str], options: Sequence[str]) -> Callable[[Any], list[str]]:
    def check(value: Any) -> list[str]:
        problems: list[str] = []
        names = list(criteria) or [c["name"].strip() for c in value.get("criteria", [])]
        if not criteria:
            problems += _duplicates(names, "criterion")
            if sum(float(c["weight"]) for c in value["criteria"]) <= 0:
                problems.append("$.criteria: the weights add up to 0")
        got = [o["name"].strip() for o in value["options"]]
        problems += _duplicates(got, "option")
        missing = [n for n in options if n not in got]
        if missing:
            problems.append(f"$.options: missing option(s) {', '.join(map(repr, missing))}")
        for i, option in enumerate(value["options"]):
            scored = {k.strip() for k in option["scores"]}
            lacking = [c for c in names if c not in scored]
            unknown = sorted(scored - set(names))
            if lacking:
                problems.append(f"$.options[{i}].scores: no score for {', '.join(lacking)}")
            if unknown:
                problems.append(
                    f"$.options[{i}].scores: {', '.join(unknown)} is not a criterion "
                    f"({', '.join(names)})"
                )
        return problems

    return check


# -- merging a cooperation's answers -------------------------------------------------------

#: The list fields of each framework and what identifies an item in them.
LISTS: dict[str, dict[str, str | None]] = {
    "strategic_options": {"options": "name"},
    "swot": {k: None for k in ("strengths", "weaknesses", "opportunities", "threats")},
    "pros_cons": {"pros": "point", "cons": "point"},
    "risk": {"risks": "risk"},
    "options": {"options": "name"},
}


def merge(kind: str, answers: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """The members' valid answers as one: lists united (first wording wins), the first
    model's other fields; each named item says which models proposed it."""
    merged: dict[str, Any] = {k: v for k, v in answers[0][1].items() if k not in LISTS[kind]}
    for field, key in LISTS[kind].items():
        items: dict[str, Any] = {}
        for model, answer in answers:
            for item in answer.get(field, []):
                ident = (item if key is None else item[key]).strip().casefold()
                if ident not in items:
                    items[ident] = item if key is None else {**item, "proposed_by": []}
                if key is not None and model not in items[ident]["proposed_by"]:
                    items[ident]["proposed_by"].append(model)
        merged[field] = list(items.values())
    return merged


# -- computing and rendering ----------------------------------------------------------------


def _compute(framework: str, structure: Mapping[str, Any]) -> dict[str, Any]:
    if framework == "strategic_options":
        rows = [
            {
                "option": o["name"],
                "impact": int(o["impact"]),
                "feasibility": int(o["feasibility"]),
                "priority": int(o["impact"]) * int(o["feasibility"]),
            }
            for o in structure["options"]
        ]
        rows.sort(key=lambda r: -r["priority"])
        for position, row in enumerate(rows, start=1):
            row["rank"] = position
        return {"priorities": rows, "top": rows[0]["option"]}
    if framework == "swot":
        counts = {k: len(structure[k]) for k in LISTS["swot"]}
        return {
            "counts": counts,
            "internal_balance": counts["strengths"] - counts["weaknesses"],
            "external_balance": counts["opportunities"] - counts["threats"],
        }
    pros = sum(int(p["weight"]) for p in structure["pros"])
    cons = sum(int(p["weight"]) for p in structure["cons"])
    balance = pros - cons
    verdict = (
        "the pros outweigh the cons"
        if balance > 0
        else "the cons outweigh the pros"
        if balance < 0
        else "pros and cons balance out"
    )
    return {
        "pros_weight": pros,
        "cons_weight": cons,
        "balance": balance,
        "pros_share": round(pros / (pros + cons), 4) if pros + cons else None,
        "verdict": verdict,
    }


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _num(value: float, places: int = 2) -> str:
    text = f"{value:.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def render(framework: str, structure: Mapping[str, Any], computed: Mapping[str, Any]) -> str:
    """The result as Markdown tables for people."""
    return _RENDER[framework](structure, computed)


def _render_matrix(structure: Mapping[str, Any], computed: Mapping[str, Any]) -> str:
    weights = computed["weights"]
    scores = {o["name"]: o["scores"] for o in structure["options"]}
    top = computed["top"]
    lines = ["## Decision matrix\n"]
    if computed["tie_at_top"]:
        tied = [r["option"] for r in computed["ranking"] if r["rank"] == 1]
        lines.append(
            f"**Tie at the top:** {', '.join(tied)} (score {_num(computed['scores'][top])})\n"
        )
    else:
        lines.append(
            f"**Top option: {top}** (weighted score {_num(computed['scores'][top])} of 10)\n"
        )
    headers = [
        "rank",
        "option",
        "score",
        *(f"{c} ({_num(w * 100, 1)}%)" for c, w in weights.items()),
    ]
    rows = [
        [r["rank"], r["option"], _num(r["score"]), *(_num(scores[r["option"]][c]) for c in weights)]
        for r in computed["ranking"]
    ]
    lines.append(_table(headers, rows))
    lines.append("### Sensitivity to the weights\n")
    srows = []
    for s in computed["sensitivity"]:
        if s["critical_weight"] is None:
            srows.append([s["criterion"], f"{_num(s['weight'] * 100, 1)}%", "never", "—", "—"])
            continue
        raw = s["critical_raw_weight"]
        pct = s["raw_change_pct"]
        raw_text = (
            "—"
            if raw is None
            else f"{_num(raw, 3)} ({'+' if (pct or 0) >= 0 else ''}{_num(pct or 0, 1)}%)"
        )
        srows.append(
            [
                s["criterion"],
                f"{_num(s['weight'] * 100, 1)}%",
                f"{_num(s['critical_weight'] * 100, 1)}% ({'+' if s['change'] >= 0 else ''}{_num(s['change'] * 100, 1)} pts)",
                raw_text,
                s["new_top"],
            ]
        )
    lines.append(
        _table(
            ["criterion", "weight", "top changes at weight", "raw weight (change)", "new top"],
            srows,
        )
    )
    stability = computed["stability"]
    p = _num(stability["perturbation"] * 100, 1)
    if stability["ranking_stable"]:
        lines.append(f"Ranking under ±{p}% on each weight (one at a time): **stable**.\n")
    else:
        changes = [
            f"{t['criterion']} ×{_num(t['factor'], 2)} → {' > '.join(t['ranking'])}"
            for t in stability["trials"]
            if t["ranking_changed"]
        ]
        top_note = "top option stable" if stability["top_stable"] else "**top option changes**"
        lines.append(
            f"Ranking under ±{p}% on each weight (one at a time): changes ({top_note}): "
            + "; ".join(changes)
            + ".\n"
        )
    return "\n".join(lines)


def _render_risk(structure: Mapping[str, Any], computed: Mapping[str, Any]) -> str:
    rows = [
        [
            r["rank"],
            r["risk"],
            r["likelihood"],
            r["impact"],
            r["score"],
            r["level"],
            r["mitigation"],
        ]
        for r in computed["risks"]
    ]
    return "## Risk assessment\n\n" + _table(
        ["rank", "risk", "likelihood (1-5)", "impact (1-5)", "score", "level", "mitigation"], rows
    )


def _render_swot(structure: Mapping[str, Any], computed: Mapping[str, Any]) -> str:
    lines = ["## SWOT analysis\n"]
    counts = computed["counts"]
    lines.append(
        _table(
            ["", "helpful", "harmful"],
            [
                [
                    "internal",
                    f"{counts['strengths']} strengths",
                    f"{counts['weaknesses']} weaknesses",
                ],
                [
                    "external",
                    f"{counts['opportunities']} opportunities",
                    f"{counts['threats']} threats",
                ],
            ],
        )
    )
    for key in LISTS["swot"]:
        lines.append(f"### {key.capitalize()}\n")
        lines.append("\n".join(f"- {item}" for item in structure[key]) + "\n")
    if structure.get("summary"):
        lines.append(f"{structure['summary']}\n")
    return "\n".join(lines)


def _render_pros_cons(structure: Mapping[str, Any], computed: Mapping[str, Any]) -> str:
    lines = ["## Pros and cons\n"]
    lines.append(
        f"**Balance: {computed['pros_weight']} for, {computed['cons_weight']} against "
        f"({'+' if computed['balance'] >= 0 else ''}{computed['balance']}): {computed['verdict']}.**\n"
    )
    lines.append(
        _table(["pro", "weight (1-5)"], [[p["point"], p["weight"]] for p in structure["pros"]])
    )
    lines.append(
        _table(["con", "weight (1-5)"], [[p["point"], p["weight"]] for p in structure["cons"]])
    )
    if structure.get("summary"):
        lines.append(f"{structure['summary']}\n")
    return "\n".join(lines)


def _render_strategic(structure: Mapping[str, Any], computed: Mapping[str, Any]) -> str:
    lines = ["## Strategic options\n"]
    lines.append(
        _table(
            ["rank", "option", "impact (1-5)", "feasibility (1-5)", "priority"],
            [
                [r["rank"], r["option"], r["impact"], r["feasibility"], r["priority"]]
                for r in computed["priorities"]
            ],
        )
    )
    for option in structure["options"]:
        lines.append(f"### {option['name']}\n\n{option['description']}\n")
        lines.append("\n".join(f"- + {a}" for a in option["advantages"]))
        lines.append("\n".join(f"- − {d}" for d in option["disadvantages"]) + "\n")
    if structure.get("recommendation"):
        lines.append(f"**Recommendation:** {structure['recommendation']}\n")
    return "\n".join(lines)


_RENDER: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], str]] = {
    "decision_matrix": _render_matrix,
    "risk": _render_risk,
    "swot": _render_swot,
    "pros_cons": _render_pros_cons,
    "strategic_options": _render_strategic,
}


@coop.hookimpl
def coop_register_services(register: Any) -> None:
    register(DecisionSupport)
