"""Client mails in the client's language: the shipped German catalog is complete, a German
client reads German (subject and body) in the same thread, and a dropped-in catalog adds a
language."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po
from pydantic import ValidationError

from incidents import i18n
from incidents.outgoing import MessageKind
from monitor.config.models import MonitorConfig
from tests.test_messages import CLIENT, CTX, RESOLVED, email

ROOT = Path(__file__).resolve().parent.parent
GERMAN = ROOT / "incidents" / "locale" / "de" / "LC_MESSAGES" / "messages.po"


def used_msgids() -> set[str]:
    """Every msgid the code and the templates use, found as `pybabel extract` finds them."""
    method_map = [("**.py", "python"), ("templates/**.j2", "jinja2")]
    options = {
        "templates/**.j2": {
            "extensions": "jinja2.ext.i18n",
            "trim_blocks": "True",
            "lstrip_blocks": "True",
        }
    }
    found = set()
    for _, _, message, _, _ in extract_from_dir(
        str(ROOT / "incidents"), method_map=method_map, options_map=options
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_msgid_in_use_has_a_german_translation() -> None:
    with GERMAN.open("rb") as source:
        catalog = read_po(source, locale="de")
    used = used_msgids()
    assert len(used) > 50  # the extraction found the templates and the titles
    untranslated = sorted(
        msgid
        for msgid in used
        if (entry := catalog.get(msgid)) is None or not entry.string or entry.fuzzy
    )
    assert untranslated == []
    # Placeholders of each translation match its msgid's (python-format).
    problems = [(entry.id, errors) for entry, errors in catalog.check() if errors]
    assert problems == []


def test_the_shipped_template_is_what_make_messages_extracts(tmp_path: Path) -> None:
    extracted = tmp_path / "messages.pot"
    subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "extract_messages.py"), str(extracted)], check=True
    )
    shipped = ROOT / "incidents" / "locale" / "messages.pot"
    # `make messages` writes it; a msgid added to the code without it fails here.
    assert extracted.read_text(encoding="utf-8") == shipped.read_text(encoding="utf-8")


def test_a_german_client_gets_german_mails_in_the_same_thread() -> None:
    german = replace(CLIENT, language="de")
    _ = i18n.translations("de").gettext
    for kind, incident, first in (
        (MessageKind.OPENED, None, True),
        (MessageKind.RESOLVED, RESOLVED, False),
    ):
        english = email(kind, incident=incident, first_in_thread=first, note="Disk replaced.")
        mail = email(
            kind, incident=incident, client=german, first_in_thread=first, note="Disk replaced."
        )
        assert (mail.message_id == english.message_id) is first  # a root id is fixed
        assert (mail.in_reply_to, mail.references) == (english.in_reply_to, english.references)
        assert mail.to == english.to
        for body in (mail.text, mail.html):
            assert _("Hello %(name)s,") % {"name": "Acme GmbH"} in body
            assert "Hello" not in body and "What is affected" not in body
            assert "März 2024" in body  # dates in German words
            assert "Reply to this email" not in body
            assert _("Reply to this email to reach the team working on it.") in body
    opened = email(MessageKind.OPENED, client=german)
    assert opened.subject == "[INC-42] Schweregrad 1: shop.acme.example ist ausgefallen"
    resolved = email(MessageKind.RESOLVED, client=german, first_in_thread=False, note="Fertig.")
    assert resolved.subject == "[INC-42] Behoben: shop.acme.example ist ausgefallen"
    assert "Die Störung dauerte 2 Std." in resolved.text
    assert "Fertig." in resolved.text


def test_on_call_mails_stay_english_for_a_german_client() -> None:
    page = email(MessageKind.PAGE, client=replace(CLIENT, language="de"))
    assert page.subject.startswith("[INC-42] PAGE Severity 1: shop.acme.example is down")
    assert "Schweregrad" not in page.text


def _config(language: str, locale_dir: Path | None = None) -> MonitorConfig:
    return MonitorConfig.model_validate(
        {
            "notifications": {"locale_dir": str(locale_dir) if locale_dir else None},
            "clients": [
                {
                    "id": "acme",
                    "language": language,
                    "sites": [
                        {"id": "shop", "url": "https://shop.example", "checks": [{"id": "h"}]}
                    ],
                }
            ],
        }
    )


def test_a_language_without_a_catalog_is_refused_and_a_dropped_in_catalog_adds_it(
    tmp_path: Path,
) -> None:
    with pytest.raises(ValidationError, match=r"clients\[0\]\.language: no catalog for 'fr'"):
        _config("fr")
    catalog = Catalog(locale="fr")
    catalog.add("Hello %(name)s,", "Bonjour %(name)s,", flags=["python-format"])
    folder = tmp_path / "fr" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    with (folder / "messages.po").open("wb") as target:
        write_po(target, catalog)
    assert _config("fr", tmp_path).clients[0].language == "fr"
    mail = email(
        MessageKind.OPENED,
        client=replace(CLIENT, language="fr"),
        ctx=replace(CTX, locale_dir=tmp_path),
    )
    assert "Bonjour Acme GmbH," in mail.text
    # What the catalog lacks stays English rather than empty.
    assert "What is affected" in mail.text
