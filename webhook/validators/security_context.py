"""Security-context rules beyond the Pod Security Standards: opinionated, individually configurable.

Each rule is its own policy id (``security-context.<rule>``) so its mode can be set on its own;
they run on Pods and on the pod templates of workloads (``pod_spec=True``), like Pod Security
admission. The ``privileged`` rule is *requester-aware*: Pod Security cannot say "only the
platform team may run privileged pods in ``monitoring``", this rule can.

Updates follow Pod Security admission: a pod or template whose spec is unchanged by an UPDATE is
not re-evaluated (so labelling, scaling or finalizer removal never trips a rule added later).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import webhook.policy.settings  # noqa: F401 - mypyc: its classes derive from this module's (see setup.py)
from webhook.policy import model, registry, scope, settings, workloads
from webhook.validators import updates, wording

GROUP = "security-context"


class ReadOnlyRootFilesystem(settings.StrictModel):
    exemptContainers: tuple[str, ...] = ()
    """Container names (globs) that may keep a writable root filesystem."""


class ImageTag(settings.StrictModel):
    forbiddenTags: tuple[str, ...] = ("latest",)
    """Tags that move under your feet; ``latest`` is also what an untagged image means."""
    allowUntagged: bool = False
    """Untagged images resolve to ``:latest`` (container runtimes' default); digest-pinned images pass."""


class Resources(settings.StrictModel):
    requests: tuple[str, ...] = ("cpu", "memory")
    """Resource names every init and regular container must request (the scheduler packs by them)."""
    limits: tuple[str, ...] = ("memory",)
    """Resource names every init and regular container must limit. ``cpu`` is not required by
    default: CPU limits throttle bursts, while a missing memory limit lets one pod starve a node."""


class DefaultServiceAccount(settings.StrictModel):
    forbiddenNames: tuple[str, ...] = ("default",)
    """Service account names pods may not run as; an empty ``serviceAccountName`` means ``default``."""


class AutomountServiceAccountToken(settings.StrictModel):
    allowedServiceAccounts: tuple[str, ...] = ()
    """Service account names (globs, in the pod's namespace) whose pods may mount an API token;
    every other pod must set ``automountServiceAccountToken: false``."""


class RuntimeClass(settings.StrictModel):
    allowed: tuple[str, ...] = ()
    """Allowed ``runtimeClassName`` values (globs); empty allows any."""
    required: bool = False
    """Whether a pod must name a runtime class at all (otherwise the node's default handler runs it)."""


class Privileged(settings.StrictModel):
    """Who may create privileged pods (privileged containers, host network/PID/IPC), and where."""

    allowedUsers: tuple[str, ...] = ()
    """``userInfo.username`` values or globs."""
    allowedGroups: tuple[str, ...] = ()
    """``userInfo.groups`` entries or globs."""
    allowedServiceAccounts: tuple[str, ...] = ()
    """``namespace/name`` of requesting service accounts, globs allowed."""
    namespaces: tuple[str, ...] = ()
    """Namespaces (globs) where the requesters above may do so; empty means every namespace."""
    trustedControllers: tuple[str, ...] = ("kube-system/*", "system:kube-controller-manager")
    """Requesters whose objects come from templates already judged: an entry with a ``/`` is a
    service account (``namespace/name`` glob), any other entry a username glob. The workload
    controllers stamp ReplicaSets out of Deployments, Jobs out of CronJobs and Pods out of the rest;
    the person who wrote the template was checked when they wrote it. They run as ``kube-system``
    service accounts when kube-controller-manager has ``--use-service-account-credentials``, else all
    as the user ``system:kube-controller-manager``. A request from one of them is trusted only for an
    object whose ``ownerReferences`` name a controller (``controller: true``), as they set it."""


class SecurityContextSettings(settings.GroupSettings):
    """The ``securityContext:`` section of policy files; one field per rule."""

    readOnlyRootFilesystem: ReadOnlyRootFilesystem = ReadOnlyRootFilesystem()
    allowedRegistries: tuple[str, ...] = ()
    """Registries (``ghcr.io``, ``*.gcr.io``) or repository prefixes (``docker.io/library``) images may
    come from, compared with the normalised image name (``nginx`` is ``docker.io/library/nginx``).
    Empty allows every registry."""
    imageTag: ImageTag = ImageTag()
    resources: Resources = Resources()
    defaultServiceAccount: DefaultServiceAccount = DefaultServiceAccount()
    automountServiceAccountToken: AutomountServiceAccountToken = AutomountServiceAccountToken()
    runtimeClassName: RuntimeClass = RuntimeClass()
    privileged: Privileged = Privileged()


registry.group(
    GROUP,
    key="securityContext",
    chain="validating",
    settings_model=SecurityContextSettings,
    order=20,
    description="Opinionated pod rules: read-only root, pinned images from allowed registries, "
    "resources, service accounts, runtime classes, and who may run privileged pods.",
)

Check = Callable[[model.PodTarget, model.ReviewContext, SecurityContextSettings], list[model.Violation]]


def _pod_check(policy_id: str, *, order: int) -> Callable[[Check], Check]:
    return updates.pod_check(GROUP, policy_id, order=order)


def _subject(pod: model.PodTarget) -> str:
    """``Deployment "web"``: the object the user wrote, as messages name it."""
    meta = pod.obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    name = meta.get("name")
    if isinstance(name, str) and name:
        return f"{pod.kind} {wording.quote(name)}"
    generate = meta.get("generateName")
    if isinstance(generate, str) and generate:
        return f"{pod.kind} {wording.quote(generate + '*')}"
    return f"{pod.kind} (unnamed)"


def _container_name(container: dict[str, Any]) -> str:
    return wording.quote(container.get("name", ""))


@_pod_check("readOnlyRootFilesystem", order=10)
def read_only_root_filesystem(
    pod: model.PodTarget, ctx: model.ReviewContext, params: SecurityContextSettings
) -> list[model.Violation]:
    """Containers must set securityContext.readOnlyRootFilesystem=true."""
    found = []
    subject = ""  # worded once, for the first finding
    exempt = params.readOnlyRootFilesystem.exemptContainers
    for field, index, container in workloads.containers(pod.spec):
        name = container.get("name")
        if exempt and isinstance(name, str) and scope.glob_match(name, exempt):
            continue
        value = wording.as_dict(container.get("securityContext")).get("readOnlyRootFilesystem")
        if value is True:
            continue
        path = f"{pod.spec_path}.{field}[{index}].securityContext.readOnlyRootFilesystem"
        subject = subject or _subject(pod)
        found.append(model.Violation(
            "readOnlyRootFilesystem != true",
            f"{subject} container {_container_name(container)} must set {path}=true",
            path=path, value=value, allowed=True,
        ))
    return found


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """``(name, tag, digest)`` as written: ``registry:5000/app:1.0@sha256:...`` splits at the ``@``
    and at the last ``:`` after the last ``/`` (a ``:`` before it belongs to the registry's port)."""
    name, _, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :], digest or None
    return name, None, digest or None


