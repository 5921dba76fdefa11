"""The call form on a real console: at 80x24, typed from a scripted caller, one command.

A grade-1 call is typed twice from the same scripted caller: through the form (F10)
and on the command line (`n` with its fields, then `risk`), each against its own real
backend, and the keys are counted. The form must take no more keys than the command
line plus the answers.
"""

from __future__ import annotations

import httpx
from conftest import TOKENS
from console_helpers import post_command, screen_text, server_incident, server_state
from test_console import open_console
from test_console_places import brackley

from cadterm.protocol.domain import Role
from cadterm.sim.gazetteer import BRACKLEY_CSV
from cadterm.tui.call_form import CallForm

#: The scripted caller: a grade-1 call (a knife: the rules suggest 1).
CALLER = {
    "name": "Sam Okoro",
    "phone": "07700 900456",
    "location": "37 Gasworks Row",
    "type": "ASSAULT",
    "what": "Two men fighting outside the flats",
    "threat": "one has a knife",
    "harm": "one bleeding from the arm",
    "vulnerability": "caller is 15",
}
FORM_ORDER = ("name", "phone", "location", "type", "what", "threat", "harm", "risk",
              "investigation", "vulnerability")  # fmt: skip


async def type_call_on_the_form(console, answers: dict[str, str]) -> None:
    """F10, each answer then Enter (an unanswered heading: Enter alone), F10 sends."""
    await console.keys.press("f10")
    await console.until(lambda: isinstance(console.app.screen, CallForm), what="the form")
    for key in FORM_ORDER:
        await console.keys.type(answers.get(key, ""))
        await console.keys.press("enter")
    await console.keys.press("f10")


def the_command_line_for(answers: dict[str, str]) -> list[str]:
    """The same call on the command line: `n` with its fields, then `risk`."""
    return [
        f'n 1 {answers["type"].lower()} {answers["location"]} caller="{answers["name"]}" '
        f'phone="{answers["phone"]}" desc="{answers["what"]}"',
        f"risk threat={answers['threat']} harm={answers['harm']} vul={answers['vulnerability']}",
    ]


async def test_a_grade_1_call_takes_fewer_keys_on_the_form_than_on_the_command_line(
    backend_factory, tmp_path
):
    answer_keys = sum(len(v) for v in CALLER.values())
    form_backend = backend_factory(db_path=tmp_path / "form.db")
    async with open_console(form_backend.url, tmp_path, journal="f.db",
                            gazetteer=BRACKLEY_CSV) as console:  # fmt: skip
        await console.until(lambda: console.app.places is not None, what="the gazetteer")
        console.keys.take()
        await type_call_on_the_form(console, CALLER)
        form_keys = console.keys.take()
        await console.done("the call")
        (incident,) = server_state(form_backend)["incidents"].values()
    # One command carried it all: one event, everything on it.
    events = [e for e in _events(form_backend) if e["type"] != "unit_booked_on"]
    assert [e["type"] for e in events] == ["incident_created"]
    assert incident["grade"] == 1 and incident["incident_type"] == "ASSAULT"
    assert incident["caller"] == {"name": "Sam Okoro", "phone": "07700 900456",
                                  "relationship": None}  # fmt: skip
    assert incident["location"]["address"] == "37 Gasworks Row"
    assert incident["location"]["sector"] == "South"  # placed by the gazetteer
    assert incident["description"] == CALLER["what"]
    assert incident["risk"]["threat"] == "one has a knife"
    assert incident["risk"]["vulnerability"] == "caller is 15"
    assert events[0]["suggested_grade"] == 1 and "grade_reason" not in events[0]

    line_backend = backend_factory(db_path=tmp_path / "line.db")
    async with open_console(line_backend.url, tmp_path, journal="l.db",
                            gazetteer=BRACKLEY_CSV) as console:  # fmt: skip
        await console.until(lambda: console.app.places is not None, what="the gazetteer")
        console.keys.take()
        first, second = the_command_line_for(CALLER)
        await console.line(first)
        await console.done("the new incident")
        await console.until(lambda: console.app.queue.cursor_key, what="it selected")
        await console.line(second)
        await console.done("the risk assessment")
        line_keys = console.keys.take()
    (other,) = server_state(line_backend)["incidents"].values()
    assert other["risk"] == incident["risk"] and other["caller"] == incident["caller"]

    print(f"\nanswers {answer_keys} keys; form {form_keys}; command line {line_keys}")
    assert form_keys <= line_keys
    assert form_keys - answer_keys == 12  # F10, ten Enters, F10
    # 'n 1 ', ' ' after the type, ' caller="', '" phone="', '" desc="', '"', Enter (33);
    # 'risk threat=', ' harm=', ' vul=', Enter (24).
    assert line_keys - answer_keys == 57


