"""The command-line grammar: every verb, precise errors, completion, help, properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cadterm.protocol.codes import CLOSING_CODES, INCIDENT_TYPES
from cadterm.protocol.commands import COMMAND_ADAPTER, LocationInput
from cadterm.protocol.drafts import CommandDraft, draft
from cadterm.tui.grammar import (
    VERBS,
    Acknowledge,
    Candidate,
    Completion,
    Dispatch,
    Filter,
    Find,
    Help,
    ParseContext,
    ParseError,
    Quit,
    Recommend,
    Select,
    ShowSafety,
    ShowUnitHistory,
    complete,
    help_text,
    parse,
)
from cadterm.tui.grammar.tokens import tokenize

SELECTED = "0042-27NOV26"
REFERENCES = (
    "0001-27NOV26",
    "0041-27NOV26",
    "0042-26NOV26",
    "0003-27NOV26",
    SELECTED,
    "0043-27NOV26",
)
CALLSIGNS = ("AB12", "AB13", "CD34", "ARV 1", "ARV 10", "DOG 2", "XR99")
CTX = ParseContext(
    selected=SELECTED,
    references=REFERENCES,
    callsigns=CALLSIGNS,
    incident_types=INCIDENT_TYPES,
    closing_codes=CLOSING_CODES,
    recommended=("CD34", "AB12"),
)
NOTHING_SELECTED = ParseContext(
    selected=None,
    references=REFERENCES,
    callsigns=CALLSIGNS,
    incident_types=INCIDENT_TYPES,
    closing_codes=CLOSING_CODES,
)
PROPERTY = settings(max_examples=300, deadline=None)


def validate(command: CommandDraft) -> None:
    """The draft, once keyed, must be a command the server's door accepts as sent."""
    assert isinstance(command, CommandDraft), command
    keyed = command.keyed("x" * 16, "ws1")
    assert COMMAND_ADAPTER.validate_json(keyed.model_dump_json(exclude_none=True)) == keyed


def typed_fields(command: CommandDraft) -> dict:
    """The fields the grammar gave a draft (not those left to their defaults)."""
    return {"type": command.type, **command.model_dump(exclude_unset=True, exclude={"type"})}


def drafts(*commands: dict) -> list[CommandDraft]:
    """Drafts of commands written as plain data."""
    return [draft(**command) for command in commands]


def commands(line: str, ctx: ParseContext = CTX) -> list[CommandDraft]:
    """Parse a line that must produce command drafts; check each against the protocol."""
    action = parse(line, ctx)
    assert isinstance(action, Dispatch), action
    assert action.summary
    for command in action.commands:
        validate(command)
    return list(action.commands)


def error(line: str, ctx: ParseContext = CTX) -> tuple[str, str]:
    """Parse a line that must fail; return the message and the text its span covers."""
    with pytest.raises(ParseError) as caught:
        parse(line, ctx)
    err = caught.value
    assert 0 <= err.start <= err.end <= len(line)
    assert str(err) == err.message
    return err.message, line[err.start : err.end]


def assign(callsign: str, reference: str = SELECTED, **extra) -> CommandDraft:
    return draft("assign_unit", reference=reference, callsign=callsign, **extra)


# --------------------------------------------------------------------------- every verb