def normalize_image(image: str) -> tuple[str, str | None, str | None]:
    """``(repository, tag, digest)`` with Docker's default-registry rules applied.

    As ``distribution/reference.ParseNormalizedNamed``: the first path component is a registry only
    if it contains ``.`` or ``:``, is ``localhost``, or has upper-case letters; otherwise the image
    is on ``docker.io``, where single-component names live under ``library/``; ``index.docker.io``
    is ``docker.io``.
    """
    name, tag, digest = split_image(image)
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        domain, remainder = first, rest
    else:
        domain, remainder = "docker.io", name
    if domain == "index.docker.io":
        domain = "docker.io"
    if domain == "docker.io" and "/" not in remainder:
        remainder = f"library/{remainder}"
    return f"{domain}/{remainder}", tag, digest


def _registry_allowed(repository: str, allowed: tuple[str, ...]) -> bool:
    """An entry allows a repository it equals or is a path prefix of (``ghcr.io/acme`` allows
    ``ghcr.io/acme/app`` but not ``ghcr.io/acme-evil/app``); a glob without ``/`` is matched against
    the registry host (``*.gcr.io``), one with ``/`` against the whole repository."""
    host = repository.split("/", 1)[0]
    for entry in allowed:
        prefix = entry.rstrip("/")
        if repository == prefix or repository.startswith(prefix + "/"):
            return True
        if scope.glob_match(repository if "/" in entry else host, (entry,)):
            return True
    return False


