import pytest

from rlvr.generator import generate
from rlvr.rewards import accuracy_reward


def test_same_seed_same_data_other_seed_other_data():
    assert generate(20, 30, seed=3) == generate(20, 30, seed=3)
    assert generate(20, 30, seed=3) != generate(20, 30, seed=4)


def test_pool_and_test_are_disjoint_with_unique_ids():
    pool, test = generate(50, 200, seed=0)
    assert len(pool) == 50 and len(test) == 200
    assert not {r["problem"] for r in pool} & {r["problem"] for r in test}
    ids = [r["id"] for r in pool + test]
    assert len(ids) == len(set(ids))


def test_rows_are_normalised_and_verifiable():
    pool, _ = generate(10, 1, seed=1)
    for row in pool:
        assert set(row) == {"id", "problem", "answer", "source"}
        assert int(row["answer"]) >= 0
        assert accuracy_reward([f"\\boxed{{{row['answer']}}}"], [row["answer"]]) == [1.0]


def test_sizes_are_checked():
    with pytest.raises(ValueError, match="pool_size"):
        generate(-1, 5, seed=0)
    assert generate(0, 2, seed=0)[0] == []  # a generated test set beside another pool
