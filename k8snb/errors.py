"""The package's exceptions: one base class, a few causes a learner can act on.

Every message names the object (kind, namespace/name) and says what to do next, because the
learner reads it in a notebook cell, not in a log.
"""
from __future__ import annotations


class K8snbError(Exception):
    """Base of every error k8snb raises on purpose."""


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


class NotReadyInTime(K8snbError):
    """Pods did not become ready before the timeout; the message carries the cluster's reason."""


class ExecFailed(K8snbError):
    """A command run inside a pod failed: tool missing, exec forbidden, timeout, or non-zero exit."""


class LabError(K8snbError):
    """The offline lab cluster could not be built, started or stopped."""
