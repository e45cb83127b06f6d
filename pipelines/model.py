"""Model stage: resolve model.source (embedded, embedded:gemma3-270m, a Hub id or a local directory)
into a transformers directory at paths.model_dir."""

from rlvr.cli import stage_main


def main(_args, params) -> None:
    from rlvr.stages import model  # here: --help answers before the stage's imports load

    model.run(params)


if __name__ == "__main__":
    stage_main("model", __doc__, {"--out": ("model_dir", "output model directory")}, main)
