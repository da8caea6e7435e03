"""The languages client mails are written in: gettext catalogs, compiled when first used.

English is the source language (the msgids); every other language is a `.po` catalog at
`<locale dir>/<language>/LC_MESSAGES/messages.po`. The package ships German in
`incidents/locale/`; a configured locale directory adds languages or replaces shipped ones.
Catalogs are compiled in memory with Babel (`read_po`/`write_mo`), so no build step and no
`.mo` file can go stale. Keep them current with (see README, "Client mail languages"):

    pybabel extract -F babel.cfg -o incidents/locale/messages.pot .
    pybabel update -i incidents/locale/messages.pot -d incidents/locale
"""

from __future__ import annotations

import gettext
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

SOURCE_LANGUAGE = "en"
DOMAIN = "messages"
SHIPPED_LOCALE_DIR = Path(__file__).parent / "locale"


def catalog_path(language: str, locale_dir: Path) -> Path:
    return locale_dir / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def available_languages(locale_dir: Path | None = None) -> frozenset[str]:
    """English, every shipped catalog and every catalog in `locale_dir`."""
    found = {SOURCE_LANGUAGE}
    for folder in (SHIPPED_LOCALE_DIR, locale_dir):
        if folder is not None and folder.is_dir():
            found |= {
                entry.name
                for entry in folder.iterdir()
                if catalog_path(entry.name, folder).is_file()
            }
    return frozenset(found)


def translations(language: str, locale_dir: Path | None = None) -> gettext.NullTranslations:
    """The catalog of `language`: from `locale_dir` when it has one, else the shipped one.

    Raises ValueError for a language without a catalog, naming the ones there are.
    """
    return _translations(language, None if locale_dir is None else str(locale_dir))


@cache
def _translations(language: str, locale_dir: str | None) -> gettext.NullTranslations:
    if language == SOURCE_LANGUAGE:
        return NullTranslations()
    for folder in (Path(locale_dir) if locale_dir else None, SHIPPED_LOCALE_DIR):
        if folder is not None and catalog_path(language, folder).is_file():
            return _compile(catalog_path(language, folder), language)
    known = ", ".join(sorted(available_languages(Path(locale_dir) if locale_dir else None)))
    raise ValueError(f"no catalog for language {language!r} (languages: {known})")


def _compile(path: Path, language: str) -> Translations:
    with path.open("rb") as source:
        catalog = read_po(source, locale=language)
    compiled = BytesIO()
    # Fuzzy entries are guesses of `pybabel update`: English is better than a wrong sentence.
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)
