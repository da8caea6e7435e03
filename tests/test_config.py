"""Loading the YAML config: located problems, environment references, the JSON Schema."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from monitor.config import (
    ConfigError,
    ConfigProblem,
    MonitorConfig,
    configured_checks,
    json_schema,
    load_config,
    load_config_text,
    render_json_schema,
    write_json_schema,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "configs"
INVALID = FIXTURES / "invalid"
VALID = FIXTURES / "valid"
EXAMPLES = ROOT / "config" / "examples"
SCHEMA_FILE = ROOT / "config" / "monitor.schema.json"

CHECK_KEYS = (
    "id, name, role, interval, failures_to_open, successes_to_resolve, "
    "confirm_from_other_location, severity, timeout, "
    "slow_after, kind, url, method, headers, body, expect_status, body_contains, "
    "body_not_contains, max_body_bytes, max_redirects, allow_private_redirects, verify_tls, "
    "cert_expiry_warning"
)
CHECK0 = "clients[0].sites[0].checks[0]"

# file -> every problem it must produce, in order: (line, path, a phrase of the message)
EXPECTED: dict[str, list[tuple[int | None, str, str]]] = {
    "bad_duration.yaml": [
        (
            8,
            f"{CHECK0}.interval",
            "must be a duration such as 500ms, 30s, 5m, 4h or 1d (got '5 minutes')",
        )
    ],
    "unknown_key_typo.yaml": [
        (
            10,
            "clients[0].sites[0].checks[1].intervall",
            f"unknown key 'intervall'; did you mean 'interval'? (allowed: {CHECK_KEYS})",
        )
    ],
    "missing_env_var.yaml": [
        (
            10,
            f"{CHECK0}.headers.Authorization",
            "environment variable ACME_API_TOKEN is not set "
            "(use ${ACME_API_TOKEN:-default} for a default)",
        )
    ],
    "duplicate_client_id.yaml": [(14, "clients[2].id", "duplicate id 'acme' (first at line 2)")],
    "duplicate_site_id.yaml": [
        (8, "clients[0].sites[1].id", "duplicate id 'shop' (first at line 4)")
    ],
    "duplicate_check_id.yaml": [
        (11, "clients[0].sites[0].checks[2].id", "duplicate id 'home' (first at line 7)")
    ],
    "wrong_type_port.yaml": [(3, "server.port", "must be a valid integer")],
    "yaml_syntax_error.yaml": [
        (9, "", "invalid YAML: while parsing a flow sequence (line 8): expected ',' or ']'")
    ],
    "tab_indentation.yaml": [(4, "", "indent with spaces, not tabs")],
    "multiple_documents.yaml": [(8, "", "remove the extra '---'")],
    "negative_failures_to_open.yaml": [
        (10, f"{CHECK0}.failures_to_open", "must be greater than or equal to 1 (got -1)")
    ],
    "bad_url.yaml": [
        (
            5,
            "clients[0].sites[0].url",
            "must be an absolute http(s) URL such as https://shop.example "
            "(got 'shop.acme.example')",
        )
    ],
    # A missing key has no line of its own: the mapping that lacks it is where to add it.
    "missing_site_url.yaml": [(5, "clients[0].sites[0].url", "missing required key 'url'")],
    "missing_clients.yaml": [(1, "clients", "missing required key 'clients'")],
    "empty.yaml": [(None, "", "is empty; expected a mapping with keys such as clients:")],
    "comments_only.yaml": [(None, "", "is empty")],
    "top_level_list.yaml": [(1, "", "must be a mapping with keys such as clients:")],
    "duplicate_yaml_key.yaml": [
        (10, f"{CHECK0}.interval", "duplicate key 'interval' (first at line 8)")
    ],
    "bad_slug_id.yaml": [
        (
            2,
            "clients[0].id",
            "must be an id of lower-case letters, digits, '.', '_' and '-'",
        )
    ],
    "unknown_severity.yaml": [(9, f"{CHECK0}.severity", "must be 1, 2, 3 or 4 (got 7)")],
    "empty_checks.yaml": [(6, "clients[0].sites[0].checks", "must not be empty")],
    "unquoted_number_header.yaml": [
        (9, f"{CHECK0}.headers.X-Shop-Id", "must be text (got 42; put it in quotes)")
    ],
    "malformed_reference.yaml": [
        (2, "database.url", "malformed reference '${DB PASSWORD}': write ${NAME}")
    ],
    "unknown_outcome.yaml": [
        (3, "severity_policy.outcomes.http_500", "invalid key: must be 'ok', 'slow', 'http_5xx'")
    ],
    "unknown_tag.yaml": [
        (5, "clients[0].sites[0].url", "unknown tag '!env'; for the environment write ${NAME}")
    ],
    "three_problems.yaml": [
        (2, "server.port", "must be less than or equal to 65535 (got 70000)"),
        (10, f"{CHECK0}.interval", "must be a duration"),
        (12, "clients[0].sites[0].checks[1].methd", "unknown key 'methd'; did you mean 'method'?"),
    ],
}


def problems_of(path: Path, environ: dict[str, str] | None = None) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=environ or {})
    return caught.value.problems


def problems_of_text(text: str, environ: dict[str, str]) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, filename="monitor.yaml", environ=environ)
    return caught.value.problems


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_invalid_config_names_file_line_path_and_fix(name: str) -> None:
    path = INVALID / name
    problems = problems_of(path)
    found = [(p.file, p.line, p.path) for p in problems]
    assert found == [(str(path), line, where) for line, where, _ in EXPECTED[name]]
    for problem, (_, _, phrase) in zip(problems, EXPECTED[name], strict=True):
        assert phrase in problem.message


def test_every_invalid_fixture_has_expectations() -> None:
    assert sorted(p.name for p in INVALID.glob("*.yaml")) == sorted(EXPECTED)


def test_all_problems_of_a_file_are_reported_at_once() -> None:
    path = INVALID / "three_problems.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    lines = str(caught.value).splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [f"{path}:2", f"{path}:10", f"{path}:12"]


def test_problem_reads_file_line_path_message() -> None:
    problem = ConfigProblem(
        "config/monitor.yaml",
        42,
        "clients[0].sites[1].checks[2].interval",
        "must be a duration such as 500ms, 30s, 5m, 4h or 1d (got '5 minutes')",
    )
    assert str(problem) == (
        "config/monitor.yaml:42: clients[0].sites[1].checks[2].interval: "
        "must be a duration such as 500ms, 30s, 5m, 4h or 1d (got '5 minutes')"
    )
    assert str(ConfigProblem("monitor.yaml", None, "", "is empty")) == "monitor.yaml: is empty"


def test_unreadable_file_is_a_problem_too(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    [problem] = problems_of(missing)
    assert (problem.file, problem.line, problem.path) == (str(missing), None, "")
    assert "cannot be read" in problem.message


def test_duplicate_ids_are_reported_even_when_something_else_is_wrong() -> None:
    text = """\
