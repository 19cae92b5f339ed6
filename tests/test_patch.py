"""The patch differ: minimal RFC 6902 ops that apply to the original and reproduce the copy."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
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
    st.none() | st.booleans() | st.integers(-10, 10) | st.text(max_size=3),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["a", "b/c", "~d", "name"]), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values, json_values)
def test_any_diff_applies_to_the_original(old: Any, new: Any) -> None:
    ops = patch.diff({"root": old}, {"root": new})
    assert jsonpatch.apply_patch({"root": copy.deepcopy(old)}, ops) == {"root": new}
