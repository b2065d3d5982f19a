"""Final-answer extraction and normalisation: what voting stands on."""

from __future__ import annotations

from fractions import Fraction

import pytest
from coop._answers import (
    Answer,
    answers_match,
    extract_answer,
    format_number,
    normalize_answer,
    parse_number,
)


def num(text: str) -> Fraction | None:
    a = extract_answer(text)
    assert a is not None, text
    assert a.kind == "number", (text, a)
    return a.value  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("18", 18),
        ("1,234", 1234),
        ("$18", 18),
        ("$1,200.50", Fraction("1200.5")),
        ("18.0", 18),
        ("18 dollars", 18),
        ("1/2", Fraction(1, 2)),
        ("-5", -5),
        ("−5", -5),
        ("0.25", Fraction(1, 4)),
        (".5", Fraction(1, 2)),
        ("50%", 50),
        ("1.5 million", 1_500_000),
        ("十二", 12),
        ("一百零五", 105),
        ("两千三百", 2300),
        ("三千零五十", 3050),
        ("一万二", 12000),
        ("三百五", 350),
        ("十万", 100000),
        ("一亿三千万", 130_000_000),
        ("3万", 30000),
        ("1.5亿", 150_000_000),
        ("2.5万元", 25000),
        ("百分之五十", 50),
        ("负五", -5),
        ("twenty-five", 25),
        ("１８", 18),
    ],
)
def test_numbers_alone(text: str, value: Fraction | int) -> None:
    assert num(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("A: 18", 18),
        ("Some work\nAnswer: $1,234", 1234),
        ("Final answer: 7 apples", 7),
        ("So the answer is 42.", 42),
        ("The answer is -3.", -3),
        ("The correct answer to the question is 12, since 3 * 4 = 12.", 12),
        ("work\n#### 60 minutes", 60),
        ("work\n#### $460", 460),
        ("The final answer is $\\boxed{42}$.", 42),
        ("\\boxed{\\frac{3}{4}}", Fraction(3, 4)),
        ("\\boxed{\\$1{,}200}", 1200),
        ("\\boxed{50\\%}", 50),
        ("所以答案是12。", 12),
        ("答案：十二", 12),
        ("最终答案是 3万元", 30000),
        ("答案为1.5亿", 150_000_000),
        ("Final Answer:\n\n 1,234", 1234),
        ("**Answer:** 18", 18),
        ("She ends with x = -7.", -7),
        ("The total is negative 7.", -7),
    ],
)
def test_marked_answers(text: str, value: int | Fraction) -> None:
    assert num(text) == value


def test_calculator_annotations_are_not_the_answer() -> None:
    text = (
        "Janet eats 3 so she has 16 - 3 = <<16-3=13>>13 eggs left\n"
        "She sells 13 * 2 = $<<13*2=26>>26\n"
        "A: 18"
    )
    assert num(text) == 18
    # No final line: the number after the annotation is the result, not the annotation's.
    assert num("She has 16 - 3 = <<16-3=13>>13 eggs") == 13
    # A truncated annotation at the end is dropped too.
    assert num("Total is 15 + 25 = 40 cups.\nThen 40 + <<15+2") == 40


def test_subtraction_is_not_a_negative_number() -> None:
    assert num("He has 13 left. Then 16-3") == 16
    assert num("He has 13 left. Then take 16 - 3") == 16
    assert num("Answer: 16 - 3") == 16  # marker segment: its first number, not -3


def test_marker_beats_later_prose_and_last_marker_wins() -> None:
    assert num("A: 18\nThat is 3 more than 15.") == 18
    assert num("The answer is 5.\nWait, recheck.\nThe answer is 7.") == 7
    assert num("Answer: 4\n#### 9") == 9


def test_marker_with_empty_line_reads_next_line() -> None:
    assert num("Final answer:\n\n$72") == 72


def test_prose_skips_numbers_the_question_gave() -> None:
    question = "Kylar buys 16 glasses; every second one costs 60% of $5. How much does he pay?"
    text = (
        "The 8 discounted glasses cost 8 * $3 = $24.\n\nKylar needs to pay $64 for the 16 glasses."
    )
    assert extract_answer(text, question=question) == Answer("number", Fraction(64))
    # Without the question the first number of the concluding sentence is the bet.
    assert num(text) == 64
    assert num("Therefore, Allen will be 109 years old 10 years from now.") == 109
    # The question gave every number in the sentence: its last one.
    question = (
        "10 liters... 15 liters of pineapple drink... How much water is in the remaining 24 liters?"
    )
    text = "So, in the remaining 24 liters of the mixed drink, there are 15 liters of water."
    assert extract_answer(text, question=question) == Answer("number", Fraction(15))
    # A result after "=" wins whatever the question said.
    assert extract_answer("So he walks 4 * 2 = 8 miles in 4 hours.", question="4 hours") == Answer(
        "number", Fraction(8)
    )


def test_prose_takes_the_result_of_the_last_sentence() -> None:
    text = (
        "He covered 135 miles on the way back.\n\n"
        "Since he was initially 180 miles away, he is still 180 - 135 = 45 miles away "
        "from home at the end of those 4 hours."
    )
    assert num(text) == 45
    assert num("First 3 eggs. Then she sells the rest for $18 every day.\n\nHope this helps!") == 18
    assert num("The cost is 2 * $7.50 = $15.00.") == 15


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("(B)", "B"),
        ("B", "B"),
        ("答案是B", "B"),
        ("答案：C选项", "C"),
        ("the answer is b", "B"),
        ("The answer is (d).", "D"),
        ("Answer: C. 300 meters", "C"),
        ("故选A", "A"),
        ("\\boxed{\\text{(E)}}", "E"),
    ],
)
def test_option_letters(text: str, letter: str) -> None:
    assert extract_answer(text) == Answer("option", letter)