DISPATCH_CASES = [
    # new / n / create
    (
        "n 1 rtc 12 High Street, Leeds",
        [
            {
                "type": "create_incident",
                "grade": 1,
                "incident_type": "RTC",
                "location": {"address": "12 High Street, Leeds"},
            }
        ],
    ),
    (
        'create 2 Burglary 3 Low Lane desc="rear door forced" src=101 sector=LS6',
        [
            {
                "type": "create_incident",
                "grade": 2,
                "incident_type": "BURGLARY",
                "location": {"address": "3 Low Lane", "sector": "LS6"},
                "description": "rear door forced",
                "source": "101",
            }
        ],
    ),
    (
        'new 1 RTC pos=53.80,-1.55 desc="two cars, one injured" M62 J27 caller="Ann Lee" '
        "phone=07700900123 src=999",
        [
            {
                "type": "create_incident",
                "grade": 1,
                "incident_type": "RTC",
                "location": {"address": "M62 J27", "position": {"lat": 53.8, "lon": -1.55}},
                "description": "two cars, one injured",
                "source": "999",
                "caller": {"name": "Ann Lee", "phone": "07700900123"},
            }
        ],
    ),
    (
        "n emergency concern St John's Road desc= 'won't answer the door'",
        [
            {
                "type": "create_incident",
                "grade": 1,
                "incident_type": "CONCERN",
                "location": {"address": "St John's Road"},
                "description": "won't answer the door",
            }
        ],
    ),
    (
        "n Emergency concern St John's Road desc= \"won't answer the door\"",
        [
            {
                "type": "create_incident",
                "grade": 1,
                "incident_type": "CONCERN",
                "location": {"address": "St John's Road"},
                "description": "won't answer the door",
            }
        ],
    ),
    # grade / g
    ("g 1", [{"type": "grade_incident", "reference": SELECTED, "grade": 1}]),
    ("grade 43 2", [{"type": "grade_incident", "reference": "0043-27NOV26", "grade": 2}]),
    (
        "g 43 1 weapon now seen",
        [
            {
                "type": "grade_incident",
                "reference": "0043-27NOV26",
                "grade": 1,
                "reason": "weapon now seen",
            }
        ],
    ),
    # "1" names incident 0001, but "caller" is no grade while "1" is: the selected one.
    (
        "grade 1 caller now safe",
        [
            {
                "type": "grade_incident",
                "reference": SELECTED,
                "grade": 1,
                "reason": "caller now safe",
            }
        ],
    ),
    ("g 0042-26nov26 3", [{"type": "grade_incident", "reference": "0042-26NOV26", "grade": 3}]),
    # type / ty / retype
    (
        "ty burglary",
        [{"type": "retype_incident", "reference": SELECTED, "incident_type": "BURGLARY"}],
    ),
    (
        "retype 41 Domestic",
        [{"type": "retype_incident", "reference": "0041-27NOV26", "incident_type": "DOMESTIC"}],
    ),
    # loc / relocate / where: a house number is address, not a reference
    (
        "loc 42 High Street sector=LS1",
        [
            {
                "type": "relocate_incident",
                "reference": SELECTED,
                "location": {"address": "42 High Street", "sector": "LS1"},
            }
        ],
    ),
    (
        "where #41 pos=53.1,-1.2 Kirkgate Market",
        [
            {
                "type": "relocate_incident",
                "reference": "0041-27NOV26",
                "location": {"address": "Kirkgate Market", "position": {"lat": 53.1, "lon": -1.2}},
            }
        ],
    ),
    (
        'relocate 0043-27NOV26 "The Crown, Otley"',
        [
            {
                "type": "relocate_incident",
                "reference": "0043-27NOV26",
                "location": {"address": "The Crown, Otley"},
            }
        ],
    ),
    # risk / thrive
    (
        "risk threat=knife seen harm=high vul=elderly caller",
        [
            {
                "type": "assess_risk",
                "reference": SELECTED,
                "risk": {"threat": "knife seen", "harm": "high", "vulnerability": "elderly caller"},
            }
        ],
    ),
    (
        'thrive 43 engagement="call back" inv=CCTV risk=low',
        [
            {
                "type": "assess_risk",
                "reference": "0043-27NOV26",
                "risk": {"engagement": "call back", "investigation": "CCTV", "risk": "low"},
            }
        ],
    ),
    # note / nt / +: the text is kept exactly as typed
    (
        "note suspect left on foot",
        [{"type": "add_note", "reference": SELECTED, "text": "suspect left on foot"}],
    ),
    (
        "nt 3 males seen running",
        [{"type": "add_note", "reference": SELECTED, "text": "3 males seen running"}],
    ),
    (
        "note #43 units on scene",
        [{"type": "add_note", "reference": "0043-27NOV26", "text": "units on scene"}],
    ),
    (
        "+caller rang back",
        [{"type": "add_note", "reference": SELECTED, "text": "caller rang back"}],
    ),
    (
        "+ 1530 caller rang back",
        [{"type": "add_note", "reference": SELECTED, "text": "1530 caller rang back"}],
    ),
    # assign / a / send, divert / dv
    ("a AB12", [assign("AB12")]),
    ("assign ab12 cd34", [assign("AB12"), assign("CD34")]),
    ("send 43 arv 1 AB12", [assign("ARV 1", "0043-27NOV26"), assign("AB12", "0043-27NOV26")]),
    ('a "ARV 10"', [assign("ARV 10")]),
    ("a arv10 arv 1", [assign("ARV 10"), assign("ARV 1")]),
    ("a 0042-26NOV26 'DOG 2'", [assign("DOG 2", "0042-26NOV26")]),
    ("a AB12 ab12", [assign("AB12")]),
    ("dv 43 AB12", [assign("AB12", "0043-27NOV26", divert=True)]),
    ("divert arv 1", [assign("ARV 1", divert=True)]),
    # unassign / ua / standdown / sd
    ("sd AB12", [{"type": "unassign_unit", "reference": SELECTED, "callsign": "AB12"}]),
    (
        "ua 43 arv 1 not needed",
        [
            {
                "type": "unassign_unit",
                "reference": "0043-27NOV26",
                "callsign": "ARV 1",
                "reason": "not needed",
            }
        ],
    ),
    ('standdown "DOG 2"', [{"type": "unassign_unit", "reference": SELECTED, "callsign": "DOG 2"}]),
    # state / s / st
    ("s AB12 6", [{"type": "set_unit_state", "callsign": "AB12", "state": 6}]),
    ("state arv 1 at scene", [{"type": "set_unit_state", "callsign": "ARV 1", "state": 6}]),
    ("st AB12 En Route", [{"type": "set_unit_state", "callsign": "AB12", "state": 5}]),
    ("s cd34 available", [{"type": "set_unit_state", "callsign": "CD34", "state": 2}]),
    ("s 'ARV 10' 0", [{"type": "set_unit_state", "callsign": "ARV 10", "state": 0}]),
    # locate / pos
    (
        "locate AB12 53.80,-1.55",
        [{"type": "locate_unit", "callsign": "AB12", "position": {"lat": 53.8, "lon": -1.55}}],
    ),
    (
        "pos arv 1 53.8, -1.5",
        [{"type": "locate_unit", "callsign": "ARV 1", "position": {"lat": 53.8, "lon": -1.5}}],
    ),
    # close / cl
    (
        "cl resolved",
        [{"type": "close_incident", "reference": SELECTED, "closing_code": "RESOLVED"}],
    ),
    (
        "close 43 NFA all quiet, [no] trace",
        [
            {
                "type": "close_incident",
                "reference": "0043-27NOV26",
                "closing_code": "NFA",
                "summary": "all quiet, [no] trace",
            }
        ],
    ),
    # reopen / ro
    (
        "ro 41 caller rang back",
        [{"type": "reopen_incident", "reference": "0041-27NOV26", "reason": "caller rang back"}],
    ),
    (
        "reopen 0007-20NOV26 new evidence",
        [{"type": "reopen_incident", "reference": "0007-20NOV26", "reason": "new evidence"}],
    ),
    # link / ln / dup
    (
        "dup 41",
        [
            {
                "type": "link_incidents",
                "reference": SELECTED,
                "other": "0041-27NOV26",
                "relation": "duplicate_of",
            }
        ],
    ),
    (
        "link 41",
        [
            {
                "type": "link_incidents",
                "reference": SELECTED,
                "other": "0041-27NOV26",
                "relation": "related",
            }
        ],
    ),
    (
        "ln rel=duplicated_by 41 43",
        [
            {
                "type": "link_incidents",
                "reference": "0041-27NOV26",
                "other": "0043-27NOV26",
                "relation": "duplicated_by",
            }
        ],
    ),
    # bookon / on: a new callsign is fine; several of one type book on together
    (
        "on XY02 XY03 patrol_car",
        [
            {"type": "book_on", "callsign": "XY02", "unit_type": "patrol_car", "capabilities": []},
            {"type": "book_on", "callsign": "XY03", "unit_type": "patrol_car", "capabilities": []},
        ],
    ),
    (
        "on ARV 1 ARV 2 armed_response firearms",
        [
            {
                "type": "book_on",
                "callsign": f"ARV {n}",
                "unit_type": "armed_response",
                "capabilities": ["firearms"],
            }
            for n in (1, 2)
        ],
    ),
    (
        "on AB99 patrol_car taser first_aid",
        [
            {
                "type": "book_on",
                "callsign": "AB99",
                "unit_type": "patrol_car",
                "capabilities": ["taser", "first_aid"],
            }
        ],
    ),
    (
        "bookon ARV 3 armed-response firearms FIREARMS sector=LS1 pos=53.8,-1.5",
        [
            {
                "type": "book_on",
                "callsign": "ARV 3",
                "unit_type": "armed_response",
                "capabilities": ["firearms"],
                "home_sector": "LS1",
                "position": {"lat": 53.8, "lon": -1.5},
            }
        ],
    ),
    (
        'on "K9 4" dog dog',
        [{"type": "book_on", "callsign": "K9 4", "unit_type": "dog", "capabilities": ["dog"]}],
    ),
    (
        "on arv 1 armed_response",
        [
            {
                "type": "book_on",
                "callsign": "ARV 1",
                "unit_type": "armed_response",
                "capabilities": [],
            }
        ],
    ),
    # bookoff / off
    ("off AB12", [{"type": "book_off", "callsign": "AB12"}]),
    ("bookoff arv 10", [{"type": "book_off", "callsign": "ARV 10"}]),
    # checkin / ok
    ("ok AB12", [{"type": "check_in_unit", "callsign": "AB12"}]),
    (
        "checkin arv 1 all fine, driver ok",
        [{"type": "check_in_unit", "callsign": "ARV 1", "note": "all fine, driver ok"}],
    ),
    # a leading ':' is ignored
    (":a AB12", [assign("AB12")]),
    ("  :  a AB12  ", [assign("AB12")]),
]


