"""Prompt templates by name (``model.template``), the same for rollouts (history, train) and evaluation.

- ``chat``: the model's own chat template, with ``model.system_prompt`` and the problem followed by
  ``model.instruction`` in the user turn (SmolLM2, Llama and other instruct models).
- ``qwen25-math-cot``: the Qwen2.5-Math evaluation prompt of the paper, byte for byte, as plain text.
- ``r1-distill``: DeepSeek-R1-Distill's own chat template (it opens a ``<think>`` block) with the instruction in
  the user turn; answers are graded only after ``</think>``.
- ``paper-train``: the paper's training prompt: the model's own chat template, the problem followed by a space and
  "Let's think step by step and output the final answer within \\boxed{}." as the only user turn (Qwen2.5-Math's
  template adds its default system message). The paper trains with it and evaluates with ``qwen25-math-cot``
  (``model.train_template`` and ``model.template``).
- ``plain``: plain text for base models without a chat template (Gemma 3 270M): "Question: ...", the
  paper's step-by-step instruction, then "Answer:".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rlvr.errors import ConfigError

if TYPE_CHECKING:  # for annotations only: this module is a leaf (the config names its templates)
    from rlvr.config import ModelConfig

QWEN25_MATH_COT = (
    "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
    "<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
)
R1_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
TRAIN_SUFFIX = "Let's think step by step and output the final answer within \\boxed{}."
THINK_END = "</think>"
PLAIN = "Question: {question}\n" + TRAIN_SUFFIX + "\nAnswer:"


@dataclass(frozen=True)
class Template:
    """How a problem becomes a prompt; ``thinking`` models are graded on the text after ``</think>``."""

    name: str
    thinking: bool = False
    plain_text: str | None = None  # a fixed text template with a ``{question}`` field, instead of a chat template
    suffix: str | None = None  # a fixed text after the problem (one space between), instead of model.instruction

    def messages(self, problem: str, model: ModelConfig) -> list[dict[str, str]] | str:
        """The prompt as TRL takes it: chat messages, or plain text for a fixed text template."""
        if self.plain_text is not None:
            return self.plain_text.replace("{question}", problem)
        if self.suffix is not None:
            return [{"role": "user", "content": f"{problem} {self.suffix}"}]
        instruction = R1_INSTRUCTION if self.name == "r1-distill" else model.instruction
        system = [] if self.name == "r1-distill" or not model.system_prompt else [model.system_prompt]
        user = f"{problem}\n{instruction}" if instruction else problem
        return [{"role": "system", "content": s} for s in system] + [{"role": "user", "content": user}]

    def render(self, problem: str, model: ModelConfig, tokenizer) -> str:
        """The prompt text the model sees (to be tokenized without adding special tokens).

        A fixed text template starts with the tokenizer's beginning-of-text token where the tokenizer adds one
        itself (Gemma, Llama): as TRL's trainers and vLLM tokenize a text prompt. Gemma without it degenerates.
        """
        prompt = self.messages(problem, model)
        if isinstance(prompt, str):
            return leading_bos(tokenizer) + prompt
        return tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)

    def answer_text(self, completion: str) -> str:
        """The part of a completion that is graded: after ``</think>`` for thinking models (none if absent)."""
        if not self.thinking:
            return completion
        head, found, tail = completion.partition(THINK_END)
        return tail if found else ""


def leading_bos(tokenizer) -> str:
    """The beginning-of-text token the tokenizer puts before a text by itself, or "" where it puts none."""
    bos = None if tokenizer is None else tokenizer.bos_token_id
    if bos is None:
        return ""
    return tokenizer.bos_token if tokenizer("x")["input_ids"][:1] == [bos] else ""


TEMPLATES: dict[str, Template] = {
    template.name: template
    for template in (
        Template("chat"),
        Template("qwen25-math-cot", plain_text=QWEN25_MATH_COT),
        Template("r1-distill", thinking=True),
        Template("paper-train", suffix=TRAIN_SUFFIX),
        Template("plain", plain_text=PLAIN),
    )
}


def get_template(name: str) -> Template:
    if name not in TEMPLATES:
        raise ConfigError(f"unknown template {name!r}; choose one of {sorted(TEMPLATES)}")
    return TEMPLATES[name]
