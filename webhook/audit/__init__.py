"""``audit``: the validating chains run over what already exists, as if each object were created now.

The package reads objects from a cluster (:mod:`webhook.audit.live`, paged) or from ``kubectl get
-o yaml|json`` dumps (:mod:`webhook.audit.dump`, streamed), evaluates each one with the engine the
server uses (:mod:`webhook.audit.evaluate`), reports a Pod once on its owner when it is what its
owner's template makes (:mod:`webhook.audit.owners`), and writes a summary, one line per violation,
JSON, or PolicyReports (:mod:`webhook.audit.output`, :mod:`webhook.audit.reports`).

What it may do: read policies through :mod:`webhook.catalog`, wrap objects into the CREATE review the
API server would send (:func:`webhook.offline.wrap`), call the engine and the CEL evaluator. What it
may not do: import ``kubernetes`` anywhere but :mod:`webhook.audit.live` (the only module of the
package that talks to the API server), hold more than one page of objects in memory, or write
anything into a cluster unless asked (``--apply``).
"""
