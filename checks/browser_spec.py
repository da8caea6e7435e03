"""The YAML half of the `browser` check: a journey of steps in real Chromium (see
`checks.browser` for how it runs).

One step does one thing, named by its key:

    goto: /checkout                         open a URL (joined to the check's url)
    click: "#place-order"                   click the element a selector finds
    fill: "#email", value: "a@b.example"    type into a field
    select: "#country", value: "DE"         choose an option of a <select>
    press: "#search", key: Enter            press a key in an element
    wait_for: {selector | text | url | request: ...}
    expect: {visible, text, text_absent, url, no_console_error}
    save: {order: {selector: "#order-id", attribute: data-id}}
    screenshot: true

`frame:` (a selector of an iframe) makes the step's selector look inside that frame, as a
payment form such as Stripe Elements needs. Values saved by `save` are used as `{{name}}` in
later steps (see `checks.template`); every problem across steps is reported at once, naming
its step as `steps[2] (pay): ...`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from checks.duration import Duration
from checks.flow_spec import SaveName, StepName, shared_step_problems
from checks.spec import ProbeSpec
from checks.template import placeholders

ACTIONS = ("goto", "click", "fill", "select", "press", "wait_for", "expect", "save", "screenshot")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WaitFor(_Model):
    """What to wait for: exactly one of these."""

    selector: str | None = Field(default=None, description="An element to become visible.")
    text: str | None = Field(default=None, description="A text to appear on the page.")
    url: str | None = Field(
        default=None, description="A regular expression the page's URL comes to match."
    )
    request: str | None = Field(
        default=None,
        description="A regular expression the URL of a finished network request matches, "
        "e.g. /api/pay.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> WaitFor:
        given = [name for name in ("selector", "text", "url", "request") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of selector, text, url, request "
                f"(got {', '.join(given) or 'none'}), e.g. wait_for: {{selector: '#done'}}"
            )
        for name in ("url", "request"):
            _compiles(getattr(self, name), name)
        return self


class BrowserExpect(_Model):
    """What the page must show now: at least one of these."""

    visible: str | None = Field(default=None, description="A selector that must be visible.")
    text: str | None = Field(default=None, description="A text the page must show.")
    text_absent: str | None = Field(default=None, description="A text the page must not show.")
    url: str | None = Field(default=None, description="A regular expression the URL matches.")
    no_console_error: str | None = Field(
        default=None,
        description="A regular expression no console error or uncaught exception so far may "
        "match ('.' for none at all).",
    )

    @model_validator(mode="after")
    def _something(self) -> BrowserExpect:
        fields = ("visible", "text", "text_absent", "url", "no_console_error")
        if not any(getattr(self, name) is not None for name in fields):
            raise ValueError(f"give at least one of {', '.join(fields)}")
        _compiles(self.url, "url")
        _compiles(self.no_console_error, "no_console_error")
        return self


class SaveFrom(_Model):
    """Where a saved value comes from: an element's text, or one of its attributes."""

    selector: str
    attribute: str | None = Field(default=None, description="Default: the element's text.")


class BrowserStep(_Model):
    """One thing a customer does on the page (see the module docstring)."""

    name: StepName
    goto: str | None = None
    click: str | None = None
    fill: str | None = None
    select: str | None = None
    press: str | None = None
    wait_for: WaitFor | None = None
    expect: BrowserExpect | None = None
    save: dict[SaveName, SaveFrom] | None = None
    screenshot: bool | None = None
    value: str | None = Field(
        default=None, description="The text `fill` types or the option `select` picks."
    )
    key: str | None = Field(default=None, description="The key `press` presses, e.g. Enter.")
    frame: str | None = Field(
        default=None, description="A selector of the iframe the step's selector is in."
    )
    timeout: Duration | None = Field(
        default=None, description="This step's own limit (default: the check's step_timeout)."
    )
    always: bool = Field(
        default=False, description="Run even after an earlier step failed (cleanup)."
    )

    @model_validator(mode="after")
    def _one_action(self) -> BrowserStep:
        given = [name for name in ACTIONS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                f"step {self.name!r}: give exactly one action of {', '.join(ACTIONS)} "
                f"(got {', '.join(given) or 'none'})"
            )
        if self.action in ("fill", "select") and self.value is None:
            raise ValueError(f"step {self.name!r}: {self.action} needs a value")
        if self.action == "press" and not self.key:
            raise ValueError(f"step {self.name!r}: press needs a key, e.g. key: Enter")
        return self

    @property
    def action(self) -> str:
        return next(name for name in ACTIONS if getattr(self, name) is not None)

    @property
    def saves(self) -> dict[str, SaveFrom]:
        return self.save or {}

    def used_names(self) -> list[str]:
        """Every placeholder this step uses, in order, once each (malformed ones too)."""
        parts = (self.goto, self.value, self.wait_for, self.expect)
        texts: list[str] = []
        for part in parts:
            if isinstance(part, BaseModel):
                texts += [v for v in part.model_dump().values() if isinstance(v, str)]
            elif part is not None:
                texts.append(part)
        return list(dict.fromkeys(name for text in texts for name in placeholders(text)))


class BrowserCheckSpec(ProbeSpec):
    """`kind: browser`: a journey in real Chromium, such as a JavaScript checkout."""

    kind: Literal["browser"] = "browser"
    url: str = Field(
        default="/",
        description="What `goto` paths are joined to (default: the site itself).",
    )
    timeout: Duration = Field(
        default=timedelta(seconds=60),
        description="Give up on the whole journey after this long, cleanup steps included.",
    )
    slow_after: Duration = Field(
        default=timedelta(seconds=20),
        description="A journey that passes but takes longer than this is `slow`.",
    )
    lcp_slow_after: Duration = Field(
        default=timedelta(seconds=4),
        description="A page whose Largest Contentful Paint comes later than this makes the "
        "journey `slow` (4s is where Google's Web Vitals call LCP poor).",
    )
    step_timeout: Duration = Field(
        default=timedelta(seconds=10),
        description="How long a step waits for its element, text or page (e.g. a button that "
        "never appears is `element_missing` after this).",
    )
    third_party: list[str] = Field(
        default_factory=list,
        description="Origins besides the site's own whose failed requests fail the journey "
        "(`request_failed`), e.g. https://js.stripe.com.",
    )
    steps: list[BrowserStep] = Field(min_length=1)

    @field_validator("steps")
    @classmethod
    def _consistent_steps(cls, steps: list[BrowserStep]) -> list[BrowserStep]:
        problems = shared_step_problems(steps)
        if problems:
            raise ValueError("; ".join(problems))
        return steps

    @field_validator("third_party")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if not re.match(r"^https?://[^/\s]+/?$", origin):
                raise ValueError(f"must be origins such as https://js.stripe.com (got {origin!r})")
        return [origin.rstrip("/") for origin in origins]


def _compiles(pattern: str | None, name: str) -> None:
    if pattern is None:
        return
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{name}: {pattern!r} is not a regular expression: {exc}") from None
