"""A policy set's validating chain compiled for one (group, kind, operation): what the engine runs.

The registry of small check functions stays the source of truth; this module only decides, once per
policy set and request shape, what a review has to do, so the request path does nothing twice:

* each instance's mode is resolved for the kind (a workload's pod checks under ``workloadMode``),
  and instances that are ``off`` there are dropped;
* instances of a check whose params give the same result share one *call*: a review makes each
  call once, whatever number of levels and modes share it;
* a group with a :attr:`~webhook.policy.registry.Group.plan` (Pod Security) has its calls of one
  gate compiled into one *batch*: one walk over the pod for every check at every level;
* the findings of each (group, mode, params) go to one *bucket*, rendered into one message.

The engine runs a plan (:func:`webhook.engine.evaluate`) and keeps the plain path, instance by
instance, for the rare review where a check raises, and as the reference the plan is tested
against (``tests/test_plan.py``: the same answers, byte for byte).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from webhook.policy import model, registry
from webhook.policy import settings as policy_settings


@dataclasses.dataclass(frozen=True, slots=True)
class Instance:
    policy: registry.Policy
    group: registry.Group
    mode: model.Mode
    workload_mode: model.Mode | None
    params: Any
    settings: policy_settings.GroupSettings
    failure_mode: model.FailureMode
    exemptions: tuple[policy_settings.Exemptions, ...]
    gate: int
    """Instances with the same scope and exemptions share a gate: a review decides each gate once
    (Pod Security alone has 19 checks x 3 modes sharing one)."""
    reads_object: bool
    """Whether the scope or exemptions look at the object itself (labels, annotations, runtime
    class, opt-out annotation). The rest of a gate is decided once per review; these parts again
    after a mutation that may have changed what they read (a default label an object selector
    matches: :attr:`writes_metadata`, :attr:`writes_spec`)."""
    call: int
    """Instances of the same policy whose params give the same result share a call: a review runs
    it once (Pod Security's warn and audit passes are often both ``restricted:latest``, and a
    baseline check is the same revision at ``baseline:latest`` and ``restricted:latest``)."""
    reads_runtime_class: bool = False
    """Whether the gate's object-reading parts read the pod's ``runtimeClassName`` (an exemption
    names runtime classes); they always read labels and annotations (object, pod, opt-out)."""
    writes_metadata: bool = True
    """Whether this instance's mutation may change what gates read in metadata: labels or
    annotations of the object or its pod (from :attr:`registry.Policy.writes`; an object-level
    mutation or one without a declared write set may change anything)."""
    writes_spec: bool = True
    """Whether it may change the pod's ``runtimeClassName`` (it writes the pod ``spec`` itself)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    """One instance as a review runs it."""

    order: int
    """Position among the chain's instances: findings and buckets keep the plain path's order."""
    inst: Instance
    mode: model.Mode
    """The instance's mode for this kind (``workloadMode`` already applied)."""
    call: int
    bucket: int


@dataclasses.dataclass(frozen=True, slots=True)
class Batch:
    """A group's pod checks behind one gate, evaluated together by the group's plan."""

    gate: Instance
    """Any instance of the batch: they share their gate."""
    run: registry.BatchFn
    entries: tuple[tuple[Step, ...], ...]
    """For each entry the batch was compiled from (one per call), the steps it answers."""


@dataclasses.dataclass(frozen=True, slots=True)
class Bucket:
    """Where findings of one group at one mode and params go, and how its message is keyed."""

    inst: Instance
    mode: model.Mode
    render_key: Any
    """Equal for buckets whose equal findings render equal messages (Pod Security's warn and audit
    passes at the same level and version)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Validation:
    batches: tuple[Batch, ...]
    singles: tuple[Step, ...]
    """Steps of calls that are not batched, in order."""
    buckets: tuple[Bucket, ...]
    calls: int


def params_key(params: Any) -> Any:
    """A key equal for equal params: the params themselves when hashable (frozen models), else
    identity. The engine keys check results by it too."""
    try:
        hash(params)
    except TypeError:
        return id(params)
    return params


def compile_validation(instances: tuple[Instance, ...], *, kind: str) -> Validation | None:
    """The plan for ``instances`` (already selected for chain, group, kind and operation) on
    objects of ``kind``; ``None`` when nothing would run."""
    is_workload = kind != "Pod"
    steps: list[Step] = []
    buckets: dict[tuple[str, str, int], int] = {}
    bucket_list: list[Bucket] = []
    equal_params: dict[Any, int] = {}  # equal params -> one small int, so a render key hashes fast
    for order, inst in enumerate(instances):
        mode = inst.mode
        if mode == "enforce" and is_workload and inst.policy.pod_spec and inst.workload_mode:
            mode = inst.workload_mode
        if mode == "off":
            continue
        key = (inst.group.name, mode, id(inst.params))
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = len(bucket_list)
            shown = inst.group.render_mode(mode) if inst.group.render_mode is not None else mode
            params = equal_params.setdefault(params_key(inst.params), len(equal_params))
            bucket_list.append(Bucket(inst, mode, (inst.group.name, shown, params)))
        steps.append(Step(order, inst, mode, inst.call, bucket))
    if not steps:
        return None
    # Batches: a planned group's pod-spec steps, one batch per gate, one entry per call.
    grouped: dict[tuple[str, int], dict[int, list[Step]]] = {}
    singles: list[Step] = []
    for step in steps:
        group = step.inst.group
        if group.plan is not None and step.inst.policy.pod_spec:
            grouped.setdefault((group.name, step.inst.gate), {}).setdefault(step.call, []).append(step)
        else:
            singles.append(step)
    batches = []
    for by_call in grouped.values():
        firsts = [calls[0].inst for calls in by_call.values()]
        plan = firsts[0].group.plan
        assert plan is not None
        batches.append(
            Batch(
                gate=firsts[0],
                run=plan([(inst.policy, inst.params) for inst in firsts]),
                entries=tuple(tuple(calls) for calls in by_call.values()),
            )
        )
    return Validation(
        batches=tuple(batches),
        singles=tuple(singles),
        buckets=tuple(bucket_list),
        calls=1 + max(step.call for step in steps),
    )