def test_option_letter_is_not_an_article_or_pronoun() -> None:
    assert extract_answer("Answer: A total of 18 eggs") == Answer("number", Fraction(18))
    assert extract_answer("Answer: I think it is 7") == Answer("number", Fraction(7))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("yes", True),
        ("No.", False),
        ("Answer: Yes", True),
        ("The answer is no.", False),
        ("True", True),
        ("false", False),
        ("是", True),
        ("否", False),
        ("对", True),
        ("错", False),
        ("答案：不是", False),
        ("答案是正确", True),
        ("Yes, she can afford all of them because she has 3 more than she needs.", True),
        ("No, the two numbers are 12 and 15, which differ.", False),
    ],
)
def test_booleans(text: str, value: bool) -> None:
    assert extract_answer(text) == Answer("boolean", value)


def test_trailing_yes_no() -> None:
    assert extract_answer("Is 7 prime? Yes.") == Answer("boolean", True)
    long = "Let me check whether 91 is prime. 91 = 7 * 13, so it has divisors.\nNo."
    assert extract_answer(long) == Answer("boolean", False)


def test_chinese_words_with_numeral_characters_are_not_numbers() -> None:
    assert num("所以一共需要两千三百元。") == 2300
    assert num("答案：一共两千三百元") == 2300
    assert num("他一共有十二个苹果") == 12
    assert num("万一下雨，我们需要3把伞。") == 3
    assert num("解：小明有12个苹果，给了小红3个，还剩12-3=9个。\n答：还剩9个苹果。") == 9


def test_final_answer_heading() -> None:
    assert num("Work: 3 * 6 = 18, minus 2.\n\n### Final Answer\n\n**16**") == 16


def test_boolean_word_followed_by_a_number_is_a_number() -> None:
    assert extract_answer("答案：是18") == Answer("number", Fraction(18))


def test_text_answers_and_none() -> None:
    assert extract_answer("Paris") == Answer("text", "paris")
    assert extract_answer("Answer: The Eiffel Tower!") == Answer("text", "eiffel tower")
    assert extract_answer("") is None
    assert extract_answer(None) is None
    long_prose = "I am not sure how to approach this one. " * 5
    assert extract_answer(long_prose) is None


def test_equal_answers_hash_alike_whatever_the_spelling() -> None:
    spellings = ["A: 1200", "$1,200", "1200.0", "答案是1200元", "#### 1,200", "\\boxed{1200}"]
    answers = {extract_answer(t) for t in spellings}
    assert len(answers) == 1
    (only,) = answers
    assert only.key == ("number", Fraction(1200))
    assert str(only) == "1200"


def test_raw_and_source_do_not_affect_equality() -> None:
    a = extract_answer("A: $18")
    b = extract_answer("18 dollars")
    assert a == b and hash(a) == hash(b)
    assert a is not None and b is not None
    assert a.source == "marker" and b.source == "whole"


def test_percent_rule() -> None:
    # points (default): 50% and 50 agree, 0.5 does not.
    assert answers_match(extract_answer("50%"), extract_answer("50"))
    assert not answers_match(extract_answer("50%"), extract_answer("0.5"))
    # ratio: 50% and 0.5 agree, 50 does not.
    assert answers_match(extract_answer("50%", percent="ratio"), extract_answer("0.5"))
    assert extract_answer("百分之二十五", percent="ratio") == Answer("number", Fraction(1, 4))


def test_rounded_decimals_match_exact_values_but_integers_stay_exact() -> None:
    third = extract_answer("1/3")
    assert answers_match(third, extract_answer("0.33"))
    assert answers_match(extract_answer("33.3"), extract_answer("33.33"))
    assert not answers_match(extract_answer("3"), extract_answer("2.5"))
    assert not answers_match(extract_answer("3"), extract_answer("3.4"))
    assert not answers_match(extract_answer("B"), extract_answer("(c)"))
    assert not answers_match(None, third)


def test_kinds_never_match_across() -> None:
    assert not answers_match(Answer("number", Fraction(1)), Answer("boolean", True))


def test_normalize_answer_takes_the_whole_input() -> None:
    assert normalize_answer("2,125") == Answer("number", Fraction(2125))
    assert normalize_answer("A: 18") == Answer("number", Fraction(18))
    assert normalize_answer(18) == Answer("number", Fraction(18))
    assert normalize_answer(0.5) == Answer("number", Fraction(1, 2))
    assert normalize_answer(True) == Answer("boolean", True)
    assert normalize_answer("B") == Answer("option", "B")
    assert normalize_answer("New York") == Answer("text", "new york")
    assert normalize_answer(None) is None


def test_parse_number_and_format_number() -> None:
    assert parse_number("$1,234.50") == Fraction("1234.5")
    assert parse_number("两千三百") == 2300
    assert parse_number("no digits") is None
    assert format_number(Fraction(1, 3)) == "1/3"
    assert format_number(Fraction(-9, 4)) == "-2.25"
    assert format_number(Fraction(18)) == "18"


def test_braces_and_garbage_do_not_crash() -> None:
    for text in ["{", "}{", "\\boxed{", "<<", ">>", "####", "A:", "答案", "1/0", "\x00"]:
        extract_answer(text)
    assert num("\\boxed{12") == 12
