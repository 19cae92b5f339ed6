"""Loading policy files: several YAML files merged, ``--set`` overrides, errors that name file, path, line.

A policy directory is usually a mounted ConfigMap: kubelet updates it by swapping a ``..data``
symlink, and it contains hidden ``..2026_...`` entries. Only visible ``*.yaml``/``*.yml`` files in
the top directory are read, in name order; later files override earlier ones key by key (lists are
replaced, not concatenated, so a later file can shorten a list).

The merged result is what is validated, after ``--set`` overrides, so a file may refer to what
another defines (``defaultSidecars`` naming a sidecar from ``60-sidecars.yaml``). Each file is also
checked on its own, and when the merged section is invalid those errors are what is reported, so
a message names the file and line where the bad value is written. Policy ids under ``policies:``
must name policies of their group: a misspelt id is an error with the closest known ids.

Any other Kubernetes object in the files (its own ``apiVersion`` and ``kind``) is kept as it is, in
:attr:`PolicyConfig.documents`: ValidatingAdmissionPolicies and their bindings, and the param
objects they refer to (see :mod:`webhook.cel`). A document that looks meant to be ours (an
``admission.dev`` apiVersion, or kind ``PolicyConfig``) with the wrong version is still an error.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pydantic
import yaml

from webhook import errors
from webhook.policy import registry, settings, yamlsafe

API_VERSION = "admission.dev/v1alpha1"
KIND = "PolicyConfig"


@dataclasses.dataclass(frozen=True, slots=True)
class Document:
    """A Kubernetes object found among the policy files, with where it was written."""

    where: str
    """``file:line`` or ``file (document 2):line``, for error messages."""
    body: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
    """Validated settings for every registered group (``mode: off`` for groups no file mentions)."""

    groups: Mapping[str, settings.GroupSettings]
    sources: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()
    documents: tuple[Document, ...] = ()
    """Other Kubernetes objects in the files (admission policies, bindings, param objects)."""


def policy_files(paths: Iterable[Path]) -> list[Path]:
    """The files to read: a file as given, a directory's visible YAML files in name order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(
                    p
                    for p in path.iterdir()
                    if p.suffix in (".yaml", ".yml") and not p.name.startswith(".") and p.is_file()
                )
            )
        elif path.is_file():
            found.append(path)
        else:
            raise errors.PolicyConfigError(f"{path}: no such policy file or directory")
    return found


def load(
    paths: Sequence[Path],
    *,
    overrides: Sequence[str] = (),
    catalog: registry.Registry = registry.REGISTRY,
) -> PolicyConfig:
    """Read, validate and merge policy files, then apply ``dotted.path=value`` overrides.

    Raises :class:`~webhook.errors.PolicyConfigError` with every problem found, one per line.
    """
    sections = catalog.by_section_key()
    files = policy_files(paths)
    merged: dict[str, Any] = {}
    problems: list[str] = []
    documents: list[Document] = []
    pending: dict[str, list[str]] = {}
    for file in files:
        for section_key, section in _read_file(file, sections, problems, documents, pending, catalog):
            merged[section_key] = _deep_merge(merged.get(section_key), section)
    for override in overrides:
        _apply_override(merged, override, sections, problems, catalog)
    if problems:
        raise errors.PolicyConfigError("\n".join(problems))

    groups: dict[str, settings.GroupSettings] = {}
    for key, group in sections.items():
        raw = merged.get(key)
        if raw is None:
            # A group no file configures is off: shipping a check must never silently enforce it.
            groups[group.name] = group.settings.model_validate({"mode": "off"})
            continue
        try:
            groups[group.name] = group.settings.model_validate(raw)
        except pydantic.ValidationError as exc:
            if pending.get(key):
                problems.extend(pending[key])  # the files' own errors name the line to fix
                continue
            where = "after --set overrides" if overrides else "merged policy files"
            problems.extend(f"{where}: {line}" for line in _describe(exc, key))
    if problems:
        raise errors.PolicyConfigError("\n".join(problems))
    return PolicyConfig(groups=groups, sources=tuple(str(f) for f in files), overrides=tuple(overrides),
                        documents=tuple(documents))