clients:
  - id: acme
    sites:
      - id: shop
        url: https://shop.acme.example
        checks:
          - id: home
            interval: soon
          - id: home
"""
    problems = problems_of_text(text, {})
    assert [(p.line, p.path) for p in problems] == [
        (8, f"{CHECK0}.interval"),
        (9, "clients[0].sites[0].checks[1].id"),
    ]


# --- environment references ---------------------------------------------------------------

ENVIRONMENT = {
    "MONITOR_PER_HOST": "8",
    "ACME_API_TOKEN": "s3cr3t-token",
    "ACME_SHOP_ID": "0042",
}


def test_environment_references_are_substituted_with_defaults_and_escapes() -> None:
    config = load_config(VALID / "environment.yaml", environ=ENVIRONMENT)
    [check] = configured_checks(config)
    assert config.database.url == "sqlite+aiosqlite:///monitor.db"  # default, quoted
    assert config.server.port == 9464  # default of a plain scalar, validated as an int
    assert config.scheduler.per_host == 8  # from the environment, as an int
    assert config.clients[0].name == "Price $5 and Acme"
    assert config.clients[0].sites[0].url == "https://shop.acme.example"
    assert check.spec.verify_tls is True
    assert check.spec.headers == {
        "Authorization": "Bearer s3cr3t-token",
        "X-Shop-Id": "0042",  # stays text: YAML alone would read 0042 as the number 34
        "X-Literal": "${NOT_A_VARIABLE}",
    }


def test_environment_overrides_the_default() -> None:
    environ = {**ENVIRONMENT, "MONITOR_PORT": "10000", "ACME_VERIFY_TLS": "false"}
    config = load_config(VALID / "environment.yaml", environ=environ)
    assert config.server.port == 10000
    assert configured_checks(config)[0].spec.verify_tls is False


def test_an_empty_variable_takes_the_default() -> None:
    config = load_config(VALID / "environment.yaml", environ={**ENVIRONMENT, "MONITOR_PORT": ""})
    assert config.server.port == 9464


def test_every_missing_variable_is_reported() -> None:
    problems = problems_of(VALID / "environment.yaml", environ={"ACME_SHOP_ID": "1"})
    assert [(p.line, p.path, p.message) for p in problems] == [
        (
            6,
            "scheduler.per_host",
            "environment variable MONITOR_PER_HOST is not set "
            "(use ${MONITOR_PER_HOST:-default} for a default)",
        ),
        (
            18,
            f"{CHECK0}.headers.Authorization",
            "environment variable ACME_API_TOKEN is not set "
            "(use ${ACME_API_TOKEN:-default} for a default)",
        ),
    ]


SECRET = "hunter2-Sup3rSecret"


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("interval", "must be a duration such as 500ms, 30s, 5m, 4h or 1d"),
        ("failures_to_open", "must be a valid integer, unable to parse string as an integer"),
        ("severity", "must be 1, 2, 3 or 4"),
    ],
)
def test_a_value_from_the_environment_never_appears_in_messages(field: str, expected: str) -> None:
    text = f"""\
