"""A call as the call form holds it: the answers, the guidance, and the one command.

`CallAnswers` is what the call handler has typed so far, field by field, in the form's
order (`FIELDS`). From it come the grade guidance (the force's rules, see
`cadterm.domain.grading`), what is known of the call for duplicate checks
(`cadterm.domain.duplicates`), and on submit one `create_incident` carrying everything:
caller, phone, location (matched against the gazetteer), type, what happened, the THRIVE
headings, the suggested grade and, when the handler grades otherwise, the reason. A call
that repeats an open incident becomes one `add_note` on it instead ("Further call: ...").

No Textual here: the form is a view over these functions, and they are tested alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from cadterm.domain.duplicates import NewCall
from cadterm.domain.gazetteer import Gazetteer
from cadterm.domain.grading import GradeGuidance, GradingRules
from cadterm.protocol.domain import Grade
from cadterm.protocol.drafts import CommandDraft, draft

from .grammar import Dispatch
from .grammar.places import placed

__all__ = [
    "FIELDS",
    "THRIVE_FIELDS",
    "CallAnswers",
    "CallField",
    "CallFormError",
]


@dataclass(frozen=True)
class CallField:
    """One field of the form: its key, its label, the prompt shown while empty, its limit."""

    key: str
    label: str
    prompt: str
    max_length: int


#: The THRIVE headings, in the order the form asks them.
THRIVE_FIELDS = ("threat", "harm", "risk", "investigation", "vulnerability", "engagement")

#: Every field, in the order the form asks them (limits are the protocol's).
FIELDS: tuple[CallField, ...] = (
    CallField("name", "Caller", "caller's name", 200),
    CallField("phone", "Phone", "number to call back on", 40),
    CallField("location", "Location", "where? Tab completes from the gazetteer", 500),
    CallField("type", "Type", "opening code, e.g. ASSAULT; Tab completes", 40),
    CallField("what", "What", "what happened, in the caller's words", 4000),
    CallField("threat", "Threat", "what threat is there, to whom, now?", 2000),
    CallField("harm", "Harm", "what harm has been done, or could be?", 2000),
    CallField("risk", "Risk", "how likely is harm, and how soon?", 2000),
    CallField("investigation", "Investigate", "what must be done to investigate?", 2000),
    CallField("vulnerability", "Vulnerable", "who is vulnerable, and why?", 2000),
    CallField("engagement", "Engagement", "what will engage the caller or victim?", 2000),
    CallField("grade", "Grade", "Enter takes the suggested grade", 1),
    CallField("reason", "Why", "why grade otherwise than suggested?", 1000),
)
_LABELS = {f.key: f.label for f in FIELDS}


class CallFormError(ValueError):
    """What stops the call being sent, and the field to fix."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