@pytest.mark.parametrize(("line", "expected"), [c for c in DISPATCH_CASES if c[1] is not None])
def test_verbs_produce_valid_commands(line: str, expected: list) -> None:
    written = [typed_fields(c) if isinstance(c, CommandDraft) else c for c in expected]
    parsed = commands(line)
    assert [typed_fields(command) for command in parsed] == written
    assert parsed == drafts(*written)


OTHER_ACTIONS = [
    ("rec", Recommend(SELECTED, ())),
    ("recommend 43 firearms dog", Recommend("0043-27NOV26", ("firearms", "dog"))),
    ("r first-aid", Recommend(SELECTED, ("first_aid",))),
    ("f high street", Find("high street")),
    ("f", Find("")),
    ("uh AB12", ShowUnitHistory("AB12")),
    ("unithistory arv 10", ShowUnitHistory("ARV 10")),
    ("safety", ShowSafety()),
    ("sf", ShowSafety()),
    ("find 'quoted' [x]", Find("'quoted' [x]")),
    ("/leeds city", Filter("leeds city")),
    ("/ leeds", Filter("leeds")),
    ("/", Filter("")),
    (":/x", Filter("x")),
    ("filter abc", Filter("abc")),
    ("filter", Filter("")),
    ("ack", Acknowledge(None)),
    ("acknowledge arv 1", Acknowledge("ARV 1")),
    ("k AB12", Acknowledge("AB12")),
    ("help", Help(None)),
    ("?", Help(None)),
    ("h state", Help("state")),
    ("? a", Help("assign")),
    ("assign ?", Help("assign")),
    ("sd ?", Help("unassign")),
    ("cl?", Help("close")),
    ("q", Quit()),
    ("EXIT", Quit()),
    ("quit", Quit()),
    ("42", Select(SELECTED)),
    ("0042", Select(SELECTED)),
    ("#41", Select("0041-27NOV26")),
    ("0042-26nov26", Select("0042-26NOV26")),
    ("  43  ", Select("0043-27NOV26")),
]


