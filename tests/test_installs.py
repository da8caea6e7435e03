"""Reproducible installs (issue 11): requirements.lock pins everything pyproject.toml asks
for, with hashes, and an install without the `postgres` extra says what is missing."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from monitor.store import Store, StoreError

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.M)


def _pins() -> dict[str, str]:
    text = (ROOT / "requirements.lock").read_text()
    return {canonicalize_name(name): version for name, version in PIN.findall(text)}


def test_the_lock_pins_every_dependency_and_extra_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted += extra
    pins = _pins()
    for text in wanted:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{text} is not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (text, pins[name])
    # Every pinned package carries the hashes `pip install --require-hashes` checks.
    lock = (ROOT / "requirements.lock").read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9])", lock.split("\n", 2)[2])
    assert all("--hash=sha256:" in block for block in blocks if PIN.match(block))


def test_yarl_is_declared_since_the_code_imports_it() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "yarl" in {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    assert "asyncpg" not in {
        canonicalize_name(Requirement(r).name) for r in project["dependencies"]
    }


async def test_a_postgres_url_without_asyncpg_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # None in sys.modules is how an uninstalled module looks to `import`.
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    with pytest.raises(StoreError, match=r"pip install 'agency-monitor\[postgres\]'"):
        await Store.open("postgresql+asyncpg://monitor@127.0.0.1:1/monitor")
