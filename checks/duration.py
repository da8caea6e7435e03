"""Durations as operators write them in YAML: `500ms`, `30s`, `5m`, `4h`, `1d`."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
DURATION_REGEX = r"^\d+(\.\d+)?(ms|s|m|h|d)$"


def parse_duration(value: Any) -> timedelta:
    """Parse `30s`-style text (or a timedelta) into a timedelta; raise ValueError otherwise."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if match:
            return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    raise ValueError(f"must be a duration such as 500ms, 30s, 5m, 4h or 1d (got {value!r})")


def format_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": DURATION_REGEX, "examples": ["30s", "5m"]}),
]
"""A pydantic field type: YAML `30s` in, `timedelta` out, `30s` back in JSON."""
