"""The paper's evaluation grading (the Qwen2.5-Math harness), written from its rules (GRADERS.md, section 1).

Extraction: the text between "final answer is $" and "$. I hope", else the last ``boxed`` (braces balanced,
or up to the next ``$``), else the text after the last "he answer is" / "final answer is", else the last number.
The prediction is normalised twice, the gold once (Minerva keeps unit words); then :func:`math_equal`: equal
strings, numbers within a relative 1e-4 (also against gold x100 and /100), brackets, tuples, matrices,
equations, and symbolic equality. Symbolic checks go through ``symbolic`` (a bounded call, see
``rlvr.grading.bounded``), so no text can make grading hang.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from rlvr.config import OFFICIAL_STOP_STRINGS
from rlvr.grading import limits

CHOICES = ("A", "B", "C", "D", "E")
NO_UNIT_DATASETS = ("minerva_math",)  # unit words are kept (gold and prediction)
REL_TOL = 1e-4

# Unit and filler words the harness deletes (mostly from MathQA), each with its plural; they are regular
# expressions there, so "q ." also matches "q x", and they are case-sensitive.
UNIT_WORDS = (
    "east", "degree", "mph", "kmph", "ft", "m sqaure", " m east", "sq m", "deg", "mile", "q .", "monkey",
    "prime", "ratio", "profit of rs", "rd", "o", "gm", "p . m", "lb", "tile", "per", "dm", "lt", "gain", "ab",
    "way", "west", "a .", "b .", "c .", "d .", "e .", "f .", "g .", "h .", "t", "a", "h", "no change", "men",
    "soldier", "pie", "bc", "excess", "st", "inches", "noon", "percent", "by", "gal", "kmh", "c", "acre", "rise",
    "a . m", "th", "π r 2", "sq", "mark", "l", "toy", "coin", "sq . m", "gallon", "° f", "profit", "minw", "yr",
    "women", "feet", "am", "pm", "hr", "cu cm", "square", "v â € ™", "are", "rupee", "rounds", "cubic", "cc",
    "mtr", "s", "ohm", "number", "kmph", "day", "hour", "minute", "min", "second", "man", "woman", "sec", "cube",
    "mt", "sq inch", "mp", "∏ cm ³", "hectare", "more", "sec", "unit", "cu . m", "cm 2", "rs .", "rs", "kg", "g",
    "month", "km", "m", "cm", "mm", "apple", "liter", "loss", "yard", "pure", "year", "increase", "decrease", "d",
    "less", "Surface", "litre", "pi sq m", "s .", "metre", "meter", "inch",
)  # fmt: skip
_UNITS = [re.compile(r"(^|\W)" + word + r"($|\W)") for word in (*UNIT_WORDS, *(w + "s" for w in UNIT_WORDS))]
_LAST_NUMBER = re.compile(r"-?\d*\.?\d+")


def cut_at_stop(text: str) -> str:
    """``text`` up to its first official stop string (generation stops there)."""
    for stop in OFFICIAL_STOP_STRINGS:
        text = text.split(stop, 1)[0]
    return text


def _after_last_boxed(text: str) -> str:
    tail = text.split("boxed")[-1]
    if not tail:
        return ""
    if tail[0] != "{":
        return tail.split("$")[0].strip()
    depth, out = 1, []
    for char in tail[1:]:
        depth += (char == "{") - (char == "}")
        if depth == 0:
            break
        out.append(char)
    return "".join(out)


def extract(text: str, dataset: str | None = None) -> str:
    """The normalised answer the harness extracts from a response (see module docstring)."""
    keep_units = dataset in NO_UNIT_DATASETS
    return normalise(normalise(extract_raw(text), keep_units), keep_units)


def extract_raw(text: str) -> str:
    """The answer the harness extracts from a response, before normalisation."""
    text = cut_at_stop(text.strip())
    if "final answer is $" in text and "$. I hope" in text:
        answer = text.split("final answer is $", 1)[1].split("$. I hope", 1)[0].strip()
    elif "boxed" in text:
        answer = _after_last_boxed(text)
    elif "he answer is" in text:
        answer = text.split("he answer is")[-1].strip()
    elif "final answer is" in text:
        answer = text.split("final answer is")[-1].strip()
    else:
        numbers = _LAST_NUMBER.findall(text.replace(",", ""))
        answer = numbers[-1] if numbers else ""
    answer = re.sub(r"\n\s*", "", answer)
    answer = answer[1:] if answer.startswith(":") else answer
    answer = answer[:-1] if answer.endswith(".") else answer
    return answer[:-1] if answer.endswith("/") else answer


def normalise_gold(gold: str, dataset: str | None = None) -> str:
    """The gold answer as the harness compares it: normalised once."""
    return normalise(str(gold), dataset in NO_UNIT_DATASETS)


def _word_number(text: str) -> str:
    from word2number import w2n

    try:
        return str(w2n.word_to_num(text))
    except Exception:  # noqa: BLE001 - not a number in words: unchanged, as the harness does
        return text


def fix_fracs(text: str) -> str:
    """``\\frac12`` and ``\\frac1{72}`` with their braces: ``\\frac{1}{2}``, ``\\frac{1}{72}``."""
    parts = text.split("\\frac")
    fixed = parts[0]
    for part in parts[1:]:
        fixed += "\\frac"
        if part.startswith("{"):
            fixed += part
        elif len(part) < 2:
            return text
        elif part[1] != "{":
            fixed += "{" + part[0] + "}{" + part[1] + "}" + part[2:]
        else:
            fixed += "{" + part[0] + "}" + part[1:]
    return fixed


def _fix_a_slash_b(text: str) -> str:
    parts = text.split("/")
    if len(parts) != 2:
        return text
    try:
        a, b = (p if "sqrt" in p else int(p) for p in parts)
    except ValueError:
        return text
    return f"\\frac{{{a}}}{{{b}}}" if text == f"{a}/{b}" else text


def normalise(text: str, keep_units: bool = False) -> str:
    """The harness's answer normalisation (GRADERS.md section 1, "Normalisation", steps 1-9)."""
    text = str(text).strip().replace("\n", "").rstrip(".").replace("\\!", "")
    text = re.sub(r"\\begin\{array\}\{.*?\}", r"\\begin{pmatrix}", text)
    text = re.sub(r"\\end\{array\}", r"\\end{pmatrix}", text).replace("bmatrix", "pmatrix")
    text = text.replace("tfrac", "frac").replace("dfrac", "frac")
    text = text.replace("\\neq", "\\ne").replace("\\leq", "\\le").replace("\\geq", "\\ge")
    text = text.replace("\\left", "").replace("\\right", "").replace("\\{", "{").replace("\\}", "}")
    without_text = re.sub(r"\\text{.*?}$", "", text).strip()
    if without_text:
        text = without_text
    if not keep_units:
        for _ in range(2):
            for unit in _UNITS:
                removed = unit.sub(r"\1\2", text)
                if removed:
                    text = removed
    text = text.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\$", "").replace("$", "")
    text = _word_number(text.replace("\\(", "").replace("\\)", ""))
    text = re.sub(r"\\text\{(.*?)\}", r"\1", text)
    for prefix in ("x=", "y=", "z=", "x\\in", "y\\in", "z\\in", "x\\to", "y\\to", "z\\to"):
        text = text.replace(prefix, "")
    text = text.replace("\\emptyset", "{}").replace("(-\\infty,\\infty)", "\\mathbb{R}")
    text = text.replace("\\%", "").replace("%", "").replace(" .", " 0.").replace("{.", "{0.")
    text = text.replace("infinity", "\\infty")
    if "\\infty" not in text:
        text = text.replace("inf", "\\infty")
    text = text.replace("+\\inity", "\\infty").replace("and", "").replace("\\mathbf", "")
    text = re.sub(r"\\mbox{.*?}", "", text)
    if "j" in text and "i" not in text:
        text = text.replace("j", "i")
    text = re.sub(r"(\d+)\.0*([^\d])", r"\1\2", text)
    text = re.sub(r"(\d+)\.0*$", r"\1", text)
    if not text:
        return text
    if text[0] == ".":
        text = "0" + text
    sides = text.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        text = sides[1]
    text = re.sub(r"\\sqrt(\w+)", r"\\sqrt{\1}", text).replace(" ", "")
    return _fix_a_slash_b(fix_fracs(text))