def _events(backend) -> list[dict]:
    """Every event the backend has recorded."""
    headers = {"Authorization": f"Bearer {TOKENS[Role.DISPATCHER]}"}
    response = httpx.get(f"{backend.url}/v1/events", params={"after": 0}, headers=headers)
    response.raise_for_status()
    return response.json()


async def test_the_form_fits_80x24_shows_guidance_and_needs_a_reason_to_override(backend, tmp_path):
    async with open_console(
        backend.url, tmp_path, size=(80, 24), gazetteer=BRACKLEY_CSV
    ) as console:
        await console.until(lambda: console.app.places is not None, what="the gazetteer")
        await console.line("call 37 Gasworks Row")
        form = await console.until(
            lambda: console.app.screen if isinstance(console.app.screen, CallForm) else None,
            what="the form",
        )
        assert form.focused_key == "name"  # the location was given: the first empty field
        await console.keys.type("[red]Ann[/red]")  # markup: shown as typed, never applied
        await console.keys.press("escape")
        await console.until(lambda: not isinstance(console.app.screen, CallForm), what="closed")
        await console.keys.press("f10")  # the answers were kept
        form = await console.until(
            lambda: console.app.screen if isinstance(console.app.screen, CallForm) else None
        )
        assert form.answers.get("name") == "[red]Ann[/red]"
        assert form.focused_key == "phone"  # the first field still empty
        await console.keys.press("down", "down")
        await console.keys.type("theft")
        await console.keys.press("enter")
        await console.keys.type("bag taken")
        await console.keys.press("enter")
        await console.until(lambda: "suggested 3 Scheduled: theft" in screen_text(console.app))
        screen = screen_text(console.app).splitlines()
        assert len(screen) == 24 and all(len(row) <= 80 for row in screen)
        for label in ("Caller", "Phone", "Location", "Type", "What", "Threat", "Harm",
                      "Risk", "Investigate", "Vulnerable", "Engagement", "Grade"):  # fmt: skip
            assert any(row.lstrip().startswith(label) for row in screen), label
        assert any("[red]Ann[/red]" in row for row in screen)
        assert any(row.startswith(" Enter next") for row in screen)
        # The caller now mentions a knife: the guidance goes to 1 as it is typed.
        await console.keys.type("he has a knife")
        await console.until(
            lambda: "suggested 1 Emergency: weapon involved" in screen_text(console.app)
        )
        # The handler grades it 2: the reason is asked for, and F10 will not send without it.
        form.field("grade").focus()
        await console.keys.type("2")
        await console.until(lambda: "OVERRIDE to 2" in screen_text(console.app))
        await console.keys.press("f10")
        await console.until(
            lambda: "overrides the suggested 1: say why" in screen_text(console.app)
        )
        assert form.focused_key == "reason" and server_state(backend)["incidents"] == {}
        await console.keys.type("knife seen an hour ago, he left")
        await console.keys.press("enter")
        await console.done("the call")
        (incident,) = server_state(backend)["incidents"].values()
        assert incident["grade"] == 2
        assert incident["caller"]["name"] == "[red]Ann[/red]"
        assert incident["chronology"][0]["text"].endswith(
            "; suggested grade 1 overridden: knife seen an hour ago, he left; THRIVE: threat"
        )


def _assault_at(backend, address: str, phone: str | None = None) -> str:
    fields = {"caller": {"phone": phone}} if phone else {}
    return post_command(
        backend, type="create_incident", grade=2, incident_type="ASSAULT",
        location=brackley().match(address).location().model_dump(mode="json"), **fields,
    )["event"]["reference"]  # fmt: skip


