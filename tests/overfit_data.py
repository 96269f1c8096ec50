"""A handful of original training examples for the overfit, resume and app tests."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import write_squad

PARAGRAPHS = [
    ("The old mill by the river ground wheat for the village until 1931, when a storm broke its wheel.",
     [("q1", "When did the storm break the wheel?", "1931"), ("q2", "What did the mill grind?", "wheat")]),
    ("Mara kept bees on the hill behind the school and sold their honey at the Saturday market.",
     [("q3", "Who kept bees?", "Mara"), ("q4", "Where was the honey sold?", "the Saturday market")]),
    ("The ferry crosses the bay twice a day, carrying cars, bicycles and the morning post.",
     [("q5", "How often does the ferry cross the bay?", "twice a day")]),
]


def write_tiny_squad(path: Path) -> Path:
    paragraphs = [{"context": context, "qas": [{"id": qid, "question": question,
                                                 "answers": [{"text": text, "answer_start": context.index(text)}]}
                                                for qid, question, text in qas]}
                  for context, qas in PARAGRAPHS]
    return write_squad(path, paragraphs, title="tiny")
