"""Reading values out of a response: regex groups, JSON paths, hidden form fields, headers.

A flow step saves values with `Extractor`s and checks `json_equals` with JSON paths; both read
an `Answer` (a response's decoded body and headers). Nothing here raises for what a target
sends: a body that is not JSON, a path that matches nothing or a missing field is `NotFound`,
with a reason an operator can act on.

Regexes and JSON paths are checked when a flow's config is validated (`regex_problem`,
`json_path_problem`), where the error can name the step; here they are compiled once and
cached.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from jsonpath_ng import JSONPath
from jsonpath_ng.exceptions import JSONPathError
from jsonpath_ng.ext.parser import parse as parse_json_path
from pydantic import BaseModel, ConfigDict, Field, model_validator

_SOURCES = ("regex", "json", "form_field", "header")
_MAX_REASON_VALUE_CHARS = 80


class NotFound(Exception):
    """The value is not in this answer; the message says why."""


class Extractor(BaseModel):
    """Where a saved value comes from: exactly one of `regex`, `json`, `form_field`, `header`."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True
    )

    regex: str | None = Field(
        default=None,
        description="A regular expression searched in the body: its first group, or the whole "
        r"match if it has no group, e.g. 'Order number: (DS-\d+)'.",
    )
    json_path: str | None = Field(
        default=None,
        alias="json",
        description="A JSON path into a JSON body, e.g. $.order.id; the first match is saved.",
    )
    form_field: str | None = Field(
        default=None,
        description="The name of an <input> in the HTML body, e.g. a hidden csrf_token.",
    )
    header: str | None = Field(
        default=None, description="A response header, e.g. Location (case does not matter)."
    )

    @model_validator(mode="after")
    def _exactly_one_source(self) -> Extractor:
        chosen = [name for name in _SOURCES if self._source(name) is not None]
        if len(chosen) != 1:
            got = " and ".join(chosen) if chosen else "none"
            raise ValueError(
                "set exactly one of regex, json, form_field or header, e.g. "
                f"{{form_field: csrf_token}} (got {got})"
            )
        return self

    def _source(self, name: str) -> str | None:
        value: str | None = self.json_path if name == "json" else getattr(self, name)
        return value

    def describe(self) -> str:
        """E.g. `regex 'Order number: (DS-\\d+)'`, for messages."""
        for name in _SOURCES:
            value = self._source(name)
            if value is not None:
                return f"{name} {_show(value)}"
        return "nothing"  # pragma: no cover - the validator requires one source

    def problems(self) -> list[str]:
        """What is wrong with its regex or JSON path, if anything."""
        problems = []
        if self.regex is not None and (problem := regex_problem(self.regex)) is not None:
            problems.append(f"regex {problem}")
        if self.json_path is not None and (problem := json_path_problem(self.json_path)):
            problems.append(f"json {problem}")
        return problems


@dataclass(slots=True)
class Answer:
    """A response as extraction sees it: the decoded body and the headers."""

    text: str
    headers: Mapping[str, str]  # case-insensitive (aiohttp's CIMultiDictProxy)
    _document: Any = field(default=None, init=False, repr=False)
    _parsed: bool = field(default=False, init=False, repr=False)
    _json_error: str | None = field(default=None, init=False, repr=False)

    def json(self) -> Any:
        """The body as JSON, parsed once; NotFound if it is not JSON."""
        if not self._parsed:
            self._parsed = True
            try:
                self._document = json.loads(self.text)
            except ValueError as exc:
                self._json_error = f"the body is not JSON ({exc})"
            except RecursionError:
                # A target can nest arrays deeper than the parser's stack.
                self._json_error = "the body is not usable JSON (nested too deeply)"
        if self._json_error is not None:
            raise NotFound(self._json_error)
        return self._document


def extract(extractor: Extractor, answer: Answer) -> Any:
    """The value `extractor` reads from `answer`; raises NotFound saying why not."""
    if extractor.regex is not None:
        match = compile_regex(extractor.regex).search(answer.text)
        if match is None:
            raise NotFound(f"regex {_show(extractor.regex)} does not match the body")
        return match.group(1) if match.re.groups else match.group(0)
    if extractor.json_path is not None:
        return find_json(extractor.json_path, answer)[0]
    if extractor.form_field is not None:
        value = _input_value(answer.text, extractor.form_field)
        if value is None:
            raise NotFound(f"the body has no <input name={_show(extractor.form_field)}>")
        return value
    if extractor.header is not None:
        header = answer.headers.get(extractor.header)
        if header is None:
            raise NotFound(f"the response has no {extractor.header} header")
        return header
    raise AssertionError("an Extractor always has one source")  # pragma: no cover


def find_json(path: str, answer: Answer) -> list[Any]:
    """Every value `path` matches in the JSON body, in order; NotFound if none."""
    document = answer.json()
    try:
        matches = [match.value for match in compile_json_path(path).find(document)]
    except Exception as exc:
        # jsonpath-ng's filters and arithmetic compare whatever the target sent (a string
        # with a number, a list with a dict) and raise assorted errors; the target's data is
        # at fault, never the probe.
        raise NotFound(f"{path} could not be read from the body ({type(exc).__name__})") from exc
    if not matches:
        raise NotFound(f"{path} matches nothing in the body")
    return matches


def regex_problem(pattern: str) -> str | None:
    """Why `pattern` does not compile, or None."""
    try:
        compile_regex(pattern)
    except re.error as exc:
        return f"{_show(pattern)} does not compile: {exc}"
    return None


def json_path_problem(path: str) -> str | None:
    """Why `path` is not a JSON path, or None."""
    try:
        compile_json_path(path)
    except JSONPathError as exc:
        return f"{_show(path)} is not a JSON path such as $.order.id: {_one_line(str(exc))}"
    return None


@functools.lru_cache(maxsize=1024)
def compile_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@functools.lru_cache(maxsize=1024)
def compile_json_path(path: str) -> JSONPath:
    return parse_json_path(path)


class _Found(Exception):
    """Stops the parser at the first match: the rest of a large page need not be parsed."""


class _InputFinder(HTMLParser):
    """Finds the value of the first <input> with a given name (attribute order and quoting
    as browsers accept them; entities such as &amp; decoded)."""

    def __init__(self, name: str) -> None:
        super().__init__(convert_charrefs=True)
        self._name = name
        self.value: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "input":
            return
        found = dict(attrs)
        if found.get("name") == self._name:
            self.value = found.get("value") or ""
            raise _Found


def _input_value(text: str, name: str) -> str | None:
    if name not in text:  # most misses are cheap
        return None
    finder = _InputFinder(name)
    try:
        finder.feed(text)
        finder.close()
    except _Found:
        pass
    return finder.value


def _show(value: str) -> str:
    if len(value) > _MAX_REASON_VALUE_CHARS:
        value = value[: _MAX_REASON_VALUE_CHARS - 1] + "…"
    return repr(value)


def _one_line(text: str) -> str:
    return " ".join(text.split())
