"""Optional ahead-of-time compilation of the request path with mypyc; everything else is in pyproject.toml.

With ``WEBHOOK_COMPILE=1`` the modules below are compiled to C extensions by mypyc (part of mypy,
which the build then needs: ``pip install mypy``). Their Python source stays the source of truth:
the same typed code, checked by ``mypy --strict``, runs either way, and the test suite runs on the
compiled build (``make test`` compiles first). Without the variable the package is pure Python and
identical in behaviour, only slower.

``make compile`` builds them in place for a checkout; the image builds a compiled wheel (see the
Dockerfile). The list holds the modules a review runs through that mypyc compiles as they are.
Modules defining pydantic models with validators, or with field types pydantic cannot read from a
compiled module, stay interpreted: each group's ``*_settings`` module, the envelope, the policy
files. So does the CEL glue: its policy sets derive from a frozen generic dataclass, which mypyc
cannot compile, and with the validating set moved out, compiling the rest changed nothing
measurable (97-98 µs a review either way: cel-cpp does most of the work). A dataclass compiled here
keeps the ``__init__`` that ``dataclasses`` generates interpreted: per-review classes write theirs.
"""

from __future__ import annotations

import os

from setuptools import setup

COMPILED = [
    "webhook/answering.py",
    "webhook/appstate.py",
    "webhook/engine.py",
    "webhook/metrics.py",
    "webhook/patch.py",
    "webhook/plan.py",
    "webhook/review.py",
    "webhook/mutators/defaults.py",
    "webhook/mutators/downward_api.py",
    "webhook/mutators/sidecar_template.py",
    "webhook/mutators/sidecars.py",
    "webhook/policy/model.py",
    "webhook/policy/scope.py",
    "webhook/policy/workloads.py",
    "webhook/validators/rbac.py",
    "webhook/validators/security_context.py",
    "webhook/validators/storage.py",
    "webhook/validators/updates.py",
    "webhook/validators/wording.py",
    "webhook/validators/pod_security/__init__.py",
    "webhook/validators/pod_security/apparmor.py",
    "webhook/validators/pod_security/base.py",
    "webhook/validators/pod_security/capabilities.py",
    "webhook/validators/pod_security/evaluation.py",
    "webhook/validators/pod_security/facts.py",
    "webhook/validators/pod_security/host_namespaces.py",
    "webhook/validators/pod_security/host_ports.py",
    "webhook/validators/pod_security/levels.py",
    "webhook/validators/pod_security/privilege_escalation.py",
    "webhook/validators/pod_security/privileged.py",
    "webhook/validators/pod_security/probes.py",
    "webhook/validators/pod_security/proc_mount.py",
    "webhook/validators/pod_security/run_as.py",
    "webhook/validators/pod_security/seccomp.py",
    "webhook/validators/pod_security/selinux.py",
    "webhook/validators/pod_security/sysctls.py",
    "webhook/validators/pod_security/volumes.py",
    "webhook/validators/pod_security/windows.py",
]
"""Paths, so that mypyc finds each module. A compiled module whose classes derive from
``webhook.policy.settings``' also imports that module by its full name: this mypyc otherwise
leaves the module's C declaration out and the build fails."""


def _extensions() -> list[object]:
    if os.environ.get("WEBHOOK_COMPILE") != "1":
        return []
    from mypyc.build import mypycify  # only a compiling build needs mypy

    return list(mypycify(COMPILED, opt_level="3"))


setup(ext_modules=_extensions())
