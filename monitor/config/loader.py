"""Read the YAML config into a `MonitorConfig`, reporting every problem with its line.

    ConfigError(Exception)        .problems: list[ConfigProblem], all of them at once
    ConfigProblem                 file, line, path ("clients[0].sites[1].url") and message

The file is composed node by node (not `yaml.safe_load`) so that every value keeps the line
it came from, duplicate keys are caught (PyYAML would keep the last silently) and `${VAR}`
references are substituted per scalar before pydantic sees the data. pydantic's errors are
then translated into messages that say where, what is expected, and never echo a value that
came from the environment (it may be a password).
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from yaml.constructor import SafeConstructor

from incidents.sla import DEFAULT_PLANS
from monitor.config.models import SLUG_PATTERN, MonitorConfig

SectionsT = TypeVar("SectionsT", bound=BaseModel)
Loc: TypeAlias = tuple[Any, ...]
"""A path into the data: mapping keys and list indexes, e.g. ("clients", 0, "id")."""

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_REFERENCE = re.compile(r"\$\$|\$\{(?P<body>[^}]*)\}|\$\{")
_REFERENCE_BODY = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.S)
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_SHOULD = re.compile(r"^(?:Input|String|List|Dictionary|Value|Object|Tuple|Set|Decimal) should ")
_GOT = re.compile(r"\s*\(got .*\)\s*$", re.S)
_HIDDEN = "***"
# Values this short are too common to scrub from every message ("1" would mangle "1s"); the
# errors at the env-sourced node itself never print its value whatever its length.
_MIN_SCRUB_LENGTH = 6
_TOP_LEVEL_HINT = "a mapping with keys such as clients:, defaults: and server:"


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a config file, located for the operator who has to fix it."""

    file: str
    line: int | None  # 1-based; None when the problem has no place (empty or unreadable file)
    path: str  # e.g. "clients[0].sites[1].checks[2].interval"; "" for the file as a whole
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """The config cannot be used; `problems` lists everything found, in file order."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        super().__init__(list(problems))
        self.problems: list[ConfigProblem] = list(problems)

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None) -> MonitorConfig:
    """Load and validate the YAML file at `path`; raise ConfigError listing every problem.

    `${VAR}` and `${VAR:-default}` in string values are taken from `environ` (default:
    `os.environ`); `$$` stands for a literal `$`.
    """
    return load_config_text(_read_file(path), filename=str(path), environ=environ)


def load_sections(
    path: str | Path, model: type[SectionsT], *, environ: Mapping[str, str] | None = None
) -> SectionsT:
    """Only the parts of the file at `path` that `model` declares, validated by it.

    The whole file must be YAML, but problems outside those parts (an unset `${VAR}` in
    notifications.smtp, an invalid check) are not reported: an operator command finds the
    server without the secrets of the monitor it talks to. Problems inside them raise
    ConfigError with their lines, as `load_config` would.
    """
    filename = str(path)
    source = _read_yaml(_read_file(path), environ=os.environ if environ is None else environ)
    if isinstance(source, _Issue):
        raise ConfigError([_to_problem(source, filename)])
    data = source.data if isinstance(source.data, dict) else {}
    source.data = {key: value for key, value in data.items() if key in model.model_fields}
    issues = [issue for issue in source.issues if _declared(issue.loc, model)]
    return _validated(model, source, issues, filename)


def _declared(loc: Loc, model: type[BaseModel]) -> bool:
    """Whether `model` validates the value at `loc` (a field, or something inside one)."""
    if loc and loc[0] not in model.model_fields:
        return False
    annotation: Any = model
    for part in loc:
        annotation = _unwrap(annotation, None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            info = annotation.model_fields.get(part)
            if info is None:
                return annotation.model_config.get("extra") == "forbid"
            annotation = info.annotation
        elif typing.get_origin(annotation) in (list, dict):
            annotation = typing.get_args(annotation)[-1]
        else:
            return True
    return True


def _read_file(path: str | Path) -> str:
    filename = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [ConfigProblem(filename, None, "", f"is not UTF-8 text (bad byte at {exc.start})")]
        ) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            [ConfigProblem(filename, None, "", f"cannot be read: {reason}")]
        ) from None
    return text


def _context(data: Any) -> dict[str, Any]:
    """What validators need to know of the rest of the file: the plan names clients may use,
    and whether heartbeat checks without a token can derive one (heartbeat.secret)."""
    plans = data.get("plans") if isinstance(data, dict) else None
    names = set(DEFAULT_PLANS) | (set(plans) if isinstance(plans, dict) else set())
    heartbeat = data.get("heartbeat") if isinstance(data, dict) else None
    secret = heartbeat.get("secret") if isinstance(heartbeat, dict) else None
    return {"plans": names, "heartbeat_secret": bool(str(secret or "").strip())}


def load_config_text(
    text: str, *, filename: str = "<string>", environ: Mapping[str, str] | None = None
) -> MonitorConfig:
    """Like `load_config`, from YAML text; `filename` only labels the problems."""
    source = _read_yaml(text, environ=os.environ if environ is None else environ)
    if isinstance(source, _Issue):
        raise ConfigError([_to_problem(source, filename)])
    return _validated(MonitorConfig, source, source.issues + _duplicate_ids(source), filename)


def _validated(
    model: type[SectionsT], source: _Source, issues: list[_Issue], filename: str
) -> SectionsT:
    """`source.data` validated by `model`; else ConfigError with `issues` (found while
    reading) and pydantic's, in line order."""
    result: SectionsT | None = None
    try:
        result = model.model_validate(source.data, context=_context(source.data))
    except ValidationError as exc:
        # An issue found while reading (a missing variable, a duplicate key) explains the
        # node better than whatever pydantic makes of the placeholder left there.
        known = [issue.loc for issue in issues if issue.replaces_value]
        issues = issues + [
            issue
            for issue in _translate(exc, source)
            if not any(issue.loc[: len(loc)] == loc for loc in known)
        ]
    if issues or result is None:
        ordered = sorted(issues, key=lambda issue: issue.line or 0)
        raise ConfigError([_to_problem(issue, filename, source.secrets) for issue in ordered])
    return result


