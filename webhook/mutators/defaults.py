"""Defaults: fill in what the user left unset — resources, pull policy, hardening, labels, scheduling.

Every mutation here only *adds*: a value the user wrote is never replaced, so running a mutation on
its own output changes nothing (the API server may reinvoke mutating webhooks, ``reinvocationPolicy:
IfNeeded``). Each part is its own policy id (``defaults.resources``, ...), so a policy file can turn
one off with ``policies: {defaults.resources: {mode: off}}``; leaving a knob unset also disables it.

Kubernetes' own defaulting runs *before* admission (objects are defaulted when decoded), so some
fields this group can set (``imagePullPolicy``, ``terminationGracePeriodSeconds``) usually arrive
already set on Pods and on the templates of built-in workloads; the mutations then do nothing.
"""

from __future__ import annotations

from typing import Any

from webhook import quantity
from webhook.mutators.defaults_settings import DefaultsSettings
from webhook.policy import model, registry, scope, workloads

GROUP = "defaults"


registry.group(
    GROUP,
    key="defaults",
    chain="mutating",
    settings_model=DefaultsSettings,
    order=20,
    description="Fill in unset resources, pull policy, security context, labels and scheduling fields.",
)


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Init and regular containers. Ephemeral containers are left alone: they may not set resources
    and are added to running Pods through a subresource, never at CREATE."""
    return [c for field, _, c in workloads.containers(spec) if field != "ephemeralContainers"]


CONTAINERS = ("spec.containers[*]", "spec.initContainers[*]")
"""The containers the defaults edit (:func:`_containers`), as write paths (:attr:`registry.Policy.writes`)."""


def _missing_dict(parent: dict[str, Any], key: str) -> dict[str, Any] | None:
    """``parent[key]`` when it is a dict or absent (then created lazily by the caller), else ``None``."""
    value = parent.get(key)
    if value is None:
        return {}
    return value if isinstance(value, dict) else None


# --- labels / annotations -----------------------------------------------------------------------


@registry.mutation("defaults.labels", group=GROUP, pod_spec=True, order=10,
                   writes=("metadata.labels", "metadata.annotations"))
def default_labels(target: model.PodTarget, ctx: model.ReviewContext, params: DefaultsSettings) -> None:
    """Add the configured labels and annotations to the pod (template) where the key is absent.

    Adding template labels never breaks a workload's selector: the selector must match the
    template's labels, and extra labels still match.
    """
    for field, wanted in (("labels", params.labels), ("annotations", params.annotations)):
        if not wanted:
            continue
        current = target.labels if field == "labels" else target.annotations
        missing = {k: v for k, v in wanted.items() if k not in current}
        existing = (target.metadata or {}).get(field)
        if not missing or (existing is not None and not isinstance(existing, dict)):
            continue
        if existing is None:  # absent, or written as null (which the API server reads as absent)
            target.metadata_for_write()[field] = missing
        else:
            existing.update(missing)


# --- resources ----------------------------------------------------------------------------------


@registry.mutation("defaults.resources", group=GROUP, pod_spec=True, order=20,
                   writes=tuple(f"{c}.resources.{f}" for c in CONTAINERS for f in ("requests", "limits")))
def default_resources(target: model.PodTarget, ctx: model.ReviewContext, params: DefaultsSettings) -> None:
    """Default ``resources.requests``/``limits`` per container, from the first entry matching the namespace.

    Rules, so a default never contradicts what the user wrote:

    * a request is not defaulted when the user set a limit for that resource: the API server then
      copies the limit into the request (``SetDefaults_Pod``), and a smaller default request would
      silently turn a Guaranteed pod Burstable;
    * a limit is never produced below the container's request (the API server rejects
      ``requests > limits``): with ``limitBelowRequest: raise`` the limit is set to the request, with
      ``skip`` no limit is set for that resource.
    """
    namespace = model.namespace_of(target.obj, ctx)
    entry = next((r for r in params.resources if scope.glob_match(namespace, r.namespaces)), None)
    if entry is None:
        return
    for container in _containers(target.spec):
        resources = _missing_dict(container, "resources")
        if resources is None:
            continue
        requests = _missing_dict(resources, "requests")
        limits = _missing_dict(resources, "limits")
        if requests is None or limits is None:
            continue
        new_requests = {
            name: value
            for name, value in entry.requests.items()
            if name not in requests and name not in limits
        }
        new_limits: dict[str, str] = {}
        for name, value in entry.limits.items():
            if name in limits:
                continue
            request = requests.get(name, new_requests.get(name))
            request_q, limit_q = quantity.lenient(request), quantity.lenient(value)
            if request is not None and request_q is None:
                continue  # the user's request is unreadable: do not guess a limit beside it
            if request_q is not None and limit_q is not None and request_q > limit_q:
                if params.limitBelowRequest == "skip":
                    continue
                value = request if isinstance(request, str) else str(request)
            new_limits[name] = value
        if not new_requests and not new_limits:
            continue
        if new_requests:
            requests.update(new_requests)
            resources["requests"] = requests
        if new_limits:
            limits.update(new_limits)
            resources["limits"] = limits
        container["resources"] = resources


# --- imagePullPolicy ----------------------------------------------------------------------------


def _moving_tag(image: str) -> bool:
    """``True`` for ``:latest`` and untagged images, the case where Kubernetes defaults to Always.

    Same parse as the API server's defaulting: a digest pins the image; the tag is what follows the
    last ``:`` of the last path component (so ``registry:5000/app`` is untagged).
    """
    if "@" in image:
        return False
    last = image.rsplit("/", 1)[-1]
    return ":" not in last or last.rsplit(":", 1)[1] == "latest"


@registry.mutation("defaults.imagePullPolicy", group=GROUP, pod_spec=True, order=30, writes=CONTAINERS)
def default_image_pull_policy(
    target: model.PodTarget, ctx: model.ReviewContext, params: DefaultsSettings
) -> None:
    """Set ``imagePullPolicy`` where unset: ``latest`` for moving tags, ``other`` for the rest."""
    for container in _containers(target.spec):
        image = container.get("image")
        if "imagePullPolicy" in container or not isinstance(image, str) or not image:
            continue
        policy = params.imagePullPolicy.latest if _moving_tag(image) else params.imagePullPolicy.other
        if policy is not None:
            container["imagePullPolicy"] = policy


# --- securityContext ----------------------------------------------------------------------------


def _is_windows(spec: dict[str, Any]) -> bool:
    os_name = (spec.get("os") or {}).get("name") if isinstance(spec.get("os"), dict) else None
    selector = spec.get("nodeSelector")
    node_os = selector.get("kubernetes.io/os") if isinstance(selector, dict) else None
    return os_name == "windows" or node_os == "windows"


def _wants_root(spec: dict[str, Any]) -> bool:
    """The pod or a container asks for UID 0 without its own runAsNonRoot: kubelet would refuse to
    start it if the pod defaulted ``runAsNonRoot: true``."""
    pod_sc = spec.get("securityContext")
    if isinstance(pod_sc, dict) and pod_sc.get("runAsUser") == 0:
        return True
    for _, _, container in workloads.containers(spec):
        sc = container.get("securityContext")
        if isinstance(sc, dict) and sc.get("runAsUser") == 0 and "runAsNonRoot" not in sc:
            return True
    return False


def _adds_sys_admin(sc: dict[str, Any]) -> bool:
    caps = sc.get("capabilities")
    added = caps.get("add") if isinstance(caps, dict) else None
    return isinstance(added, list) and any(c in ("SYS_ADMIN", "CAP_SYS_ADMIN") for c in added)


@registry.mutation("defaults.securityContext", group=GROUP, pod_spec=True, order=40,
                   writes=("spec.securityContext", *(f"{c}.securityContext.capabilities" for c in CONTAINERS)))
def default_security_context(
    target: model.PodTarget, ctx: model.ReviewContext, params: DefaultsSettings
) -> None:
    """Hardening defaults where unset (the Pod Security "restricted" fields), never overriding.

    * Windows pods (``spec.os.name`` or the ``kubernetes.io/os`` node selector) are left alone:
      the API server forbids seccomp, privilege escalation and capability fields on them.
    * ``runAsNonRoot`` is not defaulted when the pod or a container sets ``runAsUser: 0``.
    * ``seccompProfile`` is not defaulted when the legacy ``seccomp.security.alpha.kubernetes.io/pod``
      annotation is present: the API server requires annotation and field to agree.
    * A container with ``privileged: true`` is not touched at all: it has opted out of isolation,
      and the API server rejects ``allowPrivilegeEscalation: false`` beside ``privileged: true``
      (and beside an added ``SYS_ADMIN``, where only the capability drop is defaulted).
    """
    spec = target.spec
    wanted = params.securityContext
    if _is_windows(spec):
        return
    pod_sc = _missing_dict(spec, "securityContext")
    if pod_sc is not None:
        changed = False
        if wanted.runAsNonRoot is not None and "runAsNonRoot" not in pod_sc and not _wants_root(spec):
            pod_sc["runAsNonRoot"] = wanted.runAsNonRoot
            changed = True
        legacy = "seccomp.security.alpha.kubernetes.io/pod" in target.annotations
        if wanted.seccompProfile is not None and "seccompProfile" not in pod_sc and not legacy:
            pod_sc["seccompProfile"] = {"type": wanted.seccompProfile}
            changed = True
        if changed:
            spec["securityContext"] = pod_sc
    for container in _containers(spec):
        sc = _missing_dict(container, "securityContext")
        if sc is None or sc.get("privileged") is True:
            continue
        changed = False
        if (
            wanted.allowPrivilegeEscalation is not None
            and "allowPrivilegeEscalation" not in sc
            and not (wanted.allowPrivilegeEscalation is False and _adds_sys_admin(sc))
        ):
            sc["allowPrivilegeEscalation"] = wanted.allowPrivilegeEscalation
            changed = True
        caps = _missing_dict(sc, "capabilities")
        if wanted.dropCapabilities and caps is not None and "drop" not in caps:
            caps["drop"] = list(wanted.dropCapabilities)
            sc["capabilities"] = caps
            changed = True
        if changed:
            container["securityContext"] = sc


# --- pod-level scalars --------------------------------------------------------------------------


@registry.mutation("defaults.serviceAccountToken", group=GROUP, pod_spec=True, order=50, writes=("spec",))
def default_service_account_token(
    target: model.PodTarget, ctx: model.ReviewContext, params: DefaultsSettings
) -> None:
    """``automountServiceAccountToken`` when the pod leaves it to the ServiceAccount.

    The pod-level field overrides the ServiceAccount's, so it is only defaulted when absent.
    """
    if params.automountServiceAccountToken is not None and "automountServiceAccountToken" not in target.spec:
        target.spec["automountServiceAccountToken"] = params.automountServiceAccountToken


@registry.mutation("defaults.terminationGracePeriod", group=GROUP, pod_spec=True, order=60, writes=("spec",))
def default_termination_grace_period(
    target: model.PodTarget, ctx: model.ReviewContext, params: DefaultsSettings
) -> None:
    """``terminationGracePeriodSeconds`` when absent (the API server's own default is 30)."""
    seconds = params.terminationGracePeriodSeconds
    if seconds is not None and "terminationGracePeriodSeconds" not in target.spec:
        target.spec["terminationGracePeriodSeconds"] = seconds


def _normal_toleration(toleration: Any) -> Any:
    if not isinstance(toleration, dict):
        return toleration
    # The API server treats a missing operator as Equal; compare tolerations the same way.
    return {"operator": "Equal", **{k: v for k, v in toleration.items() if v is not None}}


@registry.mutation("defaults.tolerations", group=GROUP, pod_spec=True, order=70, writes=("spec",))
def default_tolerations(target: model.PodTarget, ctx: model.ReviewContext, params: DefaultsSettings) -> None:
    """Append the configured tolerations the pod does not already have (tolerations only widen
    where a pod may run; the user's own are kept as written)."""
    if not params.tolerations:
        return
    current = target.spec.get("tolerations")
    if current is not None and not isinstance(current, list):
        return
    present = [_normal_toleration(t) for t in current or []]
    missing = [t.as_dict() for t in params.tolerations if _normal_toleration(t.as_dict()) not in present]
    if missing:
        target.spec["tolerations"] = [*(current or []), *missing]


@registry.mutation("defaults.priorityClassName", group=GROUP, pod_spec=True, order=80, writes=("spec",))
def default_priority_class_name(
    target: model.PodTarget, ctx: model.ReviewContext, params: DefaultsSettings
) -> None:
    """``priorityClassName`` when absent and configured.

    A Pod whose ``spec.priority`` is already set is left alone: the built-in Priority admission
    plugin resolved it from the (absent) class before webhooks ran, and it rejects a pod whose
    integer priority disagrees with its class when it runs again on reinvocation.
    """
    if params.priorityClassName is None or "priorityClassName" in target.spec:
        return
    if not target.is_template and "priority" in target.spec:
        return
    target.spec["priorityClassName"] = params.priorityClassName
