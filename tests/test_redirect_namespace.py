"""Redirect hops from a public address into private, link-local and loopback addresses, on
real servers inside a network namespace this test makes (see tests/netns_redirects.py): each
is refused with no connection to its target, and followed (one connection) only with
`allow_private_redirects: true`, on the lean transport, aiohttp, page assets and flows."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import skip_unless_required

ROOT = Path(__file__).resolve().parent.parent
TRANSPORTS = ("lean", "aiohttp", "page", "flow")
HOPS = ("private", "link-local", "loopback")


def can_make_namespaces() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(["unshare", "-Urn", "true"], capture_output=True, timeout=10)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def results() -> dict[tuple[str, str, bool], dict[str, Any]]:
    if not can_make_namespaces():
        skip_unless_required("cannot make a user and network namespace (unshare -Urn)")
    run = subprocess.run(
        ["unshare", "-Urn", sys.executable, "-m", "tests.netns_redirects"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(run.stdout)
    return {(row["transport"], row["hop"], row["allow"]): row for row in rows}


@pytest.mark.parametrize("hop", HOPS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_hop_from_a_public_address_into_an_internal_one_is_refused_unconnected(
    results: dict[tuple[str, str, bool], dict[str, Any]], transport: str, hop: str
) -> None:
    row = results[(transport, hop, False)]
    assert row["connections"] == 0, row
    if transport == "page":
        assert row["outcome"] == "broken_asset", row
        assert "redirect to an internal address refused" in row["error"]
    else:
        assert row["outcome"] == "redirect_refused", row
        assert f"a {hop} address" in row["error"]


@pytest.mark.parametrize("hop", HOPS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_allow_private_redirects_follows_the_same_hop(
    results: dict[tuple[str, str, bool], dict[str, Any]], transport: str, hop: str
) -> None:
    row = results[(transport, hop, True)]
    assert row["outcome"] == "ok", row
    assert row["connections"] == 1, row