def _images(pod: model.PodTarget) -> list[tuple[str, int, dict[str, Any], str]]:
    """``(field, index, container, image)`` for every container whose image is a non-empty string.
    The path (:func:`_image_path`) is worded only for a finding: most images pass."""
    found = []
    for field, index, container in workloads.containers(pod.spec):
        image = container.get("image")
        if isinstance(image, str) and image:
            found.append((field, index, container, image))
    return found


def _image_path(pod: model.PodTarget, field: str, index: int) -> str:
    return f"{pod.spec_path}.{field}[{index}].image"


@_pod_check("allowedRegistries", order=20)
def allowed_registries(
    pod: model.PodTarget, ctx: model.ReviewContext, params: SecurityContextSettings
) -> list[model.Violation]:
    """Images must come from an allowed registry or repository prefix."""
    allowed = params.allowedRegistries
    if not allowed:
        return []
    found = []
    for field, index, container, image in _images(pod):
        repository, _, _ = normalize_image(image)
        if _registry_allowed(repository, allowed):
            continue
        path = _image_path(pod, field, index)
        found.append(model.Violation(
            "image registry not allowed",
            f"{_subject(pod)} container {_container_name(container)} uses image {wording.quote(image)} "
            f"({repository}) in {path}; allowed registries: {wording.quote_all(allowed)}",
            path=path, value=image, allowed=list(allowed),
        ))
    return found


@_pod_check("imageTag", order=30)
def image_tag(
    pod: model.PodTarget, ctx: model.ReviewContext, params: SecurityContextSettings
) -> list[model.Violation]:
    """Images must be pinned: a specific tag or a digest, never :latest or untagged."""
    rule = params.imageTag
    found = []
    for field, index, container, image in _images(pod):
        # The tag and digest are as written: the registry normalisation does not change them.
        _, tag, digest = split_image(image)
        if digest is not None:
            continue  # the digest decides what runs, whatever the tag says
        pinned = rule.allowUntagged if tag is None else tag not in rule.forbiddenTags
        if pinned:
            continue  # most images are: nothing is worded for them
        path = _image_path(pod, field, index)
        where = f"{_subject(pod)} container {_container_name(container)}"
        if tag is None:
            found.append(model.Violation(
                "image not pinned",
                f"{where} uses image {wording.quote(image)} without a tag (which means :latest) in {path}; "
                "use a specific tag or a digest",
                path=path, value=image,
            ))
        else:
            found.append(model.Violation(
                f"image tag :{tag}",
                f"{where} uses image {wording.quote(image)} in {path}; "
                f"tags {wording.quote_all(rule.forbiddenTags)} are not allowed, use a specific tag or a digest",
                path=path, value=image,
            ))
    return found


