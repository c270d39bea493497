"""The package's exceptions: one base class, a few causes a learner can act on.

Every message names the object (kind, namespace/name) and says what to do next, because the
learner reads it in a notebook cell, not in a log. Errors that come from an API answer also carry
it as data, as kr8s and lightkube do: `status` (the HTTP status, e.g. 403) and `reason` (the API
Status' reason, e.g. 'Forbidden', 'NotFound', 'Expired', 'Gone'), so code branches on attributes and
never on the wording of a message.
"""
from __future__ import annotations


class K8snbError(Exception):
    """Base of every error k8snb raises on purpose.

    `status` and `reason` are None when the error did not come from an API answer.
    """

    def __init__(self, message: str = "", *, status: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class InvalidInput(K8snbError, ValueError):
    """An argument was refused before any call to the cluster (bad name, replicas out of range...)."""


class NotReachable(K8snbError):
    """No kubeconfig, unknown context, or the API server does not answer in time."""


class Forbidden(K8snbError):
    """The API server answered 403: the account lacks a permission the step needs."""


class NotFound(K8snbError):
    """A namespace, pod or other object the step needs does not exist."""


class Conflict(K8snbError):
    """An object of the same name exists and k8snb did not create it: it is left untouched."""


class Expired(K8snbError):
    """HTTP 410: the resourceVersion of a watch or the continue token of a list is older than what
    the server still keeps (etcd compacted it, or the watch cache moved on).

    Nothing is wrong with the cluster: list again (a fresh snapshot) and watch from the new
    resourceVersion. `reason` is 'Expired' (a list's continue token) or 'Gone' (a watch).
    """


class NotReadyInTime(K8snbError):
    """Pods did not become ready before the timeout; the message carries the cluster's reason."""


class ExecFailed(K8snbError):
    """A command run inside a pod failed: tool missing, exec forbidden, timeout, or non-zero exit.

    `stdout` and `stderr` hold what the command printed before it failed (possibly nothing).
    """

    def __init__(self, message: str = "", *, status: int | None = None, reason: str | None = None,
                 stdout: str = "", stderr: str = "") -> None:
        super().__init__(message, status=status, reason=reason)
        self.stdout = stdout
        self.stderr = stderr


class SampleIncomplete(ExecFailed):
    """A traffic sample stopped before all its requests were sent (client pod deleted, timeout...).

    `rows` is the request frame of the requests that did complete (see `traffic.sample`).
    """

    def __init__(self, message: str = "", *, rows=None, **kwargs) -> None:  # noqa: ANN001 — a DataFrame
        super().__init__(message, **kwargs)
        self.rows = rows


class LabError(K8snbError):
    """The offline lab cluster could not be built, started or stopped."""