@dataclass(frozen=True, slots=True)
class _Issue:
    loc: Loc
    line: int | None
    message: str
    # True when the node at `loc` holds a placeholder (an unset variable's text, None) whose
    # validation errors would only repeat this issue less clearly.
    replaces_value: bool = False


@dataclass(slots=True)
class _Source:
    """Plain data read from YAML, with where each part came from."""

    data: Any = None
    lines: dict[Loc, int] = field(default_factory=dict)  # key or list item -> its line
    env: dict[Loc, dict[str, str]] = field(default_factory=dict)  # scalar -> variables read
    secrets: set[str] = field(default_factory=set)  # values substituted from the environment
    issues: list[_Issue] = field(default_factory=list)

    def line_of(self, loc: Loc) -> int | None:
        """The line of `loc`, or of its nearest ancestor present in the file."""
        for size in range(len(loc), -1, -1):
            line = self.lines.get(loc[:size])
            if line is not None:
                return line
        return None


def _to_problem(issue: _Issue, filename: str, secrets: Iterable[str] = ()) -> ConfigProblem:
    message = issue.message
    for secret in secrets:
        if len(secret) >= _MIN_SCRUB_LENGTH:
            message = message.replace(secret, _HIDDEN)
    return ConfigProblem(filename, issue.line, format_loc(issue.loc), message)


def format_loc(loc: Loc) -> str:
    """("clients", 0, "sites", 1, "url") -> "clients[0].sites[1].url"."""
    out = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif isinstance(part, str) and _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{str(part)!r}]"
    return out


# --- reading YAML ------------------------------------------------------------------------


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


# A file without aliases holds fewer values than characters; aliases of aliases multiply
# (ten nested anchors of ten aliases each: 10^10 values from 300 bytes, which PyYAML would
# expand into gigabytes). Expansion beyond this budget is refused.
_MIN_VALUE_BUDGET = 100_000
_VALUES_PER_CHARACTER = 10

