"""The data a policy works with: what a check returns, what it sees about the request, the pod it inspects.

These are plain dataclasses, not pydantic models: they are built on every review, so they must be
cheap. Objects themselves stay plain dicts (STYLE.md rule 2).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple, Protocol

Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
OPERATIONS: frozenset[str] = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})

Mode = Literal["enforce", "warn", "audit", "off"]
"""enforce: deny (validating) or apply (mutating); warn: allow with a warning; audit: allow with an
audit annotation; off: skip. The same meaning as Pod Security admission's enforce/warn/audit labels."""

FailureMode = Literal["deny", "allow"]
"""What a review gets when a policy *raises*: a denial naming the policy, or an allow with a warning."""

Chain = Literal["mutating", "validating"]


class Violation(NamedTuple):
    """One finding of a validating check, worded like Pod Security admission's ``CheckResult``.

    ``reason`` is short and stable (``allowPrivilegeEscalation != false``); ``detail`` names the
    object or container, the field and what is allowed (``container "app" must set
    securityContext.allowPrivilegeEscalation=false``). A denial renders ``reason (detail)``.
    ``path`` is the dotted field path in the submitted object (into the pod template for workloads),
    ``value`` what was found, ``allowed`` what would pass; both are for machine use (record, review).

    A named tuple, immutable and hashable as the frozen dataclass it was: checks build one per
    finding on every review, and a frozen dataclass took three times as long to build (0.68 against
    0.23 µs, its ``__init__`` setting each field through ``object.__setattr__``).
    """

    reason: str
    detail: str = ""
    path: str = ""
    value: Any = None
    allowed: Any = None

    def text(self) -> str:
        return f"{self.reason} ({self.detail})" if self.detail else self.reason


class Authorizer(Protocol):
    """Answers "may this requester do that?" from a cache; ``None`` means not known yet."""

    def allowed(
        self,
        *,
        user: str,
        groups: tuple[str, ...],
        verb: str,
        group: str,
        resource: str,
        name: str,
        namespace: str,
    ) -> bool | None: ...


class ParamSource(Protocol):
    """Where admission policies find param objects besides the policy files (the cluster)."""

    def objects(self, api_version: str, kind: str) -> tuple[dict[str, Any], ...]: ...


@dataclasses.dataclass(slots=True, init=False)
class ReviewContext:
    """What a policy may know about the request besides the object (from ``AdmissionRequest``).

    ``namespace_labels`` is ``None`` when the namespace is unknown (no cluster, or not yet in the
    watch-fed cache): label-based scopes then do not match.
    """

    operation: Operation = "CREATE"
    kind: str = ""
    group: str = ""
    version: str = ""
    resource: str = ""
    sub_resource: str = ""
    namespace: str = ""
    name: str = ""
    uid: str = ""
    username: str = ""
    user_groups: tuple[str, ...] = ()
    dry_run: bool = False
    old_object: dict[str, Any] | None = None
    namespace_labels: Mapping[str, str] | None = None
    authorizer: Authorizer | None = None
    """Cached SubjectAccessReview answers; ``None`` without a cluster."""
    request: Mapping[str, Any] | None = None
    """The AdmissionRequest as received (CEL policies read ``userInfo.extra``, ``requestKind``,
    ``options``...); ``None`` when the context was built by hand."""
    params: ParamSource | None = None
    """Param objects read from the cluster (a watch-fed cache), besides those of the policy files;
    ``None`` without a cluster."""
    namespace_object: Mapping[str, Any] | None = None
    """The request's Namespace object when known whole (``review`` given a Namespace manifest);
    otherwise CEL's ``namespaceObject`` is built from the name and ``namespace_labels``."""

    def __init__(  # written out so mypyc compiles it (see webhook.review.Review)
        self,
        operation: Operation = "CREATE",
        kind: str = "",
        group: str = "",
        version: str = "",
        resource: str = "",
        sub_resource: str = "",
        namespace: str = "",
        name: str = "",
        uid: str = "",
        username: str = "",
        user_groups: tuple[str, ...] = (),
        dry_run: bool = False,
        old_object: dict[str, Any] | None = None,
        namespace_labels: Mapping[str, str] | None = None,
        authorizer: Authorizer | None = None,
        request: Mapping[str, Any] | None = None,
        params: ParamSource | None = None,
        namespace_object: Mapping[str, Any] | None = None,
    ) -> None:
        self.operation = operation
        self.kind = kind
        self.group = group
        self.version = version
        self.resource = resource
        self.sub_resource = sub_resource
        self.namespace = namespace
        self.name = name
        self.uid = uid
        self.username = username
        self.user_groups = user_groups
        self.dry_run = dry_run
        self.old_object = old_object
        self.namespace_labels = namespace_labels
        self.authorizer = authorizer
        self.request = request
        self.params = params
        self.namespace_object = namespace_object

    def request_resource(self) -> tuple[str, str, str, str] | None:
        """(group, version, resource, subresource) as the request was made, when the review says so
        (``requestResource``, ``requestSubResource``): the API server may have converted the object
        to another version (``resource``) for us. ``None`` when the review does not say. The API
        server omits an empty ``requestSubResource``, so an absent one is ``""``."""
        raw = self.request
        made = raw.get("requestResource") if raw is not None else None
        if raw is None or not isinstance(made, Mapping) or not made.get("resource"):
            return None
        sub_resource = raw.get("requestSubResource")
        return (str(made.get("group") or ""), str(made.get("version") or ""), str(made["resource"]),
                sub_resource if isinstance(sub_resource, str) else "")

    @property
    def service_account(self) -> str | None:
        """``namespace/name`` when the requester is a service account, else ``None``."""
        prefix = "system:serviceaccount:"
        if self.username.startswith(prefix):
            return self.username[len(prefix) :].replace(":", "/", 1)
        return None


