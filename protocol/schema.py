"""JSON Schema for every model of the protocol, for other implementations to validate."""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter

from .commands import BatchResult, Command, CommandBatch, CommandResult
from .domain import Incident, Operator, Unit
from .events import Event
from .fold import DispatchState
from .frames import ClientFrame, ServerFrame
from .problems import Problem

__all__ = ["json_schemas", "render_schemas"]

_DOCUMENTS: dict[str, Any] = {
    "incident": Incident,
    "unit": Unit,
    "operator": Operator,
    "event": Event,
    "command": Command,
    "command-result": CommandResult,
    "command-batch": CommandBatch,
    "batch-result": BatchResult,
    "problem": Problem,
    "state": DispatchState,
    "client-frame": ClientFrame,
    "server-frame": ServerFrame,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """Return the JSON Schema of each protocol document, keyed by file stem."""
    return {
        name: TypeAdapter(model).json_schema(mode="validation")
        for name, model in _DOCUMENTS.items()
    }


def render_schemas() -> dict[str, str]:
    """Return each schema as the exact text committed under ``docs/schema/<stem>.json``."""
    return {
        f"{name}.json": json.dumps(schema, indent=2, sort_keys=True) + "\n"
        for name, schema in json_schemas().items()
    }
