"""Pod Security Standards (Pod Security admission parity, policy versions up to v1.37).

One registered check per upstream check id (``pod-security.allowPrivilegeEscalation``, ...), each
evaluated at the level/version the group's ``modes`` yields, returning nothing when the check is not
in force there (or is overridden at that level). The group renders findings exactly as the
built-in admission controller words them.

Layout: ``levels`` parses levels/versions; ``base`` holds the shared result type and wording helpers;
one module per check family (``privileged``, ``volumes``, ``capabilities``, ``seccomp``, ...);
``checks`` resolves which revisions apply at a level/version; ``evaluation`` runs them and words the
outcome; ``options`` is the policy-file section. Pure functions over dicts: imports only
``webhook.policy`` and pydantic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from webhook.policy import model, registry
from webhook.validators.pod_security import base, checks, evaluation, facts, levels, options

GROUP = "pod-security"
KEY = "podSecurity"
PREFIX = f"{GROUP}."

PodSecuritySettings = options.PodSecuritySettings
LevelVersion = options.LevelVersion
evaluate = evaluation.evaluate
message = evaluation.message


def modes(group_settings: options.PodSecuritySettings) -> Sequence[tuple[model.Mode, options.LevelVersion]]:
    """Enforce at ``level``/``version`` (under the group's mode), plus the optional warn and audit
    levels -- the three labels of a Pod Security namespace."""
    found: list[tuple[model.Mode, options.LevelVersion]] = [(group_settings.mode, group_settings.enforced())]
    if group_settings.warn is not None:
        found.append(("warn", group_settings.warn))
    if group_settings.audit is not None:
        found.append(("audit", group_settings.audit))
    return found


def _rank(finding: registry.Finding) -> tuple[int, str]:
    return checks.RANK.get(finding.policy.id.removeprefix(PREFIX), len(checks.RANK)), finding.policy.id


def render(findings: Sequence[registry.Finding], mode: model.Mode, params: options.LevelVersion) -> str:
    """``violates PodSecurity "baseline:latest": ...`` (enforce) or ``would violate ...`` (warn,
    audit); findings in upstream order (baseline ids sorted, then restricted ids sorted)."""
    violations = [v for finding in sorted(findings, key=_rank) for v in finding.violations]
    return evaluation.render(violations, level=params.level, version=params.version, mode=mode)


def render_mode(mode: model.Mode) -> bool:
    """:func:`render` words enforce (``violates``) apart from warn and audit (``would violate``)."""
    return mode == "enforce"


_SCREENS: dict[str, int] = {check.id: check.screen for check in checks.CHECKS}


def plan(entries: Sequence[tuple[registry.Policy, Any]]) -> registry.BatchFn:
    """Every check at every level of ``entries`` in one pass: the pod is walked once for its facts
    (:func:`facts.scan`), each distinct check revision in force runs once for all the levels that
    share it, and only if the pod shows a fact its screen names. What each entry gets is what its
    registered check (``run`` in :func:`_register`) returns on its own."""
    # id(revision) -> [revision, screen, entry indexes]. One revision may serve two check ids
    # (``procMount`` at v1.34 and ``procMount_restricted`` share the strict rule): its result does
    # not depend on the id, and the union of their screens is a screen for both.
    slots: dict[int, list[Any]] = {}
    for index, (policy, params) in enumerate(entries):
        check_id = policy.id.removeprefix(PREFIX)
        impl = checks.active(params.level, params.version).get(check_id)
        if impl is None:
            continue
        slot = slots.setdefault(id(impl), [impl, 0, []])
        slot[1] |= _SCREENS[check_id]
        slot[2].append(index)
    order = tuple((impl, screen, tuple(indexes)) for impl, screen, indexes in slots.values())

    def run(target: model.PodTarget, ctx: model.ReviewContext) -> dict[int, tuple[model.Violation, ...]]:
        found: dict[int, tuple[model.Violation, ...]] = {}
        if evaluation.skip_request(target, ctx):
            return found
        shown = facts.scan(target)
        meta, spec = target.metadata or {}, target.spec
        for impl, screen, indexes in order:
            if shown & screen:
                result = impl(meta, spec)
                if result is not None:
                    violations = (evaluation.to_violation(result, target),)
                    for index in indexes:
                        found[index] = violations
        return found

    return run


registry.group(
    GROUP,
    key=KEY,
    chain="validating",
    settings_model=options.PodSecuritySettings,
    order=10,
    modes=modes,
    render=render,
    description="Pod Security Standards (privileged/baseline/restricted), as Pod Security admission v1.37.",
    plan=plan,
    render_mode=render_mode,
)


def _register(check: base.Check) -> None:
    check_id = check.id
    # params object id -> (params, implementation in force): resolved once per policy set, not per
    # review; the params object is kept so its id cannot be reused by another.
    resolved: dict[int, tuple[options.LevelVersion, base.CheckImpl | None]] = {}

    def run(
        target: model.PodTarget, ctx: model.ReviewContext, params: options.LevelVersion
    ) -> list[model.Violation]:
        entry = resolved.get(id(params))
        if entry is None or entry[0] is not params:
            in_force = checks.active(params.level, params.version)
            entry = resolved[id(params)] = (params, in_force.get(check_id))
        impl = entry[1]
        if impl is None or evaluation.skip_request(target, ctx):
            return []
        base.bind(target)
        result = impl(target.metadata or {}, target.spec)
        return [] if result is None else [evaluation.to_violation(result, target)]

    run.__name__ = run.__qualname__ = f"check_{check_id}"
    run.__doc__ = f"{check.description} (Pod Security {check.level}: {check_id})"

    def in_force(params: options.LevelVersion) -> bool:
        return check_id in checks.active(params.level, params.version)

    def revision(params: options.LevelVersion) -> base.CheckImpl | None:
        # ``run`` depends on params only through the revision in force: equal revisions, equal results.
        return checks.active(params.level, params.version).get(check_id)

    registry.check(
        PREFIX + check_id,
        group=GROUP,
        pod_spec=True,
        order=checks.RANK[check_id],
        active=in_force,
        result_key=revision,
    )(run)


for _check in checks.CHECKS:
    _register(_check)

__all__ = [
    "GROUP",
    "KEY",
    "LevelVersion",
    "PodSecuritySettings",
    "evaluate",
    "levels",
    "message",
    "modes",
    "render",
]
