"""Validating policy groups: Pod Security Standards, security-context rules, RBAC and storage.

Each module registers a group and its checks with :mod:`webhook.policy.registry` at import time.
Pure functions over dicts: may import ``webhook.policy`` and ``webhook.quantity``; must not import
aiohttp, kubernetes or the server.
"""
