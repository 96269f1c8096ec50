"""Extractive question answering on SQuAD-format data: load, featurize, fine-tune, evaluate, answer."""

__version__ = "0.1.0"
