"""The machine a number was computed on, and CPU kernels that give the same float32 numbers on any x86 CPU.

PyTorch picks its vectorised kernels (softmax, attention, norms) by the CPU's widest instruction set, and MKL its
matrix products by its own dispatch: on a CPU with AVX-512 both round differently than on one with AVX2 only, and a
greedy sample follows the first token where they disagree. Importing ``rlvr`` pins both to their AVX2 code paths
(``ATEN_CPU_CAPABILITY=avx2``; MKL's conditional numerical reproducibility, ``MKL_CBWR=AVX2``) wherever the
environment does not name them already, so float32 results do not depend on which x86 CPU ran them. Set either
variable yourself for the CPU's own kernels (``ATEN_CPU_CAPABILITY=avx512 MKL_CBWR=AUTO``): faster on some CPUs, and
recorded with every result (:func:`description`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import re
from pathlib import Path

PORTABLE_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}
# the instruction sets that change which kernels run or how fast: the first of them the CPU has is named
FLAGS_THAT_MATTER = ("amx_bf16", "avx512_bf16", "avx512f", "avx2")


def pin_portable_kernels() -> None:
    """Set :data:`PORTABLE_KERNELS` where the environment leaves them unset (x86 only; before torch computes)."""
    if platform.machine() in ("x86_64", "AMD64"):
        for name, value in PORTABLE_KERNELS.items():
            os.environ.setdefault(name, value)


@functools.cache
def cpu_info() -> tuple[str, frozenset[str]]:
    """The CPU's model name and flags as Linux lists them (``lscpu``'s source); where unreadable, Python's name of
    the processor and no flags."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor(), frozenset()
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    flags = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
    return (model.group(1).strip() if model else platform.processor()), frozenset(
        flags.group(1).split() if flags else ()
    )


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (x86 AVX512-BF16 or AMX); elsewhere False."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_info()[1])


def attention_for(dtype) -> contextlib.AbstractContextManager:
    """Where ``F.scaled_dot_product_attention`` may run in ``dtype``. torch's CPU flash attention packs bfloat16 and
    float16 blocks for AMX where the CPU has it, code that only its AVX-512 kernels contain: under the portable
    AVX2 kernels it fails from 128 positions on ("pack_vnni2 is only supported when avx512 is supported", torch
    2.13). There the math backend attends instead (the same attention as matrix products and a softmax); float32,
    other CPUs and GPUs keep the default choice."""
    import torch

    reduced = dtype in (torch.bfloat16, torch.float16)
    if not reduced or torch.cuda.is_available() or "amx_bf16" not in cpu_info()[1]:
        return contextlib.nullcontext()
    if torch.backends.cpu.get_cpu_capability().lower() != "avx2":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(SDPBackend.MATH)


def kernels() -> str | None:
    """The CPU kernels this process computes with (PyTorch's vectorisation and MKL's code path); None where a GPU
    computes."""
    import torch

    if torch.cuda.is_available():
        return None
    capability = torch.backends.cpu.get_cpu_capability().lower()
    return f"aten {capability}, mkl {os.environ.get('MKL_CBWR', 'auto').lower()}"


def description(dtype: str) -> str:
    """One line naming what computed a result: the GPU, or the CPU with the flags that matter and the kernels;
    and the precision, e.g. ``AMD EPYC (avx512_bf16, avx512f, avx2; aten avx2, mkl avx2), float32``."""
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()}, {dtype}"
    model, flags = cpu_info()
    named = ", ".join(flag for flag in FLAGS_THAT_MATTER if flag in flags) or "no AVX2"
    return f"{model or platform.machine()} ({named}; {kernels()}), {dtype}"
