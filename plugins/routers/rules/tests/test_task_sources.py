"""Function stubs route to code, word problems to math, and the figures on the gathered
public prompts (benchmarks/data/task_routing.jsonl) stay above the floors measured there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from coop import evaluate_routing, read_jsonl
from coop_rules import RulesRouter

DATA = Path(__file__).resolve().parents[4] / "benchmarks" / "data" / "task_routing.jsonl"


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def router() -> RulesRouter:
    return RulesRouter()


# Hand-written in the HumanEval style: a signature and a docstring with doctests full of
# numbers and arithmetic words, which used to outvote the code evidence.
STUBS = {
    "python, English docstring": (
        "def sum_of_squares(n: int) -> int:\n"
        '    """Return the sum of the squares of 1 to n; return 0 when n is 0.\n'
        "    >>> sum_of_squares(3)\n    14\n"
        "    >>> sum_of_squares(10)\n    385\n"
        '    """\n'
    ),
    "python, Chinese docstring": (
        "from typing import List\n\n\n"
        "def average_price(prices: List[float]) -> float:\n"
        '    """ 给定一个商品价格列表，计算平均价格，保留两位小数。如果列表为空，返回 0。\n'
        "    >>> average_price([12.5, 7.5, 10])\n    10.0\n"
        '    """\n'
    ),
    "python, single quotes, arithmetic in the text": (
        "def apples_left(total, eaten):\n"
        "    '''A basket has total apples and eaten of them are eaten.\n"
        "    How many apples are left? apples_left(10, 3) == 7\n"
        "    '''\n"
    ),
    "go, Chinese comments": (
        'package main\n\nimport (\n\t"fmt"\n)\n\n'
        "// 给定正整数 n，返回 1 到 n 中所有质数的个数。\n"
        "// >>> CountPrimes(10)\n// 4\n"
        "func CountPrimes(n int) int {\n"
    ),
    "java, doc comment": (
        "class Solution {\n"
        "    /**\n"
        "     * Given the lengths of the three sides of a triangle, return its area\n"
        "     * rounded to 2 decimal points, or -1 if the sides do not form a triangle.\n"
        "     * triangleArea(3, 4, 5) == 6.00\n"
        "     */\n"
        "    public static double triangleArea(double a, double b, double c) {\n"
    ),
    "javascript, JSDoc": (
        "/**\n * 返回列表中所有偶数之和。\n * >>> sumEven([1, 2, 3, 4])\n * 6\n */\n"
        "const sumEven = (l) => {\n"
    ),
}


@pytest.mark.parametrize("label", list(STUBS))
def test_function_stubs_with_docstrings_route_to_code(router: RulesRouter, label: str) -> None:
    analysis = router.analyze(user(STUBS[label]))
    assert analysis.task_type == "code", (label, analysis.reasons, analysis.signals["scores"])
    assert analysis.tier == "reasoning"
    assert any("stub" in reason for reason in analysis.reasons)


WORD_PROBLEMS = [
    "Sara had 24 stickers. She gave 9 to her brother and bought 6 more. How many does she have now?",
    "The function f(x) = 3x + 2. What is f(4)?",
    "A train covers 180 km in 2 hours. What is its average speed?",
    "一根绳子长 24 米，剪成同样长的 6 段，每段长多少米？",
    "果园里有 36 棵苹果树，梨树的棵数是苹果树的一半，梨树有几棵？",
    "动物园里有 9 只骆驼，6 只老虎，老虎的数量是骆驼的几分之几？",
]


@pytest.mark.parametrize("prompt", WORD_PROBLEMS)
def test_word_problems_still_route_to_math(router: RulesRouter, prompt: str) -> None:
    analysis = router.analyze(user(prompt))
    assert analysis.task_type == "math", (prompt, analysis.reasons)
    assert analysis.tier == "reasoning"


