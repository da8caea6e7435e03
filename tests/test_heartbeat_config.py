"""Heartbeat checks in the YAML: located problems (file, line, field), tokens from the
environment that never show in an error, and the shipped example, uncommented, is valid."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from checks.heartbeat import HeartbeatCheckSpec, derived_token
from monitor.config import ConfigError, ConfigProblem, configured_checks, load_config_text
from monitor.heartbeat_tokens import ping_tokens

ROOT = Path(__file__).resolve().parent.parent
CHECK1 = "clients[0].sites[0].checks[1]"


def config_text(check: str, *, top: str = "") -> str:
    return f"""{top}clients:
  - id: acme
    sites:
      - id: shop
        url: https://shop.example
        checks:
          - id: home
          - id: backup
            kind: heartbeat
{check}"""


def problems(text: str, environ: dict[str, str] | None = None) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, filename="monitor.yaml", environ=environ or {})
    return caught.value.problems


def test_a_heartbeat_without_token_or_secret_is_refused_at_its_line() -> None:
    [problem] = problems(config_text("            period: 1d\n"))
    assert (problem.line, problem.path) == (8, CHECK1)
    assert "needs its own token (token: ${BACKUP_PING_TOKEN}) or heartbeat.secret" in (
        problem.message
    )


def test_a_blank_secret_from_the_environment_counts_as_none() -> None:
    top = "heartbeat:\n  secret: ${MONITOR_HEARTBEAT_SECRET:-}\n"
    [problem] = problems(config_text("            period: 1d\n", top=top))
    assert problem.path == CHECK1 and "needs its own token" in problem.message


def test_period_is_required_and_a_duration() -> None:
    top = "heartbeat: {secret: s3cret-value}\n"
    [missing] = problems(config_text("            grace: 5m\n", top=top))
    assert (missing.line, missing.path) == (9, f"{CHECK1}.period")  # the check, below `top`
    assert "missing required key 'period'" in missing.message
    [bad] = problems(config_text("            period: daily\n", top=top))
    assert (bad.line, bad.path) == (11, f"{CHECK1}.period")  # after the heartbeat line
    assert "must be a duration" in bad.message


def test_a_bad_token_from_the_environment_is_not_shown() -> None:
    text = config_text("            period: 1h\n            token: ${PING_TOKEN}\n")
    [problem] = problems(text, {"PING_TOKEN": "has spaces in it!"})
    assert (problem.line, problem.path) == (11, f"{CHECK1}.token")
    assert "16 to 128 letters" in problem.message
    assert "has spaces" not in str(problem)
    assert "PING_TOKEN" in str(problem)


def test_two_checks_with_one_token_are_refused() -> None:
    text = config_text(
        "            period: 1h\n            token: ${PING_TOKEN}\n"
        "          - id: import\n            kind: heartbeat\n            period: 1h\n"
        "            token: ${PING_TOKEN}\n"
    )
    [problem] = problems(text, {"PING_TOKEN": "a" * 32})
    assert "checks[2].token: the same token as acme/shop/backup" in problem.message


def test_tokens_come_from_the_environment_or_the_secret() -> None:
    text = config_text(
        "            period: 1h\n            token: ${PING_TOKEN}\n"
        "          - id: import\n            kind: heartbeat\n            period: 1h\n",
        top="heartbeat: {secret: '${MONITOR_HEARTBEAT_SECRET}'}\n",
    )
    config = load_config_text(
        text,
        filename="monitor.yaml",
        environ={"PING_TOKEN": "t" * 20, "MONITOR_HEARTBEAT_SECRET": "shh-secret"},
    )
    assert ping_tokens(config) == {
        "t" * 20: "acme/shop/backup",
        derived_token("shh-secret", "acme/shop/import"): "acme/shop/import",
    }
    backup = next(c for c in configured_checks(config) if c.check_id == "backup")
    # Defaults for a push check, not those of a probe: one missed ping opens.
    assert backup.spec.failures_to_open == 1 and backup.spec.successes_to_resolve == 1
    assert backup.host == "acme/shop/backup"


def test_the_shipped_example_is_valid_once_uncommented() -> None:
    shipped = (ROOT / "config" / "monitor.yaml").read_text()
    # The commented heartbeat section and the commented check at the end of the file.
    text = shipped.replace("# heartbeat:\n#   secret:", "heartbeat:\n  secret:")
    start = text.index("          # A nightly job")
    end = text.index("          # More check kinds")
    block = re.sub(r"(?m)^          # (- id: backup|  \w+:)", r"          \1", text[start:end])
    text = text[:start] + block + text[end:]
    config = load_config_text(
        text, filename="monitor.yaml", environ={"MONITOR_HEARTBEAT_SECRET": "x" * 32}
    )
    [backup] = [c for c in configured_checks(config) if isinstance(c.spec, HeartbeatCheckSpec)]
    assert backup.key == "demo/shop/backup"
    assert backup.spec.period.total_seconds() == 86400