# libyaml composes a file of 20,000 checks about ten times faster than pure Python.
_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(text: str, *, environ: Mapping[str, str]) -> _Source | _Issue:
    loader = _FAST_LOADER(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as exc:
            return _explain_syntax_error(text, exc)
        if root is None:
            return _Issue((), None, f"is empty; expected {_TOP_LEVEL_HINT}")
        if not isinstance(root, yaml.MappingNode):
            return _Issue((), _line(root), f"must be {_TOP_LEVEL_HINT} (got {_node_kind(root)})")
        budget = max(_MIN_VALUE_BUDGET, _VALUES_PER_CHARACTER * len(text))
        try:
            return _Walker(loader, environ, budget=budget).read(root)
        except _AliasBomb as bomb:
            return _Issue(
                (),
                bomb.line,
                f"expands to more than {budget:,} values through aliases (*name): refused as "
                "an alias bomb; write the repeated parts out or share fewer levels of anchors",
            )
    finally:
        loader.dispose()


class _AliasBomb(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


def _explain_syntax_error(text: str, exc: yaml.YAMLError) -> _Issue:
    # libyaml words its errors tersely ("found character that cannot start any token");
    # PyYAML's own parser names the character, so a broken file is parsed again with it.
    loader = yaml.SafeLoader(text)
    try:
        loader.get_single_node()
    except yaml.YAMLError as detailed:
        exc = detailed
    finally:
        loader.dispose()
    if isinstance(exc, yaml.MarkedYAMLError):
        return _syntax_issue(exc)
    return _Issue((), None, f"is not valid YAML: {exc}")


def _syntax_issue(exc: yaml.MarkedYAMLError) -> _Issue:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or "cannot parse"
    if exc.context:
        # PyYAML splits one sentence in two: "while parsing a flow sequence" (where it
        # started) and "expected ',' or ']', but got '-'" (where it broke).
        started = "" if exc.context_mark is None else f" (line {exc.context_mark.line + 1})"
        joint = ", " if problem.startswith("but ") else ": "
        problem = f"{exc.context}{started}{joint}{problem}"
    message = f"invalid YAML: {problem}"
    if "'\\t'" in message:
        message += "; indent with spaces, not tabs"
    if "another document" in message:
        message += "; the config is one document, so remove the extra '---'"
    return _Issue((), None if mark is None else mark.line + 1, message)


def _node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    return f"the text {str(node.value)[:40]!r}"


class _Walker:
    """Turns composed nodes into plain data, recording lines and environment references."""

    def __init__(self, loader: SafeConstructor, environ: Mapping[str, str], *, budget: int) -> None:
        self._loader = loader
        self._budget = budget  # values (scalars, lists, mappings) that may be produced
        self._environ = environ
        self._source = _Source()
        self._active: set[int] = set()  # collections being walked: catches `&a [*a]`
        self._reported: set[tuple[int | None, str]] = set()

    def read(self, root: yaml.Node) -> _Source:
        self._source.lines[()] = _line(root)
        self._source.data = self._value(root, ())
        return self._source

    def _issue(
        self, loc: Loc, line: int | None, message: str, *, replaces_value: bool = True
    ) -> None:
        # An anchored node reached through several aliases would repeat its problem.
        if (line, message) not in self._reported:
            self._reported.add((line, message))
            self._source.issues.append(_Issue(loc, line, message, replaces_value))

    def _value(self, node: yaml.Node, loc: Loc) -> Any:
        self._budget -= 1
        if self._budget < 0:
            raise _AliasBomb(_line(node))
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, loc)
        if id(node) in self._active:
            self._issue(loc, _line(node), "an alias refers to a node that contains it")
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, loc, skip=frozenset())
            items = []
            for index, item in enumerate(node.value):
                self._source.lines[(*loc, index)] = _line(item)
                items.append(self._value(item, (*loc, index)))
            return items
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, loc: Loc, *, skip: frozenset[Any]) -> dict[Any, Any]:
        """Keys in `skip` are already set by a mapping merging this one (`<<: *anchor`)."""
        result: dict[Any, Any] = {}
        first_line: dict[Any, int] = {}
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            key = self._key(key_node, loc)
            if key is _INVALID:
                continue
            line = _line(key_node)
            if key in first_line:
                message = f"duplicate key {key!r} (first at line {first_line[key]})"
                self._issue((*loc, key), line, message, replaces_value=False)
                continue
            first_line[key] = line
            if key in skip:
                continue
            self._source.lines[(*loc, key)] = line
            result[key] = self._value(value_node, (*loc, key))
        # Explicit keys win over merged ones, and earlier merged mappings over later ones.
        for merged in merges:
            sources = merged.value if isinstance(merged, yaml.SequenceNode) else [merged]
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    message = "'<<' merges a mapping or a list of mappings"
                    self._issue(loc, _line(source), message, replaces_value=False)
                    continue
                if id(source) in self._active:
                    message = "an alias refers to a node that contains it"
                    self._issue(loc, _line(source), message, replaces_value=False)
                    continue
                self._active.add(id(source))
                try:
                    result.update(self._mapping(source, loc, skip=skip.union(result)))
                finally:
                    self._active.discard(id(source))
        return result

    def _key(self, node: yaml.Node, loc: Loc) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            message = "keys must be plain text, not a list or mapping"
            self._issue(loc, _line(node), message, replaces_value=False)
            return _INVALID
        try:
            return self._loader.construct_object(node)
        except (yaml.YAMLError, ValueError):
            message = f"cannot read the key {node.value!r}"
            self._issue(loc, _line(node), message, replaces_value=False)
            return _INVALID

    def _scalar(self, node: yaml.ScalarNode, loc: Loc) -> Any:
        if node.tag == _STR_TAG and "$" in node.value:
            # The result stays text: pydantic turns "9464" into the int a port field wants,
            # while a password that happens to read "123456" or "yes" stays the string it
            # is (YAML's resolver would make it an int or a bool, and only in production).
            return self._substitute(node, loc)
        try:
            return self._loader.construct_object(node)
        except (yaml.YAMLError, ValueError):
            if node.tag.startswith("tag:yaml.org,2002:"):
                message = f"cannot read this value as {node.tag.rsplit(':', 1)[-1]}"
            else:
                message = f"unknown tag {node.tag!r}; for the environment write ${{NAME}}"
            self._issue(loc, _line(node), message)
            return None

    def _substitute(self, node: yaml.ScalarNode, loc: Loc) -> str:
        """Replace `${VAR}`, `${VAR:-default}` and `$$`; report unset or malformed ones."""
        read: dict[str, str] = {}

        def replace(match: re.Match[str]) -> str:
            whole = match.group(0)
            if whole == "$$":
                return "$"
            body = match.group("body")
            parsed = None if body is None else _REFERENCE_BODY.fullmatch(body)
            if parsed is None:
                self._issue(
                    loc,
                    _line(node),
                    f"malformed reference {whole!r}: write ${{NAME}} or ${{NAME:-default}}, "
                    "and $$ for a literal $",
                )
                return whole
            name, default = parsed.group("name"), parsed.group("default")
            value = self._environ.get(name)
            if value is not None and (value or default is None):
                read[name] = value
                self._source.secrets.add(value)
                return value
            if default is not None:
                return default
            self._issue(
                loc,
                _line(node),
                f"environment variable {name} is not set (use ${{{name}:-default}} for a default)",
            )
            return whole

        text = _REFERENCE.sub(replace, str(node.value))
        if read:
            self._source.env[loc] = read
        return text


