"""The paper's training reward: DeepScaleR's scorer (GRADERS.md, section 3), written from its rules.

The scored text is the prompt followed by the response, so a response without a box falls back on the prompt's
(empty) ``\\boxed{}``. The answer is the inside of the last ``\\boxed{...}``; a last box without ``{`` or never
closed scores 0. Correct if (A) the MATH-normalised strings are equal (case-sensitive) or (B) a looser
normalisation makes them equal, or sympy finds each element's difference 0 (with the scorer's limits: two
plain fractions must be identical, an integer needs an integer, no sympy on risky exponents or > 2 letters).
Sympy runs through ``symbolic`` (a bounded call, see ``rlvr.grading.bounded``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable

from rlvr.grading import limits
from rlvr.grading.official import fix_fracs

TUPLE_CHARS = "()[]"
UNITS = (
    "degree", "cm", "centimeter", "meter", "mile", "second", "minute", "hour", "day", "week", "month", "year",
    "foot", "feet", "inch", "yard",
)  # fmt: skip
_BAD_SUBSTRINGS = ("^{", "^(")
_BAD_PATTERNS = (re.compile(r"\^[0-9]+\^"), re.compile(r"\^[0-9][0-9]+"))
_UNIT_PATTERNS = [re.compile(f"{unit}(es)?(s)? *(\\^[0-9]+)?") for unit in UNITS]
_THOUSANDS = re.compile(r"(\d)(,)(\d\d\d)($|\D)")
_FRACTION = re.compile(r"^-?[0-9]+.?/0*[1-9][0-9]*.?$")
SymbolicCheck = Callable[[str, str], bool]


def last_boxed(text: str) -> str | None:
    """The inside of the last ``\\boxed{...}`` (or ``\\fbox{...}`` where no ``\\boxed`` exists); None for a box
    without ``{`` or never closed."""
    start = text.rfind("\\boxed")
    if start < 0:
        start = text.rfind("\\fbox")
        if start < 0:
            return None
    depth = 0
    for i in range(start, len(text)):
        depth += (text[i] == "{") - (text[i] == "}")
        if text[i] == "}" and depth == 0:
            box = text[start : i + 1]
            return box[len("\\boxed{") : -1] if box.startswith("\\boxed{") else None
    return None


def _fix_sqrt(text: str) -> str:
    parts = text.split("\\sqrt")
    fixed = parts[0]
    for part in parts[1:]:
        fixed += "\\sqrt" + (part if part[0] == "{" else "{" + part[0] + "}" + part[1:])  # IndexError: see caller
    return fixed


def _fix_fracs(text: str) -> str:
    if any(not part for part in text.split("\\frac")[1:]):
        raise IndexError("\\frac with nothing after it")  # as the scorer's own helper fails
    return fix_fracs(text)


def _fix_a_slash_b(text: str) -> str:
    parts = text.split("/")
    if len(parts) != 2:
        return text
    try:
        a, b = int(parts[0]), int(parts[1])
    except ValueError:
        return text
    return f"\\frac{{{a}}}{{{b}}}" if text == f"{a}/{b}" else text


def mathd_normalise(answer: str) -> str:
    """Rule A's normalisation (Hendrycks' MATH ``_strip_string`` after removing an enclosing ``\\text{}``); where
    that helper fails (an odd ``\\text{ ``, ``\\sqrt`` or ``\\frac`` at the end) the answer is kept, as the scorer
    does."""
    answer = answer.strip()
    enclosed = re.search(r"^\\text\{(?P<text>.+?)\}$", answer)
    answer = enclosed.group("text").strip() if enclosed else answer
    text = answer.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    text = text.replace("tfrac", "frac").replace("dfrac", "frac").replace("\\left", "").replace("\\right", "")
    text = text.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\$", "")
    if "\\text{ " in text:
        parts = text.split("\\text{ ")
        if len(parts) != 2:
            return answer
        text = parts[0]
    text = text.replace("\\%", "").replace(" .", " 0.").replace("{.", "{0.")
    if not text:
        return text
    if text[0] == ".":
        text = "0" + text
    sides = text.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        text = sides[1]
    try:
        text = _fix_fracs(_fix_sqrt(text).replace(" ", ""))
    except IndexError:
        return answer
    if text == "0.5":
        text = "\\frac{1}{2}"
    return _fix_a_slash_b(text)


def _strip_thousands(text: str) -> str:
    while True:
        stripped = _THOUSANDS.sub(r"\1\3\4", text)
        if stripped == text:
            return stripped
        text = stripped


def _float(text: str) -> float | None:
    try:
        return float(text)
    except (ValueError, OverflowError):
        return None


def _is_int(text: str) -> bool:
    value = _float(_strip_thousands(text))
    try:
        return value is not None and abs(value - int(round(value))) <= 1e-7
    except (OverflowError, ValueError):
        return False


def _latex_to_text(text: str) -> str:
    from pylatexenc import latex2text

    text = text.replace("\\tfrac", "\\frac").replace("\\dfrac", "\\frac").replace("\\frac", " \\frac")
    text = latex2text.LatexNodes2Text().latex_to_text(text)
    for symbol, word in (("√", "sqrt"), ("π", "pi"), ("∞", "inf"), ("∪", "U"), ("·", "*"), ("×", "*")):
        text = text.replace(symbol, word)
    return text.strip()


def loose_normalise(text: str) -> str:
    """Rule B's normalisation (see module docstring)."""
    enclosed = re.search(r"^\\text\{(?P<text>.+?)\}$", text)
    text = enclosed.group("text") if enclosed else text
    text = text.replace("\\%", "%").replace("\\$", "$").replace("$", "").replace("%", "")
    text = text.replace(" or ", " , ").replace(" and ", " , ")
    for word, power in (("million", "*10^6"), ("billion", "*10^9"), ("trillion", "*10^12")):
        text = text.replace(word, power)
    for unit in _UNIT_PATTERNS:
        text = unit.sub("", text)
    text = re.sub(r"\^ *\\circ", "", text)
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    text = re.sub(r",\\! *", "", text)
    value = _float(text)
    if value is not None and _is_int(text):
        text = str(int(round(value)))
    if "\\" in text:
        with contextlib.suppress(Exception):  # the scorer keeps the text where the LaTeX converter fails
            text = _latex_to_text(text)
    text = re.sub("- *", "-", text)
    text = re.sub("([0-9]) +([0-9])", "\\1+\\2", text)  # a mixed number: 7 3/4 is 7+3/4
    text = text.replace(" ", "").replace("{", "").replace("}", "").lower()
    if _is_int(text):
        text = str(int(float(text.replace(",", ""))))
    return text


def _split_tuple(text: str) -> list[str]:
    text = _strip_thousands(text)
    if not text:
        return []
    outer = len(text) > 2 and text[0] in TUPLE_CHARS and text[-1] in TUPLE_CHARS
    if outer and all(char not in text[1:-1] for char in TUPLE_CHARS):
        return [element.strip() for element in text[1:-1].split(",")]
    return [text]


def sympy_allowed(expression: str) -> bool:
    """The scorer's guard: no sympy for more than 2 distinct letters or risky exponents."""
    letters = {char for char in expression.replace("sqrt", "").replace("frac", "") if char.isalpha()}
    if len(letters) > 2 or any(bad in expression for bad in _BAD_SUBSTRINGS):
        return False
    return not any(pattern.search(expression) for pattern in _BAD_PATTERNS)


def sympy_difference_is_zero(gold: str, given: str) -> bool:
    """``(gold) - (given)`` simplifies to 0 (implicit multiplication allowed). Unbounded: call it through
    ``rlvr.grading.bounded``."""
    import sympy
    from sympy.parsing import sympy_parser

    expression = f"({gold})-({given})"
    if not sympy_allowed(expression):
        return False
    transformations = sympy_parser.standard_transformations + (sympy_parser.implicit_multiplication_application,)
    try:
        difference = sympy_parser.parse_expr(expression.replace("^", "**"), transformations=transformations)
        return sympy.simplify(difference) == 0
    except Exception:  # noqa: BLE001 - unparseable: not equal, as in the scorer
        return False


def _loosely_equal(given: str, gold: str, symbolic: SymbolicCheck) -> bool:
    gold, given = loose_normalise(gold), loose_normalise(given)
    if gold == given:
        return True
    if not given:
        return False
    gold_parts, given_parts = _split_tuple(gold), _split_tuple(given)
    if len(gold_parts) > 1 and (gold[0] != given[0] or gold[-1] != given[-1]):
        return False
    if len(gold_parts) != len(given_parts):
        return False
    for gold_part, given_part in zip(gold_parts, given_parts, strict=True):
        if _FRACTION.search(gold_part) and _FRACTION.search(given_part):
            correct = gold_part == given_part
        elif _is_int(gold_part) != _is_int(given_part):
            correct = False
        else:
            correct = symbolic(gold_part, given_part)
        if not correct:
            return False
    return True


def score(response: str, gold: str, symbolic: SymbolicCheck, prompt: str = "") -> tuple[str | None, float]:
    """``(extracted answer, reward)`` of ``prompt + response`` against ``gold`` (a boxed gold is unboxed)."""
    answer = last_boxed(prompt + response)
    if answer is None:
        return None, 0.0
    if len(answer) > limits.MAX_ANSWER_CHARS:  # no gold is this long; its normalisation is not linear in it
        limits.count_refusal()
        return answer[:100], 0.0
    gold = str(gold)
    if "\\boxed" in gold:
        gold = last_boxed(gold)
        if gold is None:
            return answer, 0.0
    correct = mathd_normalise(answer) == mathd_normalise(gold) or _loosely_equal(answer, gold, symbolic)
    return answer, float(correct)
