"""Training: the algorithms on TRL's trainers (``algorithms``, one entry each), their checkpoints, the rollout
monitor and the multi-process launch."""
