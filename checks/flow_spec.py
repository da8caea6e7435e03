"""The YAML half of the `flow` check: its steps, what they expect and save, and the checks
that run when a config is loaded (see `checks.flow` for how a flow runs).

Every problem that spans steps names its step as `steps[2] (pay): ...`, and all of them are
reported together: a value used before any step saves it, a regex that does not compile, a
JSON path that does not parse, two steps of one name, a step with both a form and JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from checks.duration import Duration
from checks.extract import Extractor, json_path_problem
from checks.http import DEFAULT_MAX_BODY_BYTES, parse_status_entry, validate_status_list
from checks.spec import ProbeSpec
from checks.template import NAME_PATTERN, is_valid_name, placeholders

DEFAULT_SYNTHETIC_HEADER = "X-Synthetic-Check"
SYNTHETIC_VALUE = "agency-monitor"
STEP_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
# RFC 9110's token: what a header name may be made of.
_HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"

StepName = Annotated[
    str,
    Field(
        pattern=STEP_NAME_PATTERN,
        description="Lower-case letters, digits, '.', '_' and '-', e.g. add-to-cart.",
    ),
]
SaveName = Annotated[
    str, Field(pattern=NAME_PATTERN, description="Letters, digits and _, e.g. csrf_token.")
]


def _default_expect_status() -> list[int | str]:
    return ["200-399"]


class StepExpect(BaseModel):
    """What a step's answer must look like."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: list[int | str] = Field(
        default_factory=_default_expect_status,
        description='Accepted statuses: numbers or ranges such as "200-299". Default 200-399.',
    )
    body_contains: list[str] = Field(
        default_factory=list,
        description="Texts that must all appear in the body; may use {{name}}.",
    )
    body_not_contains: list[str] = Field(
        default_factory=list, description="Texts that must not appear in the body."
    )
    json_equals: dict[str, Any] = Field(
        default_factory=dict,
        description="JSON path -> the value its first match must equal, e.g. "
        '{"$.order.status": "paid"}; values may use {{name}}.',
    )

    @field_validator("status")
    @classmethod
    def _valid_status(cls, entries: list[int | str]) -> list[int | str]:
        return validate_status_list(entries)

    def accepts_status(self, status: int) -> bool:
        return any(low <= status <= high for low, high in map(parse_status_entry, self.status))


class FormValue(BaseModel):
    """A form field's value with a flag: `{value: "${TEST_PASSWORD}", secret: true}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: str = Field(description="The value sent; may use {{name}}.")
    secret: bool = Field(
        default=False,
        description="Mask this value (a password, a card number) in evidence of any length; "
        "other values are masked from 4 characters on.",
    )


class FlowStep(BaseModel):
    """One request of a flow and what its answer must look like."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True
    )

    name: StepName
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    url: str = Field(
        default="/",
        description="A path joined to the flow's url, or an absolute URL; may use {{name}}.",
    )
    headers: dict[str, str] = Field(default_factory=dict)
    form: dict[str, str | FormValue] | None = Field(
        default=None,
        description="A form to send (application/x-www-form-urlencoded): name -> value, or "
        "name -> {value, secret: true} for a value to mask in evidence whatever its length.",
    )
    json_body: Any = Field(default=None, alias="json", description="A JSON body to send.")
    expect: StepExpect = Field(default_factory=StepExpect)
    timeout: Duration | None = Field(
        default=None, description="This step's own time limit, within the flow's timeout."
    )
    save: dict[SaveName, Extractor] = Field(
        default_factory=dict,
        description="Values to save from the answer for later steps' {{name}}.",
    )
    follow_redirects: bool = Field(
        default=True, description="Follow redirects (false to save a Location header)."
    )
    always: bool = Field(
        default=False, description="Run even after an earlier step failed (cleanup)."
    )

    @property
    def saves(self) -> dict[str, Extractor]:
        return self.save

    def form_texts(self) -> dict[str, str] | None:
        """The form as name -> value text (placeholders not yet filled in)."""
        if self.form is None:
            return None
        return {
            name: item if isinstance(item, str) else item.value for name, item in self.form.items()
        }

    def is_secret_field(self, name: str) -> bool:
        item = (self.form or {}).get(name)
        return isinstance(item, FormValue) and item.secret

    def used_names(self) -> list[str]:
        """Every placeholder this step uses, in order, once each (malformed ones too)."""
        parts = (
            self.url,
            self.headers,
            self.form_texts(),
            self.json_body,
            self.expect.body_contains,
            self.expect.body_not_contains,
            self.expect.json_equals,
        )
        return list(dict.fromkeys(name for part in parts for name in placeholders(part)))