@_pod_check("resources", order=40)
def resources(
    pod: model.PodTarget, ctx: model.ReviewContext, params: SecurityContextSettings
) -> list[model.Violation]:
    """Init and regular containers must set the configured resource requests and limits."""
    rule = params.resources
    if not rule.requests and not rule.limits:
        return []
    found = []
    for field, index, container in workloads.containers(pod.spec):
        if field == "ephemeralContainers":
            continue  # the API server forbids resources on ephemeral containers
        declared = wording.as_dict(container.get("resources"))
        missing = []  # plain loops: most containers set everything, and a comprehension costs a call
        for kind, names in (("requests", rule.requests), ("limits", rule.limits)):
            values = wording.as_dict(declared.get(kind))
            for name in names:
                if values.get(name) in (None, ""):
                    missing.append(f"resources.{kind}.{name}")
        if not missing:
            continue
        path = f"{pod.spec_path}.{field}[{index}].resources"
        found.append(model.Violation(
            "resources not set",
            f"{_subject(pod)} container {_container_name(container)} must set "
            f"{', '.join(missing)} in {pod.spec_path}.{field}[{index}]",
            path=path, value=missing,
        ))
    return found


def _service_account(spec: dict[str, Any]) -> str:
    # ``serviceAccount`` is the deprecated alias the API server still copies into serviceAccountName.
    for key in ("serviceAccountName", "serviceAccount"):
        value = spec.get(key)
        if isinstance(value, str) and value:
            return value
    return "default"


@_pod_check("defaultServiceAccount", order=50)
def default_service_account(
    pod: model.PodTarget, ctx: model.ReviewContext, params: SecurityContextSettings
) -> list[model.Violation]:
    """Pods must run as a dedicated service account, not the namespace's default one."""
    account = _service_account(pod.spec)
    forbidden = params.defaultServiceAccount.forbiddenNames
    if not scope.glob_match(account, forbidden):
        return []
    path = f"{pod.spec_path}.serviceAccountName"
    written = pod.spec.get("serviceAccountName") or pod.spec.get("serviceAccount")
    shown = f"is {wording.quote(account)}" if written else 'is empty (which means "default")'
    return [model.Violation(
        "forbidden service account",
        f"{_subject(pod)}: {path} {shown}; use a dedicated service account "
        f"(not {wording.quote_all(forbidden)})",
        path=path, value=account,
    )]


@_pod_check("automountServiceAccountToken", order=60)
def automount_service_account_token(
    pod: model.PodTarget, ctx: model.ReviewContext, params: SecurityContextSettings
) -> list[model.Violation]:
    """Pods must set automountServiceAccountToken=false unless their service account is allowed."""
    value = pod.spec.get("automountServiceAccountToken")
    if value is False:
        return []
    account = _service_account(pod.spec)
    allowed = params.automountServiceAccountToken.allowedServiceAccounts
    if allowed and scope.glob_match(account, allowed):
        return []
    path = f"{pod.spec_path}.automountServiceAccountToken"
    found = "sets it to true" if value is True else "leaves it unset (the token is mounted by default)"
    return [model.Violation(
        "automountServiceAccountToken != false",
        f"{_subject(pod)} must set {path}=false: it {found} and service account {wording.quote(account)} "
        "may not mount an API token",
        path=path, value=value, allowed=False,
    )]


@_pod_check("shareProcessNamespace", order=70)
def share_process_namespace(
    pod: model.PodTarget, ctx: model.ReviewContext, params: SecurityContextSettings
) -> list[model.Violation]:
    """Pods must not set shareProcessNamespace=true (containers would see each other's processes)."""
    if pod.spec.get("shareProcessNamespace") is not True:
        return []
    path = f"{pod.spec_path}.shareProcessNamespace"
    return [model.Violation(
        "shareProcessNamespace == true",
        f"{_subject(pod)} must not set {path}=true: its containers would see and signal each "
        "other's processes and read their environment and filesystems through /proc",
        path=path, value=True, allowed=False,
    )]