@pytest.mark.parametrize(("line", "expected"), OTHER_ACTIONS)
def test_other_actions(line: str, expected: object) -> None:
    assert parse(line, CTX) == expected


def test_verbs_are_case_insensitive() -> None:
    assert commands("ASSIGN AB12") == commands("Assign ab12") == [assign("AB12")]


@pytest.mark.parametrize(
    "text",
    [
        "[@click=app.quit]x[/]",
        "[bold]armed[/bold]",
        "unclosed [ bracket",
        "x=1 desc=ignored pos=1,2",
        "he said \"stop\" and 'ran'",
        "it's an unclosed quote: \"",
        "'",
        "émigré 北京 🚓",
        "3 males; rel=dup #43",
    ],
)
def test_note_text_is_kept_exactly(text: str) -> None:
    assert commands(f"note {text}") == drafts(
        {"type": "add_note", "reference": SELECTED, "text": text}
    )
    assert commands(f"+{text}")[0].text == text


@pytest.mark.parametrize(
    ("text", "named"),
    [("\x1b[2J cleared", "U+001B"), ("\x1b]52;c;aGVsbG8=\x07", "U+001B"), ("a\x85b", "U+0085")],
)
def test_note_with_control_characters_is_refused_naming_the_character(
    text: str, named: str
) -> None:
    with pytest.raises(ParseError, match=rf"text: .*control characters.*{re.escape(named)}"):
        commands(f"note {text}")


# --------------------------------------------------------------------------- references


def test_short_reference_means_the_newest_with_that_number() -> None:
    assert parse("42", CTX) == Select("0042-27NOV26")
    assert commands("g 0042 2")[0].reference == "0042-27NOV26"
    assert commands("g #42 2")[0].reference == "0042-27NOV26"
    assert commands("g 0042-26NOV26 2")[0].reference == "0042-26NOV26"


def test_a_reference_as_the_boards_show_it_can_be_typed_back() -> None:
    """The queue shows ``0042-27NOV`` for ``0042-27NOV26``: typing what is on screen works."""
    assert commands("a 0042-27NOV AB12", NOTHING_SELECTED) == [assign("AB12", "0042-27NOV26")]
    assert commands("note 0042-27nov keyholder on way")[0].reference == "0042-27NOV26"
    assert commands("g 0042-26NOV 2")[0].reference == "0042-26NOV26"
    assert parse("0042-27NOV", CTX) == Select("0042-27NOV26")
    # One the console does not know is named as an incident, not taken for a callsign.
    assert error("a 0099-27NOV AB12")[0].startswith("unknown incident '0099-27NOV'")


def test_optional_reference_is_left_out_when_only_the_required_words_remain() -> None:
    assert commands("g 1")[0].reference == SELECTED  # 0001 exists, yet "1" is the grade
    assert commands("link 43")[0].reference == SELECTED
    assert commands("link 43")[0].other == "0043-27NOV26"
    assert commands("note #43")[0] == draft("add_note", reference=SELECTED, text="#43")


def test_optional_reference_is_taken_when_more_words_remain() -> None:
    assert commands("g 43 1")[0].reference == "0043-27NOV26"
    assert commands("g 43 1", NOTHING_SELECTED)[0].reference == "0043-27NOV26"
    assert commands("cl 43 resolved")[0].reference == "0043-27NOV26"
    assert commands("sd 1 AB12")[0].reference == "0001-27NOV26"


def test_free_text_needs_an_explicit_reference() -> None:
    # "3" and "42" name incidents, but before free text they are the text.
    assert typed_fields(commands("note 3 males")[0]) == {
        "type": "add_note",
        "reference": SELECTED,
        "text": "3 males",
    }
    assert commands("loc 3 Low Lane")[0].location == LocationInput(address="3 Low Lane")
    assert commands("note #3 males")[0].reference == "0003-27NOV26"
    assert commands("note 0003-27nov26 males")[0].reference == "0003-27NOV26"


def test_reference_in_explicit_form_is_checked_not_misread() -> None:
    assert error("rec #99")[1] == "#99"  # not "unknown capability"
    assert error("note #99 hello")[1] == "#99"
    # A full reference this console has not seen goes to the server, which knows.
    assert commands("risk 0099-27NOV26 harm=low")[0].reference == "0099-27NOV26"


def test_selected_incident_is_not_needed_when_a_reference_is_given() -> None:
    assert commands("a 43 AB12", NOTHING_SELECTED) == [assign("AB12", "0043-27NOV26")]
    assert commands("note #43 hello", NOTHING_SELECTED)[0].reference == "0043-27NOV26"


# --------------------------------------------------------------------------- errors

