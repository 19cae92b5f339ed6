"""The project's exception tree: each class says when it is raised; each message says what to do."""


class WebhookError(Exception):
    exit_code = 2
    """What a command exits with when this reaches it: 2, the input or configuration is wrong."""

    """Base of every error this package raises on purpose."""


class BadReview(WebhookError):
    """The HTTP body is not a usable AdmissionReview.

    Raised while parsing a call; the server answers HTTP 400 with ``{"error": message}``.
    ``status`` lets a subclass pick another 4xx code (413 for an oversized body).
    """

    status = 400


class BodyTooLarge(BadReview):
    """The request body exceeds the configured limit; answered with HTTP 413."""

    status = 413


class PolicyConfigError(WebhookError):
    """A policy file (or a ``--set`` override) is invalid.

    The message names the file, the dotted path inside it (and the line when known) and the problem.
    The server refuses to start with it, or, during a hot reload, keeps the previous policy set.
    """


class MutationRejected(WebhookError):
    """A mutation refuses to change an object (e.g. a sidecar name clashes with a user container).

    A mutation must raise this *before* touching the object. The engine turns it into a denial
    (mode ``enforce``) or a warning (mode ``warn``) carrying ``message``.
    """


class CertificateError(WebhookError):
    """Certificate or key files are missing, unreadable or do not match; the message names the file."""


class ClusterUnavailable(WebhookError):
    """No cluster credentials, or the API server could not be reached; callers degrade, never block."""


class ServeFailed(WebhookError):
    """The server could not start for a reason outside its configuration (the port is taken, a
    worker could not start); the message says what to do. Commands exit 1."""

    exit_code = 1
