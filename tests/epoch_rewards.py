"""Deterministic TRL rewards for the tests: by example and epoch (history), or by completion text (training).

``RLVR_TEST_CRASH_AT_CALL=n`` ends the process abruptly at the n-th call (a killed stage, no clean-up).
"""

import math
import os

_calls = 0


def _count_call() -> None:
    global _calls
    _calls += 1
    if _calls == int(os.environ.get("RLVR_TEST_CRASH_AT_CALL", "0")):
        os._exit(3)


def expected(example_id: str, epoch: int) -> float:
    return float((sum(map(ord, str(example_id))) + epoch) % 2)


def parity_reward(completions, id, trainer_state=None, **kwargs):  # noqa: A002 - TRL passes the column by name
    _count_call()
    epoch = math.floor(trainer_state.epoch) if trainer_state is not None else 0
    return [expected(i, epoch) for i in id]


def text_reward(completions, **kwargs):
    """A reward that varies between the rollouts of a group (so GRPO's advantages are not zero) and depends
    only on the text: 1.0 for an even character sum, else 0.0. Crashes like :func:`parity_reward`."""
    _count_call()
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [float(sum(map(ord, text)) % 2 == 0) for text in texts]


def slow_text_reward(completions, **kwargs):
    """:func:`text_reward`, a second per call (``RLVR_TEST_REWARD_SECONDS``): a training slow enough to be stopped
    in the middle."""
    import time

    time.sleep(float(os.environ.get("RLVR_TEST_REWARD_SECONDS", "1.0")))
    return text_reward(completions, **kwargs)


def id_reward(completions, id, **kwargs):  # noqa: A002 - TRL passes the column by name
    """1.0 for an example whose id has an even character sum, else 0.0, whatever the completion: two examples of
    different parity give the ranks of a two-process run different rewards."""
    _count_call()
    return [float(sum(map(ord, str(i))) % 2 == 0) for i in id]
