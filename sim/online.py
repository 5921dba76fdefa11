"""What the public sends through the force's website: web-form reports and live chats.

Reports arrive as a Poisson process at `rate` a minute of simulated time, like calls
(`cadterm.sim.calls`), from their own random stream, so the same seed gives the same
reports whatever else the run does. A share are live-chat transcripts; the words come
from the same incidents the phones report (a bike stolen, a neighbour's noise), and now
and then one carries text a website would pass on as typed: markup and control
characters, which consoles must show literally.

`plan_reports(seed, rate, duration)` is the whole schedule (pure); `send_reports` posts
them to a backend's intake API with an intake token, as a website would.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cadterm.client.intake import IntakeSender

from .calls import next_arrival
from .city import BRACKLEY, City
from .clock import SimClock

__all__ = ["OnlineReport", "plan_reports", "report_rng", "send_reports"]

#: Share of online reports that are live-chat transcripts rather than web forms.
CHAT_SHARE = 0.35
#: Share carrying text with markup or control characters, as the public may paste it.
HOSTILE_SHARE = 0.05

_FORMS: tuple[str, ...] = (
    "My bike was stolen from outside {place} some time this afternoon. It was locked.",
    "Someone has scratched my car overnight while it was parked on {street}.",
    "I want to report a shoplifter I saw at {place}; staff have CCTV.",
    "There has been loud music from a house on {street} every night this week.",
    "My parcel was taken from my doorstep on {street}; the doorbell camera shows who.",
    "A van has been parked across the dropped kerb on {street} for three days.",
    "I lost my wallet near {place} and think it may have been taken.",
    "Young people are throwing stones at cars near {place} most evenings.",
)
_CHATS: tuple[tuple[str, ...], ...] = (
    (
        "Hi, there's a man trying car door handles on {street}",
        "Is he there now? What is he wearing?",
        "Yes, dark coat and a red cap, walking towards {place}",
    ),
    (
        "My neighbour's dog has been barking for hours and I can't get an answer",
        "Have you seen or heard your neighbour today?",
        "No, not since yesterday morning. They live alone on {street}",
    ),
    (
        "I think someone is using my bank card, I've had texts about payments",
        "Do you still have the card with you?",
        "No, I last had it at {place}",
    ),
)
_HOSTILE: tuple[str, ...] = (
    "[bold]URGENT[/bold] my shed on {street} was broken into \x1b[2J",
    "Stolen phone near {place} [@click=app.quit]see link[/]",
    "Car keyed on {street}\x1b]52;c;cGFzdGU=\x07 please call back",
)
_NAMES = ("Alex Green", "Sam Lee", "Priya Shah", "Tom Hughes", "Jo Evans", "Kim Baker")


@dataclass(frozen=True)
class OnlineReport:
    """One online report as the website sends it: its `submit_report` fields."""

    at: float
    fields: Mapping[str, Any] = field(default_factory=dict)


def report_rng(seed: int | str) -> random.Random:
    """The random stream reports are drawn from, for `seed`."""
    return random.Random(f"cadterm-sim/{seed}/online")


def _draw(rng: random.Random, at: float, number: int, city: City) -> OnlineReport:
    street = rng.choice(city.streets).name
    place = rng.choice(city.places).name
    reporter = {
        "name": rng.choice(_NAMES),
        "phone": f"07700 900{rng.randrange(1000):03d}",  # Ofcom's drama range
    }
    fields: dict[str, Any] = {"website_reference": f"WEB-{number:05d}", "reporter": reporter}
    if rng.random() < CHAT_SHARE:
        lines = rng.choice(_CHATS)
        fields["channel"] = "chat"
        fields["transcript"] = [
            {
                "sender": "public" if n % 2 == 0 else "agent",
                "text": line.format(street=street, place=place),
            }
            for n, line in enumerate(lines)
        ]
    else:
        words = rng.choice(_HOSTILE if rng.random() < HOSTILE_SHARE else _FORMS)
        fields["channel"] = "web_form"
        fields["text"] = words.format(street=street, place=place)
    fields["location"] = street if rng.random() < 0.5 else place
    return OnlineReport(at, fields)


def plan_reports(
    seed: int | str, rate: float, duration: float, city: City = BRACKLEY
) -> list[OnlineReport]:
    """Every online report of a run of `duration` sim seconds, `rate` a minute."""
    rng = report_rng(seed)
    reports = []
    at = next_arrival(rng, 0.0, rate)
    while at <= duration:
        reports.append(_draw(rng, at, len(reports) + 1, city))
        at = next_arrival(rng, at, rate)
    return reports


async def send_reports(
    url: str,
    intake_token: str,
    clock: SimClock,
    *,
    seed: int | str = 0,
    rate: float = 0.2,
    until: float = 24 * 3600.0,
    city: City = BRACKLEY,
) -> int:
    """Post the planned reports to `url`'s intake API as `clock` reaches each; how many.

    Raises the client's errors (`CommandError` for a refusal, `BackendUnavailable`).
    """
    sent = 0
    async with IntakeSender(url, intake_token) as website:
        for report in plan_reports(seed, rate, until, city):
            await clock.sleep_until(report.at)
            await website.send(website.report(**report.fields))
            sent += 1
    return sent
