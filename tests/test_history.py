from types import SimpleNamespace

from rlvr.grpo import AccuracyRecorder
from rlvr.rewards import accuracy_reward


def test_recorder_groups_rollouts_by_example_and_epoch():
    recorder = AccuracyRecorder(accuracy_reward)
    assert recorder.__name__ == "accuracy_reward"
    epoch0, epoch1 = SimpleNamespace(epoch=0.0), SimpleNamespace(epoch=1.0)
    good, bad = "\\boxed{2}", "no"
    rewards = recorder([good, bad, bad, bad], id=["1", "1", "10", "10"], answer=["2"] * 4, trainer_state=epoch0)
    assert rewards == [1.0, 0.0, 0.0, 0.0]
    recorder([good, good], id=["10", "10"], answer=["2", "2"], trainer_state=SimpleNamespace(epoch=0.5))
    recorder([good, good, good, bad], id=["1", "1", "10", "10"], answer=["2"] * 4, trainer_state=epoch1)
    assert recorder.history() == {"1": [0.5, 1.0], "10": [0.5, 0.5]}
    assert list(recorder.history()) == ["1", "10"]
