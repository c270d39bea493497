"""Certificates and keys for the lab, made once per lab with the `cryptography` package.

A real control plane talks TLS with client certificates and RBAC; the lab does the same so that
permissions, `kubectl auth can-i` and the learner RBAC behave as on a real cluster.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .constants import CLUSTER_DOMAIN
from .plan import LabPlan
from .secure import checked_dir, write_private

#: The lab is short-lived; a year keeps a forgotten lab working through a course.
VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def _write_key(key, path: Path) -> None:
    write_private(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def make_ca(directory: Path, name: str = "ca") -> Pair:
    """A self-signed CA (reused when present): `ca` signs the Kubernetes certificates, `etcd-ca`
    etcd's, so that no Kubernetes client certificate opens etcd."""
    pair = Pair(directory / f"{name}.crt", directory / f"{name}.key")
    if pair.cert.exists() and pair.key.exists():
        return pair
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"k8snb-lab-{name}"))
        .issuer_name(_name(f"k8snb-lab-{name}"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write_key(key, pair.key)
    write_private(pair.cert, cert.public_bytes(serialization.Encoding.PEM))
    return pair


def issue(ca: Pair, directory: Path, name: str, cn: str, org: str | None = None,
          server_names: tuple[str, ...] = (), client: bool = True) -> Pair:
    """A certificate signed by the lab CA; `server_names` (DNS names or IPs) make it a serving cert."""
    pair = Pair(directory / f"{name}.crt", directory / f"{name}.key")
    if pair.cert.exists() and pair.key.exists():
        return pair
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    usages = []
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    if server_names:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, org))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if server_names:
        alt = []
        for n in server_names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                alt.append(x509.DNSName(n))
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_key(key, pair.key)
    write_private(pair.cert, cert.public_bytes(serialization.Encoding.PEM))
    return pair


def service_account_keys(directory: Path) -> Pair:
    """The RSA key pair that signs and verifies service-account tokens."""
    pair = Pair(directory / "sa.pub", directory / "sa.key")
    if pair.cert.exists() and pair.key.exists():
        return pair
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(key, pair.key)
    write_private(pair.cert, key.public_key().public_bytes(serialization.Encoding.PEM,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo))
    return pair


def lab_certificates(state: Path, plan: LabPlan) -> dict[str, Pair]:
    """The control plane's certificates, as kubeadm lays them out under state/pki: one CA for
    Kubernetes, and etcd's own CA, whose client certificates (the API server's alone) are the only
    way into etcd. Made once; a later call returns the same files."""
    d = checked_dir(state / "pki")
    ca = make_ca(d)
    etcd_ca = make_ca(d, "etcd-ca")
    names = ("127.0.0.1", "localhost", plan.api_server_ip, "kubernetes", "kubernetes.default",
             "kubernetes.default.svc", f"kubernetes.default.svc.{CLUSTER_DOMAIN}", plan.api_bind)
    return {
        "ca": ca,
        "etcd-ca": etcd_ca,
        # Client use too, as kubeadm issues it: etcd's own HTTP gateway dials etcd with it.
        "etcd-server": issue(etcd_ca, d, "etcd-server", "k8snb-etcd", server_names=("127.0.0.1", "localhost")),
        "etcd-peer": issue(etcd_ca, d, "etcd-peer", "k8snb-etcd-peer", server_names=("127.0.0.1", "localhost")),
        "apiserver-etcd-client": issue(etcd_ca, d, "apiserver-etcd-client", "kube-apiserver-etcd-client"),
        "apiserver": issue(ca, d, "apiserver", "kube-apiserver", server_names=names, client=False),
        "apiserver-kubelet-client": issue(ca, d, "apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                                          org="system:masters"),
        "admin": issue(ca, d, "admin", "k8snb-admin", org="system:masters"),
        "controller-manager": issue(ca, d, "controller-manager", "system:kube-controller-manager"),
        "scheduler": issue(ca, d, "scheduler", "system:kube-scheduler"),
        "kwok": issue(ca, d, "kwok", "k8snb-kwok", org="system:masters"),
        "sa": service_account_keys(d),
    }
