"""An emulator of the API server's admission webhook dispatch, for ``simulate`` and ``experiment``.

It follows ``k8s.io/apiserver/pkg/admission/plugin/webhook`` closely: which webhooks are called
(rules, selectors, matchConditions), how each is called (HTTPS, ``?timeout=``, caBundle, host
name), which failures ``failurePolicy`` governs and which it does not, the order of mutations and
their reinvocation, the concurrent validating phase, and the exact error texts a client sees.

Layering: ``config`` (typed webhook configurations) and ``texts`` (Go/API-server wording) are the
base; ``matching``, ``conditions``, ``jsonpatch`` and ``attributes`` are pure functions over dicts;
``caller`` alone does network I/O; ``dispatcher`` composes them; ``render`` prints outcomes.
Nothing here imports the server, the policy engine or the ``kubernetes`` client.
"""