def _read_file(
    file: Path,
    sections: Mapping[str, registry.Group],
    problems: list[str],
    objects: list[Document],
    pending: dict[str, list[str]],
    catalog: registry.Registry,
) -> list[tuple[str, dict[str, Any]]]:
    # Policy files come from a mounted ConfigMap and are re-read while serving: whatever a file
    # holds must end here as a problem naming it, never as an exception that stops a reload or
    # a traceback at startup (yamlsafe bounds size, nesting and alias expansion).
    try:
        documents = yamlsafe.load_all(yamlsafe.read(file))
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{file}: cannot read: {exc}")
        return []
    except yamlsafe.Refused as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else 0
        problems.append(f"{file}:{line}: refused: {exc.problem}")
        return []
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark is not None else str(file)
        problems.append(f"{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}")
        return []
    except Exception as exc:  # noqa: BLE001 - RecursionError, MemoryError...: see above
        problems.append(f"{file}: cannot parse: {type(exc).__name__}: {exc}")
        return []

    found: list[tuple[str, dict[str, Any]]] = []
    for index, (document, node) in enumerate(documents):
        if document is None:
            continue
        name = f"{file}" if len(documents) == 1 else f"{file} (document {index + 1})"
        if not isinstance(document, dict):
            problems.append(f"{name}: expected a mapping with apiVersion, kind and policy sections")
            continue
        api_version, kind = document.get("apiVersion"), document.get("kind")
        if (api_version, kind) != (API_VERSION, KIND) and _foreign(api_version, kind) and not (
            sections.keys() & document.keys()
        ):
            objects.append(Document(f"{name}:{_line(node, ())}", document))
            continue
        if api_version != API_VERSION or kind != KIND:
            problems.append(
                f"{name}:{_line(node, ())}: apiVersion/kind must be {API_VERSION}/{KIND}, "
                f"got {document.get('apiVersion')!r}/{document.get('kind')!r}"
            )
            continue
        for key, section in document.items():
            if key in ("apiVersion", "kind"):
                continue
            group = sections.get(key)
            if group is None:
                problems.append(
                    f"{name}:{_line(node, (key,))}: unknown section {key!r} "
                    f"(known: {', '.join(sorted(sections))})"
                )
                continue
            try:
                group.settings.model_validate(section if section is not None else {})
            except pydantic.ValidationError as exc:
                # Kept aside: a file may refer to what another file defines (a sidecar named in
                # defaultSidecars, defined in 60-sidecars.yaml). These errors are reported, with
                # this file's lines, only if the merged section is invalid too.
                pending.setdefault(key, []).extend(
                    f"{name}:{_line(node, (key, *loc))}: {text_}" for loc, text_ in _errors(exc, key)
                )
            if isinstance(section, dict):
                problems.extend(f"{name}:{_line(node, (key, 'policies', policy_id))}: {text_}"
                                for policy_id, text_ in _unknown_policy_ids(key, section, group, catalog))
            found.append((key, section or {}))
    return found