def choice_letter(text: str) -> str:
    """The option letter the harness's choice cleaner finds in a response (or what is left of it)."""
    text = text.strip("\n")
    triggers = ("choice is", "answer is")
    if any(text.count(t) > 1 for t in triggers):
        text = text.split("\n\n")[0]
    parts = re.split("|".join(triggers), text)
    answer_flag = len(parts) > 1
    text = (parts[-1] if answer_flag else text).strip("\n").rstrip(".").rstrip("/").strip(" ").lstrip(":")
    letters = re.findall(r"\b(A|B|C|D|E)\b", text.upper()) or [text.strip().strip(".")]
    letter = letters[0] if answer_flag else letters[-1]
    return letter.rstrip(".").rstrip("/")


def _number(text: str) -> float | None:
    text = text.replace(",", "")
    try:
        return float(text)
    except ValueError:
        if text.endswith("%"):
            text = text[:-2] if text.endswith("\\%") else text[:-1]
            try:
                return float(text) / 100
            except ValueError:
                pass
    return None


def _close(a: float, b: float) -> bool:
    try:
        return math.isclose(b, a, rel_tol=REL_TOL)
    except (OverflowError, TypeError):
        return False


_LIST = re.compile(r"(\(|\[).+(\)|\])")
_MATRIX_OPEN, _MATRIX_CLOSE = ("\\begin{pmatrix}", "\\begin{bmatrix}"), ("\\end{pmatrix}", "\\end{bmatrix}")
SymbolicCheck = Callable[[str, str], bool]


