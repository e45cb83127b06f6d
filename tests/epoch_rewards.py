"""A deterministic TRL reward for the history tests: a rollout's reward depends only on its example and epoch.

``RLVR_TEST_CRASH_AT_CALL=n`` ends the process abruptly at the n-th call (a killed stage, no clean-up).
"""

import math
import os

_calls = 0


def expected(example_id: str, epoch: int) -> float:
    return float((sum(map(ord, str(example_id))) + epoch) % 2)


def parity_reward(completions, id, trainer_state=None, **kwargs):  # noqa: A002 - TRL passes the column by name
    global _calls
    _calls += 1
    if _calls == int(os.environ.get("RLVR_TEST_CRASH_AT_CALL", "0")):
        os._exit(3)
    epoch = math.floor(trainer_state.epoch) if trainer_state is not None else 0
    return [expected(i, epoch) for i in id]