def _unknown_policy_ids(
    key: str, section: Mapping[str, Any], group: registry.Group, catalog: registry.Registry
) -> list[tuple[str, str]]:
    """``(id, message)`` for each id under ``policies:`` that names no policy of the group: a
    misspelt id would otherwise be ignored and the policy would keep its mode silently."""
    overrides = section.get("policies")
    if not isinstance(overrides, dict):
        return []
    known = sorted(policy.id for policy in catalog.in_group(group.name))
    found = []
    for policy_id in overrides:
        if policy_id in known:
            continue
        close = difflib.get_close_matches(str(policy_id), known, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else f"known: {', '.join(known)}"
        found.append((str(policy_id), f"{key}.policies: unknown policy id {policy_id!r} in group "
                                      f"{group.name!r} ({hint})"))
    return found


def _foreign(api_version: Any, kind: Any) -> bool:
    """Another project's Kubernetes object, not a misspelt PolicyConfig (the caller also checks
    that it holds no policy section: ``kind: ConfigMap`` with a ``podSecurity`` key is a mistake)."""
    if not isinstance(api_version, str) or not isinstance(kind, str) or not api_version or not kind:
        return False
    return kind != KIND and not api_version.startswith(API_VERSION.split("/")[0] + "/")


def _errors(exc: pydantic.ValidationError, section: str) -> list[tuple[tuple[Any, ...], str]]:
    out = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        dotted = ".".join(str(part) for part in (section, *loc))
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown setting (check the spelling; see policies/ for the valid keys)"
        out.append((loc, f"{dotted}: {message}"))
    return out


def _describe(exc: pydantic.ValidationError, section: str) -> list[str]:
    return [text for _, text in _errors(exc, section)]


def _line(node: yaml.Node | None, path: Sequence[Any]) -> int:
    """1-based line of the deepest key (or list item) along ``path`` in a composed YAML tree.

    A key's last pair is the one whose value was kept: a repeated key's later value, or a key
    written beside a ``<<`` merge (the constructor puts merged pairs first, with their own lines).
    """
    best = node.start_mark.line + 1 if node is not None else 0
    for part in path:
        marker: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            pair = next(
                ((k, v) for k, v in reversed(node.value) if getattr(k, "value", None) == str(part)), None
            )
            marker, node = (pair[0], pair[1]) if pair else (None, None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            marker = node = node.value[part]
        else:
            node = None
        if marker is None:
            break
        best = marker.start_mark.line + 1
    return best


def _deep_merge(base: Any, extra: Any) -> Any:
    if isinstance(base, dict) and isinstance(extra, dict):
        merged = dict(base)
        for key, value in extra.items():
            merged[key] = _deep_merge(base.get(key), value)
        return merged
    return extra


def _split_path(path: str) -> list[str]:
    """``a.b[c.d].e`` -> ``["a", "b", "c.d", "e"]``: brackets hold keys that contain dots (policy ids)."""
    keys: list[str] = []
    current = ""
    index = 0
    while index < len(path):
        char = path[index]
        if char == "[":
            end = path.find("]", index)
            if end < 0:
                return []
            if current:
                keys.append(current)
                current = ""
            keys.append(path[index + 1 : end])
            index = end + 1
            if index < len(path) and path[index] == ".":
                index += 1
            continue
        if char == ".":
            keys.append(current)
            current = ""
        else:
            current += char
        index += 1
    if current or (path and path[-1] == "."):
        keys.append(current)
    return keys


def _apply_override(
    merged: dict[str, Any],
    override: str,
    sections: Mapping[str, registry.Group],
    problems: list[str],
    catalog: registry.Registry,
) -> None:
    """Apply ``dotted.path=value``; the value is read as YAML (``true``, ``5``, ``[a, b]``, ``warn``)."""
    path, sep, raw_value = override.partition("=")
    keys = _split_path(path.strip())
    if not sep or not keys or any(not key for key in keys):
        problems.append(
            f"--set {override!r}: expected dotted.path=value, e.g. podSecurity.level=restricted "
            "(a key with dots goes in brackets: rbac.policies[rbac.wildcards].mode=warn)"
        )
        return
    if keys[0] not in sections:
        problems.append(
            f"--set {override!r}: unknown section {keys[0]!r} (known: {', '.join(sorted(sections))})"
        )
        return
    try:
        value = yamlsafe.load(raw_value) if raw_value.strip() else ""
    except yaml.YAMLError as exc:
        problems.append(f"--set {override!r}: value is not valid YAML: {exc}")
        return
    node = merged
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        else:
            child = dict(child)  # never mutate a dict a file's parse result still shares
            node[key] = child
        node = child
    node[keys[-1]] = value
    group = sections[keys[0]]
    unknown = _unknown_policy_ids(keys[0], merged[keys[0]], group, catalog)
    if unknown:
        problems.extend(f"--set {override!r}: {text}" for _, text in unknown)
        return
    try:
        group.settings.model_validate(merged[keys[0]])
    except pydantic.ValidationError as exc:
        problems.extend(f"--set {override!r}: {text}" for text in _describe(exc, keys[0]))
