"""The voting strategy: real votes over normalised answers, text agreement as fallback."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from coop import Candidate, ConfigError, CooperationError, StrategyContext, load_plugins
from coop_voting import VotingStrategy, text_similarity, tool_call_key, vote, vote_options


async def _no_calls(model: str, messages: list[dict[str, Any]]) -> str:
    raise AssertionError("voting must not call models")


def ctx(settings: dict[str, Any] | None = None) -> StrategyContext:
    return StrategyContext(query="q", complete=_no_calls, settings=settings or {})


def cands(*texts: str, weights: Sequence[float] | None = None) -> list[Candidate]:
    ws = list(weights or [1.0] * len(texts))
    return [
        Candidate(model=f"m{i}", text=t, weight=w)
        for i, (t, w) in enumerate(zip(texts, ws, strict=True))
    ]


@pytest.mark.anyio
async def test_majority_over_normalised_answers() -> None:
    cs = cands(
        "so she pays 13 * 2 = $<<13*2=26>>26\nA: 26",
        "Work...\nThe answer is $1,200.",
        "1200.0 dollars",
        "答案是1200元",
    )
    result = await VotingStrategy().integrate(cs, ctx())
    assert result.winner == "m1"
    assert result.text == cs[1].text  # the full text of the first agreeing candidate
    assert result.confidence == pytest.approx(0.75)
    ev = result.evidence
    assert ev["method"] == "answer"
    assert ev["votes"] == {"26": 1.0, "1200": 3.0}
    assert [a["answer"] for a in ev["answers"]] == ["26", "1200", "1200", "1200"]
    assert ev["agreeing"] == ["m1", "m2", "m3"]
    assert ev["agreement"] == pytest.approx(0.75)


@pytest.mark.anyio
async def test_options_and_booleans_vote_too() -> None:
    result = await VotingStrategy().integrate(cands("(B)", "答案是B", "the answer is c"), ctx())
    assert result.evidence["votes"] == {"B": 2.0, "C": 1.0}
    result = await VotingStrategy().integrate(cands("Yes.", "是", "No, never."), ctx())
    assert result.evidence["winning_answer"] == "yes"


def test_ties_break_by_weight_then_order() -> None:
    # Equal weight, two answers tied: the first listed wins.
    r = vote(cands("A: 1", "A: 2"), majority="plurality")
    assert r.winner == "m0" and r.evidence["tie_break"] == "weight, then order"
    # A tie in total weight goes to the answer whose heaviest voter weighs most.
    r = vote(
        cands("A: 1", "A: 1", "A: 2"), weights={"m0": 1, "m1": 1, "m2": 2}, majority="plurality"
    )
    assert r.winner == "m2"


def test_plurality_is_the_default() -> None:
    texts = ("A: 5", "A: 7", "A: 7", "A: 9")
    r = vote(cands(*texts))
    assert r.evidence["majority"] == "plurality"
    assert r.evidence["winning_answer"] == "7" and r.winner == "m1"
    assert r.confidence == pytest.approx(0.5)
    assert "tie_break" not in r.evidence
    # The order of listing only breaks ties; it never overrules a plurality.
    assert vote(cands(*reversed(texts))).evidence["winning_answer"] == "7"
    assert vote_options({}) == {
        "weights": None,
        "majority": "plurality",
        "threshold": 0.5,
        "similarity": "jaccard",
        "percent": "points",
    }


def test_plurality_ties_by_total_weight_then_heaviest_voter_then_order() -> None:
    # Total weight first: one heavy voter beats two light ones.
    r = vote(cands("A: 1", "A: 1", "A: 2"), weights={"m0": 0.4, "m1": 0.4, "m2": 1.0})
    assert r.evidence["winning_answer"] == "2"
    # Equal totals (float noise aside): the heavier single voter wins, wherever listed.
    r = vote(cands("A: 1", "A: 1", "A: 2"), weights={"m0": 0.1, "m1": 0.2, "m2": 0.3})
    assert r.evidence["winning_answer"] == "2" and r.evidence["tie_break"] == "weight, then order"
    r = vote(cands("A: 2", "A: 1", "A: 1"), weights={"m0": 0.3, "m1": 0.1, "m2": 0.2})
    assert r.evidence["winning_answer"] == "2"
    # All equal: the answer listed first.
    assert vote(cands("A: 3", "A: 4", "A: 4", "A: 3")).evidence["winning_answer"] == "3"


def test_absolute_majority_else_the_lead_decides() -> None:
    texts = ("A: 5", "A: 7", "A: 7", "A: 9")
    absolute = vote(cands(*texts), majority="absolute")  # 2 of 4 is not more than half
    assert absolute.evidence["winning_answer"] == "5"
    assert "lead model m0" in absolute.evidence["tie_break"]
    # Three of four is a majority and overrules the lead.
    r = vote(cands("A: 5", "A: 7", "A: 7", "A: 7"), majority="absolute")
    assert r.evidence["winning_answer"] == "7"
    # The lead is the heaviest candidate, not only the first.
    r = vote(cands(*texts, weights=[1, 1, 1, 1.5]), majority="absolute")
    assert r.evidence["winning_answer"] == "9"


def test_candidates_without_answer_abstain() -> None:
    r = vote(cands("I cannot tell. " * 10, "A: 3", "Answer: 3"))
    assert r.evidence["abstained"] == ["m0"]
    assert r.evidence["votes"] == {"3": 2.0}
    assert r.confidence == pytest.approx(2 / 3)  # abstainers still count in the total


def test_free_text_falls_back_to_text_agreement_and_says_so() -> None:
    texts = (
        "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen inside plant cells.",
        "The mitochondria is where cells break sugar down and make energy for the organism to use.",
        "Inside plant cells, photosynthesis turns light, water and carbon dioxide into oxygen and sugar.",
    )
    r = vote(cands(*texts), threshold=0.5)
    assert r.evidence["method"] == "text-similarity"
    assert "no candidate has an extractable answer" in r.evidence["fallback"]
    assert r.winner == "m0" and r.evidence["agreeing"] == ["m0", "m2"]
    assert r.confidence == pytest.approx(2 / 3)
    r = vote(cands(*texts), threshold=0.5, similarity="ngram")
    assert r.evidence["agreeing"] == ["m0", "m2"]


def test_short_text_answers_cluster_by_similarity() -> None:
    r = vote(cands("Answer: The Eiffel Tower", "Answer: Eiffel Tower.", "Answer: Big Ben"))
    assert r.evidence["method"] == "answer"
    assert r.evidence["agreeing"] == ["m0", "m1"]


def test_text_similarity() -> None:
    assert text_similarity("a b c", "c b a") == 1.0
    assert text_similarity("a b", "c d") == 0.0
    assert text_similarity("", "") == 1.0
    assert text_similarity("中文答案", "中文回答") > 0.3
    assert text_similarity("hello world", "hello world", "ngram") == pytest.approx(1.0)


@pytest.mark.anyio
async def test_errors() -> None:
    with pytest.raises(CooperationError):
        await VotingStrategy().integrate([], ctx())
    with pytest.raises(ConfigError, match="majority"):
        await VotingStrategy({"majority": "most"}).integrate(cands("1"), ctx())
    with pytest.raises(ConfigError, match="threshold"):
        await VotingStrategy().integrate(cands("1"), ctx({"threshold": 2}))


@pytest.mark.anyio
async def test_settings_come_from_the_cooperation() -> None:
    texts = ("A: 5", "A: 7", "A: 7", "A: 9")
    r = await VotingStrategy().integrate(cands(*texts), ctx({"majority": "absolute"}))
    assert r.evidence["winning_answer"] == "5"
    r = await VotingStrategy({"majority": "plurality"}).integrate(
        cands(*texts), ctx({"majority": "absolute"})
    )
    assert r.evidence["winning_answer"] == "7"  # the strategy's own settings win
    r = await VotingStrategy().integrate(cands(*texts), ctx({"weights": {"m3": 5}}))
    assert r.evidence["winning_answer"] == "9"


def test_registered_through_the_entry_point() -> None:
    assert load_plugins().get("strategy", "voting") is VotingStrategy


def call(name: str, arguments: str, ident: str = "call_1") -> dict[str, Any]:
    return {"id": ident, "type": "function", "function": {"name": name, "arguments": arguments}}


def tool_cands(*calls: list[dict[str, Any]] | str) -> list[Candidate]:
    """A candidate per entry: a list of tool calls, or a plain text answer."""
    return [
        Candidate(model=f"m{i}", text=c, weight=1.0)
        if isinstance(c, str)
        else Candidate(model=f"m{i}", text="", tool_calls=c)
        for i, c in enumerate(calls)
    ]


def tctx(response_format: dict[str, Any] | None = None) -> StrategyContext:
    return StrategyContext(query="q", complete=_no_calls, response_format=response_format)


def test_honours_tools_and_response_format() -> None:
    assert VotingStrategy.honours == {"tools", "response_format"}


@pytest.mark.anyio
async def test_tool_calls_agree_whatever_key_order_and_whitespace() -> None:
    cs = tool_cands(
        [call("get_weather", '{"city": "Berlin", "unit": "c"}')],
        [call("get_weather", '{"unit":"c","city":"Paris"}', "call_a")],
        [call("get_weather", '{\n  "city": "Paris",\n  "unit": "c"\n}', "call_b")],
    )
    result = await VotingStrategy().integrate(cs, tctx())
    ev = result.evidence
    assert ev["method"] == "tool-calls"
    assert result.winner == "m1" and result.text == ""
    assert ev["agreeing"] == ["m1", "m2"]
    assert ev["winning_answer"] == 'tool: get_weather({"city":"Paris","unit":"c"})'
    assert ev["votes"] == {
        'tool: get_weather({"city":"Berlin","unit":"c"})': 1.0,
        'tool: get_weather({"city":"Paris","unit":"c"})': 2.0,
    }
    assert ev["answers"][2]["raw"].startswith('get_weather({\n  "city"')
    assert result.confidence == pytest.approx(2 / 3)


def test_tool_calls_differ_by_name_args_or_values() -> None:
    r = vote(
        tool_cands(
            [call("get_weather", '{"city": "Paris"}')],
            [call("get_time", '{"city": "Paris"}')],
            [call("get_weather", '{"city": "paris"}')],
            [call("get_weather", '{"city": "Paris", "unit": "c"}')],
        )
    )
    assert len(r.evidence["votes"]) == 4
    assert r.winner == "m0" and r.evidence["tie_break"] == "weight, then order"
    # 1 and 1.0 are one JSON number; "1" is a string.
    r = vote(
        tool_cands([call("f", '{"n": 1}')], [call("f", '{"n": 1.0}')], [call("f", '{"n": "1"}')])
    )
    assert r.evidence["votes"] == {'tool: f({"n":1})': 2.0, 'tool: f({"n":"1"})': 1.0}


def test_several_calls_compare_as_a_set_and_invalid_json_only_matches_itself() -> None:
    a, b = call("a", '{"x": 1}'), call("b", "{}")
    r = vote(tool_cands([a, b], [b, a], [a]))
    assert r.evidence["agreeing"] == ["m0", "m1"]
    assert r.evidence["winning_answer"] == 'tool: a({"x":1}); b({})'
    # Empty arguments read as {}.
    assert tool_call_key([call("b", "")])[0] == tool_call_key([b])[0]
    # Arguments that are not JSON: only the identical string agrees.
    r = vote(
        tool_cands(
            [call("f", "{city: Paris}")],
            [call("f", "{city: Paris}")],
            [call("f", "{city:Paris}")],
            [call("f", '{"city": "Paris"}')],
        )
    )
    assert r.evidence["agreeing"] == ["m0", "m1"]
    assert r.evidence["votes"] == {
        "tool: f({city: Paris})": 2.0,
        "tool: f({city:Paris})": 1.0,
        'tool: f({"city":"Paris"})': 1.0,
    }


def test_a_text_answer_among_tool_calls_is_its_own_group() -> None:
    weather = call("get_weather", '{"city": "Paris"}')
    r = vote(tool_cands("It is sunny in Paris.", "It is sunny in Paris.", [weather]))
    assert r.evidence["method"] == "tool-calls"
    assert r.evidence["votes"] == {
        "text: It is sunny in Paris.": 1.0,
        "text: It is sunny in Paris. (m1)": 1.0,
        'tool: get_weather({"city":"Paris"})': 1.0,
    }
    r = vote(tool_cands("I would need to look it up.", [weather], [weather]))
    assert r.winner == "m1" and r.evidence["agreeing"] == ["m1", "m2"]


@pytest.mark.anyio
async def test_json_answers_vote_as_parsed_json() -> None:
    cs = cands(
        '{"name": "Ada", "born": 1815}',
        '{"born":1815,"name":"Ada"}',
        '{"name": "Ada", "born": 1816}',
        "Ada Lovelace, born 1815",
    )
    for fmt in ({"type": "json_object"}, {"type": "json_schema", "json_schema": {"name": "p"}}):
        result = await VotingStrategy().integrate(cs, tctx(fmt))
        ev = result.evidence
        assert ev["method"] == "json"
        assert result.winner == "m0" and result.text == cs[0].text
        assert ev["votes"] == {
            'json: {"born":1815,"name":"Ada"}': 2.0,
            'json: {"born":1816,"name":"Ada"}': 1.0,
        }
        assert ev["abstained"] == ["m3"]  # not JSON: no vote
        assert result.confidence == pytest.approx(0.5)
    # Without a JSON format the same texts vote on their extracted answers.
    result = await VotingStrategy().integrate(cs, tctx({"type": "text"}))
    assert result.evidence["method"] == "answer"


def test_json_format_without_any_json_falls_back_and_says_so() -> None:
    r = vote(cands("A: 3", "A: 3", "A: 4"), response_format={"type": "json_object"})
    assert r.evidence["method"] == "answer" and r.evidence["winning_answer"] == "3"
    assert "no answer parses as JSON" in r.evidence["fallback"]
