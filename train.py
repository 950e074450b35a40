"""Train a codec: ``python train.py fit --config configs/taae/quickstart.yaml`` (see ``--help``; ``--debug`` shows
tracebacks for config and data errors)."""

from taae.training.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