def _is_matrix(text: str) -> bool:
    return text.startswith(_MATRIX_OPEN) and text.endswith(_MATRIX_CLOSE)


def _matrix_rows(text: str) -> list[str]:
    return [line.strip() for line in text[len(_MATRIX_OPEN[0]) : -len(_MATRIX_CLOSE[0])].split("\\\\") if line.strip()]


def _str_to_pmatrix(text: str) -> str:
    rows = re.findall(r"\{.*,.*\}", text.strip())
    return ", ".join("\\begin{pmatrix}" + m.strip("{}").replace(",", "\\") + "\\end{pmatrix}" for m in rows)


def math_equal(prediction: str, reference: str, symbolic: SymbolicCheck) -> bool:
    """The harness's equivalence of a normalised prediction and gold (GRADERS.md, "Equivalence", rules 1-8)."""
    if prediction.strip().lower() == reference.strip().lower():
        return True
    if reference in CHOICES and choice_letter(prediction) == reference:
        return True
    predicted, gold = _number(prediction), _number(reference)
    if predicted is not None and gold is not None:
        return any(_close(predicted, target) for target in (gold / 100, gold, gold * 100))
    if not prediction:
        return False
    reference, prediction = reference.strip(), prediction.strip()
    if "pmatrix" in prediction and "pmatrix" not in reference:
        reference = _str_to_pmatrix(reference)
    pred, ref = prediction, reference
    if (pred.startswith("[") and pred.endswith("]") and not ref.startswith("(")) or (
        pred.startswith("(") and pred.endswith(")") and not ref.startswith("[")
    ):
        pred, ref = pred.strip("[]()"), ref.strip("[]()")
    for bracket in "{}()":
        pred, ref = pred.replace(bracket, ""), ref.replace(bracket, "")
    if pred.lower() == ref.lower():
        return True
    if _LIST.match(prediction) and _LIST.match(reference):
        pred_parts, ref_parts = prediction[1:-1].split(","), reference[1:-1].split(",")
        if len(pred_parts) == len(ref_parts) and all(
            math_equal(p, r, symbolic) for p, r in zip(pred_parts, ref_parts, strict=True)
        ):
            return True
    if _is_matrix(prediction) and _is_matrix(reference):
        pred_rows, ref_rows = _matrix_rows(prediction), _matrix_rows(reference)
        if len(pred_rows) == len(ref_rows) and all(
            len(p.split("&")) == len(r.split("&"))
            and all(math_equal(a, b, symbolic) for a, b in zip(p.split("&"), r.split("&"), strict=True))
            for p, r in zip(pred_rows, ref_rows, strict=True)
        ):
            return True
    if prediction.count("=") == 1 and reference.count("=") == 1:
        pred_lhs, pred_rhs = prediction.split("=")
        ref_lhs, ref_rhs = reference.split("=")
        pred = f"{pred_lhs.strip()} - ({pred_rhs.strip()})"
        ref = f"{ref_lhs.strip()} - ({ref_rhs.strip()})"
        if symbolic(pred, ref) or symbolic(f"-({pred})", ref):
            return True
    # an elif chain, as in the harness: the first form that applies is tried, then sympy on the whole
    elif prediction.count("=") == 1 and len(prediction.split("=")[0].strip()) <= 2 and "=" not in reference:  # noqa: SIM102
        if math_equal(prediction.split("=")[1], reference, symbolic):
            return True
    elif reference.count("=") == 1 and len(reference.split("=")[0].strip()) <= 2 and "=" not in prediction:  # noqa: SIM102
        if math_equal(prediction, reference.split("=")[1], symbolic):
            return True
    return symbolic(prediction, reference)


