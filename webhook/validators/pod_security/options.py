"""The ``podSecurity:`` section of a policy file: enforce level/version plus optional warn and audit.

Mirrors a namespace's ``pod-security.kubernetes.io/{enforce,warn,audit}[-version]`` labels, with the
same value rules (level ``privileged``/``baseline``/``restricted``; version ``latest`` or ``v1.N``),
but invalid values are an error at load time instead of upstream's silent fallback to
``restricted:latest``.
"""

from __future__ import annotations

from typing import Literal

import pydantic

from webhook.policy import model, settings
from webhook.validators.pod_security import levels


def _version(value: str) -> str:
    levels.parse_version(value)  # raises VersionError (a ValueError) with the precise rule
    return value


class LevelVersion(settings.StrictModel):
    """A level and the policy version to evaluate it at (``restricted`` at ``v1.30``)."""

    level: levels.Level
    version: str = levels.LATEST
    """``latest`` (v1.37 here) or ``v1.N``; a version newer than v1.37 evaluates as v1.37."""

    _check_version = pydantic.field_validator("version")(_version)


class PodSecuritySettings(settings.GroupSettings):
    """Pod Security Standards, as the built-in Pod Security admission controller applies them."""

    level: Literal["privileged", "baseline", "restricted"] = "baseline"
    """Level applied with ``mode`` (``enforce`` denies a violating Pod)."""
    version: str = levels.LATEST
    warn: LevelVersion | None = None
    """Also evaluate at this level/version and return a warning when it would be violated."""
    audit: LevelVersion | None = None
    """Also evaluate at this level/version and add an audit annotation when it would be violated."""
    workloadMode: model.Mode | None = "warn"
    """Pod Security admission enforces on Pods only; workload templates (Deployment, CronJob, ...) get
    a warning so the controller's Pods are not silently rejected later."""

    _check_version = pydantic.field_validator("version")(_version)

    def enforced(self) -> LevelVersion:
        return LevelVersion(level=self.level, version=self.version)
