"""Mutating policy groups: sidecar injection, defaults, Downward API env.

Each module registers a group and its mutations with :mod:`webhook.policy.registry` at import
time. Mutations edit one deep copy in place and must be idempotent; the engine diffs the result.
May import ``webhook.policy``; must not import aiohttp, kubernetes or the server.
"""