clients:
  - id: acme
    sites:
      - id: shop
        url: https://shop.acme.example
        checks:
          - id: home
            {field}: ${{SMTP_PASSWORD}}
"""
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, filename="monitor.yaml", environ={"SMTP_PASSWORD": SECRET})
    [problem] = caught.value.problems
    assert (problem.line, problem.path) == (8, f"{CHECK0}.{field}")
    assert problem.message == f"{expected} (value from ${{SMTP_PASSWORD}})"
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value.problems)


def test_a_secret_inside_a_larger_value_stays_hidden() -> None:
    text = """\
clients:
  - id: acme
    sites:
      - id: shop
        url: ${SHOP_SCHEME}://shop.acme.example
        checks:
          - id: home
"""
    [problem] = problems_of_text(text, {"SHOP_SCHEME": SECRET})
    assert problem.path == "clients[0].sites[0].url"
    assert problem.message == (
        "must be an absolute http(s) URL such as https://shop.example (value from ${SHOP_SCHEME})"
    )


# --- YAML features ------------------------------------------------------------------------


def test_merge_keys_let_explicit_keys_win() -> None:
    config = load_config(VALID / "merge_keys.yaml", environ={})
    checks = {c.check_id: c.spec for c in configured_checks(config)}
    assert checks["about"].interval == timedelta(seconds=30)
    assert checks["about"].failures_to_open == 2
    assert checks["about"].url == "https://shop.acme.example/about"
    assert checks["faq"].interval == timedelta(minutes=5)


def test_a_problem_in_a_merged_mapping_points_at_the_anchor() -> None:
    text = """\
clients:
  - id: acme
    sites:
      - id: shop
        url: https://shop.acme.example
        checks:
          - &page
            id: home
            timeout: forever
          - <<: *page
            id: about
            timeout: 5s
          - <<: *page
            id: faq