async def test_a_repeat_call_is_offered_and_added_to_the_marked_open_incident(backend, tmp_path):
    other = _assault_at(backend, "37 Gasworks Row")
    first = _assault_at(backend, "35 Gasworks Row", phone="07700 900111")
    async with open_console(
        backend.url, tmp_path, size=(80, 24), gazetteer=BRACKLEY_CSV
    ) as console:
        await console.until(lambda: console.app.places is not None, what="the gazetteer")
        await console.keys.press("f10")
        form = await console.until(
            lambda: console.app.screen if isinstance(console.app.screen, CallForm) else None
        )
        await console.keys.type("Jo")
        await console.keys.press("enter")
        await console.keys.type("07700 900222")
        await console.keys.press("enter")
        await console.keys.type("35 Gasworks Row")  # two doors down
        await console.until(lambda: len(form.offers) == 2, what="two offers")
        assert [o.reference for o in form.offers] == [first, other]  # the same address first
        assert "Possible duplicates" in screen_text(console.app)
        await console.keys.press("ctrl+t", "ctrl+t")  # round to the first again
        assert form.marked == first
        # Another comes in at the same address: the list is re-ranked, the mark stays.
        newest = _assault_at(backend, "35 Gasworks Row")
        await console.until(lambda: len(form.offers) == 3, what="the new one offered too")
        assert form.marked == first and form.offers[0].reference != first
        await console.keys.press("enter")
        await console.keys.type("assault")
        await console.keys.press("enter")
        await console.keys.type("still fighting")
        await console.keys.press("ctrl+l")
        await console.done("the further call")
        state = server_state(backend)
        assert set(state["incidents"]) == {first, other, newest}  # no new incident
        note = server_incident(backend, first)["chronology"][-1]
        assert note["kind"] == "note_added"
        assert note["text"] == (
            "Further call (Jo, 07700 900222); location: 35 Gasworks Row; type: assault; "
            "what: still fighting"
        )


async def test_a_new_incident_from_elsewhere_is_offered_and_one_key_links_it(backend, tmp_path):
    scene = brackley().match("37 Gasworks Row").location().model_dump(mode="json")
    first = post_command(
        backend, type="create_incident", grade=2, incident_type="ASSAULT", location=scene
    )["event"]["reference"]  # fmt: skip
    async with open_console(backend.url, tmp_path, size=(80, 24)) as console:
        await console.until(lambda: first in console.client.state.incidents)
        second = post_command(
            backend, type="create_incident", grade=2, incident_type="ASSAULT", location=scene
        )["event"]["reference"]  # fmt: skip
        await console.until(lambda: "may repeat" in console.said, what="the offer")
        assert console.said.startswith(f"{second[:10]} may repeat {first[:10]}: same address")
        await console.keys.press("ctrl+l")
        await console.done("the link")
        links = server_incident(backend, second)["links"]
        assert links == [{"reference": first, "relation": "duplicate_of"}]


async def test_the_forces_own_grading_rules_and_duplicate_distance_are_used(backend, tmp_path):
    rules = tmp_path / "grading.toml"
    rules.write_text(
        'default_grade = 4\ndefault_reason = "local rule"\n'
        '[types]\nTHEFT = { grade = 2, reason = "theft: force priority" }\n'
    )
    near = _assault_at(backend, "37 Gasworks Row")
    async with open_console(backend.url, tmp_path, size=(80, 24), gazetteer=BRACKLEY_CSV,
                            grading=rules, duplicate_metres=5) as console:  # fmt: skip
        await console.until(lambda: console.app.places is not None, what="the gazetteer")
        await console.line("call 35 Gasworks Row")
        form = await console.until(
            lambda: console.app.screen if isinstance(console.app.screen, CallForm) else None
        )
        form.field("type").focus()
        await console.keys.type("theft")
        await console.until(lambda: "suggested 2 Priority: theft: force priority"
                            in screen_text(console.app))  # fmt: skip
        assert form.offers == []  # 16 m away is further than 5 m
        assert near in console.client.state.incidents


async def test_grading_rules_that_cannot_be_used_are_said_and_the_shipped_ones_used(
    backend, tmp_path
):
    rules = tmp_path / "grading.toml"
    rules.write_text("default_grade = 9\n")
    async with open_console(backend.url, tmp_path, grading=rules) as console:
        assert console.said == (
            "grading rules not loaded (the shipped ones are used): "
            "grading.toml: default_grade: must be a grade 1-5, not 9"
        )
        assert console.app.grading.types["FRAUD"][0] == 4
