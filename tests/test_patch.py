"""The patch differ: minimal RFC 6902 ops that apply to the original and reproduce the copy."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook import patch

CASES: list[tuple[str, Any, Any, list[dict[str, Any]]]] = [
    ("equal objects give no ops", {"a": 1}, {"a": 1}, []),
    (
        "new key is one add",
        {"a": 1},
        {"a": 1, "b": {"c": 2}},
        [{"op": "add", "path": "/b", "value": {"c": 2}}],
    ),
    (
        "slash and tilde are escaped",
        {"m": {}},
        {"m": {"x.io/a~b": "1"}},
        [{"op": "add", "path": "/m/x.io~1a~0b", "value": "1"}],
    ),
    ("removed key is one remove", {"a": 1, "b": 2}, {"a": 1}, [{"op": "remove", "path": "/b"}]),
    ("changed scalar is a replace", {"a": 1}, {"a": 2}, [{"op": "replace", "path": "/a", "value": 2}]),
    ("int and float differ in JSON", {"a": 1}, {"a": 1.5}, [{"op": "replace", "path": "/a", "value": 1.5}]),
    ("bool is not int", {"a": True}, {"a": 1}, [{"op": "replace", "path": "/a", "value": 1}]),
    (
        "appends use /-",
        {"l": [1]},
        {"l": [1, 2, 3]},
        [{"op": "add", "path": "/l/-", "value": 2}, {"op": "add", "path": "/l/-", "value": 3}],
    ),
    (
        "whole list added when absent",
        {},
        {"l": [{"name": "x"}]},
        [{"op": "add", "path": "/l", "value": [{"name": "x"}]}],
    ),
    (
        "named insert at the front is one add at 0 and in-place edits after",
        {"c": [{"name": "a"}, {"name": "b"}]},
        {"c": [{"name": "side"}, {"name": "a", "env": []}, {"name": "b"}]},
        [
            {"op": "add", "path": "/c/0", "value": {"name": "side"}},
            {"op": "add", "path": "/c/1/env", "value": []},
        ],
    ),
    (
        "named insert after every old item is an append",
        {"c": [{"name": "a"}]},
        {"c": [{"name": "a"}, {"name": "z"}]},
        [{"op": "add", "path": "/c/-", "value": {"name": "z"}}],
    ),
    (
        "shrunk list removes from the end",
        {"l": [1, 2, 3]},
        {"l": [1]},
        [{"op": "remove", "path": "/l/2"}, {"op": "remove", "path": "/l/1"}],
    ),
]


@pytest.mark.parametrize(("title", "old", "new", "expected"), CASES, ids=[c[0] for c in CASES])
def test_diff_is_minimal_and_applies(title: str, old: Any, new: Any, expected: list[dict[str, Any]]) -> None:
    ops = patch.diff(old, new)
    assert ops == expected
    assert jsonpatch.apply_patch(copy.deepcopy(old), ops) == new


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2) | st.sampled_from([0.0, 1.0, -1.0, 1.5]) | st.text(max_size=3),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["a", "b/c", "~d", "name"]), children, max_size=4)
    ),
    max_leaves=20,
)


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


@settings(max_examples=200, deadline=None)
@given(json_values, json_values)
def test_any_diff_applies_to_the_original(old: Any, new: Any) -> None:
    ops = patch.diff({"root": old}, {"root": new})
    patched = jsonpatch.apply_patch({"root": copy.deepcopy(old)}, ops)
    # Compared as JSON text: Python's == would take 1, 1.0 and true for one another.
    assert _json(patched) == _json({"root": new})


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # Equal under == but not as JSON, deep inside otherwise equal structures and beside edits.
        ({"a": [{"x": 1, "y": [True]}], "b": 0}, {"a": [{"x": 1.0, "y": [1]}], "b": 1},
         [{"op": "replace", "path": "/b", "value": 1},
          {"op": "replace", "path": "/a/0/x", "value": 1.0},
          {"op": "replace", "path": "/a/0/y/0", "value": 1}]),
        ({"c": [{"name": "a", "n": 0}]}, {"c": [{"name": "s"}, {"name": "a", "n": False}]},
         [{"op": "add", "path": "/c/0", "value": {"name": "s"}},
          {"op": "replace", "path": "/c/1/n", "value": False}]),
    ],
)
def test_json_types_are_kept_apart_inside_equal_looking_subtrees(old: Any, new: Any, expected: list[Any]) -> None:
    ops = patch.diff(old, new)
    assert sorted(ops, key=str) == sorted(expected, key=str)
    assert _json(jsonpatch.apply_patch(copy.deepcopy(old), ops)) == _json(new)


def _retyped(value: Any, draw: Any) -> Any:
    """``value`` with some leaves of another JSON type but equal under Python's == (1, 1.0, true),
    some maps' keys in another order, and some subtrees shared, not copied."""
    if isinstance(value, dict):
        if draw(st.booleans()):
            return value  # shared by identity, as the engine's copy shares what no mutation writes
        keys = list(value)
        if draw(st.booleans()):
            keys.reverse()
        return {key: _retyped(value[key], draw) for key in keys}
    if isinstance(value, list):
        return [_retyped(item, draw) for item in value]
    if type(value) is int and value in (0, 1) and draw(st.booleans()):
        return draw(st.sampled_from([float(value), bool(value)]))
    if type(value) is bool and draw(st.booleans()):
        return int(value)
    return value


@settings(max_examples=300, deadline=None)
@given(json_values, st.data())
def test_values_equal_under_python_but_not_as_json_are_replaced_and_nothing_else(old: Any, data: Any) -> None:
    """A copy whose only differences are JSON types under equal-looking values, key order and
    shared parts: the patch replaces exactly the leaves whose type changed (none when none did)
    and applies to the original."""
    new = _retyped(old, data.draw)
    ops = patch.diff({"root": old}, {"root": new})
    assert all(op["op"] == "replace" and type(op["value"]) in (int, float, bool) for op in ops)
    patched = jsonpatch.apply_patch({"root": copy.deepcopy(old)}, ops)
    assert _json(patched) == _json({"root": new})
    if _json(old) == _json(new):
        assert ops == []
