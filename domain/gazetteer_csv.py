"""A force's gazetteer as CSV: the format, strict reading, and writing.

The first line names the columns, in any order; ``kind``, ``name``, ``lat`` and ``lon``
are required, the rest may be left out or left empty::

    kind,name,sector,lat,lon,end_lat,end_lon,first_house,last_house,locality,aliases
    street,Gasworks Row,South,53.77,-1.543,53.7705,-1.537,1,50,,
    place,Market Square,City Centre,53.8,-1.55,,,,,,Market Place;The Square

- ``kind``: ``street`` or ``place``;
- ``name``: as it should be written in an incident's address;
- ``sector``: the policing sector (letters, digits, single spaces, ``-._``);
- ``lat``, ``lon``: WGS84 degrees: a place's point, a street's start (or centre);
- ``end_lat``, ``end_lon``: a street's other end (both or neither; streets only);
- ``first_house``, ``last_house``: the house numbers at the start and the end (both or
  neither; streets only);
- ``locality``: the village or district, to tell apart entries that share a name;
- ``aliases``: other names, separated by ``;``.

Reading is strict: every fault is reported with its line and column, and nothing is
loaded from a file with any fault. Errors::

    ValueError
     └── GazetteerFileError      .problems: every fault found, each a GazetteerProblem

This module parses text it is handed; opening the file is the caller's (the app shell).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cadterm.protocol.domain import Position
from cadterm.protocol.types import Sector, Text

from .gazetteer import Entry, EntryKind, Gazetteer, fold

__all__ = [
    "COLUMNS",
    "REQUIRED_COLUMNS",
    "GazetteerFileError",
    "GazetteerProblem",
    "GazetteerRow",
    "read_gazetteer_csv",
    "write_gazetteer_csv",
]

#: Every column, in the order `write_gazetteer_csv` writes them.
COLUMNS = (
    "kind",
    "name",
    "sector",
    "lat",
    "lon",
    "end_lat",
    "end_lon",
    "first_house",
    "last_house",
    "locality",
    "aliases",
)
REQUIRED_COLUMNS = ("kind", "name", "lat", "lon")

# Past this many, a broken file's report says how many more there are.
_SHOWN = 20

_Name = Annotated[Text, Field(min_length=1, max_length=120)]
_House = Annotated[int, Field(ge=0, le=99_999)]


@dataclass(frozen=True)
class GazetteerProblem:
    """One fault in a gazetteer file: where, in which column, and what is wrong."""

    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", {self.column}" if self.column else "")
        return f"{where}: {self.message}"


class GazetteerFileError(ValueError):
    """A gazetteer file that cannot be loaded; `problems` lists every fault found."""

    def __init__(self, source: str, problems: list[GazetteerProblem]) -> None:
        self.source = source
        self.problems = problems
        shown = [f"{source} {problem}" for problem in problems[:_SHOWN]]
        if len(problems) > _SHOWN:
            shown.append(f"... and {len(problems) - _SHOWN} more")
        super().__init__("\n".join(shown))


class GazetteerRow(BaseModel):
    """One line of a gazetteer file, checked."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    kind: EntryKind
    name: _Name
    sector: Sector | None = None
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    end_lat: float | None = Field(default=None, ge=-90, le=90)
    end_lon: float | None = Field(default=None, ge=-180, le=180)
    first_house: _House | None = None
    last_house: _House | None = None
    locality: _Name | None = None
    aliases: tuple[_Name, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _split_aliases(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("aliases"), str):
            parts = [part.strip() for part in data["aliases"].split(";")]
            data = {**data, "aliases": tuple(part for part in parts if part)}
        return data

    @model_validator(mode="after")
    def _whole(self) -> GazetteerRow:
        if (self.end_lat is None) != (self.end_lon is None):
            raise ValueError("end_lat and end_lon come together: give both or neither")
        if (self.first_house is None) != (self.last_house is None):
            raise ValueError("first_house and last_house come together: give both or neither")
        if self.kind is EntryKind.PLACE and self.end_lat is not None:
            raise ValueError("a place is one point: end_lat and end_lon are for streets")
        if self.kind is EntryKind.PLACE and self.first_house is not None:
            raise ValueError("house numbers are for streets, not places")
        return self

    def entry(self) -> Entry:
        """The gazetteer entry this row describes."""
        end = None
        if self.end_lat is not None and self.end_lon is not None:
            end = Position(lat=self.end_lat, lon=self.end_lon)
        return Entry(
            kind=self.kind,
            name=self.name,
            sector=self.sector,
            position=Position(lat=self.lat, lon=self.lon),
            end=end,
            first_house=self.first_house,
            last_house=self.last_house,
            locality=self.locality,
            aliases=self.aliases,
        )


def read_gazetteer_csv(text: str | Iterable[str], source: str = "gazetteer") -> Gazetteer:
    """A `Gazetteer` from CSV `text` (a string, or lines such as an open file).

    Raises `GazetteerFileError` naming every faulty line and column (`source`, usually
    the file's name, heads each message). A byte-order mark, as spreadsheets write, is
    allowed.
    """
    lines = io.StringIO(text) if isinstance(text, str) else text
    reader = csv.reader(lines, strict=True)
    problems: list[GazetteerProblem] = []
    entries: list[Entry] = []
    try:
        header = next(reader, None)
        if header is None:
            raise GazetteerFileError(source, [GazetteerProblem(1, None, "the file is empty")])
        columns = _check_header(header, problems)
        if problems:
            raise GazetteerFileError(source, problems)
        first_line_of: dict[tuple[str, str, str], int] = {}
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            row = _row(cells, columns, line, problems)
            if row is None:
                continue
            key = (row.kind.value, fold(row.name), fold(row.locality or ""))
            if key in first_line_of:
                problems.append(
                    GazetteerProblem(
                        line,
                        "name",
                        f"{row.kind.value} {row.name!r}"
                        + (f" in {row.locality!r}" if row.locality else "")
                        + f" is already on line {first_line_of[key]}; merge them, or give "
                        "each a locality",
                    )
                )
                continue
            first_line_of[key] = line
            entries.append(row.entry())
    except csv.Error as exc:
        problems.append(GazetteerProblem(reader.line_num, None, f"not valid CSV: {exc}"))
    except UnicodeDecodeError as exc:
        problems.append(GazetteerProblem(reader.line_num + 1, None, f"not UTF-8 text: {exc}"))
    if problems:
        raise GazetteerFileError(source, problems)
    return Gazetteer(entries)


def _check_header(header: list[str], problems: list[GazetteerProblem]) -> list[str]:
    columns = [cell.strip().lstrip("\ufeff").lower() for cell in header]
    for n, column in enumerate(columns):
        if column not in COLUMNS:
            problems.append(
                GazetteerProblem(
                    1, column or None, f"unknown column; the columns are {', '.join(COLUMNS)}"
                )
            )
        elif column in columns[:n]:
            problems.append(GazetteerProblem(1, column, "this column is named twice"))
    problems.extend(
        GazetteerProblem(1, required, "this column is required")
        for required in REQUIRED_COLUMNS
        if required not in columns
    )
    return columns


def _row(
    cells: list[str], columns: list[str], line: int, problems: list[GazetteerProblem]
) -> GazetteerRow | None:
    if len(cells) != len(columns):
        problems.append(
            GazetteerProblem(
                line, None, f"{len(cells)} cells where the header names {len(columns)} columns"
            )
        )
        return None
    fields = {column: cell.strip() for column, cell in zip(columns, cells, strict=True)}
    try:
        return GazetteerRow(**{column: value for column, value in fields.items() if value})
    except ValidationError as exc:
        for error in exc.errors():
            column = next((str(part) for part in error["loc"] if part in COLUMNS), None)
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "missing":
                message = "required: this cell may not be empty"
            elif column is not None and column in fields:
                message += f" (found {fields[column]!r})"
            problems.append(GazetteerProblem(line, column, message))
        return None


def write_gazetteer_csv(entries: Iterable[Entry]) -> str:
    """CSV text for `entries`, with every column, that `read_gazetteer_csv` reads back."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for entry in entries:
        end = entry.end
        writer.writerow(
            [
                entry.kind.value,
                entry.name,
                entry.sector or "",
                repr(entry.position.lat),
                repr(entry.position.lon),
                "" if end is None else repr(end.lat),
                "" if end is None else repr(end.lon),
                "" if entry.first_house is None else entry.first_house,
                "" if entry.last_house is None else entry.last_house,
                entry.locality or "",
                ";".join(entry.aliases),
            ]
        )
    return out.getvalue()
