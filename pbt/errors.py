"""Errors for the person running the library, in the words of whatever they run it through.

A message that tells them to change a setting (``resume``, ``force``, ``out``, a config field) names it as ``⟨name⟩``
and lists it in ``options``, instead of spelling it as a command-line flag or a Python argument: the command line
writes ``--resume``, a Python caller reads ``resume=True``. ``worded(word)`` writes each setting as ``word(name)``;
``str()`` writes the library's own words, ``python_word``. A setting is named as it is set from Python: one of
``run_experiment``'s arguments (``out``, ``resume``, ``force``), else a config field by its path below the config
(``data_path``, ``pbt.max_failures``). ``⟨⟩`` rather than ``{}`` because messages hold paths, which may hold braces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

# ``run_experiment``'s arguments as a Python caller writes them; any other setting is a field of its config
_ARGUMENTS = {"out": "out", "resume": "resume=True", "force": "force=True"}


def python_word(option: str) -> str:
    """A setting as a Python caller of the library sets it: ``resume=True``, ``out``, ``config.pbt.max_failures``."""
    return _ARGUMENTS.get(option, f"config.{option}")


class Worded(Exception):
    """An error whose message names settings as ``⟨name⟩`` (``options``), with what it concerns: ``path`` (the run
    directory or file) and ``member`` (the member's id), where it concerns one."""

    def __init__(
        self, message: str, *, path: Path | str | None = None, member: int | None = None, options: Sequence[str] = ()
    ):
        super().__init__(message)
        self.message = message
        self.path = path
        self.member = member
        self.options = tuple(options)

    def worded(self, word: Callable[[str], str]) -> str:
        """The message with each of its settings written as ``word(setting)``."""
        text = self.message
        for option in self.options:
            text = text.replace(f"⟨{option}⟩", word(option))
        return text

    def __str__(self) -> str:
        return self.worded(python_word)
