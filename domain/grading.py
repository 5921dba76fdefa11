"""Grade guidance: the grade the force's rules suggest for a call, and the reasons.

The rules are data (`grading.toml`, shipped with cadterm; a force gives its own): a grade
for each incident type, and answer rules that raise it when their words appear under a
THRIVE heading or in what happened ("threat to life", "knife", "in progress"). The
suggestion is the most urgent grade any rule gives, with the reasons of every rule
that gives it, so the call handler sees why. It is guidance: the handler may grade
otherwise, and then says why (`create_incident`'s `grade_reason`).

`GradingRules.from_toml` checks a rules file strictly and says what is wrong in it;
`GradingRules.suggest` is a pure function of the type and the answers.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from cadterm.protocol.domain import Grade

__all__ = [
    "ANSWER_HEADINGS",
    "AnswerRule",
    "GradeGuidance",
    "GradingRules",
    "GradingRulesError",
    "default_rules",
]

#: Where an answer rule may look: what happened and the six THRIVE headings.
ANSWER_HEADINGS = (
    "what",
    "threat",
    "harm",
    "risk",
    "investigation",
    "vulnerability",
    "engagement",
)
_ANY = "any"


class GradingRulesError(ValueError):
    """A grading rules file that cannot be used, and why."""


@dataclass(frozen=True)
class AnswerRule:
    """Words that, under `heading` (or any heading), make a call at least `grade`."""

    heading: str
    words: tuple[str, ...]
    grade: Grade
    reason: str

    def matches(self, answers: Mapping[str, str]) -> bool:
        """Whether any of the words appears, as whole words, under this rule's heading."""
        headings = ANSWER_HEADINGS if self.heading == _ANY else (self.heading,)
        text = " ".join(_plain(answers.get(h) or "") for h in headings)
        padded = f" {text} "
        return any(f" {word} " in padded for word in self.words)


@dataclass(frozen=True)
class GradeGuidance:
    """The suggested grade and the reasons for it (most urgent rule first)."""

    grade: Grade
    reasons: tuple[str, ...]

    @property
    def summary(self) -> str:
        """``suggested 1 Emergency: threat to life; weapon involved``."""
        return f"suggested {int(self.grade)} {self.grade.label}: {'; '.join(self.reasons)}"


@dataclass(frozen=True)
class GradingRules:
    """The force's grading rules: a grade per incident type, and answer rules."""

    types: Mapping[str, tuple[Grade, str]]
    answers: tuple[AnswerRule, ...]
    default: tuple[Grade, str]

    def suggest(self, incident_type: str | None, answers: Mapping[str, str]) -> GradeGuidance:
        """The guidance for a call of `incident_type` (None: not yet given) with `answers`
        (heading -> words; see `ANSWER_HEADINGS`; unknown headings are ignored)."""
        code = " ".join((incident_type or "").split()).upper()
        given: list[tuple[Grade, str]] = []
        if code:
            given.append(self.types.get(code, self.default))
        given += [(rule.grade, rule.reason) for rule in self.answers if rule.matches(answers)]
        if not given:
            return GradeGuidance(self.default[0], ("no type or answers yet",))
        best = min(grade for grade, _ in given)
        reasons = tuple(dict.fromkeys(reason for grade, reason in given if grade == best))
        return GradeGuidance(best, reasons)

    @classmethod
    def from_toml(cls, text: str, source: str = "grading rules") -> GradingRules:
        """Read rules from TOML text; `GradingRulesError` names what is wrong, and where."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise GradingRulesError(f"{source}: not valid TOML: {error}") from None
        unknown = set(data) - {"default_grade", "default_reason", "types", "answers"}
        if unknown:
            raise GradingRulesError(f"{source}: unknown setting(s) {', '.join(sorted(unknown))}")
        default = (
            _grade(data.get("default_grade", 3), f"{source}: default_grade"),
            _reason(data.get("default_reason", "scheduled response"), f"{source}: default_reason"),
        )
        types_table = data.get("types", {})
        if not isinstance(types_table, dict):
            raise GradingRulesError(f"{source}: [types] must be a table of incident types")
        types = {}
        for code, entry in types_table.items():
            where = f"{source}: types.{code}"
            entry = _table(entry, where, {"grade", "reason"})
            types[code.strip().upper()] = (
                _grade(entry.get("grade"), f"{where}.grade"),
                _reason(entry.get("reason"), f"{where}.reason"),
            )
        rules = data.get("answers", [])
        if not isinstance(rules, list):
            raise GradingRulesError(f"{source}: answers must be [[answers]] tables")
        answers = tuple(_answer(rule, f"{source}: answers[{n}]") for n, rule in enumerate(rules))
        return cls(types, answers, default)


def default_rules() -> GradingRules:
    """The rules shipped with cadterm (`grading.toml` beside this module)."""
    text = files(__package__).joinpath("grading.toml").read_text(encoding="utf-8")
    return GradingRules.from_toml(text, "grading.toml")


_NOT_WORD = re.compile(r"[^\w]+")


def _plain(text: str) -> str:
    """Lower case words separated by single spaces: how answers and rule words compare."""
    return " ".join(_NOT_WORD.sub(" ", text.casefold()).split())


def _table(value: Any, where: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise GradingRulesError(f"{where}: must be a table such as {{ grade = 2, reason = ... }}")
    unknown = set(value) - keys
    if unknown:
        raise GradingRulesError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    return value


def _grade(value: Any, where: str) -> Grade:
    if isinstance(value, bool) or not isinstance(value, int) or value not in set(Grade):
        raise GradingRulesError(f"{where}: must be a grade 1-5, not {value!r}")
    return Grade(value)


def _reason(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip() or not value.isprintable():
        raise GradingRulesError(f"{where}: must be a one-line reason, not {value!r}")
    return value.strip()


def _answer(value: Any, where: str) -> AnswerRule:
    rule = _table(value, where, {"heading", "words", "grade", "reason"})
    heading = rule.get("heading", _ANY)
    if heading not in (*ANSWER_HEADINGS, _ANY):
        known = ", ".join((*ANSWER_HEADINGS, _ANY))
        raise GradingRulesError(f"{where}.heading: {heading!r} is not one of {known}")
    words = rule.get("words")
    if not isinstance(words, list) or not words or not all(isinstance(w, str) for w in words):
        raise GradingRulesError(f"{where}.words: must be a non-empty list of words")
    plain = tuple(_plain(word) for word in words)
    if not all(plain):
        raise GradingRulesError(f"{where}.words: a word is empty once punctuation is dropped")
    return AnswerRule(
        heading,
        plain,
        _grade(rule.get("grade"), f"{where}.grade"),
        _reason(rule.get("reason"), f"{where}.reason"),
    )
