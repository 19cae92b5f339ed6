"""Minimal RFC 6902 JSON patches, computed as the diff of the untouched original against a mutated copy.

Why a diff and not hand-written ops: mutations then only edit dicts, and the patch can never remove
or rewrite something no mutation touched (kopf and controller-runtime do the same). The differ
emits:

* ``add`` of a whole map or list when the key is absent (never ``add`` into a missing parent —
  the API server's patch application would fail with "doc is missing path");
* ``add .../-`` for items appended to a list, in order;
* for lists of named items (containers, volumes, env), a name-aware diff so a sidecar inserted at
  the front is one ``add .../0`` and the existing containers are patched in place, not replaced;
* ``replace`` only for values that changed, ``remove`` only for keys that are gone.

Pointers escape ``~`` as ``~0`` and ``/`` as ``~1`` (RFC 6901), e.g. annotation keys like
``sidecar.admission.dev/injected``.
"""

from __future__ import annotations

from typing import Any

import orjson

Op = dict[str, Any]


def escape(token: str) -> str:
    """One JSON Pointer reference token (RFC 6901 section 3)."""
    return token.replace("~", "~0").replace("/", "~1")


def diff(original: Any, mutated: Any) -> list[Op]:
    """The ops that turn ``original`` into ``mutated``; ``[]`` when they are equal."""
    ops: list[Op] = []
    pending: Pending = []
    _diff(original, mutated, "", ops, pending)
    # Subtrees Python's == found equal are confirmed as JSON in one go (1 == 1.0 == True in
    # Python, not in JSON); in the rare case they differ, each is diffed with exact types. Their ops
    # touch only scalars inside structures equal in shape, so they are valid at the end of the patch.
    if pending and not _same_json([p[0] for p in pending], [p[1] for p in pending]):
        for old, new, parent, token in pending:
            if not _same_json(old, new):
                _diff(old, new, _pointer(parent, token), ops, None)
    return ops


def _same_json(old: Any, new: Any) -> bool:
    """Equal as JSON: Python's ``==`` (C speed) says 1 == 1.0 == True, so equal subtrees are
    confirmed by their serialisations, which keep those apart."""
    if old != new:
        return False
    try:
        return orjson.dumps(old) == orjson.dumps(new)
    except TypeError:  # integers beyond 64 bits: let the walk compare them
        return False


Pending = list[tuple[Any, Any, str, "str | int"]]
"""Maps and lists found equal by ``==``, awaiting one JSON confirmation: (old, new, parent, key)."""


def _pointer(parent: str, token: str | int) -> str:
    return f"{parent}/{escape(token)}" if isinstance(token, str) else f"{parent}/{token}"


def _unchanged(old: Any, new: Any, parent: str, token: str | int, pending: Pending | None) -> bool:
    """The common case, decided without walking or building a pointer: the same value, of the same
    JSON type. Equal maps and lists are queued in ``pending`` for one JSON confirmation at the end
    (``None``: confirm now)."""
    if old is new:
        return True
    if type(old) is not type(new) or old != new:
        return False
    if not isinstance(old, (dict, list)):
        return True
    if pending is None:
        return _same_json(old, new)
    pending.append((old, new, parent, token))
    return True


def _diff(old: Any, new: Any, path: str, ops: list[Op], pending: Pending | None) -> None:
    if old is new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        _diff_dict(old, new, path, ops, pending)
    elif isinstance(old, list) and isinstance(new, list):
        _diff_list(old, new, path, ops, pending)
    elif type(old) is not type(new) or old != new:
        # ``type`` check: JSON distinguishes 1, 1.0 and true, Python's == does not.
        ops.append({"op": "replace", "path": path, "value": new})


def _diff_dict(
    old: dict[str, Any], new: dict[str, Any], path: str, ops: list[Op], pending: Pending | None
) -> None:
    removed = False
    for key, old_value in old.items():
        try:
            new_value = new[key]
        except KeyError:
            ops.append({"op": "remove", "path": f"{path}/{escape(key)}"})
            removed = True
            continue
        # _unchanged, inlined: most members of a mutated copy are equal to the original's.
        if old_value is new_value:
            continue
        if type(old_value) is type(new_value) and old_value == new_value:
            if isinstance(old_value, (dict, list)):
                if pending is not None:
                    pending.append((old_value, new_value, path, key))
                    continue
                if _same_json(old_value, new_value):
                    continue
            else:
                continue
        _diff(old_value, new_value, f"{path}/{escape(key)}", ops, pending)
    if removed or len(new) != len(old):  # same size and every old key kept: no key was added
        for key, new_value in new.items():
            if key not in old:
                ops.append({"op": "add", "path": f"{path}/{escape(key)}", "value": new_value})


def _names(items: list[Any]) -> list[str] | None:
    """Item names when every item is a dict with a unique string ``name``, else ``None``."""
    names: list[str] = []
    for item in items:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            return None
        names.append(name)
    return names if len(set(names)) == len(names) else None


def _diff_list(
    old: list[Any], new: list[Any], path: str, ops: list[Op], pending: Pending | None
) -> None:
    if len(new) >= len(old) and _diff_named_list(old, new, path, ops, pending):
        return
    common = min(len(old), len(new))
    for index in range(common):
        if not _unchanged(old[index], new[index], path, index, pending):
            _diff(old[index], new[index], f"{path}/{index}", ops, pending)
    # Remove from the end first so earlier indexes stay valid while the patch is applied.
    for index in range(len(old) - 1, common - 1, -1):
        ops.append({"op": "remove", "path": f"{path}/{index}"})
    for index in range(common, len(new)):
        ops.append({"op": "add", "path": f"{path}/-", "value": new[index]})


def _diff_named_list(
    old: list[Any], new: list[Any], path: str, ops: list[Op], pending: Pending | None
) -> bool:
    """Diff lists of named items where the new list keeps every old item, in order, plus insertions.

    Returns ``False`` (caller falls back to positional diff) when the shape does not fit; then no op
    has been emitted. Old items keep their relative order, so while the patch is applied the old
    item at new index ``i`` sits exactly at ``i`` once the inserts before it are done.
    """
    if len(new) == len(old) or not old:
        return False
    old_names, new_names = _names(old), _names(new)
    if old_names is None or new_names is None:
        return False
    positions = {name: i for i, name in enumerate(new_names)}
    order = [positions.get(name) for name in old_names]
    if any(p is None for p in order) or order != sorted(order):  # type: ignore[type-var]
        return False
    old_by_name = dict(zip(old_names, old, strict=True))
    old_placed = 0
    for index, (name, item) in enumerate(zip(new_names, new, strict=True)):
        if name in old_by_name:
            before = old_by_name[name]
            if not _unchanged(before, item, path, index, pending):
                _diff(before, item, f"{path}/{index}", ops, pending)
            old_placed += 1
        else:
            # Once every old item is placed, the insert lands at the end: use the append form.
            target = "-" if old_placed == len(old) else str(index)
            ops.append({"op": "add", "path": f"{path}/{target}", "value": item})
    return True
