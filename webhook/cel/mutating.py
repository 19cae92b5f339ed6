"""MutatingAdmissionPolicy evaluation with the API server's semantics and texts.

Follows ``pkg/admission/plugin/policy/mutating`` (``dispatcher.go``, ``patch/json_patch.go``,
``patch/smd.go``, ``reinvocationcontext.go``) and the generic dispatcher, as recorded in section 9 of
docs/reference/cel-admission-facts.md:

* the (policy, binding) pairs whose rules and selectors match the request (on the object as it came
  in), once per param; per invocation the matchConditions run on the object as mutated so far (any
  ``false`` skips; an error is a policy error), then every mutation in order, each on the result of
  the previous one (``object`` is the current object, variables are evaluated again);
* a mutation that fails (an expression error, a JSON Patch that does not apply, an apply
  configuration that mutates an atomic field) is a policy error and the next mutation still runs;
  a JSON Patch whose ``test`` op fails is skipped silently;
* errors of ``failurePolicy: Ignore`` policies are dropped; the first remaining one denies the
  request with ``policy '<p>' with binding '<b>' denied request: <error>``, code **403** whatever the
  reason (``Invalid`` for condition and mutation errors, ``Forbidden`` for configuration errors),
  every error a cause;
* ``reinvocationPolicy: IfNeeded``: see :class:`Reinvocation`.

The answer is the mutated object; the caller diffs it against the original (one JSON patch for the
whole chain). Policy order is by policy name, then binding name (the API server's comes from a Go
map). Nothing here raises for a policy's fault.

Differences from the API server, all from having no schemas and no typed objects:

* an apply configuration is merged with a small table (:data:`SCHEMAS`: the list-map keys, sets and
  atomic structs and maps of Pods, the pod templates of workloads, Services); what it leaves out is
  SMD's deduced schema (objects merge by field, lists are atomic). So a misspelt field is merged
  instead of refused (``field not declared in schema``), a custom resource's
  ``x-kubernetes-list-type: map`` list is atomic here, and scalar types are not checked;
* after a JSON Patch there is no strict decoding (the API server answers 500 for an unknown field)
  and after each mutation no defaulting of the kind;
* the patch types are maps (:mod:`webhook.cel.rewrite`): a JSONPatch field of the wrong type fails
  at evaluation, not on create, and ``Object`` type names are checked in the source, reported when
  the mutation runs (the API server checks the values it built).
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from webhook import jsonpointer
from webhook.cel import k8s_authz, matching, pairing, params, runtime, validating
from webhook.cel import mutating_documents as mdocs
from webhook.cel import reads as reads_module
from webhook.policy import model

CODE = 403
"""``admission.NewForbidden``: the code stays 403 when the reason is replaced by ``Invalid``."""


Denial = validating.Denial


Key = tuple[str, str, str, str]
"""An invocation: policy, binding, param namespace, param name (``reinvocationcontext.go`` ``key``)."""


@dataclasses.dataclass(slots=True)
class Reinvocation:
    """What the API server's ``policyReinvokeContext`` remembers between the first pass of the
    policies and the reinvocation (at most one, after the other mutating plugins ran).

    A policy with ``reinvocationPolicy: IfNeeded`` runs again when, after it ran, a later policy or
    a later plugin (here: the built-in mutating groups) changed the object."""

    invoked: set[Key] = dataclasses.field(default_factory=set)
    """IfNeeded invocations not yet due again."""
    due: set[Key] = dataclasses.field(default_factory=set)
    """IfNeeded invocations that run on reinvocation."""
    last_output: Any = None
    """The object as the last pass of the policies left it."""

    def require(self) -> None:
        """``RequireReinvokingPreviouslyInvokedPlugins``."""
        self.due |= self.invoked
        self.invoked = set()

    def needed(self, obj: Any) -> bool:
        """Whether a reinvocation pass would run anything for ``obj`` (the object after the other
        mutating plugins)."""
        return bool(self.due) or (bool(self.invoked) and not _same(obj, self.last_output))


@dataclasses.dataclass(slots=True)
class Result:
    """What the mutating policies did to one request."""

    object: dict[str, Any] | None = None
    """The mutated object, independent of the one passed in; None when nothing changed or denied."""
    denial: Denial | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)
    """None today: the API server's mutating policies send no warnings."""
    changed: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    """(policy, binding) pairs that changed the object, in order, for logs and metrics."""
    ignored: list[str] = dataclasses.field(default_factory=list)
    """Errors of ``failurePolicy: Ignore`` policies (dropped from the answer; for logs)."""
    reinvocation: Reinvocation = dataclasses.field(default_factory=Reinvocation)