ERRORS = [
    # (line, words the message must hold, the text the span must cover)
    ("", ["type a command; ? for help"], ""),
    ("   ", ["type a command"], "   "),
    (":", ["type a command"], ":"),
    ("asign AB12", ["unknown verb 'asign'", "did you mean assign"], "asign"),
    ("xyzzy", ["unknown verb 'xyzzy'", "? for help"], "xyzzy"),
    ("a ZZ9", ["unknown callsign 'ZZ9'", "known: AB12"], "ZZ9"),
    ("a AB1", ["unknown callsign 'AB1'", "did you mean AB12, AB13"], "AB1"),
    ("a AB12 ARV 7", ["unknown callsign 'ARV'", "did you mean ARV 1"], "ARV"),
    ("s ZZ9 6", ["unknown callsign 'ZZ9'"], "ZZ9"),
    ("g 7", ["grade must be 1-5", "1 Emergency", "got '7'"], "7"),
    ("g 43 7 why", ["grade must be 1-5", "got '7'"], "7"),
    ("n 9 rtc High St", ["grade must be 1-5"], "9"),
    ("s AB12 flying", ["unknown unit state 'flying'", "0-10"], "flying"),
    ("s AB12 at the pub", ["unknown unit state 'at the pub'"], "at the pub"),
    ("s AB12 12", ["unit state 12 is not an Airwave state"], "12"),
    ("s AB12 11", ["off duty", "use 'off AB12'"], "11"),
    ("s arv 1 off duty", ["use 'off ARV 1'"], "off duty"),
    ("s AB12", ["state: missing STATE", "usage: state CALLSIGN STATE..."], ""),
    ("a", ["assign: missing CALLSIGN"], ""),
    ("n 1 rtc", ["new: missing LOCATION"], ""),
    ("n 1", ["new: missing TYPE"], ""),
    ("n 1 rtx High St", ["unknown incident type 'rtx'", "did you mean RTC"], "rtx"),
    ("cl", ["close: missing CODE"], ""),
    ("cl resolvd", ["unknown closing code 'resolvd'", "did you mean RESOLVED"], "resolvd"),
    ("cl 43 bogus x", ["unknown closing code 'bogus'"], "bogus"),
    ("ro 41", ["reopen: missing REASON"], ""),
    ("ro zz done", ["unknown incident 'zz'"], "zz"),
    ('a "ARV 1', ["unterminated quote"], '"ARV 1'),
    ('n 1 rtc High St desc="two cars', ["unterminated quote"], 'desc="two cars'),
    ("s 'AB12 6", ["unterminated quote"], "'AB12 6"),
    ("g 1", ["no incident selected: give a reference"], "g"),
    ("note hello", ["no incident selected"], "note"),
    ("note 3 males", ["no incident selected"], "note"),
    ("cl resolved", ["no incident selected"], "cl"),
    ("99", ["no incident numbered 99"], "99"),
    ("#99", ["no incident numbered #99"], "#99"),
    ("note #99 text", ["unknown incident '#99'"], "#99"),
    ("link #99", ["unknown incident '#99'"], "#99"),
    ("g #99 1", ["unknown incident '#99'"], "#99"),
    ("locate AB12 north", ["position 'north' is not LAT,LON"], "north"),
    ("locate AB12 91,0", ["off the map"], "91,0"),
    ("locate AB12 nan,0", ["off the map"], "nan,0"),
    ("n 1 rtc x pos=1", ["position '1' is not LAT,LON"], "pos=1"),
    ("n 1 rtc x src=pigeon", ["unknown source 'pigeon'"], "src=pigeon"),
    ("n 1 rtc x desc=a desc=b", ["desc= is given twice"], "desc=b"),
    ("thrive 43 inv=CCTV investigation=x", ["investigation= is given twice"], "investigation=x"),
    ("risk", ["give at least one heading"], "risk"),
    ("risk threat=", ["threat is empty"], "threat="),
    ("risk thret=x", ["risk takes no thret=", "threat="], "thret="),
    ("link 42", ["cannot link 0042-27NOV26 to itself"], "42"),
    ("link 41 rel=cousin", ["unknown relation 'cousin'"], "rel=cousin"),
    ("on AB99 car", ["unknown unit type 'car'"], "car"),
    ("on AB99", ["bookon: missing TYPE"], ""),
    ("on AB99 AB99 van", ["a callsign is given twice"], "AB99 AB99"),
    ("on AB99 van jetpack", ["unknown capability 'jetpack'"], "jetpack"),
    ("on AB\x1b99 van", ["must be printable"], "AB\x1b99"),
    ("on " + "X" * 41 + " van", ["callsign is too long"], "X" * 41),
    ("rec wings", ["unknown capability 'wings'"], "wings"),
    ("q now", ["unexpected 'now'", "usage: quit"], "now"),
    ("ok", ["checkin: missing CALLSIGN"], ""),
    ("ok ZZ99", ["unknown callsign 'ZZ99'"], "ZZ99"),
    ("ok AB12 " + "x" * 1001, ["note is too long (1001 characters; at most 1000)"], "x" * 1001),
    ("uh", ["unithistory: missing CALLSIGN"], ""),
    ("uh AB12 CD34", ["unexpected 'CD34'"], "CD34"),
    ("safety now", ["unexpected 'now'", "usage: safety"], "now"),
    ("off AB12 CD34", ["unexpected 'CD34'"], "CD34"),
    ("ty burglary theft", ["unexpected 'theft'"], "theft"),
    ("help nonsense", ["unknown verb 'nonsense'"], "nonsense"),
    ("nonsense ?", ["unknown verb 'nonsense'"], "nonsense"),
    ("note ab\ud800cd", ["invalid character"], "\ud800"),
    ("note " + "x" * 4001, ["text is too long (4001 characters; at most 4000)"], "x" * 4001),
    ("loc " + "x" * 501, ["address is too long"], "x" * 501),
]


