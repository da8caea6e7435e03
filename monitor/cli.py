"""The `monitor` command: parses arguments and calls into the package; nothing else."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from monitor.config import ConfigError, MonitorConfig, load_config, with_cluster_overrides
from monitor.logging_setup import configure_logging
from monitor.operator_cli import TOKEN_ENV, URL_ENV, OperatorContext
from monitor.store.errors import StoreError

log = logging.getLogger("monitor")

DEFAULT_CONFIG = "config/monitor.yaml"
T = TypeVar("T")
EXIT_CONFIG = 2
EXIT_USAGE = 2
_INCIDENT = re.compile(r"(?:INC-)?(\d{1,18})", re.IGNORECASE)
MAINTENANCE_COMMANDS = """\
subcommands:
  add SITE --from T --until T --by NAME [--reason TEXT]
                        add a window (`add` may be left out: `monitor maintenance SITE ...`)
  list [--site SITE] [--json]
                        windows in force or to come, one-off and recurring
  cancel ID --by NAME   end a window now (its paused clocks resume)

times are ISO 8601 with a zone, e.g. 2026-11-26T22:00:00Z or 2026-11-26T23:00:00+01:00
"""


def incident_number(text: str) -> int:
    """`INC-42`, `inc-42` or `42` -> 42: every command takes the ref the queue and mails show."""
    match = _INCIDENT.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an incident: write INC-42 or 42")
    return int(match.group(1))


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    configure_logging(fmt=args.log_format, level=args.log_level)
    try:
        code: int = args.handler(args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    except (StoreError, OSError) as exc:  # the database or a port is not there: one line
        log.error("%s: %s", type(exc).__name__, exc)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monitor", description="Uptime monitor that opens incidents on its own."
    )
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR")
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run", help="probe the configured checks until SIGINT/SIGTERM; SIGHUP reloads the config"
    )
    run.add_argument("--config", default=DEFAULT_CONFIG, help=f"default {DEFAULT_CONFIG}")
    run.add_argument("--location", help="where this process probes from (cluster.location)")
    run.add_argument("--worker-id", help="this process's name among those sharing the database")
    run.add_argument("--source-address", help="local IP address http probes connect from")
    run.set_defaults(handler=_run)

    check = commands.add_parser("check-config", help="validate a config file, start nothing")
    check.add_argument("file")
    check.set_defaults(handler=_check_config)

    incidents = commands.add_parser("incidents", help="list incidents from the database")
    source = incidents.add_mutually_exclusive_group()
    source.add_argument("--config", default=DEFAULT_CONFIG, help="read database.url from here")
    source.add_argument("--database", help="SQLAlchemy URL, e.g. sqlite+aiosqlite:///monitor.db")
    incidents.add_argument("--open", action="store_true", help="only open incidents")
    incidents.add_argument("--json", action="store_true", help="one JSON document")
    incidents.add_argument("--limit", type=int, default=100)
    incidents.set_defaults(handler=_incidents)

    demo = commands.add_parser("demo", help="run the monitor against a bundled demo shop")
    # The script's length is monitor.demo.timeline.DEMO_DURATION (not imported here: aiohttp).
    demo.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="1 runs the 170 s script (about 3 min) in real time; 2 runs it in 85 s",
    )
    demo.add_argument("--keep", metavar="DIR", help="keep the demo's database in DIR")
    demo.add_argument("--quiet", action="store_true", help="only the summary")
    demo.set_defaults(handler=_demo)

    shop = commands.add_parser("demo-shop", help="serve the demo shop alone (healthy)")
    shop.add_argument("--host", default="127.0.0.1")
    shop.add_argument("--port", type=int, default=8081)
    shop.set_defaults(handler=_demo_shop)

    sla = commands.add_parser("sla", help="when would an incident opened at --at be due?")
    sla.add_argument("--config", default=DEFAULT_CONFIG)
    sla.add_argument("--client", required=True)
    sla.add_argument("--severity", type=int, required=True, choices=(1, 2, 3, 4))
    sla.add_argument("--at", required=True, help="ISO 8601 with a zone, e.g. 2026-11-27T16:00Z")
    sla.set_defaults(handler=_sla)

    oncall = commands.add_parser("oncall", help="who is on call now (or at --at), until when")
    oncall.add_argument("--config", default=DEFAULT_CONFIG)
    oncall.add_argument("--at", help="ISO 8601 with a zone, e.g. 2026-03-30T07:00Z; default now")
    oncall.add_argument("--json", action="store_true", help="one JSON object")
    oncall.set_defaults(handler=_oncall)

    hashing = commands.add_parser(
        "hash-password",
        help="print an argon2id hash for operators[].password_hash (reads the password from "
        "a prompt, or from standard input when it is not a terminal)",
    )
    hashing.set_defaults(handler=_hash_password)

    def operator(name: str, help_text: str, **extra: Any) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text, **extra)
        command.add_argument(
            "--config",
            help=f"find the monitor in this file's server block (default {DEFAULT_CONFIG})",
        )
        command.add_argument(
            "--url", help=f"the running monitor, e.g. http://127.0.0.1:9464 (default ${URL_ENV})"
        )
        command.add_argument("--token", help=f"API token (default ${TOKEN_ENV})")
        command.add_argument(
            "--tz",
            help="show times in this IANA zone (default $TZ, else the config's agency.timezone)",
        )
        return command

    def incident_command(name: str, help_text: str) -> argparse.ArgumentParser:
        command = operator(name, help_text)
        command.add_argument("incident", type=incident_number, help="INC-42 or 42")
        return command

    queue = operator("queue", "the triage queue: open incidents nobody has responded to")
    queue.add_argument("--json", action="store_true")
    queue.set_defaults(handler=_queue)

    show = incident_command("show", "one incident: its clocks and its timeline")
    show.add_argument("--json", action="store_true", help="the API's whole object")
    show.set_defaults(handler=_show)

    ack = incident_command("ack", "acknowledge an incident (the first response)")
    ack.add_argument("--by", required=True, help="who responds")
    ack.add_argument("--json", action="store_true", help="print the whole incident")
    ack.set_defaults(handler=_ack)

    update = incident_command("update", "post a client update (emailed; resets the update clock)")
    update.add_argument("--by", required=True)
    update.add_argument("--text", required=True, help="what the client reads")
    update.add_argument(
        "--stage",
        choices=("investigating", "identified", "monitoring"),
        help="the stage shown with it on the client's status page",
    )
    update.add_argument(
        "--internal",
        action="store_true",
        help="an internal note: not mailed, never on the status page (public: false)",
    )
    update.add_argument("--json", action="store_true", help="print the whole incident")
    update.set_defaults(handler=_update)

    postmortem = incident_command(
        "postmortem", "attach a post-mortem (Markdown) to a resolved incident"
    )
    postmortem.add_argument("--by", required=True)
    postmortem.add_argument("--file", required=True, help="the Markdown file ('-': stdin)")
    postmortem.set_defaults(handler=_postmortem)

    resolve = incident_command("resolve", "resolve an incident by hand")
    resolve.add_argument("--by", required=True)
    resolve.add_argument("--note", default="")
    resolve.add_argument(
        "--force",
        action="store_true",
        help="resolve even while checks still fail (they must pass once to reopen)",
    )
    resolve.add_argument("--json", action="store_true", help="print the whole incident")
    resolve.set_defaults(handler=_resolve)

    maintenance = operator(
        "maintenance",
        "maintenance windows: add, list, cancel",
        description="Maintenance windows: while one lasts no incident opens for the site, and "
        "the SLA clocks of its open incident pause.",
        epilog=MAINTENANCE_COMMANDS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    maintenance.add_argument(
        "what",
        nargs="?",
        metavar="list|cancel|add|SITE",
        help="list, cancel ID, or add SITE (add: default)",
    )
    maintenance.add_argument("target", nargs="?", help="the window ID to cancel, or the SITE")
    maintenance.add_argument("--site", dest="only_site", help="list: only this client/site")
    maintenance.add_argument("--from", dest="starts_at", help="add: ISO 8601 with a zone")
    maintenance.add_argument("--until", dest="ends_at", help="add: ISO 8601 with a zone")
    maintenance.add_argument("--reason", default="")
    maintenance.add_argument("--by", help="who adds or cancels it")
    maintenance.add_argument("--json", action="store_true", help="list: one JSON document")
    maintenance.set_defaults(handler=_maintenance, full_help=maintenance.format_help)

    report = commands.add_parser("report", help="a client's monthly service report")
    report.add_argument("--config", default=DEFAULT_CONFIG)
    report.add_argument("--client", required=True, help="a client id of the config")
    report.add_argument("--month", required=True, help="YYYY-MM, in the client's time zone")
    report.add_argument("--format", choices=("html", "json", "pdf"), default="html")
    report.add_argument("--output", help="write to this file (default: standard output)")
    report.set_defaults(handler=_report)

    rollups = commands.add_parser("rollups", help="rebuild the daily uptime rollups")
    rollups.add_argument("action", choices=("rebuild",))
    rollups.add_argument("--config", default=DEFAULT_CONFIG)
    rollups.add_argument("--client", help="only this client id (default: every client)")
    rollups.add_argument("--since", help="YYYY-MM-DD (default: as far back as they are kept)")
    rollups.set_defaults(handler=_rollups)

    probe = commands.add_parser(
        "probe", help="run one check once and print its classified result with the evidence"
    )
    probe.add_argument("--config", default=DEFAULT_CONFIG, help=f"default {DEFAULT_CONFIG}")
    probe.add_argument("check", metavar="CLIENT/SITE/CHECK")
    probe.add_argument("--json", action="store_true", help="one JSON document")
    probe.set_defaults(handler=_probe)

    urls = commands.add_parser(
        "heartbeat-urls", help="the ping URL of every heartbeat check (they hold secrets)"
    )
    urls.add_argument("--config", default=DEFAULT_CONFIG, help=f"default {DEFAULT_CONFIG}")
    urls.add_argument("--json", action="store_true", help="one JSON document")
    urls.set_defaults(handler=_heartbeat_urls)

    schema = commands.add_parser("schema", help="print the config's JSON Schema")
    schema.add_argument("--write", action="store_true", help="write config/monitor.schema.json")
    schema.set_defaults(handler=_schema)

    rdap = commands.add_parser(
        "rdap-bootstrap", help="show or refresh the RDAP servers domain checks ask"
    )
    rdap.add_argument("--config", default=DEFAULT_CONFIG)
    rdap.add_argument(
        "--update",
        action="store_true",
        help="download rdap.bootstrap_url into rdap.bootstrap_file (replaced only if valid)",
    )
    rdap.set_defaults(handler=_rdap_bootstrap)
    return parser


async def _until_signalled(*, on_hangup: Callable[[], Awaitable[object]] | None = None) -> None:
    """Wait for SIGINT or SIGTERM; meanwhile each SIGHUP calls `on_hangup` (a reload)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[object]] = set()
    if on_hangup is not None:
        hangup = on_hangup

        def reload() -> None:
            task = asyncio.ensure_future(hangup())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, reload)
    await stop.wait()
    log.info("signal received: finishing probes in flight, then exiting")
    if reloads:
        await asyncio.gather(*reloads, return_exceptions=True)