@_pod_check("runtimeClassName", order=80)
def runtime_class_name(
    pod: model.PodTarget, ctx: model.ReviewContext, params: SecurityContextSettings
) -> list[model.Violation]:
    """runtimeClassName must be one of the allowed classes (and set at all when required)."""
    rule = params.runtimeClassName
    value = pod.spec.get("runtimeClassName")
    path = f"{pod.spec_path}.runtimeClassName"
    allowed_text = f"allowed: {wording.quote_all(rule.allowed)}" if rule.allowed else "any runtime class is allowed"
    if not isinstance(value, str) or not value:
        if not rule.required:
            return []
        return [model.Violation(
            "runtimeClassName not set",
            f"{_subject(pod)} must set {path}; {allowed_text}",
            path=path, value=value, allowed=list(rule.allowed),
        )]
    if not rule.allowed or scope.glob_match(value, rule.allowed):
        return []
    return [model.Violation(
        "runtimeClassName not allowed",
        f"{_subject(pod)} uses runtime class {wording.quote(value)} in {path}; {allowed_text}",
        path=path, value=value, allowed=list(rule.allowed),
    )]


def _privileges(pod: model.PodTarget) -> list[tuple[str, str, str]]:
    """``(reason, what, path)`` for every privilege the pod asks for."""
    found = []
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.spec.get(field) is True:
            path = f"{pod.spec_path}.{field}"
            found.append(("host namespaces", f"sets {path}=true", path))
    for field, index, container in workloads.containers(pod.spec):
        if wording.as_dict(container.get("securityContext")).get("privileged") is True:
            path = f"{pod.spec_path}.{field}[{index}].securityContext.privileged"
            found.append(("privileged", f"container {_container_name(container)} sets {path}=true", path))
    return found


def _requester_allowed(ctx: model.ReviewContext, rule: Privileged) -> bool:
    if rule.allowedUsers and scope.glob_match(ctx.username, rule.allowedUsers):
        return True
    if rule.allowedGroups and any(scope.glob_match(g, rule.allowedGroups) for g in ctx.user_groups):
        return True
    account = ctx.service_account
    return bool(rule.allowedServiceAccounts) and account is not None and scope.glob_match(
        account, rule.allowedServiceAccounts
    )


def _from_trusted_controller(pod: model.PodTarget, ctx: model.ReviewContext, rule: Privileged) -> bool:
    """A trusted controller creating (or updating) an object it controls from a judged template.

    The owner check keeps a ``kube-system`` service account's own bare Pods or Deployments judged
    like anyone's: only objects a controller stamps out carry ``controller: true`` ownerReferences.
    """
    if pod.kind not in workloads.POD_KINDS:
        return False
    references = wording.as_dict(pod.obj.get("metadata")).get("ownerReferences")
    if not isinstance(references, list) or not any(
        isinstance(ref, dict) and ref.get("controller") is True for ref in references
    ):
        return False
    accounts = [entry for entry in rule.trustedControllers if "/" in entry]
    users = [entry for entry in rule.trustedControllers if "/" not in entry]
    account = ctx.service_account
    if accounts and account is not None and scope.glob_match(account, accounts):
        return True
    return bool(users) and bool(ctx.username) and scope.glob_match(ctx.username, users)


@_pod_check("privileged", order=90)
def privileged(
    pod: model.PodTarget, ctx: model.ReviewContext, params: SecurityContextSettings
) -> list[model.Violation]:
    """Only allowed requesters may create privileged pods (privileged containers, host namespaces)."""
    privileges = _privileges(pod)
    if not privileges:
        return []
    rule = params.privileged
    if _from_trusted_controller(pod, ctx, rule):
        return []
    namespace = model.namespace_of(pod.obj, ctx)
    requester = wording.quote(ctx.username or "(anonymous)")
    if not _requester_allowed(ctx, rule):
        why = f"requester {requester} may not create privileged pods"
    elif rule.namespaces and not scope.glob_match(namespace, rule.namespaces):
        why = (f"requester {requester} may create privileged pods only in namespaces "
               f"{wording.quote_all(rule.namespaces)}, not in {wording.quote(namespace)}")
    else:
        return []
    return [
        model.Violation(reason, f"{_subject(pod)} {what}; {why}", path=path, value=True, allowed=False)
        for reason, what, path in privileges
    ]
