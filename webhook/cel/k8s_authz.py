"""The Kubernetes authorizer library (``library.Authz`` and ``library.AuthzSelectors``,
``k8s.io/apiserver/pkg/cel/library/authz.go``): ``authorizer`` and ``authorizer.requestResource``.

What an expression builds is a value (:mod:`webhook.cel.k8s_types`): ``authorizer.group('apps')
.resource('deployments').namespace('ns').name('x')`` is a ``kubernetes.authorization.ResourceCheck``
holding those attributes; ``authorizer.serviceAccount(ns, name)`` an ``Authorizer`` for that service
account; ``.check(verb)`` asks and gives a ``Decision`` with ``allowed()``, ``reason()``,
``errored()`` and ``error()``. The builders are pure functions with upstream's checks and texts
(``path must not be empty``, ``resource must not be empty``, ``Invalid service account name``,
``Invalid service account namespace``). ``check`` is the one function that needs the review: it is
bound per activation (:class:`Binding`, one per review), which knows the requesting user and whom
to ask (``ReviewContext.authorizer``).

Upstream asks the API server's authorizer synchronously, for every attribute. Here the review's
authorizer answers from a cache of SubjectAccessReviews (``webhook.cluster.AccessReviewCache``):

* no authorizer (no cluster): ``check`` is an evaluation error, :data:`NO_CLUSTER`, so the binding's
  ``failurePolicy`` decides (``Fail``: denied with ``expression '...' resulted in error: ...``;
  ``Ignore``: the validation is skipped);
* an answer not cached yet (the cache said ``None`` and asked in the background): an evaluation
  error too, :data:`NOT_KNOWN_YET`. The API server would have an answer; we do not block the
  request path on a SubjectAccessReview, and a ``false`` would deny whatever the failurePolicy
  says, so "unknown" must not read as "not allowed";
* an authorizer that only has ``allowed(user=, groups=, verb=, group=, resource=, name=,
  namespace=)`` (:class:`webhook.policy.model.Authorizer`) answers resource checks without a
  subresource or selectors, for the requester or a service account; a path, a subresource or a
  selector it cannot ask about is an evaluation error naming what (:func:`_askable`). Its
  decisions have no reason (``reason()`` is ``''``) and never errored;
* an authorizer that also has ``authorize(attributes)`` (:class:`AttributesAuthorizer`) gets the
  whole of upstream's ``AttributesRecord`` (:class:`Attributes`: user, groups, uid, extra, verb,
  path or group/version ``*``/resource/subresource/namespace/name and the raw selectors) and answers
  a :class:`Decision` (allowed, reason, error) or ``None``; an error in a decision is upstream's
  ``errored()``/``error()``, not an evaluation error.

Answers are memoized per review, so every policy of one review sees the same decision for the same
check. ``fieldSelector``/``labelSelector`` pass the selector text as written (a SubjectAccessReview
carries ``rawSelector``; the API server parses it).

What differs: upstream's values refuse ``==`` and have no fields; here they are messages, compare
field by field and expose their fields (``authorizer.requestResource.resource``).
"""

from __future__ import annotations

import dataclasses
import re
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from cel_expr_python import cel

from webhook.cel import k8s_types
from webhook.policy import model

NO_CLUSTER = "authorizer: no cluster connection to ask (SubjectAccessReview)"
"""Evaluation error of ``check`` when the review has no authorizer."""
NOT_KNOWN_YET = (
    "authorizer: the answer is not known yet (a SubjectAccessReview was asked in the background "
    "and is not cached yet)"
)
"""Evaluation error of ``check`` when the authorizer's cache does not know the answer yet."""

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


# -- What is asked and what comes back -----------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Attributes:
    """One authorization question, as upstream's ``authorizer.AttributesRecord`` (and a
    SubjectAccessReview's spec): who, the verb, and either a path or a resource."""

    user: str
    groups: tuple[str, ...]
    verb: str
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """``userInfo.extra`` as sorted (key, values) pairs (hashable: answers are memoized by it)."""
    resource_request: bool = True
    path: str = ""
    """For a non-resource request (``resource_request`` false): ``nonResourceAttributes.path``."""
    group: str = ""
    version: str = "*"
    """Always ``*``: upstream checks every version (``APIVersion: "*"``)."""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    field_selector: str = ""
    """The raw selector text (``rawSelector``), ``""`` for none."""
    label_selector: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """What an :class:`AttributesAuthorizer` answers (a SubjectAccessReview's status)."""

    allowed: bool
    reason: str = ""
    error: str = ""
    """``evaluationError``: upstream's ``errored()`` is true when it is not empty."""


@runtime_checkable
class AttributesAuthorizer(Protocol):
    """An authorizer that can ask any question of the library (paths, subresources, selectors,
    uid and extra). ``None``: not known yet."""

    def authorize(self, attributes: Attributes) -> Decision | None: ...


# -- The pure functions: building checks and reading decisions -------------------------------------

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_GO_SPACE = " \t\n\v\f\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
            "\u2028\u2029\u202f\u205f\u3000"
