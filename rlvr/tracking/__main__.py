"""``python -m rlvr.tracking replay mlflow-pending/<run id>.jsonl``: log what the outbox could not."""

import sys

from rlvr.tracking.outbox import replay

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "replay":
        sys.exit("usage: python -m rlvr.tracking replay mlflow-pending/<run id>.jsonl")
    print(f"logged {replay(sys.argv[2])} calls from {sys.argv[2]}")