@pytest.mark.parametrize(("line", "words", "span"), ERRORS)
def test_errors_are_precise(line: str, words: list[str], span: str) -> None:
    ctx = NOTHING_SELECTED if "no incident selected" in words[0] else CTX
    message, covered = error(line, ctx)
    for word in words:
        assert word in message, (word, message)
    assert covered == span


def test_missing_argument_points_at_the_end_of_the_line() -> None:
    with pytest.raises(ParseError) as caught:
        parse("a ", CTX)
    assert (caught.value.start, caught.value.end) == (2, 2)


def test_error_suggestions_are_few() -> None:
    many = ParseContext(None, (), [f"AB{i}" for i in range(100)], INCIDENT_TYPES, CLOSING_CODES)
    message, _ = error("s ZZ 1", many)
    assert message.count(",") <= 4


def test_error_messages_escape_control_characters() -> None:
    message, _ = error("\x1b[31mred")
    assert "\x1b" not in message and "\\x1b" in message


def test_empty_code_tables_accept_any_single_word() -> None:
    bare = ParseContext(SELECTED, REFERENCES, CALLSIGNS, {}, {})
    assert commands("n 1 whatever 1 Road", bare)[0].incident_type == "WHATEVER"
    assert commands("cl done", bare)[0].closing_code == "DONE"


# --------------------------------------------------------------------------- tokens


def test_tokens_keep_their_spans_and_quotes() -> None:
    line = 'a "ARV 1" desc="two cars" St John\'s'
    tokens = tokenize(line)
    assert [t.text for t in tokens] == ["a", "ARV 1", "desc=two cars", "St", "John's"]
    assert [line[t.start : t.end] for t in tokens] == [
        "a",
        '"ARV 1"',
        'desc="two cars"',
        "St",
        "John's",
    ]
    assert [t.quoted for t in tokens] == [False, True, False, False, False]


def test_unterminated_quote_runs_to_the_end() -> None:
    (token,) = tokenize("'open quote ")
    assert token.unterminated and token.end == len("'open quote ")


def test_quoted_field_is_plain_text() -> None:
    assert commands('loc "pos=1,2" Road')[0].location == LocationInput(
        **{"address": "pos=1,2 Road"}
    )


# --------------------------------------------------------------------------- completion


def texts(line: str, ctx: ParseContext = CTX) -> list[str]:
    return [c.text for c in complete(line, ctx).candidates]


def tab(line: str, ctx: ParseContext = CTX) -> str:
    """What the widget does on Tab: replace the last word by the first candidate."""
    completion = complete(line, ctx)
    return line[: completion.start] + completion.candidates[0].text + " "


def test_complete_verbs_at_the_start() -> None:
    assert {"new", "assign", "n", "a", "quit"} <= set(texts(""))
    assert texts("a")[0] == "a"  # what was typed is already a verb: Tab keeps it
    assert texts("as") == ["assign"]
    assert texts(":cl") == ["cl", "close"]
    assert complete(":cl", CTX).start == 1
    labels = {c.text: c.label for c in complete("se", CTX).candidates}
    assert labels["send"] == "= assign"


def test_complete_references_at_the_start() -> None:
    completion = complete("4", CTX)
    assert completion.start == 0
    assert [(c.text, c.label) for c in completion.candidates] == [
        ("43", "0043-27NOV26"),
        ("42", "0042-27NOV26 (selected)"),
        ("0042-26NOV26", "0042-26NOV26"),  # an older 42: only its full form is unambiguous
        ("41", "0041-27NOV26"),
    ]
    assert parse(tab("4").strip(), CTX) == Select("0043-27NOV26")


def test_complete_callsigns_recommended_first() -> None:
    completion = complete("a ", CTX)
    assert completion.start == 2
    assert completion.candidates[:2] == (
        Candidate("CD34", "recommended"),
        Candidate("AB12", "recommended"),
    )
    rest = texts("a ")[2 : len(CALLSIGNS)]
    assert rest == ["AB13", '"ARV 1"', '"ARV 10"', '"DOG 2"', "XR99"]
    assert "43" in texts("a ")  # an optional REF may come first: references follow


def test_complete_multi_word_callsigns_quoted() -> None:
    assert texts("a AR") == ['"ARV 1"', '"ARV 10"']
    assert texts("a arv1") == ['"ARV 1"', '"ARV 10"']
    completion = complete("a AB12 arv ", CTX)
    assert completion.start == len("a AB12 ")
    assert [c.text for c in completion.candidates] == ['"ARV 1"', '"ARV 10"']
    assert texts('a "ARV 1') == ['"ARV 1"', '"ARV 10"']
    assert commands(tab("a AB12 arv ")) == [assign("AB12"), assign("ARV 1")]


def test_complete_skips_callsigns_already_given() -> None:
    assert "AB12" not in texts("a AB12 ")
    assert "CD34" in texts("a AB12 ")


def test_complete_after_a_reference() -> None:
    assert texts("a 43 ")[:2] == ["CD34", "AB12"]
    assert "43" not in texts("a 43 ")
    assert texts("g 43 ") == ["1", "2", "3", "4", "5"]


def test_complete_references_before_free_text_are_explicit() -> None:
    assert texts("note ")[:2] == ["#43", "#42"]
    assert parse(tab("note ") + "hello", CTX) == Dispatch(
        (draft("add_note", reference="0043-27NOV26", text="hello"),),
        "note on 0043-27NOV26",
    )


