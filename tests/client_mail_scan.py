"""The wording rules every client mail keeps, checked on every one any test sends.

`conftest.scan_client_mails` (autouse) records each client mail the mailers build, whatever
the transport (SMTP or `.eml` files), and fails the test at teardown when one of them shows an
outcome code, a `client/site/check` id or a header line smuggled in by a target. A test that
builds a client mail by hand from raw text, to test the MIME builder itself, opts out with
`@pytest.mark.raw_client_text`.
"""

from __future__ import annotations

import re

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
    faults = []
    for part, text in (
        ("subject", message.subject),
        ("text", message.text),
        ("html", message.html),
    ):
        code = CODES.search(text)
        if code:
            faults.append(f"{part} shows the outcome code {code.group(0)!r}")
        ident = _CHECK_ID.search(_URL.sub(" ", text))
        if ident:
            faults.append(f"{part} shows the id {ident.group(0)!r}")
        smuggled = _SMUGGLED.search(text)
        if smuggled:
            faults.append(f"{part} shows a header line {smuggled.group(0)!r}")
    return faults
