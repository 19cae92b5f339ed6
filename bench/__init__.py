"""``make bench``: the webhook measured against a bare aiohttp handler on this machine.

Not part of the ``webhook`` package and never imported by it: it drives real server processes
(``python -m webhook serve`` and :mod:`bench.bare`) from outside, as the API server would.
"""