_INVALID = object()


def _from_env(names: Iterable[str]) -> str:
    return "value from " + " and ".join(f"${{{name}}}" for name in names)


# --- checks pydantic cannot express with a line ------------------------------------------


def _duplicate_ids(source: _Source) -> list[_Issue]:
    """Client ids, site ids within a client and check ids within a site must be unique.

    Run on the raw data so the second occurrence is reported with its own line even when
    something else in the file is invalid too.
    """
    issues: list[_Issue] = []
    data = source.data
    clients = data.get("clients") if isinstance(data, dict) else None
    issues += _duplicates_in(clients, ("clients",), source)
    for client_index, client in enumerate(clients if isinstance(clients, list) else []):
        sites = client.get("sites") if isinstance(client, dict) else None
        sites_loc = ("clients", client_index, "sites")
        issues += _duplicates_in(sites, sites_loc, source)
        for site_index, site in enumerate(sites if isinstance(sites, list) else []):
            checks = site.get("checks") if isinstance(site, dict) else None
            issues += _duplicates_in(checks, (*sites_loc, site_index, "checks"), source)
    return issues


def _duplicates_in(items: Any, loc: Loc, source: _Source) -> list[_Issue]:
    if not isinstance(items, list):
        return []
    issues: list[_Issue] = []
    first: dict[str, Loc] = {}
    for index, item in enumerate(items):
        ident = item.get("id") if isinstance(item, dict) else None
        if not isinstance(ident, str):
            continue
        id_loc = (*loc, index, "id")
        if ident in first:
            where = f"line {source.line_of(first[ident])}"
            message = f"duplicate id {ident!r} (first at {where})"
            issues.append(_Issue(id_loc, source.line_of(id_loc), message))
        else:
            first[ident] = id_loc
    return issues


# --- translating pydantic's errors -------------------------------------------------------


def _translate(exc: ValidationError, source: _Source) -> list[_Issue]:
    grouped: dict[Loc, list[ErrorDetails]] = {}
    for error in exc.errors(include_url=False):
        if error["type"] == "duplicate_id":  # reported with lines by _duplicate_ids
            continue
        grouped.setdefault(_data_loc(error, source.data), []).append(error)
    return [
        _Issue(loc, source.line_of(loc), _message(errors, loc, source))
        for loc, errors in grouped.items()
    ]


