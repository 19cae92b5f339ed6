"""Mutating/ValidatingWebhookConfiguration YAML, parsed into typed, defaulted, validated structures.

Defaults are those of ``admissionregistration.k8s.io/v1`` (failurePolicy Fail, matchPolicy
Equivalent, timeoutSeconds 10, reinvocationPolicy Never, scope ``*``, service port 443, empty
selectors match everything). Validation follows the API server's (``ValidateWebhook`` in
pkg/apis/admissionregistration/validation): a configuration it would refuse is refused here too,
with the file, the document and the field named, so ``simulate`` never emulates an impossible
cluster. Configurations are ordered by name, as the API server orders them before calling their
webhooks in turn (``MutatingWebhookConfigurationSorter.ByName``).
"""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
import yaml
from pydantic import alias_generators

from webhook import config as webhook_config
from webhook import errors
from webhook.emulator import conditions

API_VERSION = "admissionregistration.k8s.io/v1"
Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT", "*"]
SUPPORTED_REVIEW_VERSIONS = ("v1", "v1beta1")


class InvalidInput(errors.WebhookError):
    """A file given to ``simulate``/``experiment`` is unreadable or not a valid configuration.

    The message names the file, the document and the field; the command exits with code 2.
    """


class LabelSelectorRequirement(webhook_config.StrictModel):
    key: str = pydantic.Field(min_length=1)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: tuple[str, ...] = ()

    @pydantic.model_validator(mode="after")
    def _values_fit_operator(self) -> LabelSelectorRequirement:
        # metav1validation.ValidateLabelSelectorRequirement
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError("values: must be specified when `operator` is 'In' or 'NotIn'")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError("values: may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
        return self


class LabelSelector(webhook_config.StrictModel):
    match_labels: dict[str, str] = {}
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.match_expressions


class ServiceReference(webhook_config.StrictModel):
    namespace: str = pydantic.Field(min_length=1)
    name: str = pydantic.Field(min_length=1)
    path: str | None = None
    port: int = pydantic.Field(443, ge=1, le=65535)

    @pydantic.field_validator("path")
    @classmethod
    def _absolute(cls, path: str | None) -> str | None:
        if path is not None and not path.startswith("/"):
            raise ValueError("must start with a '/'")
        return path


class ClientConfig(webhook_config.StrictModel):
    url: str | None = None
    service: ServiceReference | None = None
    ca_bundle: str | None = None
    """Base64 of PEM certificates; empty means the system trust roots, as in the API server."""

    @pydantic.model_validator(mode="after")
    def _one_target(self) -> ClientConfig:
        if (self.url is None) == (self.service is None):
            raise ValueError("exactly one of url or service is required")
        if self.url is not None:
            parsed = urllib.parse.urlsplit(self.url)
            if parsed.scheme != "https":
                raise ValueError("url: 'https' is the only allowed URL scheme")
            if not parsed.hostname:
                raise ValueError("url: host must be specified")
            if parsed.username or parsed.password:
                raise ValueError("url: user information is not permitted in the URL")
            if parsed.fragment or "#" in self.url:
                raise ValueError("url: fragments are not permitted in the URL")
            if parsed.query:
                raise ValueError("url: query parameters are not permitted in the URL")
        return self


class Rule(webhook_config.StrictModel):
    operations: tuple[Operation, ...] = pydantic.Field(min_length=1)
    api_groups: tuple[str, ...] = pydantic.Field(min_length=1)
    api_versions: tuple[str, ...] = pydantic.Field(min_length=1)
    resources: tuple[str, ...] = pydantic.Field(min_length=1)
    scope: Literal["Cluster", "Namespaced", "*"] = "*"

    @pydantic.model_validator(mode="after")
    def _wildcards_alone(self) -> Rule:
        # ValidateRule: "if '*' is present, must not specify other operations/groups/versions"
        for field in ("operations", "api_groups", "api_versions"):
            values = getattr(self, field)
            if "*" in values and len(values) > 1:
                raise ValueError(
                    f"{alias_generators.to_camel(field)}: if '*' is present, must not specify other values"
                )
        return self


class MatchCondition(webhook_config.StrictModel):
    name: str = pydantic.Field(min_length=1, max_length=63)
    expression: str = pydantic.Field(min_length=1)


_FQDN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class ValidatingWebhook(webhook_config.StrictModel):
    name: str
    client_config: ClientConfig
    rules: tuple[Rule, ...] = ()
    failure_policy: Literal["Ignore", "Fail"] = "Fail"
    match_policy: Literal["Exact", "Equivalent"] = "Equivalent"
    namespace_selector: LabelSelector = LabelSelector()
    object_selector: LabelSelector = LabelSelector()
    side_effects: Literal["None", "NoneOnDryRun"]
    """v1 accepts only these two; ``Some``/``Unknown`` were v1beta1 values."""
    timeout_seconds: int = pydantic.Field(10, ge=1, le=30)
    admission_review_versions: tuple[str, ...] = pydantic.Field(min_length=1)
    match_conditions: tuple[MatchCondition, ...] = pydantic.Field((), max_length=64)

    @pydantic.field_validator("name")
    @classmethod
    def _fully_qualified(cls, name: str) -> str:
        # IsFullyQualifiedName: a DNS subdomain with at least three segments
        if len(name) > 253 or not _FQDN.match(name) or name.count(".") < 2:
            raise ValueError("should be a domain with at least three segments separated by dots")
        return name

    @pydantic.field_validator("admission_review_versions")
    @classmethod
    def _known_version(cls, versions: tuple[str, ...]) -> tuple[str, ...]:
        if not any(v in SUPPORTED_REVIEW_VERSIONS for v in versions):
            raise ValueError("must include at least one of v1, v1beta1")
        return versions

    @pydantic.model_validator(mode="after")
    def _conditions_compile(self) -> ValidatingWebhook:
        seen: set[str] = set()
        for index, condition in enumerate(self.match_conditions):
            if condition.name in seen:
                raise ValueError(f"matchConditions[{index}].name: Duplicate value: {condition.name!r}")
            seen.add(condition.name)
            problem = conditions.compile_error(condition.expression)
            if problem:
                raise ValueError(f"matchConditions[{index}].expression: compilation failed: {problem}")
        return self


class MutatingWebhook(ValidatingWebhook):
    reinvocation_policy: Literal["Never", "IfNeeded"] = "Never"


class Metadata(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore", frozen=True)
    name: str = pydantic.Field(min_length=1)


class MutatingWebhookConfiguration(webhook_config.StrictModel):
    api_version: Literal["admissionregistration.k8s.io/v1"]
    kind: Literal["MutatingWebhookConfiguration"]
    metadata: Metadata
    webhooks: tuple[MutatingWebhook, ...] = ()


class ValidatingWebhookConfiguration(webhook_config.StrictModel):
    api_version: Literal["admissionregistration.k8s.io/v1"]
    kind: Literal["ValidatingWebhookConfiguration"]
    metadata: Metadata
    webhooks: tuple[ValidatingWebhook, ...] = ()


Configuration = Annotated[
    MutatingWebhookConfiguration | ValidatingWebhookConfiguration, pydantic.Field(discriminator="kind")
]


@dataclasses.dataclass(frozen=True, slots=True)
class Hook:
    """One webhook as the dispatcher sees it: the webhook, where it came from, and its identity."""

    webhook: MutatingWebhook | ValidatingWebhook
    configuration: str
    uid: str
    """``<configuration>/<webhook>/<n>``, the key the API server tracks reinvocation by."""

    @property
    def name(self) -> str:
        return self.webhook.name

    @property
    def mutating(self) -> bool:
        return isinstance(self.webhook, MutatingWebhook)


@dataclasses.dataclass(frozen=True, slots=True)
class Loaded:
    mutating: tuple[Hook, ...]
    validating: tuple[Hook, ...]


def _describe(exc: pydantic.ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ""
        for item in err["loc"]:
            if isinstance(item, int):
                where += f"[{item}]"
            elif item in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
                continue
            else:
                where += ("." if where else "") + str(item)
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _documents(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path}: not valid YAML: {exc}") from None
    for number, doc in enumerate(docs, start=1):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise InvalidInput(f"{path}: document {number}: expected a mapping, got {type(doc).__name__}")
        if doc.get("kind") == "List":
            for index, item in enumerate(doc.get("items") or []):
                if not isinstance(item, dict):
                    raise InvalidInput(f"{path}: document {number}: items[{index}]: expected a mapping")
                yield number, item
        else:
            yield number, doc


def parse(path: Path) -> list[MutatingWebhookConfiguration | ValidatingWebhookConfiguration]:
    """Every webhook configuration in ``path`` (other kinds, e.g. a Deployment beside them, are skipped)."""
    adapter: pydantic.TypeAdapter[Configuration] = pydantic.TypeAdapter(Configuration)
    found: list[MutatingWebhookConfiguration | ValidatingWebhookConfiguration] = []
    for number, doc in _documents(path):
        kind = doc.get("kind")
        if kind not in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            continue
        label = f"{path}: document {number} ({kind} {(doc.get('metadata') or {}).get('name', '?')!r})"
        if doc.get("apiVersion") != API_VERSION:
            raise InvalidInput(
                f"{label}: apiVersion: {doc.get('apiVersion')!r} is not served since Kubernetes 1.22; "
                f"use {API_VERSION}"
            )
        try:
            configuration = adapter.validate_python(doc)
        except pydantic.ValidationError as exc:
            raise InvalidInput(f"{label}: {_describe(exc)}") from None
        names = [w.name for w in configuration.webhooks]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise InvalidInput(f"{label}: webhooks[{index}].name: Duplicate value: {name!r}")
        found.append(configuration)
    if not found:
        raise InvalidInput(f"{path}: holds no MutatingWebhookConfiguration or ValidatingWebhookConfiguration")
    return found


def load(*paths: Path) -> Loaded:
    """The webhooks of all ``paths``, in the order the API server calls them."""
    configurations = [c for p in paths for c in parse(p)]
    mutating: list[Hook] = []
    validating: list[Hook] = []
    for configuration in sorted(configurations, key=lambda c: c.metadata.name):
        target = mutating if isinstance(configuration, MutatingWebhookConfiguration) else validating
        for webhook in configuration.webhooks:
            uid = f"{configuration.metadata.name}/{webhook.name}/0"
            target.append(Hook(webhook=webhook, configuration=configuration.metadata.name, uid=uid))
    return Loaded(mutating=tuple(mutating), validating=tuple(validating))
