"""Snapshot frames of bounded size: the picture cut into parts at one seq.

Each incident, unit and waiting report is serialised once, on its own, and the pieces are packed in
order into parts of at most `limit` bytes of frame text. A picture that fits in one
part is sent as one ``snapshot`` frame, as it always was; a larger one as
``snapshot_part`` frames 1..n (see `cadterm.protocol.frames.SnapshotPart`). Everything
is taken from the picture in one synchronous call, so every part is of the same seq.
"""

from __future__ import annotations

import json

from cadterm.protocol.fold import DispatchState

__all__ = ["snapshot_frames"]

# Bytes a part's frame adds around its items: the envelope, the seq, the log fields.
_ENVELOPE = 300


def snapshot_frames(state: DispatchState, reason: str, limit: int) -> list[str]:
    """The frames that carry `state` to a subscriber, each at most `limit` bytes long.

    An item (incident, unit or report) that alone is larger than `limit` goes in a part of its
    own, the one case a frame is larger.
    """
    tail = (
        '"log_day":'
        + ("null" if state.log_day is None else f'"{state.log_day.isoformat()}"')
        + f',"log_number":{state.log_number:d},"reserved":'
        + json.dumps(state.reserved, separators=(",", ":"))
        + "}"
    )
    items: list[tuple[str, str]] = []  # (which map, '"key":{...}')
    for reference, incident in state.incidents.items():
        items.append(("incidents", json.dumps(reference) + ":" + incident.model_dump_json()))
    for callsign, unit in state.units.items():
        items.append(("units", json.dumps(callsign) + ":" + unit.model_dump_json()))
    for report_id, report in state.reports.items():
        items.append(("reports", json.dumps(report_id) + ":" + report.model_dump_json()))

    budget = max(1, limit - _ENVELOPE)
    groups: list[list[tuple[str, str]]] = [[]]
    size = 0
    for item in items:
        grow = len(item[1].encode()) + 1
        if groups[-1] and size + grow > budget:
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += grow

    def state_json(group: list[tuple[str, str]]) -> str:
        maps = {
            name: ",".join(text for kind, text in group if kind == name)
            for name in ("incidents", "units", "reports")
        }
        return (
            f'{{"seq":{state.seq:d},"incidents":{{{maps["incidents"]}}},'
            f'"units":{{{maps["units"]}}},"reports":{{{maps["reports"]}}},' + tail
        )

    if len(groups) == 1:
        return [
            '{"type":"snapshot","reason":"' + reason + '","state":' + state_json(groups[0]) + "}"
        ]
    parts = len(groups)
    return [
        f'{{"type":"snapshot_part","reason":"{reason}","seq":{state.seq:d},'
        f'"part":{number:d},"parts":{parts:d},"state":{state_json(group)}}}'
        for number, group in enumerate(groups, start=1)
    ]
