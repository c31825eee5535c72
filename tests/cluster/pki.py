"""The local control plane's certificates, as kubeadm lays them out, made with ``cryptography``.

One CA signs the API server's serving certificate (for 127.0.0.1 and the in-cluster names) and
every client certificate: a client's CN is its user name and its O its groups, which is all the
API server's x509 authenticator reads (``system:masters`` for the admin, ``system:kube-scheduler``
and ``system:kube-controller-manager`` for the components, bound by RBAC's bootstrap policy). A
second key pair signs service-account tokens (TokenRequest), as ``sa.key``/``sa.pub`` do. A
front-proxy CA lets the aggregator forward requests to an extension API server.

Keys are EC P-256: quick to make on a loaded machine, and accepted everywhere Kubernetes looks.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID = dt.timedelta(days=3650)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@dataclass(frozen=True)
class Pair:
    """A certificate and its key, written as ``<name>.crt`` and ``<name>.key`` under a directory."""

    cert: Path
    key: Path


class CA:
    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + VALID)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pair = self._write(name, self.cert, self.key)

    def _write(self, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pair:
        pair = Pair(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pair.key.write_bytes(_pem_key(key))
        pair.key.chmod(0o600)
        return pair

    def issue(self, name: str, *, cn: str, groups: tuple[str, ...] = (), hosts: tuple[str, ...] = (), server: bool = False) -> Pair:
        """A leaf certificate: a client one (``cn`` the user, ``groups`` its O), or with ``server``
        a serving one for ``hosts`` (IP addresses and DNS names)."""
        key = _key()
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups] + [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + VALID)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        )
        if hosts:
            names: list[x509.GeneralName] = []
            for host in hosts:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    names.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return self._write(name, builder.sign(self.key, hashes.SHA256()), key)


@dataclass(frozen=True)
class Pki:
    ca: Pair
    apiserver: Pair
    admin: Pair
    controller_manager: Pair
    scheduler: Pair
    kwok: Pair
    front_proxy_ca: Pair
    front_proxy_client: Pair
    sa_key: Path
    sa_pub: Path


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca = CA(directory, "ca")
    hosts = ("127.0.0.1", "localhost", "10.0.0.1", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")
    front = CA(directory, "front-proxy-ca")
    sa = _key()
    sa_key, sa_pub = directory / "sa.key", directory / "sa.pub"
    sa_key.write_bytes(_pem_key(sa))
    sa_key.chmod(0o600)
    sa_pub.write_bytes(sa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return Pki(
        ca=ca.pair,
        apiserver=ca.issue("apiserver", cn="kube-apiserver", hosts=hosts, server=True),
        admin=ca.issue("admin", cn="peakscale-admin", groups=("system:masters",)),
        controller_manager=ca.issue("controller-manager", cn="system:kube-controller-manager"),
        scheduler=ca.issue("scheduler", cn="system:kube-scheduler"),
        # kwok plays every node's kubelet: it writes nodes, their leases and pods' status
        kwok=ca.issue("kwok", cn="kwok", groups=("system:masters",)),
        front_proxy_ca=front.pair,
        front_proxy_client=front.issue("front-proxy-client", cn="front-proxy-client"),
        sa_key=sa_key,
        sa_pub=sa_pub,
    )
