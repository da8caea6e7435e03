"""Fail when pyproject.toml asks for a package that requirements.lock did not install.

`pip check` looks at a package's base dependencies only; this also checks the extras that
`make` installs (test, postgres), so a dependency added without `make lock` stops the build
instead of slipping in unpinned.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, requires, version

from packaging.requirements import Requirement

EXTRAS = ("", "test", "postgres")


def main() -> int:
    problems = []
    for text in requires("agency-monitor") or []:
        requirement = Requirement(text)
        marker = requirement.marker
        if marker is not None and not any(marker.evaluate({"extra": e}) for e in EXTRAS):
            continue
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            problems.append(f"{requirement} is not in requirements.lock")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            problems.append(f"{requirement} but requirements.lock pins {installed}")
    for problem in problems:
        print(f"pyproject.toml wants {problem}: run `make lock`", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
