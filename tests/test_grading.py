"""Grade guidance: the force's grading rules as data, and the suggestion they give."""

from __future__ import annotations

import pytest

from cadterm.domain.grading import GradingRules, GradingRulesError, default_rules
from cadterm.protocol.codes import INCIDENT_TYPES
from cadterm.protocol.domain import Grade

RULES = default_rules()


def test_the_shipped_rules_grade_every_known_incident_type() -> None:
    assert set(RULES.types) == set(INCIDENT_TYPES)


def test_the_type_alone_gives_its_grade_and_reason() -> None:
    guidance = RULES.suggest("fraud", {})
    assert guidance.grade == Grade.APPOINTMENT
    assert guidance.reasons == ("fraud: an appointment",)
    assert guidance.summary == "suggested 4 Appointment: fraud: an appointment"


def test_threat_to_life_under_any_heading_makes_it_grade_1() -> None:
    guidance = RULES.suggest("CONCERN", {"threat": "Caller says THREAT TO LIFE."})
    assert guidance.grade == Grade.EMERGENCY
    assert guidance.reasons == ("threat to life",)


def test_every_rule_giving_the_most_urgent_grade_is_a_reason() -> None:
    guidance = RULES.suggest("ASSAULT", {"what": "fight in progress", "harm": "stabbed"})
    assert guidance.grade == Grade.EMERGENCY
    assert set(guidance.reasons) == {"weapon involved", "in progress: offenders still there"}


def test_words_match_whole_words_under_their_own_heading_only() -> None:
    # "knifepoint" is not "knife"; "elderly" counts under vulnerability, not under harm.
    assert RULES.suggest("THEFT", {"what": "knifepoint"}).grade == Grade.SCHEDULED
    assert RULES.suggest("THEFT", {"harm": "elderly"}).grade == Grade.SCHEDULED
    assert RULES.suggest("THEFT", {"vulnerability": "elderly"}).grade == Grade.PRIORITY


def test_an_unknown_type_gets_the_default_and_nothing_yet_says_so() -> None:
    assert RULES.suggest("NOSUCH", {}).reasons == ("no rule for this type: scheduled response",)
    assert RULES.suggest(None, {}).reasons == ("no type or answers yet",)
    assert RULES.suggest(None, {"colour": "knife"}).grade == Grade.SCHEDULED  # unknown heading


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("default_grade = [", "not valid TOML"),
        ("colour = 1", "unknown setting(s) colour"),
        ("default_grade = 6", "default_grade: must be a grade 1-5"),
        ("default_grade = true", "must be a grade 1-5"),
        ("[types]\nRTC = 2", "types.RTC: must be a table"),
        ("[types]\nRTC = { grade = 2 }", "types.RTC.reason"),
        ('[types]\nRTC = { grade = 2, reason = "x", why = "y" }', "unknown key(s) why"),
        ('[[answers]]\nheading = "mood"\nwords = ["x"]\ngrade = 1\nreason = "r"', "mood"),
        ('[[answers]]\nwords = []\ngrade = 1\nreason = "r"', "non-empty list"),
        ('[[answers]]\nwords = ["!!"]\ngrade = 1\nreason = "r"', "empty once punctuation"),
        ('[[answers]]\nwords = ["x"]\ngrade = 1\nreason = "a\\u001b[2J"', "one-line reason"),
    ],
)
def test_a_bad_rules_file_is_refused_saying_where(text: str, fault: str) -> None:
    with pytest.raises(GradingRulesError, match=r"^test\.toml: ") as raised:
        GradingRules.from_toml(text, "test.toml")
    assert fault in str(raised.value)
