"""The AdmissionReview envelope as pydantic models: what a review that is not in the API server's
exact shape is validated with (precise 400 messages naming the field), and what the recorder reads.

Kept apart from :mod:`webhook.review`, which parses the common case with direct checks and is
compiled by mypyc (see ``setup.py``): pydantic reads field types from module globals and Python
functions, which a compiled module does not offer as it expects.
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from webhook.policy import model


class _Envelope(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore", frozen=True)


class GroupVersionKind(_Envelope):
    group: str = ""
    version: str = ""
    kind: str = pydantic.Field(min_length=1)


class GroupVersionResource(_Envelope):
    group: str = ""
    version: str = ""
    resource: str = ""


class UserInfo(_Envelope):
    username: str = ""
    uid: str = ""
    groups: tuple[str, ...] | None = None
    # ``extra`` may carry credentials-adjacent data; it is never logged.
    extra: dict[str, Any] | None = None


class AdmissionRequest(_Envelope):
    uid: str = pydantic.Field(min_length=1)
    kind: GroupVersionKind
    resource: GroupVersionResource = GroupVersionResource()
    subResource: str = ""
    requestKind: GroupVersionKind | None = None
    name: str = ""
    namespace: str = ""
    operation: model.Operation
    userInfo: UserInfo = UserInfo()
    object: dict[str, Any] | None = None
    oldObject: dict[str, Any] | None = None
    dryRun: bool | None = None
    options: dict[str, Any] | None = None


class AdmissionReview(_Envelope):
    apiVersion: Literal["admission.k8s.io/v1", "admission.k8s.io/v1beta1"]
    kind: Literal["AdmissionReview"]
    request: AdmissionRequest
