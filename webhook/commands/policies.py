"""``policies``: which groups and policies a policy set configures, with their modes.

The answer to "what will this server do?" before serving: every group with its chain and mode,
every policy id with the mode it runs in (its override, else the group's), and the admission
policies (ValidatingAdmissionPolicy) with their bindings. Ids are what ``policies:`` overrides and
``--set 'group.policies[id].mode=...'`` take.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from webhook import catalog, config
from webhook.policy import registry


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "policies",
        help="list the policy groups and policy ids with their modes and descriptions",
        description="Load the policy files (as serve and review do) and list every group and policy id "
        "with the mode it runs in, and the admission policies with their bindings. Exit 2 when the "
        "files are invalid.",
    )
    parser.add_argument("--policies", type=Path, action="append",
                        help="policy file or directory (repeatable; default: the installed policies)")
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="override a setting")
    parser.add_argument("--output", "-o", choices=["text", "json"], default="text")
    parser.set_defaults(func=run)


def listing(paths: list[Path], overrides: list[str]) -> dict[str, Any]:
    """Groups, policies and admission policies of the set, as data."""
    policy_set = catalog.load(paths, overrides=overrides)
    groups = []
    for chain in ("validating", "mutating"):
        for name in policy_set.groups(chain):
            if name not in catalog.REGISTRY.groups:
                continue  # the cel group is listed below with its policies
            group = catalog.REGISTRY.groups[name]
            settings = policy_set.config.groups[name]
            policies = []
            passes = list(group.modes(settings))
            for policy in catalog.REGISTRY.in_group(name):
                override = settings.policies.get(policy.id)
                modes = []
                for mode, params in passes:
                    if policy.active is not None and not policy.active(params):
                        continue  # e.g. a restricted Pod Security check at the baseline level
                    if override is not None and override.mode is not None and mode == settings.mode:
                        mode = override.mode
                    if mode != "off" and mode not in modes:
                        modes.append(mode)
                policies.append({"id": policy.id, "mode": "+".join(modes) or "off", "kinds": sorted(policy.kinds),
                                 "description": registry.describe(policy)})
            groups.append({"name": name, "chain": chain, "section": group.key, "mode": settings.mode,
                           "path": f"/{'validate' if chain == 'validating' else 'mutate'}/{name}",
                           "description": group.description, "policies": policies})
    admission = [
        {"policy": policy.name, "binding": binding.name, "failurePolicy": policy.failure_policy,
         "validationActions": list(binding.validation_actions), "source": policy.source}
        for policy, binding in policy_set.cel.pairs
    ]
    return {"sources": list(policy_set.config.sources), "groups": groups, "admissionPolicies": admission}


def run(args: argparse.Namespace) -> int:
    data = listing(args.policies or [config.DEFAULT_POLICIES], args.set)
    if args.output == "json":
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    lines = []
    for group in data["groups"]:
        lines.append(f"{group['path']}  ({group['chain']}, section {group['section']}, mode {group['mode']})")
        if group["description"]:
            lines.append(f"  {group['description']}")
        width = max((len(p["id"]) for p in group["policies"]), default=0)
        modes = max((len(p["mode"]) for p in group["policies"]), default=0)
        lines.extend(f"  {p['id']:<{width}}  {p['mode']:<{modes}}  {p['description']}" for p in group["policies"])
        lines.append("")
    if data["admissionPolicies"]:
        lines.append("/validate/cel  (ValidatingAdmissionPolicy, first in /validate)")
        lines.extend(f"  {a['policy']} / {a['binding']}  failurePolicy {a['failurePolicy']}, actions "
                     f"{', '.join(a['validationActions'])}" for a in data["admissionPolicies"])
        lines.append("")
    sys.stdout.write("\n".join(lines))
    return 0