"""
    problems = problems_of_text(text, {})
    assert [(p.line, p.path) for p in problems] == [
        (9, f"{CHECK0}.timeout"),
        (9, "clients[0].sites[0].checks[2].timeout"),
    ]


# --- valid files and defaults ---------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_load_without_any_environment(path: Path) -> None:
    config = load_config(path, environ={})
    assert configured_checks(config)


def test_examples_exist() -> None:
    assert len(list(EXAMPLES.glob("*.yaml"))) >= 2


def test_configured_checks_apply_defaults_where_a_check_is_silent() -> None:
    config = load_config(VALID / "defaults.yaml", environ={})
    checks = {c.key: c for c in configured_checks(config)}
    home = checks["acme/shop/home"]
    assert home.spec.url == "https://shop.acme.example/"
    assert home.spec.interval == timedelta(minutes=2)
    assert home.spec.timeout == timedelta(seconds=7)
    assert home.ref.failures_to_open == 4
    checkout = checks["acme/shop/checkout"]
    assert checkout.spec.url == "https://shop.acme.example/store/checkout"
    assert checkout.spec.interval == timedelta(seconds=30)
    assert checkout.spec.timeout == timedelta(seconds=7)
    assert checkout.ref.failures_to_open == 1
    assert checks["acme/shop/status"].spec.url == "https://status.acme.example/ping"


def test_duplicate_ids_are_refused_in_configs_built_in_code() -> None:
    site = {"id": "shop", "url": "https://shop.example", "checks": [{"id": "home"}]}
    with pytest.raises(ValidationError, match="duplicate id 'acme'"):
        MonitorConfig.model_validate(
            {"clients": [{"id": "acme", "sites": [site]}, {"id": "acme", "sites": [site]}]}
        )


# --- JSON Schema --------------------------------------------------------------------------


def test_committed_schema_matches_the_models() -> None:
    committed = SCHEMA_FILE.read_text(encoding="utf-8")
    assert committed == render_json_schema(), (
        "config/monitor.schema.json is out of date: run `monitor schema --write`"
    )


def test_written_schema_is_the_rendered_one(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "monitor.schema.json"
    write_json_schema(target)
    assert json.loads(target.read_text(encoding="utf-8")) == json_schema()
    assert target.read_text(encoding="utf-8").endswith("}\n")


def schema_validator() -> Any:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize(
    "path", sorted(EXAMPLES.glob("*.yaml")) + sorted(VALID.glob("*.yaml")), ids=lambda p: p.name
)
def test_valid_files_satisfy_the_schema_references_included(path: Path) -> None:
    schema_validator().validate(yaml.safe_load(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize(
    "name", ["unknown_key_typo.yaml", "bad_duration.yaml", "unknown_severity.yaml"]
)
def test_schema_rejects_what_the_loader_rejects(name: str) -> None:
    document = yaml.safe_load((INVALID / name).read_text(encoding="utf-8"))
    assert list(schema_validator().iter_errors(document))


def test_schema_says_what_it_is() -> None:
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "Agency monitor configuration"
    assert schema["$defs"]["Defaults"]["properties"]["interval"]["default"] == "1m"


def test_an_empty_api_token_from_the_environment_means_no_token() -> None:
    text = (
        "api: {token: '${MONITOR_API_TOKEN:-}'}\n"
        "clients: [{id: a, sites: [{id: s, url: 'http://x', checks: [{id: h}]}]}]\n"
    )
    assert load_config_text(text, environ={}).api.token is None
    token = load_config_text(text, environ={"MONITOR_API_TOKEN": "t0k"}).api.token
    assert token is not None and token.get_secret_value() == "t0k"


@pytest.mark.parametrize(
    ("steps", "phrase"),
    [
        (
            "[{name: pay, method: POST, url: '/orders/{{order}}/pay'}]",
            "steps[0] (pay): uses {{order}}",
        ),
        (
            "[{name: product, url: /, save: {token: {regex: 'Order (DS-'}}}]",
            "steps[0] (product)",
        ),
        (
            "[{name: api, url: /api, save: {id: {json: '$.[[[bad'}}}]",
            "steps[0] (api)",
        ),
    ],
)
def test_a_flow_with_a_bad_step_is_rejected_naming_the_step(steps: str, phrase: str) -> None:
    text = (
        "clients:\n"
        "  - id: acme\n"
        "    sites:\n"
        "      - id: shop\n"
        "        url: http://shop.example\n"
        "        checks:\n"
        "          - id: checkout\n"
        "            kind: flow\n"
        f"            steps: {steps}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, filename="flow.yaml")
    message = str(caught.value)
    assert "flow.yaml:9: clients[0].sites[0].checks[0].steps" in message
    assert phrase in message


def test_an_alias_bomb_is_refused_quickly_naming_the_file(tmp_path: Path) -> None:
    # Nine levels of ten aliases each: 10^9 values from under a kilobyte of YAML.
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 10):
        levels.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(levels) + "\nclients: *a9\n")
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert time.monotonic() - started < 10
    [problem] = caught.value.problems
    assert problem.file == str(path) and problem.line is not None
    assert "expands to more than 100,000 values through aliases" in problem.message


def test_aliases_within_the_budget_still_expand() -> None:
    # Sites sharing one list of checks through an alias: expansion, but a modest one.
    checks = "checks: &checks [" + ", ".join(f"{{id: c{n}, url: /{n}}}" for n in range(20)) + "]"
    sites = "\n".join(
        f"      - {{id: s{n}, url: 'http://127.0.0.1:1', checks: *checks}}" for n in range(500)
    )
    text = f"x-shared:\n  {checks}\nclients:\n  - id: acme\n    sites:\n{sites}\n"
    text = text.replace("x-shared:\n  ", "").replace("checks: &checks", "shared: &checks", 1)
    with pytest.raises(ConfigError) as caught:
        load_config_text(text)
    # The only complaint is the unknown top-level key holding the anchor, not the expansion.
    assert [p.path for p in caught.value.problems] == ["shared"]


def _smtp_config(**smtp: Any) -> str:
    site = {"id": "shop", "url": "http://127.0.0.1:1", "checks": [{"id": "home"}]}
    return json.dumps(
        {"notifications": {"smtp": smtp}, "clients": [{"id": "acme", "sites": [site]}]}
    )


def test_smtp_login_over_plain_text_is_a_config_error_unless_the_relay_is_local() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(
            _smtp_config(host="smtp.agency.example", security="none", username="monitor"),
            filename="monitor.yaml",
        )
    [problem] = caught.value.problems
    assert problem.file == "monitor.yaml" and problem.path == "notifications.smtp"
    assert "password would travel in plain text to smtp.agency.example" in problem.message
    for host in ("127.0.0.1", "localhost", "[::1]"):
        config = load_config_text(_smtp_config(host=host, security="none", username="monitor"))
        assert config.notifications.smtp is not None
    config = load_config_text(_smtp_config(host="smtp.agency.example", username="monitor"))
    assert (
        config.notifications.smtp is not None and config.notifications.smtp.security == "starttls"
    )


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("agency:\n  timezone: Mars/Base\n", "agency.timezone"),
        (
            "clients:\n  - id: acme\n    business_hours:\n      timezone: Mars/Base\n",
            "clients[0].business_hours.timezone",
        ),
    ],
)
def test_unknown_time_zone_names_the_field_once(text: str, path: str) -> None:
    [problem] = [p for p in problems_of_text(text, {}) if "time zone" in p.message]
    assert problem.path == path
    assert str(problem) == (
        f"monitor.yaml:{problem.line}: {path}: "
        "unknown time zone, use an IANA name such as Europe/Berlin (got 'Mars/Base')"
    )