"""Go's ``unicode.IsSpace`` (what ``strings.TrimSpace`` trims); Python's ``str.strip()`` also trims
``\\x1c``-``\\x1f``."""


def _principal(value: Any) -> dict[str, str]:
    return {"service_account_namespace": value.service_account_namespace,
            "service_account_name": value.service_account_name}


def path(authorizer: Any, text: str) -> Any:
    """``<Authorizer>.path(string) <PathCheck>``."""
    if not text.strip(_GO_SPACE):
        raise ValueError("path must not be empty")
    return k8s_types.new(k8s_types.PATH_CHECK, path=text, **_principal(authorizer))


def group(authorizer: Any, name: str) -> Any:
    """``<Authorizer>.group(string) <GroupCheck>`` (``''``: the core group)."""
    return k8s_types.new(k8s_types.GROUP_CHECK, group=name, **_principal(authorizer))


def service_account(_authorizer: Any, namespace: str, name: str) -> Any:
    """``<Authorizer>.serviceAccount(namespace, name) <Authorizer>``: checks for that service
    account instead of the requester (the name is checked first, as upstream)."""
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(name):
        raise ValueError("Invalid service account name")
    if len(namespace) > 63 or not _DNS1123_LABEL.fullmatch(namespace):
        raise ValueError("Invalid service account namespace")
    return k8s_types.new(k8s_types.AUTHORIZER, service_account_namespace=namespace, service_account_name=name)


def resource(group_check: Any, name: str) -> Any:
    """``<GroupCheck>.resource(string) <ResourceCheck>``."""
    if not name.strip(_GO_SPACE):
        raise ValueError("resource must not be empty")
    return k8s_types.new(k8s_types.RESOURCE_CHECK, group=group_check.group, resource=name, **_principal(group_check))


def _with(field: str) -> Callable[[Any, str], Any]:
    """``<ResourceCheck>.<field>(string) <ResourceCheck>``: a copy with one attribute set (``''``
    unsets it)."""

    def setter(check: Any, value: str) -> Any:
        copy = k8s_types.new(k8s_types.RESOURCE_CHECK)
        copy.CopyFrom(check)
        setattr(copy, field, value)
        return copy

    setter.__name__ = field
    return setter


subresource = _with("subresource")
namespace = _with("namespace")
name = _with("name")
field_selector = _with("field_selector")
label_selector = _with("label_selector")


def allowed(decision: Any) -> bool:
    """``<Decision>.allowed()``: true only for an "allow" (a deny and "no opinion" are false)."""
    return bool(decision.allowed)


def reason(decision: Any) -> str:
    return str(decision.reason)


def errored(decision: Any) -> bool:
    return bool(decision.errored)


def error(decision: Any) -> str:
    """The authorizer's error, ``''`` when it had none."""
    return str(decision.error)


# -- Per review: who asks, whom to ask ------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


def service_account_user(namespace: str, name: str) -> User:
    """``serviceaccount.ServiceAccountInfo{Name, Namespace}.UserInfo()``: no uid, no extra."""
    return User(f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}",
                ("system:serviceaccounts", f"system:serviceaccounts:{namespace}"))


