"""Text as every database can store it: PostgreSQL refuses a NUL character in a text column
(`invalid byte sequence for encoding "UTF8": 0x00`) and in JSON, so a target that puts one in
its reason phrase, a header or its body would make its own outage unrecordable. Control
characters other than tab and line breaks go too; they carry no meaning an operator reads."""

from __future__ import annotations

import re
from typing import Any

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def storable(text: str) -> str:
    """`text` without NUL and the other control characters (tab, CR and LF stay)."""
    # The search first: almost every string has none, and then it is returned as is.
    return _CONTROL.sub("", text) if _CONTROL.search(text) else text


def storable_json(value: Any) -> Any:
    """`value` (plain JSON: dicts, lists, strings, numbers) with every string `storable`,
    keys too."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {
            storable(k) if isinstance(k, str) else k: storable_json(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [storable_json(v) for v in value]
    return value