def _data_loc(error: ErrorDetails, data: Any) -> Loc:
    """pydantic's loc without the parts that are not in the file.

    Those are union members ("int", "str", a discriminator's tag) and "[key]" for a bad
    mapping key; a missing field's name is kept, since the operator has to add it there.
    """
    out: list[Any] = []
    node = data
    parts = error["loc"]
    for index, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif not (error["type"] == "missing" and index == len(parts) - 1):
            continue
        out.append(part)
    return tuple(out)


def _message(errors: list[ErrorDetails], loc: Loc, source: _Source) -> str:
    first = errors[0]
    if first["type"] == "missing":
        return f"missing required key {loc[-1]!r}"
    if first["type"] == "extra_forbidden":
        return _unknown_key(loc, source.data)
    described = list(dict.fromkeys(_describe(error) for error in errors))
    if len(described) > 1:
        # A union: say every form the value could take, without pydantic's member names.
        described = [text.removeprefix("must be ") for text in described]
        message = "must be " + "; or ".join(described)
    else:
        message = described[0]
    if "[key]" in first["loc"]:
        message = f"invalid key: {message}"
    variables = source.env.get(loc)
    if variables is not None:
        message = _GOT.sub("", message)
        for value in variables.values():
            if len(value) >= 3:  # shorter ones would mangle words rather than hide anything
                message = message.replace(value, _HIDDEN)
        return f"{message} ({_from_env(variables)})"
    # A whole list or mapping says nothing its own message did not (e.g. a flow's steps).
    if "(got " not in message and not isinstance(first["input"], list | dict):
        message += f" (got {_show(first['input'])})"
    return message


def _describe(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == SLUG_PATTERN:
        return (
            "must be an id of lower-case letters, digits, '.', '_' and '-', starting with a "
            "letter or digit, at most 63 characters"
        )
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a mapping of keys to values"
    if kind == "list_type":
        return "must be a list (one '- ' item per line)"
    if kind == "too_short" and isinstance(error["input"], list):
        least = ctx.get("min_length", 1)
        if least == 1:
            return "must not be empty (got an empty list)"
        return f"must have at least {least} items (got {len(error['input'])})"
    if kind == "string_type" and isinstance(error["input"], int | float):
        # YAML reads 5, 1.0, yes and on as numbers and booleans.
        return f"must be text (got {_show(error['input'])}; put it in quotes)"
    if kind == "union_tag_invalid":
        return f"must have {ctx.get('discriminator')} set to one of {ctx.get('expected_tags')}"
    message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return _SHOULD.sub("must ", message)


def _show(value: Any) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple | set):
        return "a list"
    if isinstance(value, str) and len(value) > 60:
        return repr(value[:57] + "...")
    return repr(value)


def _unknown_key(loc: Loc, data: Any) -> str:
    key = loc[-1]
    model = _model_at(loc[:-1], data)
    if model is None:
        return f"unknown key {key!r}"
    allowed = [info.alias or name for name, info in model.model_fields.items()]
    close = difflib.get_close_matches(str(key), allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key {key!r}{hint} (allowed: {', '.join(allowed)})"


def _model_at(loc: Loc, data: Any) -> type[BaseModel] | None:
    """The model that validates the mapping at `loc`, following field annotations."""
    annotation: Any = MonitorConfig
    node = data
    for part in loc:
        annotation = _unwrap(annotation, node)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            info = annotation.model_fields.get(part)
            if info is None:
                return None
            annotation = info.annotation
        elif typing.get_origin(annotation) in (list, dict):
            annotation = typing.get_args(annotation)[-1]
        else:
            return None
        node = node[part] if isinstance(node, dict | list) else None
    annotation = _unwrap(annotation, node)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _unwrap(annotation: Any, node: Any) -> Any:
    """Strip Annotated and Optional; of a union of models pick the one `kind` names."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    members = [
        typing.get_args(m)[0] if typing.get_origin(m) is typing.Annotated else m  # tagged
        for m in (typing.get_args(annotation) if _is_union(annotation) else ())
    ]
    models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
    if not models:
        return annotation
    for model in models:
        kind = model.model_fields.get("kind")
        if (
            kind is not None
            and isinstance(node, dict)
            and node.get("kind", kind.default) == (kind.default)
        ):
            return model
    return models[0]


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)