def _latex_parser() -> Callable:
    """The harness's LaTeX parser as near as this stack gets: latex2sympy2_extended without its input
    normalisation (which reads ``12{,}500`` as 12500), case kept, and an integer before ``\\frac`` multiplied
    (the extended parser reads ``3\\frac{1}{2}`` as a mixed number whatever its settings; latex2sympy2 reads 3/2)."""
    from latex2sympy2_extended import latex2sympy
    from latex2sympy2_extended.latex2sympy2 import ConversionConfig, NormalizationConfig

    off = NormalizationConfig(basic_latex=False, units=False, malformed_operators=False, nits=False, boxed="none")
    conversion = ConversionConfig(interpret_as_mixed_fractions=False, lowercase_symbols=False)

    def parse(text: str):
        text = re.sub(r"(\d)\s*\\frac", r"\1\\cdot\\frac", text)
        return latex2sympy(text, normalization_config=off, conversion_config=conversion)

    return parse


def symbolic_equal(a: str, b: str) -> bool:
    """Rule 8: sympy (``parse_expr``, then the LaTeX parser) finds equal objects, a difference simplifying to 0,
    numeric values within a relative 1e-4, or matrices equal after rounding to 3 decimals. Unbounded: call it
    through ``rlvr.grading.bounded``. (sympy's own ``parse_latex``, the harness's first parser, needs an antlr
    runtime this stack cannot have; the harness falls through to the next parser when it fails.)"""
    from sympy import N, simplify
    from sympy.parsing.sympy_parser import parse_expr

    parsers = (parse_expr, _latex_parser())

    def parse(text: str):
        for parser in parsers:
            for candidate in (text.replace("\\\\", "\\"), text):
                try:
                    return parser(candidate)
                except Exception:  # noqa: BLE001, S112 - the harness tries each parser in turn
                    continue
        return text

    x, y = parse(a), parse(b)
    checks = (
        lambda: str(x) == str(y) or x == y,
        lambda: x.equals(y) or simplify(x - y) == 0,
        lambda: abs(x.lhs - x.rhs).equals(abs(y.lhs - y.rhs)),
        lambda: _close(float(N(x)), float(N(y))),
        lambda: x.shape == y.shape and x.applyfunc(lambda v: round(v, 3)).equals(y.applyfunc(lambda v: round(v, 3))),
    )
    for check in checks:
        try:
            if check():
                return True
        except Exception:  # noqa: BLE001, S112 - each failing check just does not match, as in the harness
            continue
    return False


def is_choice_gold(gold: str) -> bool:
    """Gold made only of the letters A-E (an empty gold included): the prediction keeps only those letters."""
    return all(char in CHOICES for char in gold)


def grade(completion: str, gold: str, symbolic: SymbolicCheck, dataset: str | None = None) -> tuple[str, bool]:
    """``(extracted answer, correct)`` of one response under the official evaluation. An answer longer than
    ``limits.MAX_ANSWER_CHARS`` (no gold is) is refused before its normalisation, which is not linear in it."""
    raw = extract_raw(completion)
    if len(raw) > limits.MAX_ANSWER_CHARS:
        limits.count_refusal()
        return raw[:100], False
    keep_units = dataset in NO_UNIT_DATASETS
    prediction = normalise(normalise(raw, keep_units), keep_units)
    reference = normalise_gold(gold, dataset)
    if reference in CHOICES and prediction not in CHOICES:
        prediction = choice_letter(cut_at_stop(completion))
    elif is_choice_gold(reference) and not is_choice_gold(prediction):
        prediction = "".join(char for char in prediction if char in CHOICES)
    return prediction, math_equal(prediction, reference, symbolic)