@dataclass
class CallAnswers:
    """What the call handler has typed, by field key (`FIELDS`)."""

    values: dict[str, str] = field(default_factory=dict)

    def get(self, key: str) -> str:
        """The answer to `key`, trimmed ("" when none)."""
        return self.values.get(key, "").strip()

    def thrive(self) -> dict[str, str]:
        """The THRIVE headings answered."""
        return {key: self.get(key) for key in THRIVE_FIELDS if self.get(key)}

    def guidance(self, rules: GradingRules) -> GradeGuidance:
        """The grade the force's rules suggest for the answers so far (a type half typed,
        the start of one the rules know, counts as not given yet)."""
        answers = {"what": self.get("what"), **self.thrive()}
        code = " ".join(self.get("type").split()).upper()
        if code not in rules.types and any(known.startswith(code) for known in rules.types):
            code = ""
        return rules.suggest(code or None, answers)

    def chosen_grade(self, rules: GradingRules) -> tuple[Grade | None, Grade]:
        """The grade typed (None: none, or not 1-5) and the suggested one."""
        suggested = self.guidance(rules).grade
        typed = self.get("grade")
        if typed in {str(int(g)) for g in Grade}:
            return Grade(int(typed)), suggested
        return None, suggested

    def overrides(self, rules: GradingRules) -> bool:
        """Whether the grade typed differs from the suggestion (a reason is then due)."""
        typed, suggested = self.chosen_grade(rules)
        return typed is not None and typed != suggested

    def new_call(
        self, now: datetime, places: Gazetteer | None, incident_types: Mapping[str, str]
    ) -> NewCall:
        """What is known of the call for finding the open incidents it may repeat (its
        type only once it is a whole code: half typed, it says nothing yet)."""
        address = self.get("location") or None
        code = " ".join(self.get("type").split()).upper()
        found = places.match(address) if places is not None and address else None
        return NewCall(
            at=now,
            address=found.address if found is not None else address,
            position=found.position if found is not None else None,
            phone=self.get("phone") or None,
            incident_type=code if code in incident_types else None,
        )

    def dispatch(
        self,
        rules: GradingRules,
        incident_types: Mapping[str, str],
        places: Gazetteer | None,
    ) -> Dispatch:
        """The one `create_incident` for this call; `CallFormError` names what is missing."""
        location = self.get("location")
        if not location:
            raise CallFormError("location", "where is it? a location is needed")
        code = " ".join(self.get("type").split()).upper()
        if not code:
            raise CallFormError("type", "what is it? an incident type is needed (Tab lists them)")
        if code not in incident_types:
            raise CallFormError("type", f"{code} is not an incident type (Tab lists them)")
        typed = self.get("grade")
        grade, suggested = self.chosen_grade(rules)
        if typed and grade is None:
            raise CallFormError("grade", f"grade {typed!r} is not 1-5")
        grade = grade or suggested
        reason = self.get("reason")
        if grade != suggested and not reason:
            raise CallFormError(
                "reason",
                f"grade {int(grade)} overrides the suggested {int(suggested)}: say why",
            )
        fields: dict[str, Any] = {
            "grade": int(grade),
            "incident_type": code,
            "location": {"address": location},
            "description": self.get("what"),
            "suggested_grade": int(suggested),
        }
        caller = {k: self.get(k) for k in ("name", "phone") if self.get(k)}
        if caller:
            fields["caller"] = caller
        if self.thrive():
            fields["risk"] = self.thrive()
        if reason and grade != suggested:
            fields["grade_reason"] = reason
        command = _draft("create_incident", fields)
        summary = f"new grade {int(grade)} {code} at {location}"
        if grade != suggested:
            summary += f" (suggested {int(suggested)})"
        action = placed(Dispatch((command,), summary), places)
        assert isinstance(action, Dispatch)
        return action

    def further_call(self, reference: str) -> Dispatch:
        """This call recorded on the open incident `reference` instead of a new one."""
        who = ", ".join(self.get(k) for k in ("name", "phone") if self.get(k)) or "caller unknown"
        parts = [f"Further call ({who})"]
        for key in ("location", "type", "what", *THRIVE_FIELDS):
            if self.get(key):
                parts.append(f"{_LABELS[key].lower()}: {self.get(key)}")
        text = "; ".join(parts)[:4000]
        command = _draft("add_note", {"reference": reference, "text": text})
        return Dispatch((command,), f"further call added to {reference}")


# Where a protocol refusal points (its first loc) -> the form's field for it.
_FIELD_OF = {
    "caller": "name",
    "location": "location",
    "incident_type": "type",
    "description": "what",
    "grade_reason": "reason",
    "risk": "threat",
    "text": "what",
}


def _draft(kind: str, fields: dict[str, Any]) -> CommandDraft:
    try:
        return draft(kind, **fields)
    except ValidationError as error:
        problem = error.errors()[0]
        loc = [str(part) for part in problem["loc"]]
        key = _FIELD_OF.get(loc[0], "what") if loc else "what"
        if loc[:2] == ["caller", "phone"]:
            key = "phone"
        elif loc[:1] == ["risk"] and len(loc) > 1 and loc[1] in THRIVE_FIELDS:
            key = loc[1]
        raise CallFormError(key, f"{_LABELS[key]}: {problem['msg']}") from None
