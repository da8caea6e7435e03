"""The config file: models, loading with located errors, and its JSON Schema."""

from monitor.config.loader import (
    ConfigError,
    ConfigProblem,
    load_config,
    load_config_text,
    load_sections,
)
from monitor.config.models import (
    ConfiguredCheck,
    MonitorConfig,
    OperatorSections,
    configured_checks,
    with_cluster_overrides,
)
from monitor.config.schema import json_schema, render_json_schema, write_json_schema

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "ConfiguredCheck",
    "MonitorConfig",
    "OperatorSections",
    "configured_checks",
    "json_schema",
    "load_config",
    "load_config_text",
    "load_sections",
    "render_json_schema",
    "with_cluster_overrides",
    "write_json_schema",
]
