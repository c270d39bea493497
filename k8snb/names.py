"""Validation of the names the course passes to the API and into pods.

Names end up in URLs, label selectors and argv lists; refusing a bad one early gives the learner a
clear message instead of a 422 from the API server (or worse, a surprising command).
"""
from __future__ import annotations

import re

from .errors import InvalidInput

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def dns_label(value: str, what: str = "name") -> str:
    """Return `value` if it is a DNS-1123 label (namespaces, Services, pods' generated parts)."""
    if not isinstance(value, str) or len(value) > 63 or not _DNS1123_LABEL.match(value):
        raise InvalidInput(
            f"{what} {value!r} is not a valid DNS-1123 label: use at most 63 lower-case letters, "
            "digits and '-', starting and ending with a letter or digit"
        )
    return value


def dns_subdomain(value: str, what: str = "name") -> str:
    """Return `value` if it is a DNS-1123 subdomain (most object names, host names like svc.ns)."""
    if not isinstance(value, str) or len(value) > 253 or not _DNS1123_SUBDOMAIN.match(value):
        raise InvalidInput(
            f"{what} {value!r} is not a valid DNS-1123 name: lower-case letters, digits, '-' and '.', "
            "at most 253 characters"
        )
    return value


def replicas(value: int, maximum: int = 50) -> int:
    """Return `value` if it is a replica count the course allows (0..maximum)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise InvalidInput(f"replicas must be a whole number from 0 to {maximum}, got {value!r}")
    return value
