"""Train a codec: ``python train.py fit --config configs/taae/quickstart.yaml`` (see ``--help``)."""

from taae.training.cli import main

if __name__ == "__main__":
    main()