class FlowCheckSpec(ProbeSpec):
    """`kind: flow`: steps run in order in one session, as a customer would click through."""

    kind: Literal["flow"] = "flow"
    url: str = Field(
        default="/",
        description="What the steps' relative urls are joined to: a path joined to the site's "
        "url (default: the site itself), or an absolute http(s) URL.",
    )
    steps: list[FlowStep] = Field(min_length=1)
    synthetic_header: str = Field(
        default=DEFAULT_SYNTHETIC_HEADER,
        pattern=_HEADER_NAME_PATTERN,
        description=f"Name of the header, valued {SYNTHETIC_VALUE!r}, that every request of "
        "the flow carries so the site can tell a synthetic check from a customer.",
    )
    max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES, gt=0, description="Read at most this much of each answer."
    )
    max_redirects: int = Field(default=5, ge=0, le=20)
    allow_private_redirects: bool = Field(
        default=False,
        description="Follow redirects into loopback, link-local, private or multicast "
        "addresses even when the flow's own URL is not in that range.",
    )
    verify_tls: bool = True

    @field_validator("steps")
    @classmethod
    def _consistent_steps(cls, steps: list[FlowStep]) -> list[FlowStep]:
        problems = step_problems(steps)
        if problems:
            raise ValueError("; ".join(problems))
        return steps


def step_problems(steps: Sequence[FlowStep]) -> list[str]:
    """Everything wrong across a flow's steps, each naming its step as `steps[2] (pay): ...`."""
    problems: list[str] = []
    for index, step in enumerate(steps):
        where = f"steps[{index}] ({step.name})"
        if step.form is not None and step.json_body is not None:
            problems.append(f"{where}: send a form or json, not both")
        for name, extractor in step.save.items():
            problems += [f"{where}: save {name}: {problem}" for problem in extractor.problems()]
        for path in step.expect.json_equals:
            problem = json_path_problem(path)
            if problem is not None:
                problems.append(f"{where}: expect.json_equals: {problem}")
    return shared_step_problems(steps) + problems


def shared_step_problems(steps: Sequence[SavingStep]) -> list[str]:
    """What is wrong across the steps of any kind of check: a name used twice, a value used
    before any step saves it, a malformed placeholder."""
    problems: list[str] = []
    first_use: dict[str, int] = {}
    saved_by: dict[str, int] = {}  # value name -> the first step that saves it
    for index, step in enumerate(steps):
        where = f"steps[{index}] ({step.name})"
        if step.name in first_use:
            problems.append(
                f"{where}: the name {step.name!r} is already used by steps[{first_use[step.name]}]"
                "; step names must be unique"
            )
        first_use.setdefault(step.name, index)
        for name in step.used_names():
            problem = placeholder_problem(name, index=index, steps=steps, saved_by=saved_by)
            if problem is not None:
                problems.append(f"{where}: {problem}")
        for name in step.saves:
            saved_by.setdefault(name, index)
    return problems


class SavingStep(Protocol):
    """What the checks across steps read of a step of any kind (flow, browser)."""

    @property
    def name(self) -> str: ...

    @property
    def saves(self) -> Mapping[str, object]: ...

    def used_names(self) -> list[str]: ...


def placeholder_problem(
    name: str, *, index: int, steps: Sequence[SavingStep], saved_by: Mapping[str, int]
) -> str | None:
    """What is wrong with step `index` using `{{name}}`, or None (it is saved earlier)."""
    if not is_valid_name(name):
        return (
            f"{{{{{name}}}}} is not a placeholder: write a saved value's name of letters, "
            "digits and _ between double braces, e.g. {{order}}"
        )
    if name in saved_by:
        return None
    later = [
        f"steps[{i}] ({s.name})" for i, s in enumerate(steps) if i >= index and name in s.saves
    ]
    hint = (
        f"; {', '.join(later)} saves it, but only earlier steps' values can be used"
        if later
        else ""
    )
    return f"uses {{{{{name}}}}} which no earlier step saves{hint}"
