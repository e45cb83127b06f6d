"""Tiny models for tests, built from a config (no download).

- :func:`build_tiny_model`: random weights with the embedded model's real tokenizer (SmolLM2, Llama
  architecture): the CPU tests' model.
- :func:`build_tiny_qwen2` (:func:`random_qwen2` in memory, of any shape): a Qwen2-architecture model with a
  character-level tokenizer and a ChatML template built here: the GPU check's model, for machines that have neither
  the embedded model nor a network, and the memory calibration's.
"""

from __future__ import annotations

from pathlib import Path

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_model(out_dir: str | Path, hidden: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """A random ``LlamaForCausalLM`` with SmolLM2's tokenizer, saved in ``out_dir``."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from rlvr.models import embedded_gguf

    with embedded_gguf("embedded") as gguf:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,  # heads of 32: the smallest vLLM's CPU attention supports
        num_key_value_heads=1,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return Path(out_dir)


def char_tokenizer():
    """A character-level tokenizer (printable ASCII and ChatML's specials) with a ChatML chat template."""
    import string

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocabulary = {token: i for i, token in enumerate(SPECIALS)}
    for char in string.printable:
        vocabulary.setdefault(char, len(vocabulary))
    core = Tokenizer(models.WordLevel(vocabulary, unk_token="<|endoftext|>"))
    core.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    core.add_special_tokens(SPECIALS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token="<|endoftext|>"
    )
    tokenizer.chat_template = CHATML
    return tokenizer


def random_qwen2(seed: int = 0, **shape):
    """A random ``Qwen2ForCausalLM`` and the character-level tokenizer, in memory. ``shape``: Qwen2Config fields
    (``vocab_size`` at least the tokenizer's; defaults: hidden 64, 2 layers, 4 heads, 2 key/value heads), e.g.
    Qwen2.5-Math-1.5B's to measure its memory with random weights."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = char_tokenizer()
    values = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                  tie_word_embeddings=True)  # fmt: skip
    values |= shape
    config = Qwen2Config(**values, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, tokenizer


def build_tiny_qwen2(out_dir: str | Path, hidden: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """A random ``Qwen2ForCausalLM`` with a character-level tokenizer (printable ASCII and ChatML's specials)."""
    model, tokenizer = random_qwen2(seed, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return Path(out_dir)
