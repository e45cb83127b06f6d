"""Model stage: resolve model.source (embedded, embedded:gemma3-270m, a Hub id or a local directory)
into a transformers directory at paths.model_dir."""

from rlvr import model
from rlvr.cli import stage_main

if __name__ == "__main__":
    stage_main(model, __doc__, {"--out": ("model_dir", "output model directory")})
