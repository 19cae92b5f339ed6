"""The admission chain's webhook part: mutating webhooks in order (with reinvocation), then the
validating webhooks concurrently — mutating/dispatcher.go and validating/dispatcher.go.

Where ``failurePolicy`` applies and where it does not, as upstream decides by error type:

* **Call failures** (``ErrCallingWebhook``: connection refused, TLS, timeout, non-2xx, malformed or
  mismatched answer, undecodable patch, unsupported patchType) obey failurePolicy: ``Fail`` turns
  them into ``Internal error occurred: failed calling webhook ...``; ``Ignore`` continues and
  records a ``failed-open.*`` audit annotation.
* **Rejections** (``allowed: false``) always reject, whatever failurePolicy says.
* **A patch that does not apply**, or a patch on a DELETE, is an internal error of the API server
  and rejects the request even under ``Ignore``.
* **A matchCondition that fails to evaluate** rejects (Forbidden) under ``Fail`` before any call,
  and skips the webhook under ``Ignore``.

Reinvocation (``reinvocationPolicy: IfNeeded``): when a webhook changes the object, the IfNeeded
webhooks called *before* it are marked for one more round; after the first round, if anything
changed, the marked ones are called again once (only if they still match; a webhook skipped in
round 0 is never called for the first time in round 1). Validating webhooks run after all that,
all at once; when several reject, the first answer to arrive is the one the client sees.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Callable
from typing import Any, Literal

from webhook import gotext
from webhook.emulator import attributes, caller, config, jsonpatch, matching, texts

Outcome = Literal["allowed", "patched", "denied", "failed-open", "failed-closed", "error", "skipped"]
Phase = Literal["mutating", "validating"]
Resolve = Callable[[config.Hook], caller.Target]

_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


@dataclasses.dataclass(frozen=True, slots=True)
class WebhookReport:
    name: str
    phase: Phase
    outcome: Outcome
    latency_ms: float
    round: int = 0
    detail: str = ""
    """Skip reason, rejection or error text, for the text report."""


@dataclasses.dataclass(slots=True)
class Result:
    admitted: bool
    status: texts.Status | None
    object: dict[str, Any] | None
    original: dict[str, Any] | None
    warnings: list[str] = dataclasses.field(default_factory=list)
    audit_annotations: dict[str, str] = dataclasses.field(default_factory=dict)
    webhooks: list[WebhookReport] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    """What the emulator could not do exactly as the API server, said once per request."""


class _Rejected(Exception):
    """The request fails with ``status`` and failurePolicy has no say (a denial, a bad patch)."""

    def __init__(self, status: texts.Status, outcome: Outcome) -> None:
        super().__init__(status.message)
        self.status, self.outcome = status, outcome


class _Run:
    """The state of one request through the chain."""

    def __init__(self, attrs: attributes.Attributes, resolve: Resolve) -> None:
        self.attrs = attrs
        self.resolve = resolve
        self.result = Result(admitted=True, status=None, object=attrs.object, original=attrs.object)
        self._patch_annotation = ""

    def annotate(self, key: str, value: str) -> None:
        # admission.Attributes.AddAnnotation: keys must be qualified names and are never overwritten.
        prefix, _, name = key.rpartition("/")
        if not _NAME_PART.match(name) or len(name) > 63 or len(prefix) > 253:
            self.result.notes.append(
                f"audit annotation {key!r} dropped: the key is not a valid qualified name"
            )
            return
        self.result.audit_annotations.setdefault(key, value)

    def warn(self, warnings: tuple[str, ...]) -> None:
        for warning in warnings:
            if warning not in self.result.warnings:
                self.result.warnings.append(warning)

    def report(
        self,
        hook: config.Hook,
        outcome: Outcome,
        started: float | None,
        *,
        round_no: int = 0,
        detail: str = "",
    ) -> None:
        latency = (time.perf_counter() - started) * 1000 if started is not None else 0.0
        phase: Phase = "mutating" if hook.mutating else "validating"
        self.result.webhooks.append(
            WebhookReport(
                hook.name, phase, outcome, round=round_no, latency_ms=round_ms(latency), detail=detail
            )
        )

    def reject(self, status: texts.Status) -> Result:
        self.result.admitted, self.result.status, self.result.object = False, status, None
        return self.result

    async def answer(self, hook: config.Hook, attrs: attributes.Attributes) -> caller.Answer:
        answer = await caller.call(hook.webhook, attrs, to=self.resolve(hook))
        for key, value in answer.verified.audit_annotations.items():
            self.annotate(f"{hook.name}/{key}", value)
        self.warn(answer.verified.warnings)
        if not answer.verified.allowed:
            raise _Rejected(texts.denied(hook.name, answer.verified.result), "denied")
        return answer

    async def mutate(self, hook: config.Hook, attrs: attributes.Attributes) -> dict[str, Any] | None:
        """Call ``hook``; the patched object, or None when it did not patch (mutating/dispatcher.go)."""
        verified = (await self.answer(hook, attrs)).verified
        if not verified.patch:
            return None
        try:
            ops = jsonpatch.decode(verified.patch)
        except jsonpatch.PatchError as exc:
            raise caller.CallFailed(f"received undecodable patch in webhook response: {exc}") from None
        if not ops:
            return None
        if attrs.object is None:
            raise _Rejected(
                texts.internal_error(
                    f"admission webhook {gotext.quote(hook.name)} attempted to modify the object, "
                    "which is not supported for this operation"
                ),
                "error",
            )
        if verified.patch_type != "JSONPatch":
            raise caller.CallFailed(f"unsupported patch type {gotext.quote(verified.patch_type)}")
        try:
            patched = jsonpatch.apply(ops, attrs.object)
        except jsonpatch.PatchError as exc:
            raise _Rejected(texts.internal_error(str(exc)), "error") from None
        self._patch_annotation = texts.go_json_marshal(
            {
                "configuration": hook.configuration,
                "webhook": hook.name,
                "patch": ops,
                "patchType": "JSONPatch",
            }
        )
        return patched

    async def mutating(self, hooks: tuple[config.Hook, ...]) -> Result | None:
        previously: set[str] = set()
        reinvoke: set[str] = set()
        again = False
        for round_ in (0, 1):
            if round_ == 1 and not again:
                break
            for index, hook in enumerate(hooks):
                attrs = dataclasses.replace(self.attrs, object=self.result.object)
                decision = matching.should_call(hook, attrs)
                if decision.error is not None:
                    self.report(hook, "error", None, round_no=round_, detail=decision.error.message)
                    return self.reject(decision.error)
                if not decision.call:
                    if round_ == 0:
                        self.report(hook, "skipped", None, detail=decision.reason)
                    continue
                if round_ == 1 and hook.uid not in reinvoke:
                    continue
                keys = f"round_{round_}_index_{index}"
                started = time.perf_counter()
                self._patch_annotation = ""
                failure: caller.CallFailed | _Rejected | None = None
                patched = None
                try:
                    patched = await self.mutate(hook, attrs)
                except (caller.CallFailed, _Rejected) as exc:
                    failure = exc
                changed = patched is not None and patched != attrs.object
                self.annotate(
                    f"mutation.webhook.admission.k8s.io/{keys}",
                    texts.go_json_marshal(
                        {"configuration": hook.configuration, "webhook": hook.name, "mutated": changed}
                    ),
                )
                if patched is not None:
                    self.annotate(f"patch.webhook.admission.k8s.io/{keys}", self._patch_annotation)
                    self.result.object = patched
                if changed:
                    reinvoke |= previously
                    previously = set()
                    again = True
                if getattr(hook.webhook, "reinvocation_policy", "Never") == "IfNeeded":
                    previously.add(hook.uid)
                if failure is None:
                    self.report(hook, "patched" if changed else "allowed", started, round_no=round_)
                    continue
                if isinstance(failure, _Rejected):
                    self.report(
                        hook, failure.outcome, started, round_no=round_, detail=failure.status.message
                    )
                    return self.reject(failure.status)
                text = texts.calling_error(hook.name, str(failure))
                if hook.webhook.failure_policy == "Ignore":
                    self.annotate(f"failed-open.mutation.webhook.admission.k8s.io/{keys}", hook.name)
                    self.report(hook, "failed-open", started, round_no=round_, detail=text)
                    continue
                self.report(hook, "failed-closed", started, round_no=round_, detail=text)
                return self.reject(texts.internal_error(text))
        return None

    async def validating(self, hooks: tuple[config.Hook, ...]) -> Result | None:
        attrs = dataclasses.replace(self.attrs, object=self.result.object)
        relevant: list[config.Hook] = []
        for hook in hooks:
            decision = matching.should_call(hook, attrs)
            if decision.error is not None:
                self.report(hook, "error", None, detail=decision.error.message)
                return self.reject(decision.error)
            if decision.call:
                relevant.append(hook)
            else:
                self.report(hook, "skipped", None, detail=decision.reason)
        arrived: list[texts.Status] = []

        async def one(index: int, hook: config.Hook) -> None:
            started = time.perf_counter()
            try:
                await self.answer(hook, attrs)
            except _Rejected as exc:
                self.report(hook, exc.outcome, started, detail=exc.status.message)
                arrived.append(exc.status)
                return
            except caller.CallFailed as exc:
                text = texts.calling_error(hook.name, str(exc))
                if hook.webhook.failure_policy == "Ignore":
                    self.annotate(
                        f"failed-open.validating.webhook.admission.k8s.io/round_0_index_{index}", hook.name
                    )
                    self.report(hook, "failed-open", started, detail=text)
                    return
                self.report(hook, "failed-closed", started, detail=text)
                arrived.append(texts.internal_error(text))
                return
            self.report(hook, "allowed", started)

        await asyncio.gather(*(one(i, h) for i, h in enumerate(relevant)))
        if arrived:
            return self.reject(arrived[0])
        return None


def round_ms(value: float) -> float:
    return round(value, 1)


async def admit(
    loaded: config.Loaded,
    attrs: attributes.Attributes,
    *,
    resolve: Resolve,
) -> Result:
    """Run ``attrs`` through the webhooks of ``loaded``; ``resolve`` says where each one is reached."""
    run = _Run(attrs, resolve)
    if matching.exempt(attrs):
        run.result.notes.append(f"{attrs.kind} requests are never sent to admission webhooks")
        return run.result
    rejected = await run.mutating(loaded.mutating)
    if rejected is not None:
        return rejected
    rejected = await run.validating(loaded.validating)
    if rejected is not None:
        return rejected
    return run.result