Pair = tuple[mdocs.MutatingPolicy, mdocs.MutatingBinding]


@dataclasses.dataclass(frozen=True)
class PolicySet(pairing.Pairing[mdocs.MutatingPolicy, mdocs.MutatingBinding]):
    """The mutating policies of a policy set with their bindings and param objects."""

    reads: reads_module.Reads = dataclasses.field(init=False, repr=False, compare=False)
    """What the expressions together can read of the per-review variables: each activation converts
    only that into CEL values (:mod:`webhook.cel.reads`)."""
    projected: bool = True
    """Whether activations get only what the expressions read; False gives them the variables whole
    (the reference the tests compare with)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        programs = [named.program for policy in self.policies
                    for named in (*policy.match_conditions, *policy.variables)]
        programs += [mutation.program for policy in self.policies for mutation in policy.mutations]
        found = reads_module.union(program.reads for program in programs) if self.projected else reads_module.EVERYTHING
        object.__setattr__(self, "reads", found)


@dataclasses.dataclass(frozen=True, slots=True)
class _Error:
    policy: mdocs.MutatingPolicy
    binding: mdocs.MutatingBinding
    message: str
    reason: str = ""

    def text(self) -> str:
        return f"policy '{self.policy.name}' with binding '{self.binding.name}' denied request: {self.message}"


class _Failed(Exception):
    """A mutation that did not apply; the message is the API server's policy error detail."""


def apply(
    policy_set: PolicySet, obj: Any, ctx: model.ReviewContext, *, reinvocation: Reinvocation | None = None
) -> Result:
    """Run every binding that matches the request on ``obj`` (never modified).

    Without ``reinvocation``: the first pass. With the :attr:`Result.reinvocation` of the first pass:
    the reinvocation pass, on the object as the later mutating plugins left it; only the IfNeeded
    invocations that are due run."""
    state = Reinvocation()
    if reinvocation is not None:  # a copy: the caller's first-pass result stays as it was
        state = Reinvocation(set(reinvocation.invoked), set(reinvocation.due), reinvocation.last_output)
    result = Result(reinvocation=state)
    if policy_set.empty or validating._exempt(ctx):
        return result
    if reinvocation is not None and not _same(obj, state.last_output):
        state.require()  # another plugin changed the object since the policies' last pass
    reads, project = policy_set.reads, reads_module.project
    base = {
        "oldObject": project(ctx.old_object, reads.get("oldObject", {})),
        "request": project(validating.request_variable(ctx), reads.get("request", {})),
        "namespaceObject": project(validating.namespace_object(ctx), reads.get("namespaceObject", {})),
        "authorizer": k8s_authz.Binding.for_review(ctx),  # the user's access, asked per check
    }
    errors: list[_Error] = []
    invocations: list[tuple[mdocs.MutatingPolicy, mdocs.MutatingBinding, Any]] = []
    # The generic dispatcher matches every hook and collects params first, on the incoming object.
    for policy, binding in policy_set.candidates(ctx):
        if not matching.selectors_match(policy.match_constraints, ctx, obj):
            continue
        if binding.match_resources is not None and not matching.selectors_match(binding.match_resources, ctx, obj):
            continue
        try:
            found = policy_set.params.for_binding(policy.param_kind, binding.param_ref, ctx)
        except params.ConfigurationError as exc:
            errors.append(_Error(policy, binding, f"failed to configure binding: {exc}"))
            continue
        invocations.extend((policy, binding, param) for param in found)
    current = obj
    for policy, binding, param in invocations:
        invocation = _Invocation(policy, param, base, reads.get("object", {}))
        proceed, failed = invocation.conditions(current)
        if failed is not None:
            errors.append(_Error(policy, binding, failed, "Invalid"))
        if not proceed:
            continue
        key = _key(policy, binding, param)
        if reinvocation is not None and key not in state.due:
            continue
        before = current
        for mutation in policy.mutations:
            if current is None:
                continue  # a delete (or a connect) has no object to patch
            try:
                current = _mutate(invocation, mutation, current)
            except _Failed as exc:
                errors.append(_Error(policy, binding, str(exc), "Invalid"))
        if not _same(before, current):
            state.require()
            if (policy.name, binding.name) not in result.changed:
                result.changed.append((policy.name, binding.name))
        if policy.reinvocation_policy == "IfNeeded":
            state.invoked.add(key)
    # Only kept while an IfNeeded invocation may be due: a reinvocation compares the object with it.
    state.last_output = copy.deepcopy(current) if state.invoked or state.due else None
    kept = [e for e in errors if e.policy.failure_policy != "Ignore"]
    result.ignored = [e.text() for e in errors if e.policy.failure_policy == "Ignore"]
    if kept:
        first = kept[0]
        result.denial = Denial(first.text(), first.reason or "Forbidden", CODE, first.policy.name, first.binding.name,
                               tuple(e.text() for e in kept))
        result.changed = []
    elif not _same(obj, current):
        result.object = copy.deepcopy(current)
    return result