def test_complete_states() -> None:
    completion = complete("s AB12 ", CTX)
    assert [c.text for c in completion.candidates] == [str(n) for n in range(11)]
    assert completion.candidates[6] == Candidate("6", "At scene")
    assert texts("s AB12 en") == ["en route"]
    completion = complete("s AB12 at s", CTX)
    assert completion.start == len("s AB12 ")
    assert [c.text for c in completion.candidates] == ["at scene"]
    assert commands(tab("s AB12 at s"))[0].state == 6


def test_every_completed_state_word_parses() -> None:
    for letter in "abcdefghijklmnopqrstuvwxyz":
        for candidate in complete(f"s AB12 {letter}", CTX).candidates:
            assert commands(f"s AB12 {candidate.text}")[0].state == int(candidate.label)


def test_complete_codes() -> None:
    assert texts("cl r") == ["RESOLVED"]
    assert texts("cl ")[: len(CLOSING_CODES)] == sorted(CLOSING_CODES)
    assert texts("n 1 rt") == ["RTC"]
    assert texts("n 1 coll") == ["RTC"]  # by what the code means
    assert texts("ty burg") == ["BURGLARY"]


def test_complete_field_keys_and_values() -> None:
    assert texts("n 1 rtc 12 High St d") == ["desc="]
    assert "src=" in texts("n 1 rtc 12 High St ")
    assert "desc=" not in texts("n 1 rtc desc=x 12 High St ")
    assert texts("n 1 rtc x src=9") == ["src=999"]
    assert texts("link rel=d") == ["rel=duplicate_of", "rel=duplicated_by"]
    assert texts("risk threat=x v") == ["vulnerability="]


def test_field_completed_with_a_space_still_parses() -> None:
    line = tab("n 1 rtc 12 High St d") + '"two cars"'
    assert line == 'n 1 rtc 12 High St desc= "two cars"'
    assert commands(line)[0].description == "two cars"


def test_complete_unit_types_and_capabilities() -> None:
    assert texts("on AB99 ")[:2] == ["patrol_car", "van"]
    assert texts("on AB99 armed") == ["armed_response"]
    assert texts("on ARV 3 armed") == ["armed_response"]
    assert texts("on AB99 van f") == ["firearms", "first_aid", "foot"][:2]
    assert texts("rec f") == ["firearms", "first_aid"]
    assert texts("rec 43 d") == ["dog"]


def test_complete_help_and_nothing_elsewhere() -> None:
    assert texts("? as") == ["assign"]
    assert texts("/lee") == []
    assert texts("note some te") == []
    assert texts("xyz ") == []
    assert texts("q ") == []
    assert complete("note some te", CTX) == Completion(len("note some "), ())


# --------------------------------------------------------------------------- help


def test_every_verb_has_an_example_that_parses() -> None:
    for verb in VERBS.values():
        action = parse(verb.example, CTX)
        assert not isinstance(action, Help) or verb.name == "help", verb.name
        if isinstance(action, Dispatch):
            for command in action.commands:
                validate(command)


def test_every_verb_word_is_unique_and_reaches_its_verb() -> None:
    words = [w for v in VERBS.values() for w in (v.name, *v.aliases)]
    assert len(words) == len(set(words))
    for verb in VERBS.values():
        for word in (verb.name, *verb.aliases):
            if word not in "/+":
                assert parse(f"{word} ?", CTX) == Help(verb.name)


def test_help_lists_every_verb_with_aliases_usage_and_example() -> None:
    text = "\n".join(help_text(None))
    for verb in VERBS.values():
        assert verb.name in text and verb.usage in text and verb.example in text
        for alias in verb.aliases:
            assert alias in text
    assert max(len(line) for line in help_text(None)) <= 100


def test_help_for_one_verb() -> None:
    for verb in VERBS.values():
        lines = help_text(verb.name)
        assert lines[0].startswith(verb.name)
        assert f"usage: {verb.usage}" in lines and f"example: {verb.example}" in lines
    assert help_text("a") == help_text("assign")
    assert any("desc=" in line for line in help_text("new"))
    assert any("selected incident" in line for line in help_text("note"))
    assert "unknown verb" in help_text("zz")[0]


def test_usage_is_generated_from_the_arguments() -> None:
    assert VERBS["assign"].usage == "assign [REF] CALLSIGN..."
    assert VERBS["state"].usage == "state CALLSIGN STATE..."
    assert VERBS["locate"].usage == "locate CALLSIGN LAT,LON"
    assert VERBS["new"].usage.startswith("new GRADE TYPE LOCATION... [desc=..]")


# --------------------------------------------------------------------------- core flows

TAB, ENTER = "\t", "\n"

#: The five core flows as the keys a dispatcher presses (Tab and Enter count as one each).
CORE_FLOWS = {
    "create grade 1 incident": ("n 1 rtc 12 High Street" + ENTER, "create_incident"),
    "assign recommended unit": ("a " + TAB + ENTER, "assign_unit"),
    "unit at scene": ("s AB12 6" + ENTER, "set_unit_state"),
    "add note": ("note suspect left on foot" + ENTER, "add_note"),
    "close incident": ("cl r" + TAB + ENTER, "close_incident"),
}
#: Keystrokes per core flow, Enter included; quoted in the README.
KEYSTROKES = {name: len(keys) for name, (keys, _) in CORE_FLOWS.items()}


