"""Server settings: one object built once at the edge (CLI flags over ``WEBHOOK_*`` env over defaults).

Every ``serve`` flag has an environment variable: ``--max-body-bytes`` is ``WEBHOOK_MAX_BODY_BYTES``;
list settings take JSON (``WEBHOOK_SET='["podSecurity.level=restricted"]'``). The variables are read
here, by a dozen lines, rather than by pydantic-settings: that package and the providers it imports
(dotenv, the cloud secret stores, its own CLI) held 1.5 MB of every worker for one dictionary read
once at start. Names match case-insensitively, as pydantic-settings matched them.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import typing
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import alias_generators

ENV_PREFIX = "WEBHOOK_"

DEFAULT_POLICIES = Path(str(importlib.resources.files("webhook").joinpath("default_policies")))
"""The policy files installed with the package (in the repository, a link to ``policies/``): what
``serve`` and ``review`` use when ``--policies`` is not given, from whatever directory."""


class StrictModel(pydantic.BaseModel):
    """Base of the YAML/JSON files we read in Kubernetes style (fault injection, the emulator's
    webhook configurations): camelCase keys as written (snake_case accepted too), unknown keys
    refused so a typo is an error instead of a silently ignored setting, immutable once loaded."""

    model_config = pydantic.ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=alias_generators.to_camel,
        populate_by_name=True,
    )


class SettingsError(Exception):
    """A ``WEBHOOK_*`` variable whose value cannot be read at all (a list setting not holding JSON).

    Not a ``ValueError``: pydantic passes it through instead of folding it into a validation error,
    so the command can name the variable and show what it takes."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{ENV_PREFIX}{field.upper()}: cannot read its value")
        self.field = field


def _takes_json(annotation: Any) -> bool:
    """Whether a field's value comes from the environment as JSON (a tuple, possibly optional)."""
    if typing.get_origin(annotation) in (tuple, list, dict):
        return True
    return any(_takes_json(arg) for arg in typing.get_args(annotation) if arg is not type(None))


def environment_values(fields: dict[str, Any]) -> dict[str, Any]:
    """The ``WEBHOOK_<FIELD>`` variables set for ``fields`` (pydantic ``FieldInfo`` by name): raw
    strings, which validation converts as it converts a flag's string, JSON decoded for lists."""
    by_name = {key.upper(): value for key, value in os.environ.items() if key.upper().startswith(ENV_PREFIX)}
    values: dict[str, Any] = {}
    for name, field in fields.items():
        raw = by_name.get(ENV_PREFIX + name.upper())
        if raw is None:
            continue
        if _takes_json(field.annotation):
            try:
                values[name] = json.loads(raw)
            except ValueError:
                raise SettingsError(name) from None
        else:
            values[name] = raw
    return values


class ServeSettings(pydantic.BaseModel):
    """Built as ``ServeSettings(**flags)``: the values given win over ``WEBHOOK_*`` variables, which
    win over the defaults below (so tests building one directly see the environment too)."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    @pydantic.model_validator(mode="before")
    @classmethod
    def _from_environment(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {**environment_values(cls.model_fields), **data}

    host: str = "127.0.0.1"
    """Address to bind; the container image passes 0.0.0.0."""
    port: int = pydantic.Field(8443, ge=0, le=65535)
    cert: Path = Path("certs/tls.crt")
    key: Path = Path("certs/tls.key")
    client_ca: Path | None = None
    """When set, clients (the API server) must present a certificate signed by this CA (mutual TLS)."""
    policies: tuple[Path, ...] = (DEFAULT_POLICIES,)
    set: tuple[str, ...] = ()
    """``dotted.path=value`` overrides applied over the policy files."""
    kubernetes_version: str | None = pydantic.Field(None, pattern=r"^v?1\.[0-9]{1,3}(\.[0-9]+)?$")
    """The cluster's API server version (``1.33``): admission policies' expressions are checked at
    load as it checks a new policy, with the CEL libraries of its compatibility version; unset,
    the newest libraries there are."""
    log_format: Literal["json", "console"] = "json"
    log_level: str = "info"
    max_body_bytes: int = pydantic.Field(7 * 1024 * 1024, ge=1024)
    """An UPDATE review carries object and oldObject, each up to the API server's 3 MiB limit."""
    reload_interval: float = pydantic.Field(2.0, gt=0)
    """Seconds between polls of the policy files and certificate files for changes."""
    drain_seconds: float = pydantic.Field(5.0, ge=0)
    """After SIGTERM: fail /readyz at once, keep serving this long (endpoint removal lags), then stop."""
    max_json_depth: int = pydantic.Field(100, ge=8, le=250)
    """Nesting levels one review's body may have (see ``webhook.review.Limits``); deeper: HTTP 400."""
    max_json_containers: int = pydantic.Field(200_000, ge=100)
    """Objects and arrays one review's body may hold; more: HTTP 413."""
    max_json_values: int = pydantic.Field(500_000, ge=100)
    """Scalar values one review's body may hold; more: HTTP 413."""
    max_concurrent: int = pydantic.Field(256, ge=1)
    """Reviews processed at once; beyond it the server answers 429 with a JSON error."""
    default_timeout: float = pydantic.Field(10.0, gt=0, le=30)
    """Deadline when the API server sends no ``?timeout=`` (its own default is 10s)."""
    record: Path | None = None
    record_max_files: int = pydantic.Field(1000, ge=1)
    record_max_bytes: int = pydantic.Field(100 * 1024 * 1024, ge=1024)
    record_redact_env: tuple[str, ...] | None = None
    """Regexes (case-insensitive) of env var names whose ``value`` is redacted in recordings;
    ``None`` keeps the built-in list (PASS, PWD, SECRET, TOKEN, KEY, CRED, AUTH, PRIVATE, DSN)."""
    faults: Path | None = None
    admin_port: int | None = pydantic.Field(None, ge=0, le=65535)
    workers: int = pydantic.Field(1, ge=1, le=64)

    @property
    def kubernetes_minor(self) -> int | None:
        """N of ``kubernetes_version`` 1.N (or 1.N.P), or ``None``."""
        if self.kubernetes_version is None:
            return None
        return int(self.kubernetes_version.removeprefix("v").split(".")[1])
