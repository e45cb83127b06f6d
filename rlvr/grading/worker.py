"""The grading worker's loop (``python -m rlvr.grading.worker``): one JSON ``[check, [texts]]`` per line in,
its result (true/false) per line out. Started and bounded by ``rlvr.grading.bounded``."""

from __future__ import annotations

import json
import sys

from rlvr.grading import deepscaler, mathverify, official

CHECKS = {
    "math_verify": mathverify.equivalent,
    "official_symbolic": official.symbolic_equal,
    "deepscaler_sympy": deepscaler.sympy_difference_is_zero,
}


def main() -> None:
    import latex2sympy2_extended  # noqa: F401 - imported before "ready": checks then start warm
    import math_verify  # noqa: F401
    import sympy  # noqa: F401

    print(json.dumps("ready"), flush=True)
    for line in sys.stdin:
        name, args = json.loads(line)
        try:
            result = bool(CHECKS[name](*args))
        except Exception:  # noqa: BLE001 - a check that fails is a check that does not match
            result = False
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