def type_keys(keys: str, ctx: ParseContext) -> str:
    """Replay keys into a command line the way the widget does; returns the line entered."""
    line = ""
    for key in keys:
        if key == TAB:
            line = tab(line, ctx)
        elif key == ENTER:
            return line
        else:
            line += key
    raise AssertionError("the flow never pressed Enter")


def test_core_flows_take_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    results = {}
    for name, (keys, command_type) in CORE_FLOWS.items():
        line = type_keys(keys, CTX)
        (command,) = commands(line)
        assert command.type == command_type, name
        results[name] = command
    assert results["create grade 1 incident"].grade == 1
    assert results["create grade 1 incident"].location == LocationInput(
        **{"address": "12 High Street"}
    )
    assert results["assign recommended unit"] == assign(CTX.recommended[0])
    assert results["unit at scene"].state == 6
    assert results["add note"].text == "suspect left on foot"
    assert results["close incident"].closing_code == "RESOLVED"
    assert results["close incident"].reference == SELECTED
    with capsys.disabled():
        print("\nkeystrokes per core flow (Enter included):")
        for name, count in KEYSTROKES.items():
            print(f"  {name:<26} {count:>3}  {CORE_FLOWS[name][0]!r}")


# --------------------------------------------------------------------------- properties

ANY_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(codec=None),
        st.sampled_from(" \t\"'=:/+?#,.-[]\x00\x1b\x07\x85\u2028\u202e"),
    ),
    max_size=80,
)


def check_outcome(line: str, ctx: ParseContext) -> None:
    """Any line either parses to an action or fails with a span inside the line."""
    try:
        action = parse(line, ctx)
    except ParseError as err:
        assert 0 <= err.start <= err.end <= len(line), (line, err)
        assert err.message
        return
    if isinstance(action, Dispatch):
        assert action.commands
        for command in action.commands:
            validate(command)


def check_completion(line: str, ctx: ParseContext) -> None:
    completion = complete(line, ctx)
    assert 0 <= completion.start <= len(line)
    assert all(isinstance(c, Candidate) and c.text for c in completion.candidates)


@PROPERTY
@given(ANY_TEXT)
def test_any_text_only_raises_parse_error(line: str) -> None:
    check_outcome(line, CTX)
    check_outcome(line, NOTHING_SELECTED)


@PROPERTY
@given(ANY_TEXT)
def test_complete_never_raises(line: str) -> None:
    check_completion(line, CTX)
    check_completion(line, NOTHING_SELECTED)


WORDS = st.sampled_from(
    [
        *REFERENCES,
        "42",
        "#43",
        "1",
        "7",
        "11",
        "0",
        "AB12",
        "ab13",
        "ARV",
        '"ARV 1"',
        "'DOG 2'",
        "arv1",
        "rtc",
        "resolved",
        "at",
        "scene",
        "available",
        "van",
        "dog",
        "firearms",
        "53.8,-1.5",
        "desc=x",
        'desc="a b"',
        "desc=",
        "pos=1,2",
        "pos=999,0",
        "src=101",
        "sector=N",
        "rel=related",
        "threat=knife",
        "inv=",
        "x=1",
        "?",
        '"',
        "'",
        "[bold]",
        "\x1b[2J",
        "",
    ]
)
VERB_WORDS = st.sampled_from(sorted({w for v in VERBS.values() for w in (v.name, *v.aliases)}))


@PROPERTY
@given(VERB_WORDS, st.lists(st.one_of(WORDS, ANY_TEXT), max_size=6), st.booleans())
def test_verbs_with_random_arguments_only_raise_parse_error(
    verb: str, words: list[str], selected: bool
) -> None:
    line = " ".join([verb, *words])
    ctx = CTX if selected else NOTHING_SELECTED
    check_outcome(line, ctx)
    check_completion(line, ctx)
    check_completion(line + " ", ctx)


CALLSIGN = st.from_regex(r"[A-Z]{1,4}( [0-9]{1,3})?", fullmatch=True)


@PROPERTY
@given(st.lists(CALLSIGN, min_size=1, max_size=8, unique=True), st.data())
def test_any_known_callsign_is_found_typed_or_quoted(callsigns: list[str], data) -> None:
    ctx = ParseContext(SELECTED, REFERENCES, callsigns, INCIDENT_TYPES, CLOSING_CODES)
    callsign = data.draw(st.sampled_from(callsigns))
    assert commands(f'a "{callsign}"', ctx) == [assign(callsign)]
    typed = commands(f"a {callsign.lower()}", ctx)
    # Typed as words, a longer known callsign may not swallow a shorter one's words.
    assert typed == [assign(callsign)] or len(typed) > 1
    assert commands(f"s {callsign.lower()} at scene", ctx)[0].callsign == callsign


PRINTABLE_TEXT = st.text(
    # Control characters are refused by the protocol (see the test above); all else is kept.
    alphabet=st.one_of(
        st.characters(blacklist_categories=("Cs", "Cc")), st.sampled_from("\"'=#[]")
    ),
    max_size=80,
)


@PROPERTY
@given(PRINTABLE_TEXT.map(str.strip).filter(lambda t: t and t != "?"))
def test_note_text_is_the_rest_of_the_line(text: str) -> None:
    first = text.split()[0]
    if first.startswith("#") or first.upper() in REFERENCES:
        return  # an explicit reference: the note is about that incident
    assert commands(f"note {text}") == drafts(
        {"type": "add_note", "reference": SELECTED, "text": text}
    )
