"""The wording rules every client mail keeps, checked on every one any test sends.

`conftest.scan_client_mails` (autouse) records each client mail the mailers build, whatever
the transport (SMTP or `.eml` files), and fails the test at teardown when one of them shows an
outcome code, a `client/site/check` id or a header line smuggled in by a target. A test that
builds a client mail by hand from raw text, to test the MIME builder itself, opts out with
`@pytest.mark.raw_client_text`. Mails written by another process (the demo, `monitor run` in
a subprocess) are never built here: such a test checks its `.eml` files with `eml_faults`.
"""

from __future__ import annotations

import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from checks.result import Outcome
from incidents.outgoing import Audience, OutgoingEmail

# Every outcome code but `ok`; `slow` only as a code in brackets ("(slow)"), since the word
# itself is plain English ("pages load slowly").
CODES = re.compile(
    r"\b("
    + "|".join(o.value for o in Outcome if o not in (Outcome.OK, Outcome.SLOW))
    + r")\b|\(slow\)"
)
# An id is three slugs joined by slashes; a URL's path can look the same, so URLs go first.
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
_CHECK_ID = re.compile(r"(?<![\w./-])[a-z][a-z0-9_-]*/[a-z0-9][a-z0-9_-]*/[a-z0-9][a-z0-9_-]*\b")
# What a hostile reason phrase tries to add to a mail (a header line in the body).
_SMUGGLED = re.compile(r"\b(Bcc|Cc|To|Subject):\s*\S+@", re.IGNORECASE)


def client_text_faults(message: OutgoingEmail) -> list[str]:
    """What breaks the client wording rules in `message`: [] for an on-call mail."""
    if message.audience is not Audience.CLIENT:
        return []
    return text_faults(subject=message.subject, text=message.text, html=message.html)


def eml_faults(folder: Path, *, contact: str) -> list[str]:
    """The same rules for the `.eml` files to `contact` that a `monitor` process (the demo,
    `monitor run` in a subprocess) wrote into `folder`: this test process never built them."""
    faults = []
    for path in sorted(folder.glob("*.eml")):
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        assert isinstance(message, EmailMessage)
        if contact not in str(message["To"]):
            continue
        parts = {
            part.get_content_subtype(): str(part.get_content())
            for part in message.walk()
            if part.get_content_type() in ("text/plain", "text/html")
        }
        found = text_faults(
            subject=str(message["Subject"]), text=parts.get("plain", ""), html=parts.get("html", "")
        )
        faults.extend(f"{path.name}: {fault}" for fault in found)
    return faults


def text_faults(*, subject: str, text: str, html: str) -> list[str]:
    faults = []
    for part, shown in (("subject", subject), ("text", text), ("html", html)):
        code = CODES.search(shown)
        if code:
            faults.append(f"{part} shows the outcome code {code.group(0)!r}")
        ident = _CHECK_ID.search(_URL.sub(" ", shown))
        if ident:
            faults.append(f"{part} shows the id {ident.group(0)!r}")
        smuggled = _SMUGGLED.search(shown)
        if smuggled:
            faults.append(f"{part} shows a header line {smuggled.group(0)!r}")
    return faults