def _key(policy: mdocs.MutatingPolicy, binding: mdocs.MutatingBinding, param: Any) -> Key:
    metadata = param.get("metadata") if isinstance(param, dict) else None
    metadata = metadata if isinstance(metadata, dict) else {}
    return policy.name, binding.name, str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def _same(left: Any, right: Any) -> bool:
    """Equal as JSON (Python's == says 1 == 1.0 == True; JSON does not)."""
    if left is right:
        return True
    if left != right:
        return False
    try:
        return orjson.dumps(left, option=orjson.OPT_SORT_KEYS) == orjson.dumps(right, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return False


# --- one invocation: variables, matchConditions, the mutations' expressions ---------------------


class _Invocation:
    """One (policy, binding, param); every expression gets an activation on the current object
    with the composited variables it uses (the API server builds one per evaluation)."""

    def __init__(self, policy: mdocs.MutatingPolicy, param: Any, base: Mapping[str, Any],
                 object_reads: reads_module.Tree) -> None:
        self.policy = policy
        self.object_reads = object_reads
        """What the policy set's expressions read of ``object`` (projected per activation)."""
        self.values = dict(base)
        if policy.param_kind is not None:
            self.values["params"] = param

    def bind(self, obj: Any, programs: Sequence[runtime.Program]) -> tuple[Any, dict[str, str]]:
        needed: set[str] = set()
        for program in programs:
            needed |= program.variables
        for variable in reversed(self.policy.variables):  # a variable may only use those declared before it
            if variable.name in needed:
                needed |= variable.program.variables
        values = {**self.values, "object": reads_module.project(obj, self.object_reads)}
        variables: dict[str, Any] = {}
        failed: dict[str, str] = {}
        declared = self.policy.declared
        for variable in self.policy.variables:
            if variable.name not in needed:
                continue  # never referenced: never evaluated, never fails (the API server's lazy map)
            values["variables"] = variables
            result = runtime.evaluate(variable.program, runtime.activation(values, declared=declared))
            if result.error is not None:
                failed[variable.name] = (f'composited variable "{variable.name}" fails to evaluate: '
                                         f"{_explain(variable.program, result.error, failed)}")
            else:
                variables[variable.name] = result.value
        values["variables"] = variables
        return runtime.activation(values, declared=declared), failed

    def conditions(self, obj: Any) -> tuple[bool, str | None]:
        """Whether the matchConditions let the policy run, and the error when deciding failed."""
        conditions = self.policy.match_conditions
        if not conditions:
            return True, None
        bound, failed = self.bind(obj, [c.program for c in conditions])
        errors: list[str] = []
        for condition in conditions:
            result = runtime.evaluate(condition.program, bound)
            if result.error is not None:
                message = _error_message(condition.program, _explain(condition.program, result.error, failed))
                if message not in errors:
                    errors.append(message)
            elif result.value is False:
                return False, None
        if errors:
            return False, errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
        return True, None

    def run(self, program: runtime.Program, obj: Any) -> Any:
        bound, failed = self.bind(obj, [program])
        result = runtime.evaluate(program, bound)
        if result.error is not None:
            raise _Failed(_error_message(program, _explain(program, result.error, failed)))
        return result.value


def _explain(program: runtime.Program, error: str, failed: Mapping[str, str]) -> str:
    """A missing key that is a failed variable the expression uses is that variable's error."""
    if error.startswith("no such key: "):
        name = error[len("no such key: "):]
        if name in failed and name in program.variables:
            return failed[name]
    return error


def _error_message(program: runtime.Program, error: str) -> str:
    return f"expression '{program.source}' resulted in error: {error}"


def _mutate(invocation: _Invocation, mutation: mdocs.Mutation, obj: Any) -> Any:
    """The object after one mutation; raises :class:`_Failed`."""
    value = invocation.run(mutation.program, obj)
    if mutation.patch_type == "JSONPatch":
        return _json_patch_mutation(mutation, value, obj)
    return _apply_configuration(mutation, value, obj)


# --- JSONPatch ------------------------------------------------------------------------------------

_JSONPATCH_FIELDS = ("op", "path", "from", "value")


def _json_patch_mutation(mutation: mdocs.Mutation, value: Any, obj: Any) -> Any:
    """``jsonPatcher.Patch``: the ops in order (``op``, ``path``, ``from`` if not empty, ``value``
    if set, through ``structpb.Value``), applied with evanphx/json-patch v4 semantics."""
    if not isinstance(value, list):
        raise _Failed("type mismatch: JSONPatchType.expression should evaluate to array")
    ops: list[dict[str, Any]] = []
    for item in value:
        if not isinstance(item, dict):
            raise _Failed("type mismatch: JSONPatchType.expression should evaluate to array of JSONPatch, got "
                          f"element of {_go_kind(item)}")
        for name, field in item.items():
            # The API server builds each JSONPatch while evaluating; these are its evaluation errors.
            if name not in _JSONPATCH_FIELDS:
                raise _Failed(_error_message(mutation.program, f"unexpected JSONPatchType field: {name}"))
            if name != "value" and not isinstance(field, str):
                raise _Failed(_error_message(mutation.program,
                                             f"unexpected type {_go_kind(field)} for JSONPatchType '{name}' field"))
    if mutation.mismatches and any(isinstance(item.get("value"), dict) for item in value):
        raise _Failed("type mismatch: " + "\n".join(mutation.mismatches))
    for item in value:
        op: dict[str, Any] = {"op": item.get("op", ""), "path": item.get("path", "")}
        if item.get("from"):
            op["from"] = item["from"]
        if "value" in item:
            try:
                op["value"] = _structpb(item["value"])
            except ValueError as exc:
                raise _Failed(f"JSONPath valueExpression evaluated to a type that could not marshal to JSON: "
                              f"{exc}") from None
        ops.append(op)
    try:
        return _apply_json_patch(obj, ops)
    except _TestFailed:
        return obj  # a failing test op: the patch is not applied, and that is not an error
    except _PatchError as exc:
        raise _Failed(f"JSON Patch: {exc}") from None


def _go_kind(value: Any) -> str:
    names = {bool: "bool", int: "int64", float: "float64", str: "string", bytes: "[]uint8", list: "[]interface {}",
             dict: "map[string]interface {}", type(None): "<nil>"}
    return names.get(type(value), type(value).__name__)


def _structpb(value: Any) -> Any:
    """A CEL value as ``structpb.Value`` and back from JSON: numbers are doubles (integral ones come
    back as integers), bytes base64, timestamps RFC 3339, durations ``<seconds>s``."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        number = float(value)
        return int(number) if number.is_integer() and abs(number) < 1e21 else number
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime.datetime):
        return _timestamp(value)
    if isinstance(value, datetime.timedelta):
        return _duration(value)
    if isinstance(value, list):
        return [_structpb(item) for item in value]
    if isinstance(value, dict):
        _string_keys(value)
        return {key: _structpb(value[key]) for key in sorted(value)}
    raise ValueError(f"unsupported value of type {_go_kind(value)}")


def _string_keys(value: Mapping[Any, Any]) -> None:
    """Maps from CEL become JSON objects: string keys only. Callers sort the keys, as Go's
    encoding/json does (cel-cpp's order is not stable), so the same policy gives the same patch."""
    for key in value:
        if not isinstance(key, str):
            raise ValueError(f"map key {key!r} is of type {_go_kind(key)}, not string")


def _timestamp(value: datetime.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(datetime.UTC).replace(tzinfo=None)
    text = value.isoformat(timespec="microseconds").rstrip("0").rstrip(".")
    return text + "Z"


def _duration(value: datetime.timedelta) -> str:
    seconds = value.total_seconds()
    return f"{int(seconds)}s" if seconds.is_integer() else f"{seconds:.9f}".rstrip("0") + "s"


_PatchError = jsonpointer.PatchError
_MISSING = jsonpointer.MISSING


class _TestFailed(Exception):
    """``ErrTestFailed``."""


def _equal(left: Any, right: Any) -> bool:
    """``lazyNode.equal``: JSON equality (true is not 1)."""
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    return type(left) is type(right) and bool(left == right)


def _apply_json_patch(obj: Any, ops: Sequence[Mapping[str, Any]]) -> Any:
    """``Patch.Apply`` of gopkg.in/evanphx/json-patch.v4 on a copy of ``obj``."""
    holder = [copy.deepcopy(obj)]
    for op in ops:
        kind, path = op["op"], op["path"]
        value = copy.deepcopy(op.get("value"))
        if kind == "add":
            found = jsonpointer.find(holder[0], path)
            if found is None:
                raise _PatchError(f'add operation does not apply: doc is missing path: "{path}": {_MISSING}')
            try:
                jsonpointer.add(found[0], found[1], value)
            except _PatchError as exc:
                raise _PatchError(f"error in add for path: '{path}': {exc}") from None
        elif kind == "remove":
            found = jsonpointer.find(holder[0], path)
            if found is None:
                raise _PatchError(f'remove operation does not apply: doc is missing path: "{path}": {_MISSING}')
            try:
                jsonpointer.remove(found[0], found[1])
            except _PatchError as exc:
                raise _PatchError(f"error in remove for path: '{path}': {exc}") from None
        elif kind == "replace":
            _replace(holder, path, value)
        elif kind == "move":
            _move(holder[0], op)
        elif kind == "test":
            _test(holder[0], path, op)
        elif kind == "copy":
            _copy(holder[0], op)
        else:
            raise _PatchError(f"Unexpected kind: {kind}")
    return holder[0]


def _replace(holder: list[Any], path: str, value: Any) -> None:
    if path == "":
        if not isinstance(value, dict | list):
            raise _PatchError("replace operation value must be object or array: %!w(<nil>)")
        holder[0] = value
        return
    found = jsonpointer.find(holder[0], path)
    if found is None:
        raise _PatchError(f"replace operation does not apply: doc is missing path: {path}: {_MISSING}")
    try:
        jsonpointer.get(found[0], found[1])
    except _PatchError:
        raise _PatchError(f"replace operation does not apply: doc is missing key: {path}: {_MISSING}") from None
    try:
        jsonpointer.set_existing(found[0], found[1], value)
    except _PatchError as exc:
        raise _PatchError(f"error in remove for path: '{path}': {exc}") from None  # sic


def _from(op: Mapping[str, Any], kind: str) -> str:
    source = op.get("from")
    if not source:
        raise _PatchError(f"{kind} operation failed to decode from: operation, missing from field: {_MISSING}")
    return str(source)


def _move(root: Any, op: Mapping[str, Any]) -> None:
    source, path = _from(op, "move"), op["path"]
    found = jsonpointer.find(root, source)
    if found is None:
        raise _PatchError(f"move operation does not apply: doc is missing from path: {source}: {_MISSING}")
    container, key = found
    try:
        value = jsonpointer.get(container, key)
        jsonpointer.remove(container, key)
    except _PatchError as exc:
        raise _PatchError(f"error in move for path: '{key}': {exc}") from None
    found = jsonpointer.find(root, path)
    if found is None:
        raise _PatchError(f"move operation does not apply: doc is missing destination path: {path}: {_MISSING}")
    try:
        jsonpointer.add(found[0], found[1], value)
    except _PatchError as exc:
        raise _PatchError(f"error in move for path: '{path}': {exc}") from None


def _test(root: Any, path: str, op: Mapping[str, Any]) -> None:
    if path == "":
        if not _equal(root, op.get("value")):
            raise _TestFailed
        return
    found = jsonpointer.find(root, path)
    if found is None:
        raise _PatchError(f"test operation does not apply: is missing path: {path}: {_MISSING}")
    try:
        value = jsonpointer.get(found[0], found[1])
    except _PatchError as exc:
        raise _PatchError(f"error in test for path: '{path}': {exc}") from None
    if value is None:
        # A missing (or null) value passes only when the op has no value at all.
        if "value" in op:
            raise _TestFailed
        return
    if "value" not in op or not _equal(value, op["value"]):
        raise _TestFailed


def _copy(root: Any, op: Mapping[str, Any]) -> None:
    source, path = _from(op, "copy"), op["path"]
    found = jsonpointer.find(root, source)
    if found is None:
        raise _PatchError(f"copy operation does not apply: doc is missing from path: {source}: {_MISSING}")
    try:
        value = jsonpointer.get(found[0], found[1])
    except _PatchError as exc:
        raise _PatchError(f"error in copy for from: '{source}': {exc}") from None
    found = jsonpointer.find(root, path)
    if found is None:
        raise _PatchError(f"copy operation does not apply: doc is missing destination path: {path}: {_MISSING}")
    try:
        jsonpointer.add(found[0], found[1], copy.deepcopy(value))
    except _PatchError as exc:
        raise _PatchError(f"error while adding value during copy: {exc}") from None


# --- ApplyConfiguration: the schema -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Node:
    """What structured-merge-diff needs to know of a field: struct, map, list (atomic, set or map
    with keys), or ``deduced`` for what the table leaves out (objects merge field by field, lists
    are atomic: the default of the built-in types and of SMD's deduced schema)."""

    kind: str
    fields: Mapping[str, _Node] = dataclasses.field(default_factory=dict)
    element: _Node | None = None
    atomic: bool = False
    keys: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    set: bool = False

    def child(self, name: str) -> _Node:
        if self.kind == "struct":
            return self.fields.get(name, DEDUCED)
        if self.kind == "map" and self.element is not None:
            return self.element
        return DEDUCED

    def item(self) -> _Node:
        return self.element if self.element is not None else DEDUCED


DEDUCED = _Node("deduced")
_SCALAR = _Node("scalar")


def _struct(*, atomic: bool = False, **fields: _Node) -> _Node:
    return _Node("struct", fields, atomic=atomic)


def _map(*, atomic: bool = False) -> _Node:
    """A string-keyed map (``map[string]string``, a ResourceList): entries are not fields."""
    return _Node("map", element=_SCALAR, atomic=atomic)


def _list_map(*keys: str, element: _Node = DEDUCED, defaults: Mapping[str, Any] | None = None) -> _Node:
    """``+listType=map`` with ``+listMapKey``s (key defaults as the OpenAPI schema has them)."""
    return _Node("list", element=element, keys=keys, defaults=defaults or {})


_SET = _Node("list", element=_SCALAR, set=True)
_ATOMIC = _struct(atomic=True)
"""``+structType=atomic``: LabelSelector, LocalObjectReference, the key selectors, NodeSelector."""

_META = _struct(finalizers=_SET, ownerReferences=_list_map("uid", element=_ATOMIC))
_ENV_VAR = _struct(valueFrom=_struct(configMapKeyRef=_ATOMIC, secretKeyRef=_ATOMIC, fieldRef=_ATOMIC,
                                     resourceFieldRef=_ATOMIC, fileKeyRef=_ATOMIC))
_RESOURCES = _struct(claims=_list_map("name"))
_CONTAINER = _struct(
    ports=_list_map("containerPort", "protocol", defaults={"protocol": "TCP"}),
    env=_list_map("name", element=_ENV_VAR),
    volumeMounts=_list_map("mountPath"),
    volumeDevices=_list_map("devicePath"),
    resources=_RESOURCES,
)
_SECRET_REF = _struct(secretRef=_ATOMIC)
_VOLUME = _struct(
    csi=_struct(nodePublishSecretRef=_ATOMIC), rbd=_SECRET_REF, cephfs=_SECRET_REF, flexVolume=_SECRET_REF,
    iscsi=_SECRET_REF, scaleIO=_SECRET_REF, storageos=_SECRET_REF,
    ephemeral=_struct(volumeClaimTemplate=_struct(spec=_struct(selector=_ATOMIC, dataSource=_ATOMIC))),
)
_POD_SPEC = _struct(
    containers=_list_map("name", element=_CONTAINER),
    initContainers=_list_map("name", element=_CONTAINER),
    ephemeralContainers=_list_map("name", element=_CONTAINER),
    volumes=_list_map("name", element=_VOLUME),
    imagePullSecrets=_list_map("name", element=_ATOMIC),
    hostAliases=_list_map("ip"),
    topologySpreadConstraints=_list_map("topologyKey", "whenUnsatisfiable", element=_struct(labelSelector=_ATOMIC)),
    resourceClaims=_list_map("name"),
    schedulingGates=_list_map("name"),
    nodeSelector=_map(atomic=True),
    overhead=_map(),
    resources=_RESOURCES,
    affinity=_struct(nodeAffinity=_struct(requiredDuringSchedulingIgnoredDuringExecution=_ATOMIC)),
)
_POD_TEMPLATE = _struct(metadata=_META, spec=_POD_SPEC)
_WORKLOAD = _struct(metadata=_META, spec=_struct(selector=_ATOMIC, template=_POD_TEMPLATE))
_JOB_SPEC = _struct(selector=_ATOMIC, template=_POD_TEMPLATE)

SCHEMAS: Mapping[tuple[str, str], _Node] = {
    ("", "Pod"): _struct(metadata=_META, spec=_POD_SPEC),
    ("", "PodTemplate"): _struct(metadata=_META, template=_POD_TEMPLATE),
    ("", "ReplicationController"): _struct(metadata=_META, spec=_struct(selector=_map(atomic=True),
                                                                           template=_POD_TEMPLATE)),
    ("", "Service"): _struct(metadata=_META, spec=_struct(
        ports=_list_map("port", "protocol", defaults={"protocol": "TCP"}), selector=_map(atomic=True))),
    ("apps", "Deployment"): _WORKLOAD,
    ("apps", "ReplicaSet"): _WORKLOAD,
    ("apps", "DaemonSet"): _WORKLOAD,
    ("apps", "StatefulSet"): _WORKLOAD,
    ("batch", "Job"): _struct(metadata=_META, spec=_JOB_SPEC),
    ("batch", "CronJob"): _struct(metadata=_META, spec=_struct(jobTemplate=_struct(metadata=_META, spec=_JOB_SPEC))),
}
"""The list-map keys, sets and atomic fields of the built-in kinds we serve (``+listType``,
``+listMapKey``, ``+structType=atomic``, ``+mapType=atomic`` in k8s.io/api); other kinds get
``metadata`` and the deduced rest."""
_OTHER = _struct(metadata=_META)


def schema_for(obj: Mapping[str, Any]) -> _Node:
    group = str(obj.get("apiVersion", "")).rpartition("/")[0] if "/" in str(obj.get("apiVersion", "")) else ""
    return SCHEMAS.get((group, str(obj.get("kind", ""))), _OTHER)


# --- ApplyConfiguration: convert, refuse atomics, merge (structured-merge-diff) -------------------


class _ApplyError(Exception):
    """An apply configuration ``ApplyStructuredMergeDiff`` refuses; the message is its text."""


def _apply_configuration(mutation: mdocs.Mutation, value: Any, obj: Any) -> Any:
    """``applyConfigPatcher.Patch`` then ``ApplyStructuredMergeDiff``."""
    if not isinstance(value, dict):
        raise _Failed(f"unsupported return type from ApplyConfiguration expression: {_go_kind(value)}")
    if mutation.mismatches:
        raise _Failed("type mismatch: " + "\n".join(mutation.mismatches))
    try:
        patch = _native(value)
    except ValueError as exc:
        raise _Failed(f"invalid return type: {exc}") from None
    # ``patchObject.SetGroupVersionKind``: the object's apiVersion and kind, whatever the expression says.
    for field in ("apiVersion", "kind"):
        if field in obj:
            patch[field] = obj[field]
    try:
        return merge(obj, patch)
    except _ApplyError as exc:
        raise _Failed(f"error applying patch: {exc}") from None


def _native(value: Any) -> Any:
    if isinstance(value, dict):
        _string_keys(value)
        return {key: _native(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_native(item) for item in value]
    if isinstance(value, bytes | datetime.datetime | datetime.timedelta):
        return _structpb(value)
    return value


def merge(live: Mapping[str, Any], patch: Mapping[str, Any]) -> Any:
    """``live`` with the apply configuration ``patch`` merged in, as server-side apply merges (no
    field ownership); raises :class:`_ApplyError` with the API server's text."""
    schema = schema_for(live)
    errors: list[str] = []
    _typed(patch, schema, "", errors)
    if errors:
        raise _ApplyError(f"failed to convert patch object to typed object: {_joined(errors)}")
    atomics: list[str] = []
    _atomics(patch, schema, "", atomics)
    if atomics:
        raise _ApplyError("invalid ApplyConfiguration: may not mutate atomic arrays, maps or structs: "
                          + ", ".join(atomics))
    _typed(live, schema, "", errors)
    if errors:
        raise _ApplyError(f"failed to convert original object to typed object: {_joined(errors)}")
    return _merge(live, patch, schema)


def _joined(errors: Sequence[str]) -> str:
    """``ValidationErrors.Error``."""
    return errors[0] if len(errors) == 1 else "\n".join(["errors:", *("  " + e for e in errors)])


def _human(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return repr(value)


def _element(node: _Node, index: int, item: Any) -> tuple[str, str]:
    """The path element of a list item (``[name="x"]``, ``[=value]``, ``[0]``) and its identity;
    raises ValueError with SMD's reason when the item cannot be keyed."""
    if node.keys:
        if item is None:
            raise ValueError("associative list with keys may not have a null element")
        if not isinstance(item, dict):
            raise ValueError("associative list with keys may not have non-map elements")
        parts = []
        for key in node.keys:
            if key in item:
                found = item[key]
            elif key in node.defaults:
                found = node.defaults[key]
            else:
                raise ValueError(f'associative list with keys has an element that omits key field "{key}" '
                                 "(and doesn't have default value)")
            parts.append(f"{key}={_human(found)}")
        text = "[" + ",".join(parts) + "]"
        return text, text
    if node.set:
        if isinstance(item, dict):
            raise ValueError("associative list without keys has an element that's a map type")
        if isinstance(item, list):
            raise ValueError("not supported: associative list with lists as elements")
        if item is None:
            raise ValueError("associative list without keys has an element that's an explicit null")
        text = f"[={_human(item)}]"
        return text, text
    return f"[{index}]", f"[{index}]"


def _typed(value: Any, node: _Node, path: str, errors: list[str]) -> None:
    """``ObjectToTyped``'s validation, where the table knows the shape: maps and lists where they
    belong, list items keyed, no duplicate keys."""
    if value is None or node.kind in ("deduced", "scalar"):
        return
    where = f"{path}: " if path else ""
    if node.kind in ("struct", "map"):
        if not isinstance(value, dict):
            errors.append(f"{where}expected map, got {_human(value)}")
            return
        if node.kind == "struct":
            for key, item in value.items():
                _typed(item, node.child(key), f"{path}.{key}", errors)
        return
    if not isinstance(value, list):
        errors.append(f"{where}expected list, got {_human(value)}")
        return
    seen: set[str] = set()
    for index, item in enumerate(value):
        try:
            text, identity = _element(node, index, item)
        except ValueError as exc:
            errors.append(f"{where}element {index}: {exc}")
            continue
        if identity in seen:
            errors.append(f"{where}duplicate entries for key {text}")
            continue
        seen.add(identity)
        _typed(item, node.item(), path + text, errors)


def _atomics(value: Any, node: _Node, path: str, found: list[str]) -> None:
    """``findAtomics``: atomic lists, maps and structs present in the apply configuration (list
    items by index)."""
    if isinstance(value, dict) and node.kind in ("struct", "map", "deduced"):
        if node.atomic:
            found.append(path)
        if node.kind == "map":
            return  # a map's entries are not fields
        for key, item in value.items():
            _atomics(item, node.child(key), f"{path}.{key}", found)
    elif isinstance(value, list) and node.kind in ("list", "deduced"):
        if node.kind == "deduced" or not (node.keys or node.set):
            found.append(path)
        for index, item in enumerate(value):
            _atomics(item, node.item(), f"{path}[{index}]", found)


_DROP = object()


def _merge(live: Any, patch: Any, node: _Node) -> Any:
    """``mergingWalker`` with ``ruleKeepRHS``: the patch wins for scalars and atomics; maps merge by
    key; associative lists by key, in SMD's order."""
    if patch is None:
        # A null in the configuration keeps an existing map or list and clears a scalar.
        return live if isinstance(live, dict | list) and live else _DROP
    if isinstance(patch, dict) and node.kind in ("struct", "map", "deduced"):
        if not isinstance(live, dict) or node.atomic or (not live and not patch):
            return copy.deepcopy(patch)
        out: dict[str, Any] = {}
        for key, item in live.items():
            merged = _merge(item, patch[key], node.child(key)) if key in patch else item
            if merged is not _DROP:
                out[key] = merged
        for key, item in patch.items():
            if key not in live:
                merged = _merge(None, item, node.child(key)) if item is not None else _DROP
                if merged is not _DROP:
                    out[key] = merged
        return out
    if isinstance(patch, list) and node.kind == "list" and (node.keys or node.set) and not node.atomic:
        if not isinstance(live, list) or (not live and not patch):
            return copy.deepcopy(patch)
        return _merge_list(live, patch, node)
    return copy.deepcopy(patch)


def _merge_list(live: list[Any], patch: list[Any], node: _Node) -> list[Any]:
    """``visitListItems``: the live order, except that the configuration's order is kept around
    the items both have: a new item comes right before the shared item that follows it in the
    configuration, or after the live items when none follows (a sidecar listed alone is appended).
    Applying the same configuration again changes nothing."""
    def index(items: list[Any]) -> tuple[list[str], dict[str, Any]]:
        order: list[str] = []
        found: dict[str, Any] = {}
        for position, item in enumerate(items):
            try:
                identity = _element(node, position, item)[1]
            except ValueError:
                continue  # reported by the typed conversion
            if identity not in found:
                order.append(identity)
                found[identity] = item
        return order, found

    rhs_order, rhs = index(patch)
    lhs_order, lhs = index(live)
    shared = [pe for pe in rhs_order if pe in lhs]
    next_shared = shared.pop(0) if shared else None
    merged_rhs: set[str] = set()
    out: list[Any] = []
    element = node.item()
    li = ri = 0
    while li < len(lhs_order) or ri < len(rhs_order):
        if li < len(lhs_order) and ri < len(rhs_order):
            pe = lhs_order[li]
            if pe == rhs_order[ri]:
                merged_rhs.add(pe)
                out.append(_merge(lhs[pe], rhs[pe], element))
                li, ri = li + 1, ri + 1
                next_shared = shared.pop(0) if shared else None
                continue
            if pe in rhs and next_shared is not None and next_shared != pe:
                li += 1  # shared, but not the one this round wants
                continue
        if li < len(lhs_order):
            pe = lhs_order[li]
            if pe not in rhs:
                out.append(lhs[pe])
                li += 1
                continue
            if pe in merged_rhs:
                li += 1
                continue
        if ri < len(rhs_order):
            pe = rhs_order[ri]
            merged_rhs.add(pe)
            out.append(_merge(lhs.get(pe), rhs[pe], element))
            ri += 1
            if next_shared is not None and next_shared == pe:
                next_shared = shared.pop(0) if shared else None
    return [item for item in out if item is not _DROP]