def _run(args: argparse.Namespace) -> int:
    from monitor.app import running_monitor

    def load() -> MonitorConfig:
        # Also what a reload (SIGHUP) reads: the file as it is then, with the same flags.
        return with_cluster_overrides(
            load_config(args.config),
            location=args.location,
            worker_id=args.worker_id,
            source_address=args.source_address,
        )

    try:
        config = load()
    except ValidationError as exc:
        for error in exc.errors():
            flag = str(error["loc"][-1]).replace("_", "-") if error["loc"] else "flags"
            print(f"monitor run: --{flag}: {error['msg']}", file=sys.stderr)
        return 2
    _log_loaded(args.config, config)

    async def serve() -> None:
        async with running_monitor(config, config_path=args.config, load=load) as running:
            await _until_signalled(on_hangup=lambda: running.reloader.reload(trigger="SIGHUP"))

    _asyncio_run(serve())
    log.info("stopped")
    return 0


def _log_loaded(path: str, config: MonitorConfig) -> None:
    sites = sum(len(client.sites) for client in config.clients)
    checks = sum(len(site.checks) for client in config.clients for site in client.sites)
    log.info(
        "config loaded from %s: %d clients, %d sites, %d checks",
        path,
        len(config.clients),
        sites,
        checks,
        extra={"event": "config_loaded", "clients": len(config.clients), "checks": checks},
    )


