import re

from conftest import require

from rlvr.config import ModelConfig
from rlvr.datasets import load
from rlvr.files import read_records
from rlvr.rewards import grade
from rlvr.stages.evaluate import grade_sample
from rlvr.templates import QWEN25_MATH_COT, get_template


def test_qwen25_math_cot_is_byte_identical_to_the_paper():
    (written,) = re.findall(r"`(<\|im_start\|>system.*?)`", require("docs/PAPER.md").read_text())
    assert written.replace("\\n", "\n") == QWEN25_MATH_COT
    prompt = get_template("qwen25-math-cot").render("What is 1+1?", ModelConfig(), tokenizer=None)
    assert prompt.endswith("<|im_start|>user\nWhat is 1+1?<|im_end|>\n<|im_start|>assistant\n")


def test_chat_template_puts_the_instruction_in_the_user_turn():
    messages = get_template("chat").messages("2+2?", ModelConfig(system_prompt="Be brief.", instruction="Box it."))
    assert messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?\nBox it."}]


def test_thinking_models_are_graded_after_the_think_block():
    template = get_template("r1-distill")
    assert template.answer_text("maybe \\boxed{3}</think>so \\boxed{4}") == "so \\boxed{4}"
    assert template.answer_text("still thinking \\boxed{4}") == ""
    assert grade_sample("maybe \\boxed{3}</think> \\boxed{4}", "4", template, "math500")["correct_strict"]
    assert not grade_sample("unfinished \\boxed{4}", "4", template, "math500")["correct_lenient"]


def test_multiple_choice_grades_the_letter():
    chat = get_template("chat")
    assert grade_sample("so the answer is \\boxed{B}", "B", chat, "arc_easy")["correct_strict"]
    lenient_only = grade_sample("The answer is (b).", "B", chat, "arc_easy")
    assert lenient_only["extracted_lenient"] == "B" and lenient_only["correct_lenient"]
    assert not lenient_only["correct_strict"]


def test_paper_training_prompt_is_the_problem_and_its_suffix_in_one_user_turn():
    graders = require("docs/GRADERS.md").read_text()
    suffix = re.search(r"the problem \+ a space \+ `([^`]+)`", graders).group(1)
    messages = get_template("paper-train").messages("2+2?", ModelConfig(system_prompt="ignored", instruction="ignored"))
    assert messages == [{"role": "user", "content": f"2+2? {suffix}"}]
    assert ModelConfig(template="qwen25-math-cot", train_template="paper-train").rollout_template == "paper-train"
    assert ModelConfig(template="chat").rollout_template == "chat"


def test_math500_reference_solutions_grade_as_correct(shared_data):
    rows = load("math500", local_dir=shared_data).rows
    raw = {r["unique_id"]: r for r in read_records(shared_data / "benchmarks" / "math500.jsonl")}
    for mode in ("strict", "official"):
        correct = sum(grade(raw[row["id"]]["solution"], row["answer"], mode, "math500") for row in rows)
        assert correct / len(rows) >= 0.99, f"{mode}: {correct} of {len(rows)}"


def _character_tokenizer(adds_bos: bool):
    """A real fast tokenizer (one token per character) that puts <bos> before a text by itself, or not."""
    import string

    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocabulary = {"<bos>": 0, "<eos>": 1} | {c: i + 2 for i, c in enumerate(string.printable)}
    core = Tokenizer(models.WordLevel(vocabulary, unk_token="<eos>"))
    core.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    core.add_special_tokens(["<bos>", "<eos>"])
    if adds_bos:
        core.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 0)])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", eos_token="<eos>")


def test_a_text_template_starts_with_bos_where_the_tokenizer_adds_one_as_trl_and_vllm_tokenize_it():
    plain = get_template("plain")
    for adds_bos in (True, False):
        tokenizer = _character_tokenizer(adds_bos)
        rendered = plain.render("What is 2 plus 2?", ModelConfig(), tokenizer)
        text = plain.messages("What is 2 plus 2?", ModelConfig())  # what TRL's trainer gets and tokenizes
        assert rendered.startswith("<bos>Question: What is 2 plus 2?") == adds_bos
        as_trained = tokenizer(text)["input_ids"]  # special tokens added, as TRL and vLLM do for a text
        assert tokenizer(rendered, add_special_tokens=False)["input_ids"] == as_trained
