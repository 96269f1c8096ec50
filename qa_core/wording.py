"""How things are said: refusals in train.py's words and the web app's, counts with their nouns."""

from __future__ import annotations


class TwoWordings(Exception):
    """An error one check raises for both front ends: str() says it in train.py's words, `web` in the web app's,
    whose Resume button takes no options."""

    def __init__(self, cli: str, web: str) -> None:
        super().__init__(cli)
        self.web = web


def web_wording(err: BaseException) -> str:
    """What the web app says of `err`: its web wording where it has one, else its message."""
    return err.web if isinstance(err, TwoWordings) else str(err)


def count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 question', '3 questions', '1,000 questions': the number and its noun, singular for exactly one."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def capitalized(text: str) -> str:
    """A message's words as the start of a sentence: its first letter upper case, the rest as they are (a hub id's
    case matters)."""
    return text[:1].upper() + text[1:]