def test_a_count_asked_inside_pasted_text_is_not_a_word_problem(router: RulesRouter) -> None:
    # "几个房间" sits in the dialogue to summarise, not in a closing question.
    prompt = (
        "请总结以下对话。\n客户：我的预算是 100 万左右，想要三个卧室。\n"
        "设计师：好的，您需要几个房间做书房？\n客户：一个就够了。我们下周再细谈吧，谢谢你。"
    )
    assert router.analyze(user(prompt)).task_type == "summarization"


def test_a_multiple_choice_question_is_answered_not_written(router: RulesRouter) -> None:
    # A topic word of the stem ("措施", measures) does not make it a brainstorming request.
    prompt = (
        "秦国推行变法时，下列哪一项措施直接触动了旧贵族的利益？（　　）\n"
        "(A)重农抑商\n(B)统一度量衡\n(C)迁都咸阳\n(D)按军功授爵"
    )
    analysis = router.analyze(user(prompt))
    assert analysis.task_type == "qa", analysis.reasons
    assert any("multiple-choice" in reason for reason in analysis.reasons)


def test_a_multiple_choice_maths_question_is_math(router: RulesRouter) -> None:
    prompt = "If $\\frac{2x}{5}=4$, what is the value of $x$?\n(A)2\n(B)8\n(C)10\n(D)20"
    assert router.analyze(user(prompt)).task_type == "math"


def test_a_logic_question_after_a_long_passage_is_reasoning(router: RulesRouter) -> None:
    # The stem sits between a long argument and the options, outside the head and the
    # tail the rules weigh most: it is read as the instruction.
    passage = (
        "Town council member: Our library's evening hours were cut last year, and since "
        "then the number of books borrowed by students has fallen sharply. "
    ) * 6
    prompt = (
        passage + "Clearly, restoring the evening hours would bring student borrowing back "
        "to its former level.\nWhich one of the following, if true, most seriously weakens "
        "the council member's argument?\n"
        "(A) Most students now read on their phones.\n(B) The library added new shelves.\n"
        "(C) Evening hours were popular with retirees.\n(D) The council meets on Mondays.\n"
        "(E) Book prices rose last year."
    )
    analysis = router.analyze(user(prompt))
    assert (analysis.task_type, analysis.tier) == ("reasoning", "reasoning"), analysis.reasons


def test_prose_about_functions_is_not_a_stub(router: RulesRouter) -> None:
    analysis = router.analyze(user("Why do people say a function should do one thing? # honest"))
    assert not any("stub" in reason for reason in analysis.reasons)


def rows_of(source: str | None = None) -> list[dict[str, Any]]:
    if not DATA.is_file():
        pytest.skip(f"{DATA} not found")
    rows = [row for _, row in read_jsonl(DATA)]
    return [r for r in rows if source is None or r["source"] == source]


#: Floors a little under the figures measured on 2026-11-30 (rules: overall 0.892 / 0.944,
#: HumanEval 1.000, HumanEval-XL zh 1.000, CMATH 0.980, AGIEval Gaokao 0.795 / 0.741,
#: SAT/LSAT 0.690 / 0.806); before the stub, quantity-question and quiz rules they were
#: 0.754 / 0.918, 0.823, 0.795, 0.900, 0.565 / 0.687 and 0.445 / 0.689, so a regression
#: fails here.
FLOORS = {
    None: (0.87, 0.93),
    "humaneval": (0.97, 0.99),
    "humaneval-xl-zh": (0.97, 0.99),
    "cmath": (0.95, 0.97),
    "svamp": (0.94, 0.97),
    "agieval-gaokao": (0.75, 0.71),
    "agieval-sat-lsat": (0.65, 0.77),
}


@pytest.mark.parametrize("source", list(FLOORS), ids=lambda s: s or "overall")
def test_accuracy_on_gathered_sources_stays_above_its_floor(
    router: RulesRouter, source: str | None
) -> None:
    report = evaluate_routing(router, rows_of(source))
    accuracy, f1 = FLOORS[source]
    assert report.task_accuracy >= accuracy, (report.task_accuracy, report.misses[:5])
    assert report.reasoning_f1 >= f1, (report.reasoning, report.misses[:5])
