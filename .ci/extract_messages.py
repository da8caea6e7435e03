"""Write incidents/locale/messages.pot as `pybabel extract` finds the messages (babel.cfg),
reproducibly: sorted, without source locations and without the dates in its header, so the same
code always gives the same file (`make messages`; tests/test_i18n.py checks the shipped one).

Usage: python .ci/extract_messages.py [OUTPUT]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from babel.messages.frontend import CommandLineInterface

ROOT = Path(__file__).resolve().parent.parent
POT = ROOT / "incidents" / "locale" / "messages.pot"


def extract(output: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "messages.pot"
        CommandLineInterface().run(
            [
                "pybabel",
                "--quiet",
                "extract",
                "-F",
                str(ROOT / "babel.cfg"),
                "--no-location",
                "--sort-output",
                "--project",
                "agency-monitor",
                "--copyright-holder",
                "agency-monitor contributors",
                "-o",
                str(raw),
                str(ROOT),
            ]
        )
        lines = raw.read_text(encoding="utf-8").splitlines(keepends=True)
    # What changes with the day (or year) it runs, not with the code.
    dated = ('"POT-Creation-Date:', "# Copyright (C) ", "# FIRST AUTHOR ")
    kept = [line for line in lines if not line.startswith(dated)]
    output.write_text("".join(kept), encoding="utf-8")


if __name__ == "__main__":
    extract(Path(sys.argv[1]) if len(sys.argv) > 1 else POT)
