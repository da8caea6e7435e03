"""The agency's report logo (`agency.report_logo`) as a data: URL: a local image file read
when the report is printed, or a data: URL as written. A PDF then embeds it without fetching
anything (monitor.reports.pdf allows data: URLs only)."""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
}
MAX_BYTES = 1_000_000  # a logo, not a photograph: the PDF is mailed every month
_DATA_URL = re.compile(r"data:(image/(?:png|jpeg|gif|svg\+xml));base64,([A-Za-z0-9+/=]+)")
_EXAMPLE = "such as /etc/monitor/logo.png or data:image/png;base64,iVBORw0..."


def logo_data_url(value: str) -> str:
    """`value` as a data: URL; ValueError saying what is wrong and what would do."""
    if value.startswith("data:"):
        match = _DATA_URL.fullmatch(value)
        if match is None:
            raise ValueError(
                f"must be a data:image/png;base64,... URL (png, jpeg, gif or svg+xml) or a "
                f"local image file {_EXAMPLE}"
            )
        try:
            base64.b64decode(match[2], validate=True)
        except binascii.Error:
            raise ValueError("the data: URL's base64 does not decode") from None
        return value
    if "://" in value:
        raise ValueError(
            f"must be a local image file or a data: URL (nothing is fetched from the network), "
            f"{_EXAMPLE} (got {value!r})"
        )
    path = Path(value).expanduser()
    mime = IMAGE_TYPES.get(path.suffix.lower())
    if mime is None:
        kinds = ", ".join(sorted(IMAGE_TYPES))
        raise ValueError(f"must be an image file ending in {kinds} (got {value!r})")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {value}: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise ValueError(f"{value} is {len(data)} bytes; a logo may have {MAX_BYTES} at most")
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"
