"""The defaults group's settings: the pydantic models its policy files are validated with.

Kept apart from the mutations in :mod:`webhook.mutators.defaults`, which mypyc compiles (see
``setup.py``): pydantic reads validators and field types from Python functions and module
globals, which a compiled module does not offer as it expects.
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from webhook import quantity
from webhook.policy import settings

# --- quantities ---------------------------------------------------------------------------------


def _quantity_field(value: str) -> str:
    if quantity.lenient(value) is None:
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 100m, 128Mi, 1)")
    return value


# --- settings -----------------------------------------------------------------------------------


class ResourceDefaults(settings.StrictModel):
    """Default requests/limits for the namespaces matching ``namespaces`` (globs)."""

    namespaces: tuple[str, ...] = ("*",)
    """Namespace names or globs; the first entry of ``resources`` that matches wins."""
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}

    @pydantic.field_validator("requests", "limits")
    @classmethod
    def _quantities(cls, values: dict[str, str]) -> dict[str, str]:
        for value in values.values():
            _quantity_field(value)
        return values

    @pydantic.model_validator(mode="after")
    def _request_fits_limit(self) -> ResourceDefaults:
        for name, request in self.requests.items():
            limit = self.limits.get(name)
            if limit is not None and quantity.lenient(request) > quantity.lenient(limit):  # type: ignore[operator]
                raise ValueError(f"default request {name}={request} is above the default limit {limit}")
        return self


class ImagePullPolicyDefaults(settings.StrictModel):
    latest: Literal["Always", "IfNotPresent", "Never"] | None = "Always"
    """Policy for images tagged ``:latest`` or untagged (a moving tag: pull to get the current one)."""
    other: Literal["Always", "IfNotPresent", "Never"] | None = None
    """Policy for every other image (a fixed tag or a digest); ``null`` leaves it unset."""


class SecurityContextDefaults(settings.StrictModel):
    runAsNonRoot: bool | None = True
    """Pod ``securityContext.runAsNonRoot``. Not set when the pod or a container asks for UID 0."""
    seccompProfile: Literal["RuntimeDefault", "Unconfined"] | None = "RuntimeDefault"
    """Pod ``securityContext.seccompProfile.type``."""
    allowPrivilegeEscalation: bool | None = False
    """Container ``securityContext.allowPrivilegeEscalation``."""
    dropCapabilities: tuple[str, ...] = ("ALL",)
    """Container ``securityContext.capabilities.drop`` when the container sets no ``drop`` list."""


class Toleration(settings.StrictModel):
    key: str | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    tolerationSeconds: int | None = None

    @pydantic.model_validator(mode="after")
    def _exists_has_no_value(self) -> Toleration:
        # Same rule as the API server's toleration validation.
        if self.operator == "Exists" and self.value:
            raise ValueError("a toleration with operator Exists must not set a value")
        if self.key is None and self.operator != "Exists":
            raise ValueError("a toleration without a key must use operator Exists")
        return self

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class DefaultsSettings(settings.MutatingGroupSettings):
    optOutAnnotation: str | None = "defaults.admission.dev/mutate"
    labels: dict[str, str] = {}
    """Labels added to the pod (template) when the key is absent."""
    annotations: dict[str, str] = {}
    """Annotations added to the pod (template) when the key is absent."""
    resources: tuple[ResourceDefaults, ...] = ()
    limitBelowRequest: Literal["raise", "skip"] = "raise"
    """When the user's request exceeds the default limit: ``raise`` sets the limit to the request,
    ``skip`` sets no limit for that resource. Never is a limit below a request produced."""
    imagePullPolicy: ImagePullPolicyDefaults = ImagePullPolicyDefaults()
    securityContext: SecurityContextDefaults = SecurityContextDefaults()
    automountServiceAccountToken: bool | None = None
    terminationGracePeriodSeconds: int | None = pydantic.Field(default=None, ge=0)
    tolerations: tuple[Toleration, ...] = ()
    priorityClassName: str | None = None