def _extra(value: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(value, Mapping):
        return ()
    return tuple(sorted(
        (str(key), tuple(str(v) for v in values) if isinstance(values, list) else ())
        for key, values in value.items()
    ))


class Binding:
    """``authorizer`` and ``authorizer.requestResource`` for one review, with the ``check``
    implementation that asks the review's authorizer for its user. Put it in the values given to
    :func:`webhook.cel.runtime.activation` under ``"authorizer"``; the activation turns it into the
    two variables and the late-bound ``check``. Built for every review, used by few: the values
    are made at the first activation that needs them (about 5 µs)."""

    __slots__ = ("__weakref__", "_answers", "_ctx", "_functions", "_request", "_variables", "authorizer")

    def __init__(self, ctx: model.ReviewContext | None) -> None:
        self._ctx = ctx
        self.authorizer: model.Authorizer | None = None if ctx is None else ctx.authorizer
        self._answers: dict[Attributes, Decision | None] = {}
        self._request: User | None = None
        self._variables: dict[str, Any] | None = None
        self._functions: list[Any] | None = None

    @classmethod
    def for_review(cls, ctx: model.ReviewContext) -> Binding:
        return cls(ctx)

    @property
    def request(self) -> User:
        """The requester, from the review's ``userInfo`` (uid and extra from the raw request)."""
        if self._request is None:
            ctx = self._ctx
            if ctx is None:
                self._request = User("")
            else:
                raw: Mapping[str, Any] = ctx.request if ctx.request is not None else {}
                found = raw.get("userInfo")
                info: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
                self._request = User(ctx.username, tuple(ctx.user_groups), str(info.get("uid") or ""),
                                     _extra(info.get("extra")))
        return self._request

    @property
    def variables(self) -> dict[str, Any]:
        """``authorizer`` and ``authorizer.requestResource`` (upstream's ``NewResourceAuthorizerVal``:
        the request's own resource with its subresource, namespace and name). The resource is
        ``requestResource``/``requestSubResource`` when the request has them: the original one, as
        upstream's ``versionedAttr.GetResource()``; ``resource`` may be an equivalent that matched."""
        if self._variables is None:
            fields: dict[str, str] = {}
            ctx = self._ctx
            if ctx is not None:
                fields = {"group": ctx.group, "resource": ctx.resource, "subresource": ctx.sub_resource,
                          "namespace": ctx.namespace, "name": ctx.name}
                made = ctx.request_resource()
                if made is not None:
                    fields.update(group=made[0], resource=made[2], subresource=made[3])
            self._variables = {
                "authorizer": k8s_types.new(k8s_types.AUTHORIZER),
                "authorizer.requestResource": k8s_types.new(k8s_types.RESOURCE_CHECK, **fields),
            }
        return self._variables

    @property
    def functions(self) -> list[Any]:
        """The late-bound ``check``: one runtime overload for both upstream ones (pathcheck_check,
        resourcecheck_check); cel-cpp dispatches on kinds, and every message is one kind."""
        if self._functions is None:
            # Through a weak reference: the function lives in a cel-cpp object, which the garbage
            # collector cannot see through, so a bound method there would keep the review (and its
            # objects) alive forever. The review's values hold the binding while it is evaluated.
            binding = weakref.ref(self)

            def check(target: Any, verb: str) -> Any:
                found = binding()
                if found is None:
                    raise ValueError("authorizer: the review this check belongs to is over")
                return found.check(target, verb)

            self._functions = [cel.Function("check", [k8s_types.TYPES[k8s_types.PATH_CHECK], cel.Type.STRING], True,
                                            check, k8s_types.TYPES[k8s_types.DECISION])]
        return self._functions

    def check(self, target: Any, verb: str) -> Any:
        """``<PathCheck|ResourceCheck>.check(verb) <Decision>``."""
        kind = k8s_types.kind(target)
        if kind not in (k8s_types.PATH_CHECK, k8s_types.RESOURCE_CHECK):
            raise ValueError("no such overload")
        user = self.request
        if target.service_account_name:
            user = service_account_user(target.service_account_namespace, target.service_account_name)
        if kind == k8s_types.PATH_CHECK:
            attributes = Attributes(user.name, user.groups, verb, user.uid, user.extra, resource_request=False,
                                    path=target.path, version="")
        else:
            attributes = Attributes(user.name, user.groups, verb, user.uid, user.extra, group=target.group,
                                    resource=target.resource, subresource=target.subresource,
                                    namespace=target.namespace, name=target.name,
                                    field_selector=target.field_selector, label_selector=target.label_selector)
        if attributes in self._answers:
            answer = self._answers[attributes]
        else:
            answer = self._answers[attributes] = self._ask(attributes)
        if answer is None:
            raise ValueError(NOT_KNOWN_YET)
        return k8s_types.new(k8s_types.DECISION, allowed=answer.allowed, reason=answer.reason,
                             errored=bool(answer.error), error=answer.error)

    def _ask(self, attributes: Attributes) -> Decision | None:
        authorizer = self.authorizer
        if authorizer is None:
            raise ValueError(NO_CLUSTER)
        if not isinstance(authorizer, AttributesAuthorizer):
            _askable(attributes)
        try:
            if isinstance(authorizer, AttributesAuthorizer):
                return authorizer.authorize(attributes)
            answer = authorizer.allowed(user=attributes.user, groups=attributes.groups, verb=attributes.verb,
                                        group=attributes.group, resource=attributes.resource, name=attributes.name,
                                        namespace=attributes.namespace)
        except Exception as exc:  # noqa: BLE001 - an authorizer's fault is this expression's error, not a crash
            raise ValueError(f"authorizer: {exc}") from None
        return None if answer is None else Decision(bool(answer))


def _askable(attributes: Attributes) -> None:
    """What an authorizer with only ``allowed(...)`` can be asked: a resource check without a
    subresource or selectors (uid and extra are not passed on)."""
    what = ""
    if not attributes.resource_request:
        what = f"a non-resource path ({attributes.path!r})"
    elif attributes.subresource:
        what = f"a subresource ({attributes.subresource!r})"
    elif attributes.field_selector:
        what = "a field selector"
    elif attributes.label_selector:
        what = "a label selector"
    if what:
        raise ValueError(f"authorizer: this webhook's SubjectAccessReview cache cannot ask about {what}; "
                         "it asks only by verb, group, resource, namespace and name")


UNAVAILABLE = Binding(None)
"""For an activation given no :class:`Binding` (``authorizer: None``): every ``check`` is
:data:`NO_CLUSTER`, ``authorizer.requestResource`` is empty."""
UNAVAILABLE.variables, UNAVAILABLE.functions  # noqa: B018 - made now: the one value is shared by threads
