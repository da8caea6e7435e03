"""`{{name}}` placeholders: values a flow saved in one step, used in a later step's request.

A placeholder is a name of letters, digits and `_` (not starting with a digit) between double
braces; spaces inside the braces are allowed (`{{ order }}`). Placeholders are substituted in
text as it is: nothing is URL-encoded or escaped, so a saved `/cart?step=2` can serve as a
whole URL. In a JSON body a string that is exactly one placeholder takes the saved value with
its JSON type (`"{{order_id}}"` becomes `1001`, not `"1001"`); anywhere else a value that is
not text is written as JSON (`true`, `12.5`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Anything between double braces, so that a malformed name is found and reported instead of
# being sent to the target as literal text.
_BRACES = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_WHOLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class MissingValue(LookupError):
    """A placeholder names a value that was not saved (its step failed or did not run)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def placeholders(value: Any) -> Iterator[str]:
    """Every placeholder's inner text in `value` (text, or lists and mappings of it, keys
    included), stripped, in order of appearance; malformed names are yielded too."""
    if isinstance(value, str):
        for match in _BRACES.finditer(value):
            yield match.group(1).strip()
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from placeholders(key)
            yield from placeholders(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from placeholders(item)


def is_valid_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def as_text(value: Any) -> str:
    """How a saved value reads inside text."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def render(text: str, values: Mapping[str, Any]) -> str:
    """`text` with each placeholder replaced; raises MissingValue for a name not in `values`."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        if name not in values:
            raise MissingValue(name)
        return as_text(values[name])

    return _BRACES.sub(replace, text)


def render_mapping(mapping: Mapping[str, str], values: Mapping[str, Any]) -> dict[str, str]:
    """A mapping of texts (headers, a form) with placeholders replaced in keys and values."""
    return {render(key, values): render(item, values) for key, item in mapping.items()}


def render_json(value: Any, values: Mapping[str, Any]) -> Any:
    """A JSON document with placeholders replaced; a string that is exactly one placeholder
    becomes the saved value itself, keeping its JSON type."""
    if isinstance(value, str):
        whole = _WHOLE.fullmatch(value)
        if whole is not None:
            name = whole.group(1)
            if name not in values:
                raise MissingValue(name)
            return values[name]
        return render(value, values)
    if isinstance(value, Mapping):
        return {render(str(key), values): render_json(item, values) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [render_json(item, values) for item in value]
    return value
