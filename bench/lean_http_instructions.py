"""Instructions per `http` probe, counted by valgrind's callgrind: repeatable whatever the load.

    .venv/bin/python -m bench.lean_http_instructions                      # this checkout
    .venv/bin/python -m bench.lean_http_instructions \\
        --code main=/work/main/.venv/bin/python:/work/main --code branch=.venv/bin/python:.

CPU time on a shared machine moves by tens of percent with the neighbours' load; the number of
instructions a process executes does not. For each `--code` (a label, an interpreter and the
checkout whose `checks/` it imports) this runs, under
`valgrind --tool=callgrind`, one process that sends `--small` probes and one that sends
`--large`, one after the other (concurrency 1, uvloop, a fresh connection each) to
bench/target.py, which runs in its own process outside valgrind so that only the prober is
counted. Start-up (interpreter, imports, the first probe's caches) is the same in both, so

    instructions per probe = (Ir(large) - Ir(small)) / (large - small)

Variants (`--variant`, default both):

- `probe`: `checks.http.probe_http` through the lean transport (as `new_http_transport`), the
  whole probe: request, body, judging, evidence;
- `exchange`: the lean transport's `exchange` alone.

The probing loop itself is this file run as a script with `--loop` (it imports nothing of
bench/, so an older checkout without this file can be measured too). PYTHONHASHSEED is fixed
so that two runs of one checkout give the same count to within a few hundred instructions a
probe. Each process takes about a minute for 2,000 probes under valgrind.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

VARIANTS = ("probe", "exchange")
_TOTALS = re.compile(rb"^(?:summary|totals):\s+(\d+)", re.MULTILINE)
# A fixed hash seed: dict and set layouts (and so the instructions) the same in every run.
_ENV = {**os.environ, "PYTHONHASHSEED": "0"}


# -- the loop that valgrind watches --------------------------------------------------------


def _loop(*, root: str, url: str, probes: int, variant: str) -> None:
    """Send `probes` probes one after the other; imports `checks` from `root`."""
    sys.path[0] = root  # not bench/, whose modules must not shadow anything
    import time
    from datetime import UTC, datetime

    import uvloop

    from checks.http import HttpCheckSpec, Seen, probe_http
    from checks.lean_http import LeanTransport
    from checks.result import Outcome

    spec = HttpCheckSpec(url=url)

    def now() -> datetime:
        return datetime.now(UTC)

    async def run() -> None:
        lean = LeanTransport()  # what monitor.runtime.new_http_transport makes
        try:
            for _ in range(probes):
                if variant == "probe":
                    result = await probe_http(spec, transport=lean, now=now)
                    if result.outcome is not Outcome.OK:
                        raise SystemExit(f"probe failed: {result}")
                else:
                    seen = Seen(url=spec.url)
                    since = time.perf_counter()
                    status = await lean.exchange(
                        spec, seen=seen, since=since, clock=time.perf_counter
                    )
                    if status != 200:
                        raise SystemExit(f"exchange answered {status}")
        finally:
            await lean.close()

    uvloop.run(run())


# -- the driver ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Code:
    label: str
    python: str
    root: str


def _code(text: str) -> Code:
    label, _, rest = text.partition("=")
    python, _, root = rest.partition(":")
    if not (label and python and root):
        raise argparse.ArgumentTypeError(f"expected LABEL=PYTHON:ROOT, got {text!r}")
    return Code(label=label, python=python, root=str(Path(root).resolve()))


def warm_up(code: Code, *, url: str) -> None:
    """One probe outside valgrind, so that the measured processes find their bytecode
    compiled (written to `__pycache__` under the checkout: measure a copy of one you must
    not touch, e.g. `git -C /work/main archive HEAD | tar -x -C /tmp/main`)."""
    command = [code.python, str(Path(__file__).resolve()), "--loop", f"--root={code.root}"]
    command += [f"--url={url}", "--probes=1", "--variant=probe"]
    subprocess.run(command, env=_ENV, check=True)


def instructions(code: Code, *, url: str, probes: int, variant: str, folder: str) -> int:
    """Instructions (callgrind's Ir) of one process sending `probes` probes."""
    out = Path(folder, f"callgrind.{code.label}.{variant}.{probes}.out")
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        code.python,
        str(Path(__file__).resolve()),
        "--loop",
        f"--root={code.root}",
        f"--url={url}",
        f"--probes={probes}",
        f"--variant={variant}",
    ]
    done = subprocess.run(command, env=_ENV, capture_output=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr.decode(errors="replace")[-3000:])
        raise SystemExit(f"{code.label} {variant} {probes}: exit {done.returncode}")
    match = _TOTALS.search(out.read_bytes())
    if match is None:
        raise SystemExit(f"no totals in {out}")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", type=_code, action="append", help="LABEL=PYTHON:ROOT")
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=2000)
    parser.add_argument("--variant", choices=VARIANTS, action="append")
    parser.add_argument("--keep", metavar="DIR", help="keep callgrind's files in DIR")
    parser.add_argument("--loop", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--probes", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.loop:
        _loop(root=args.root, url=args.url, probes=args.probes, variant=args.variant[0])
        return

    root = Path(__file__).resolve().parent.parent
    codes = args.code or [Code(label="this", python=sys.executable, root=str(root))]
    variants = args.variant or list(VARIANTS)
    sys.path.insert(0, str(root))
    from bench.servers import target

    rows: list[tuple[str, str, int, int, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as scratch, target() as server:
        folder = args.keep or scratch
        os.makedirs(folder, exist_ok=True)
        for code in codes:
            warm_up(code, url=server.url)
        for variant in variants:
            for code in codes:
                counts = [
                    instructions(code, url=server.url, probes=n, variant=variant, folder=folder)
                    for n in (args.small, args.large)
                ]
                per_probe = (counts[1] - counts[0]) / (args.large - args.small)
                rows.append((variant, code.label, counts[0], counts[1], per_probe))
                print(
                    f"{variant} {code.label}: {counts[0]:,} Ir for {args.small}, "
                    f"{counts[1]:,} Ir for {args.large}: {per_probe:,.0f} Ir/probe",
                    flush=True,
                )
    print(f"\ninstructions per probe (callgrind Ir), ({args.large} - {args.small}) probes:\n")
    print("| variant | code | Ir small | Ir large | Ir/probe | vs first |")
    print("|---|---|---:|---:|---:|---:|")
    for variant, label, small, large, per_probe in rows:
        first = next(row[4] for row in rows if row[0] == variant)
        print(
            f"| {variant} | {label} | {small:,} | {large:,} | {per_probe:,.0f} "
            f"| {per_probe / first - 1:+.1%} |"
        )


if __name__ == "__main__":
    main()
