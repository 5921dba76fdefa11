"""The status bar and the banners that tell the operator what state the picture is in."""

from __future__ import annotations

from datetime import datetime

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import Static

from cadterm.client.stream import LinkState, LinkStatus
from cadterm.domain.timers import format_age

from .safe_text import clean_line, fit

__all__ = ["AlarmBanner", "StaleBanner", "StatusBar", "describe_link"]

_LINK_WORD = {
    LinkState.CONNECTING: "CONNECTING",
    LinkState.RESYNCING: "RESYNCING",
    LinkState.LIVE: "LIVE",
    LinkState.RECONNECTING: "RECONNECTING",
    LinkState.STOPPED: "STOPPED",
}


def describe_link(status: LinkStatus, now: datetime) -> str:
    """One line saying how fresh the picture is, for people under pressure."""
    since = status.since.astimezone().strftime("%H:%M:%S")
    word = _LINK_WORD[status.state]
    if status.state == LinkState.LIVE:
        return f"{word} since {since}"
    reason = f": {clean_line(status.reason)}" if status.reason else ""
    return f"NOT LIVE - {word} since {since} ({format_age(now - status.since)}){reason}"


class _Line(Static):
    """A Static that remembers what it shows, so unchanged text costs nothing."""

    _shown = ""


class StatusBar(_Line):
    """Operator, link state, time since the last event, pending commands, clock.

    The clock is the one thing on an idle console that changes every second: with
    `clock=False` it is left off, and a bar whose facts stand still is never redrawn.
    (What does change goes out as the changed cells only: see `painted_screen`.)
    """

    _facts: dict = {}  # replaced by show(), never mutated
    #: Redraws so far: tests count them (never time them).
    repaints = 0

    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; color: $foreground; }
    StatusBar.-stale { background: $alarm-bg; color: $alarm-fg; text-style: bold; }
    """

    def __init__(self, *, clock: bool = True, id: str | None = None) -> None:
        super().__init__(id=id)
        self.clock = clock

    def show(
        self,
        *,
        operator: str,
        status: LinkStatus,
        last_event: datetime | None,
        pending: int,
        rejected: int,
        safety: int,
        now: datetime,
        filtered: tuple[str, int, int] | None = None,
        reports: int = 0,
    ) -> None:
        """Redraw from the current facts (only if the text changed).

        `filtered` is the active filter with the incidents and units it hides: while a
        filter is on the bar says so, so an empty-looking board is never taken as empty.
        """
        self._facts = {
            "filtered": filtered,
            "operator": operator,
            "status": status,
            "last_event": last_event,
            "pending": pending,
            "rejected": rejected,
            "safety": safety,
            "now": now,
            "reports": reports,
        }
        live = status.state == LinkState.LIVE
        clock = now.astimezone().strftime("%H:%M:%S")
        age = format_age(now - last_event) if last_event is not None else None
        # The full wording where it fits; on a narrow terminal the short one, so the
        # link state, freshness, pending count and clock always stay on screen.
        for long in (True, False):
            parts = [clean_line(operator), _LINK_WORD[status.state]]
            if long:
                parts.append(f"last event {age} ago" if age else "no events yet")
                parts.append(f"pending {pending}")
            else:
                parts.append(f"ev {age}" if age else "no ev")
                parts.append(f"pend {pending}")
            if rejected:
                parts.append(f"REJECTED {rejected}" if long else f"REJ {rejected}")
            if safety:
                parts.append(f"SAFETY CHECK {safety}" if long else f"SAFETY {safety}")
            if reports:
                # Online reports waiting for triage (Ctrl+O): someone has to look.
                parts.append(f"ONLINE {reports} waiting" if long else f"WEB {reports}")
            if filtered is not None:
                words, incidents, units = filtered
                hidden = f"{incidents} inc, {units} units hidden"
                parts.append(f"FILTER /{clean_line(words)}: {hidden}" if long else f"/ {hidden}")
            if self.clock:
                parts.append(clock)
            text = " | ".join(parts)
            if len(text) <= self.size.width or not long:
                break
        if len(text) > self.size.width > 0:
            # Still too long: the operator's name gives way, never the state or the clock.
            spare = len(text) - self.size.width
            name = parts[0]
            parts[0] = name[: max(1, len(name) - spare - 1)] + "~" if spare < len(name) else ""
            text = " | ".join(part for part in parts if part)
        self.set_class(not live, "-stale")
        if text != self._shown:
            self._shown = text
            self.repaints += 1
            self.update(Text(text), layout=False)  # one fixed line: no layout needed

    def on_resize(self) -> None:
        # The wording depends on the width: redraw with the same facts.
        if self._facts:
            self.show(**self._facts)


class StaleBanner(_Line):
    """Shown across the top whenever the picture is not live; hidden otherwise."""

    DEFAULT_CSS = """
    StaleBanner {
        height: auto;
        max-height: 2;
        background: $alarm-bg;
        color: $alarm-fg;
        text-style: bold;
        display: none;
    }
    StaleBanner.-shown { display: block; }
    """

    def show(
        self,
        status: LinkStatus,
        now: datetime,
        saved_at: datetime | None = None,
        provisional: int = 0,
    ) -> None:
        """Show or hide for this link status.

        `saved_at`: the picture shown was read from disk at start (no backend has
        answered yet), and is the picture of that time. `provisional`: how many actions
        taken here since are shown on it (marked ``~``) and wait for a backend.
        """
        stale = status.state != LinkState.LIVE
        self.set_class(stale, "-shown")
        if stale:
            text = "!! " + describe_link(status, now)
            suffix, short = " - last known picture shown", " - old picture"
            if saved_at is not None:
                of = saved_at.astimezone().strftime("%H:%M")
                age = format_age(now - saved_at)
                suffix = f" - picture of {of} ({age} old), kept by this console"
                short = f" - picture of {of} ({age} old)"
            if provisional:
                done = f" - {provisional} done here, marked ~"
                suffix, short = done + suffix, done + short
            if status.state == LinkState.STOPPED:  # it will not retry by itself: say how
                suffix, short = " - Ctrl+R tries again" + suffix, " - Ctrl+R tries again"
            # Keep the reason readable on a narrow terminal: shorten the suffix first.
            width = self.app.size.width  # a hidden banner has no width of its own yet
            if len(text) + len(suffix) <= 2 * width:
                text += suffix
            else:
                # A reason too long for two rows is cut, never what to do about it;
                # some slack is left because the rows wrap at spaces, not at the edge.
                room = 2 * width - len(short) - max(4, width // 6)
                text = (text if cell_len(text) <= room else fit(text, room)) + short
            if text != self._shown:
                self._shown = text
                self.update(Text(text))  # may wrap to a second line: let layout decide


class AlarmBanner(_Line):
    """Alarms that need a human: state-0 emergencies (until acknowledged), new grade 1s."""

    DEFAULT_CSS = """
    AlarmBanner {
        height: auto;
        max-height: 3;
        background: $alarm-bg;
        color: $alarm-fg;
        text-style: bold;
        display: none;
    }
    AlarmBanner.-shown { display: block; }
    """

    _lines: list[str] = []

    def show(self, lines: list[str]) -> None:
        """Show these alarm lines, one row each (cut with an ellipsis), or hide.

        At most three rows: the third says how many more wait when there are more, so
        the queue below keeps its room and no alarm is silently out of sight.
        """
        self._lines = lines
        self.set_class(bool(lines), "-shown")
        width = self.size.width or 80
        rows = [clean_line(line) for line in lines[:3]]
        if len(lines) > 3:
            rows[2] = f"(+{len(lines) - 2} more alarms: 'ack' takes the top one) {rows[2]}"
        cut = []
        for row in rows:
            line = Text(row)
            line.truncate(width, overflow="ellipsis")
            cut.append(line.plain)
        text = "\n".join(cut)
        if text != self._shown:
            self._shown = text
            self.update(Text(text), layout=False)

    def on_resize(self) -> None:
        if self._lines:  # the rows are cut to the width: cut them again
            self._shown = ""
            self.show(self._lines)
