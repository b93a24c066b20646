"""The result of one in-process ``neuronscope`` run in tests: exit code, stdout, stderr
(the ``cli`` fixture of tests/conftest.py returns it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err
