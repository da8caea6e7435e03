"""The `http` check: one request, classified."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from checks.spec import ProbeSpec

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
EXCERPT_BYTES = 2048


class HttpCheckSpec(ProbeSpec):
    """An HTTP request and what its answer must look like."""

    kind: Literal["http"] = "http"
    url: str = Field(
        default="/",
        description="A path joined to the site's url, or an absolute http(s) URL.",
    )
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = Field(default=None, description="Request body to send, as text.")
    expect_status: list[int | str] = Field(
        default_factory=lambda: ["200-399"],
        description='Accepted statuses: numbers or ranges such as "200-299". Default 200-399.',
    )
    body_contains: list[str] = Field(
        default_factory=list, description="Texts that must all appear in the body."
    )
    body_not_contains: list[str] = Field(
        default_factory=list, description="Texts that must not appear in the body."
    )
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, gt=0)
    max_redirects: int = Field(default=5, ge=0, le=20)
    verify_tls: bool = True
