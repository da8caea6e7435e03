"""`monitor incidents`: a table for people, or JSON for scripts."""

from __future__ import annotations

import json
import sys

from monitor.serialize import incident_dict, iso
from monitor.store import Store


async def print_incidents(url: str, *, open_only: bool, as_json: bool, limit: int) -> None:
    store = await Store.open(url)
    try:
        incidents = await store.list_incidents(open_only=open_only, limit=limit)
    finally:
        await store.close()
    if as_json:
        json.dump({"incidents": [incident_dict(i) for i in incidents]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    if not incidents:
        print("no open incidents" if open_only else "no incidents")
        return
    rows: list[tuple[str, ...]] = [
        ("ID", "SEV", "STATUS", "OPENED (UTC)", "RESOLVED (UTC)", "SITE", "TITLE")
    ]
    for incident in incidents:
        rows.append(
            (
                incident.ref,
                str(int(incident.severity)),
                str(incident.status),
                iso(incident.opened_at) or "",
                iso(incident.resolved_at) or "-",
                incident.site,
                incident.title,
            )
        )
    print(format_table(rows))


def format_table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
