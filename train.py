"""Command line for training, evaluating and answering: `python train.py {train,evaluate,predict} --help`."""

# The same command is installed as `qa-lab`; it lives in qa_core/cli.py.

import sys

from qa_core.cli import build_parser, config_from_args, main  # noqa: F401  (train.build_parser for drivers)

if __name__ == "__main__":
    sys.exit(main(prog="train.py"))