@dataclasses.dataclass(slots=True, init=False)
class PodTarget:
    """The pod inside an object: a Pod itself, or the pod template of a workload.

    ``spec``/``metadata`` are the *live* dicts inside ``obj`` (mutations change them in place);
    ``spec_path``/``meta_path`` are dotted paths used in violation messages
    (``spec.template.spec`` for a Deployment, as Pod Security admission reports them).
    ``metadata`` may be ``None`` (a template without metadata): mutations call
    :meth:`metadata_for_write`, which creates it only when something is actually written, so an
    untouched template never gets a spurious ``add /spec/template/metadata`` in the patch.
    """

    obj: dict[str, Any]
    kind: str
    spec: dict[str, Any]
    metadata: dict[str, Any] | None
    holder: dict[str, Any]
    spec_path: str
    meta_path: str

    def __init__(  # written out so mypyc compiles it (see webhook.review.Review)
        self,
        obj: dict[str, Any],
        kind: str,
        spec: dict[str, Any],
        metadata: dict[str, Any] | None,
        holder: dict[str, Any],
        spec_path: str,
        meta_path: str,
    ) -> None:
        self.obj = obj
        self.kind = kind
        self.spec = spec
        self.metadata = metadata
        self.holder = holder
        self.spec_path = spec_path
        self.meta_path = meta_path

    @property
    def is_template(self) -> bool:
        return self.kind != "Pod"

    def metadata_for_write(self) -> dict[str, Any]:
        if self.metadata is None:
            self.metadata = self.holder.setdefault("metadata", {})
        return self.metadata

    @property
    def labels(self) -> Mapping[str, str]:
        labels = (self.metadata or {}).get("labels")
        return labels if isinstance(labels, dict) else {}

    @property
    def annotations(self) -> Mapping[str, str]:
        annotations = (self.metadata or {}).get("annotations")
        return annotations if isinstance(annotations, dict) else {}


def namespace_of(obj: Any, ctx: ReviewContext) -> str:
    """The namespace ``obj`` lives in, ``""`` for cluster-scoped objects.

    The request's namespace wins: the API server fills an object's empty ``metadata.namespace``
    from the request and refuses one that differs ("the namespace of the provided object does not
    match the namespace sent on the request"). The object's own is the fallback for requests that
    carry none, such as offline reviews of manifests that name their namespace themselves.
    """
    if ctx.namespace:
        return ctx.namespace
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
    return namespace if isinstance(namespace, str) else ""

