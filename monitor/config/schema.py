"""The JSON Schema of the config file, generated from the models, for editors and CI.

`config/monitor.schema.json` is this module's output, committed; a test keeps it in sync and
`monitor schema --write` regenerates it.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from checks.duration import format_duration
from monitor.config.models import MonitorConfig

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:agency-monitor:config:monitor"
SCHEMA_PATH = Path("config/monitor.schema.json")
"""Where the committed schema lives, relative to the repository root."""


# The loader substitutes ${VAR} before validating, so `port: ${MONITOR_PORT:-9464}` is a
# valid file; the schema lets a reference stand wherever a constrained scalar goes.
_ENV_REFERENCE_DEF = "EnvReference"
_ENV_REFERENCE = {
    "type": "string",
    "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}",
    "description": "${VAR} or ${VAR:-default}, substituted from the environment when the "
    "file is loaded, then validated as the value it replaces.",
}
_METADATA = ("title", "description", "default", "examples")


class _Generator(GenerateJsonSchema):
    def encode_default(self, dft: Any) -> Any:
        # pydantic writes a bare timedelta default as ISO 8601 ("PT1M"), which the Duration
        # pattern rejects; show it the way an operator writes it ("1m").
        if isinstance(dft, timedelta):
            return format_duration(dft)
        return super().encode_default(dft)


def json_schema() -> dict[str, Any]:
    """The schema of the YAML config file (JSON Schema 2020-12)."""
    generated = _allow_env_references(MonitorConfig.model_json_schema(schema_generator=_Generator))
    generated.pop("title", None)
    generated["$defs"][_ENV_REFERENCE_DEF] = _ENV_REFERENCE
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        "title": "Agency monitor configuration",
        "description": "The YAML file `monitor run --config` reads. Text values may hold "
        "${VAR} or ${VAR:-default}, substituted from the environment; $$ is a literal $.",
        **generated,
    }


def _allow_env_references(node: Any) -> Any:
    if isinstance(node, list):
        return [_allow_env_references(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _allow_env_references(value) for key, value in node.items()}
    constrained = node.get("type") in ("integer", "number", "boolean") or (
        node.get("type") == "string" and any(k in node for k in ("pattern", "enum", "const"))
    )
    if not constrained:
        return node
    outer = {key: node.pop(key) for key in _METADATA if key in node}
    return {**outer, "anyOf": [node, {"$ref": f"#/$defs/{_ENV_REFERENCE_DEF}"}]}


def render_json_schema() -> str:
    """The schema as committed: pretty-printed, keys sorted, with a trailing newline."""
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json_schema(path: Path) -> None:
    """Write the schema to `path` (normally `SCHEMA_PATH`), creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_json_schema(), encoding="utf-8")