def _check_config(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    sites = sum(len(client.sites) for client in config.clients)
    checks = sum(len(site.checks) for client in config.clients for site in client.sites)
    print(f"{args.file}: OK ({len(config.clients)} clients, {sites} sites, {checks} checks)")
    return 0


def _rdap_bootstrap(args: argparse.Namespace) -> int:
    import aiohttp

    from monitor.rdap_bootstrap import rdap_directory, update_bootstrap

    rdap = load_config(args.config).rdap
    if args.update:

        async def update() -> int:
            async with aiohttp.ClientSession(trust_env=False) as session:
                return await update_bootstrap(rdap, session=session)

        try:
            count = _asyncio_run(update())
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            print(
                f"monitor rdap-bootstrap: {rdap.bootstrap_url}: {exc or type(exc).__name__} "
                f"({rdap.bootstrap_file} unchanged)",
                file=sys.stderr,
            )
            return 1
        print(f"{rdap.bootstrap_file}: {count} suffixes from {rdap.bootstrap_url}")
        return 0
    servers = rdap_directory(rdap).servers
    source = rdap.bootstrap_file if Path(rdap.bootstrap_file).is_file() else "shipped bootstrap"
    print(f"{len(servers)} suffixes ({source}, {len(rdap.servers)} from rdap.servers)")
    for suffix in sorted(servers):
        print(f"  {suffix}: {servers[suffix]}")
    return 0


def _incidents(args: argparse.Namespace) -> int:
    from monitor.incident_list import print_incidents

    url = args.database or load_config(args.config).database.url
    _asyncio_run(print_incidents(url, open_only=args.open, as_json=args.json, limit=args.limit))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from monitor.demo.run import run_demo

    return _asyncio_run(run_demo(speed=args.speed, keep=args.keep, quiet=args.quiet))


def _demo_shop(args: argparse.Namespace) -> int:
    from monitor.demo.shop import ShopFaults, start_shop

    async def serve() -> None:
        runner, url = await start_shop(ShopFaults(), host=args.host, port=args.port)
        log.info("demo shop on %s (flip faults with POST %s/_demo/faults)", url, url)
        try:
            await _until_signalled()
        finally:
            await runner.cleanup()

    _asyncio_run(serve())
    return 0


def _sla(args: argparse.Namespace) -> int:
    from monitor.operator_cli import sla_answer

    config = load_config(args.config)
    try:
        print(sla_answer(config, client=args.client, severity=args.severity, at=args.at))
    except ValueError as exc:
        print(f"monitor sla: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def _oncall(args: argparse.Namespace) -> int:
    from monitor.config import load_sections
    from monitor.config.models import OncallSections
    from monitor.oncall_cli import oncall_answer, parse_instant

    # Only the rotation's sections: an operator's shell needs none of the secrets' variables.
    config = load_sections(args.config, OncallSections)
    try:
        at = datetime.now(UTC) if args.at is None else parse_instant(args.at)
    except ValueError as exc:
        print(f"monitor oncall: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(oncall_answer(config, at=at, as_json=args.json))
    return 0


def _report(args: argparse.Namespace) -> int:
    from monitor.clock import SystemClock
    from monitor.reports import ReportFormat, write_report

    config = load_config(args.config)
    try:
        data = _asyncio_run(
            write_report(
                config.database.url,
                config,
                client_id=args.client,
                month=args.month,
                fmt=ReportFormat(args.format),
                now=SystemClock().now(),
            )
        )
    except ValueError as exc:
        print(f"monitor report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.output:
        Path(args.output).write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0


def _rollups(args: argparse.Namespace) -> int:
    from monitor.clock import SystemClock
    from monitor.rollup_rebuild import parse_day, rebuild_rollups

    config = load_config(args.config)
    try:
        since = parse_day(args.since) if args.since else None
        sites = _asyncio_run(
            rebuild_rollups(config, client=args.client, since=since, now=SystemClock().now())
        )
    except ValueError as exc:
        print(f"monitor rollups: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"rollups rebuilt for {len(sites)} sites")
    return 0


def _probe(args: argparse.Namespace) -> int:
    """Exit 0 when the check passes, 1 when it fails, 2 for a bad config or unknown check."""
    from monitor.clock import SystemClock
    from monitor.operator_text import probe_text
    from monitor.probing import UnknownCheck, find_check, probe_now

    config = load_config(args.config)
    try:
        key = find_check(config, args.check).key
    except UnknownCheck as exc:
        print(f"monitor probe: {exc}", file=sys.stderr)
        return EXIT_USAGE
    result = _asyncio_run(probe_now(config, key, clock=SystemClock()))
    if args.json:
        document = {
            "check": key,
            "outcome": str(result.outcome),
            "ok": result.ok,
            "started_at": result.started_at.isoformat().replace("+00:00", "Z"),
            "latency": result.latency,
            "evidence": result.evidence.to_dict(),
        }
        print(json.dumps(document, indent=2))
    else:
        print(probe_text(key, result))
    return 0 if result.ok else 1


def _heartbeat_urls(args: argparse.Namespace) -> int:
    from monitor.heartbeat_tokens import ping_urls

    config = load_config(args.config)
    urls = ping_urls(config)
    if args.json:
        print(json.dumps([{"check": u.check_key, "url": u.url} for u in urls], indent=2))
        return 0
    if not urls:
        print("no heartbeat checks in this config")
        return 0
    width = max(len(u.check_key) for u in urls)
    for u in urls:
        print(f"{u.check_key:<{width}}  {u.url}")
    if config.server.public_url is None:
        print("(paths on the monitor's server; set server.public_url to print whole URLs)")
    return 0


def _operator(
    args: argparse.Namespace,
    method: str,
    path: str,
    body: Any = None,
    *,
    show: Callable[[Any, OperatorContext], str] | None = None,
) -> int:
    """Call the API; print the answer through `show`, or as JSON without one (or --json)."""
    import aiohttp

    from monitor.operator_cli import ApiError, call

    try:
        context = OperatorContext.from_args(
            config=args.config,
            default_config=DEFAULT_CONFIG,
            url=args.url,
            token=args.token,
            tz=args.tz,
            environ=os.environ,
        )
    except ValueError as exc:
        print(f"monitor {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        answer = _asyncio_run(call(context.url, method, path, token=context.token, body=body))
    except ApiError as exc:
        print(f"monitor {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE if exc.status < 500 else 1
    except aiohttp.ClientError as exc:
        print(
            f"monitor {args.command}: cannot reach the monitor at {context.url}: {exc} "
            f"(give --url, set {URL_ENV}, or --config with its server block)",
            file=sys.stderr,
        )
        return 1
    if show is None or getattr(args, "json", False):
        print(json.dumps(answer, indent=2))
    else:
        print(show(answer, context))
    return 0


def _queue(args: argparse.Namespace) -> int:
    from monitor.operator_text import queue_table

    return _operator(
        args,
        "GET",
        "/api/queue",
        show=lambda answer, ctx: queue_table(answer["queue"], zones=ctx.zones, now=_now()),
    )


def _show(args: argparse.Namespace) -> int:
    from monitor.operator_text import incident_details

    return _operator(
        args,
        "GET",
        f"/api/incidents/{args.incident}",
        show=lambda answer, ctx: incident_details(answer, zones=ctx.zones, now=_now()),
    )


def _done(action: str, by: str) -> Callable[[Any, OperatorContext], str]:
    from monitor.operator_text import action_line

    return lambda answer, ctx: action_line(action, answer, by=by, zones=ctx.zones)


def _ack(args: argparse.Namespace) -> int:
    path = f"/api/incidents/{args.incident}/acknowledge"
    return _operator(args, "POST", path, {"by": args.by}, show=_done("acknowledged", args.by))


def _update(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"by": args.by, "text": args.text, "public": not args.internal}
    if args.stage:
        body["stage"] = args.stage
    path = f"/api/incidents/{args.incident}/updates"
    return _operator(args, "POST", path, body, show=_done("updated", args.by))


def _postmortem(args: argparse.Namespace) -> int:
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    except OSError as exc:
        print(f"monitor postmortem: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    body = {"by": args.by, "text": text}
    return _operator(args, "POST", f"/api/incidents/{args.incident}/postmortem", body)


def _resolve(args: argparse.Namespace) -> int:
    body = {"by": args.by, "note": args.note, "force": args.force}
    path = f"/api/incidents/{args.incident}/resolve"
    return _operator(args, "POST", path, body, show=_done("resolved", args.by))


def _now() -> datetime:
    return datetime.now(UTC)


def _maintenance(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    def usage(message: str) -> int:
        print(f"monitor maintenance: {message}", file=sys.stderr)
        return EXIT_USAGE

    if args.what is None:  # `monitor maintenance` alone: what can it do?
        print(args.full_help(), file=sys.stderr)
        return EXIT_USAGE
    if args.what == "list":
        from monitor.operator_cli import maintenance_table

        query = f"?site={quote(args.only_site)}" if args.only_site else ""
        return _operator(
            args,
            "GET",
            f"/api/maintenance{query}",
            show=lambda answer, _: maintenance_table(answer["maintenance"]),
        )
    if args.what == "cancel":
        if not (args.target or "").isdigit():
            return usage(
                "cancel needs the window's ID, e.g. `monitor maintenance cancel 3 --by me`"
            )
        if not args.by:
            return usage("cancel needs --by (who cancels it)")
        return _operator(args, "DELETE", f"/api/maintenance/{args.target}", {"by": args.by})
    site = args.target if args.what == "add" else args.what
    missing = [
        flag
        for flag, value in (
            ("SITE", site),
            ("--from", args.starts_at),
            ("--until", args.ends_at),
            ("--by", args.by),
        )
        if not value
    ]
    if missing:
        return usage(
            f"adding a window needs {', '.join(missing)}, e.g. `monitor maintenance acme/shop "
            "--from 2026-11-26T22:00:00Z --until 2026-11-27T00:00:00Z --by alice`"
        )
    body = {
        "site": site,
        "starts_at": args.starts_at,
        "ends_at": args.ends_at,
        "reason": args.reason,
        "by": args.by,
    }
    return _operator(args, "POST", "/api/maintenance", body)


def _hash_password(args: argparse.Namespace) -> int:
    """Never from argv: a password there lands in the shell's history and in `ps`."""
    import getpass

    from monitor.passwords import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("the two passwords differ; nothing printed", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password.strip():
        print("the password is empty; nothing printed", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


def _schema(args: argparse.Namespace) -> int:
    from monitor.config.schema import json_schema, write_json_schema

    if args.write:
        target = Path("config/monitor.schema.json")
        write_json_schema(target)
        print(f"wrote {target}")
    else:
        print(json.dumps(json_schema(), indent=2, sort_keys=True))
    return 0


def _asyncio_run(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop where it is installed: a leaner loop means less of our own latency."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
