"""Whose namespaces the course works in: the one place every notebook and helper takes them from.

A learner alone on a cluster works in `default` and `nginx`, the article's namespaces. In a
classroom on one shared cluster (`k8snb classroom up`), each learner has two namespaces of their own,
and the spawner (or the teacher's kubeconfig handout) sets them in the environment before the kernel
starts: K8SNB_NAMESPACE for the article's main namespace, K8SNB_SECOND_NAMESPACE for the one behind
the cross-namespace lesson (`nginx.<second namespace>`). They are read once, at import, because every
helper's default argument names them; set them before starting Jupyter, not from a cell.
"""
from __future__ import annotations

import os

from .errors import InvalidInput
from .names import dns_label

NAMESPACE_ENV = "K8SNB_NAMESPACE"
SECOND_NAMESPACE_ENV = "K8SNB_SECOND_NAMESPACE"


def namespaces(environ: dict | None = None) -> tuple[str, str]:
    """(main, second) namespace from the environment, each checked as a DNS-1123 label."""
    environ = os.environ if environ is None else environ
    main = dns_label(environ.get(NAMESPACE_ENV) or "default", NAMESPACE_ENV)
    second = dns_label(environ.get(SECOND_NAMESPACE_ENV) or "nginx", SECOND_NAMESPACE_ENV)
    if main == second:
        raise InvalidInput(f"{NAMESPACE_ENV} and {SECOND_NAMESPACE_ENV} must differ (both {main!r}): "
                         "the cross-namespace lesson needs two namespaces")
    return main, second


NAMESPACE, SECOND_NAMESPACE = namespaces()
#: The Service the cross-namespace lesson reaches from NAMESPACE: `nginx.nginx` for a learner alone.
OTHER_SERVICE = f"nginx.{SECOND_NAMESPACE}"
