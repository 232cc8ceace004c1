"""Certificates for the local control plane (the playground's, the tests'), in the spirit of
envtest's TinyCA.

kube-apiserver needs a serving certificate, a CA to verify client certificates and a
service-account signing key pair; tests need an admin client certificate (``system:masters``
bypasses RBAC) and, for RBAC tests, certificates for ordinary users. One CA signs both serving
and client certificates, which is simpler than envtest's three and equivalent for tests.

Keys are ECDSA P-256 (fast to generate). Every certificate carries SubjectKeyIdentifier and
AuthorityKeyIdentifier, which newer OpenSSL / Python ``ssl`` verification insists on.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=7)
"""Same 168 h as envtest: long enough for any test session, short if a key ever leaks."""

_CLOCK_SKEW = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class KeyPair:
    """A PEM certificate and its PEM (SEC1 ``EC PRIVATE KEY``) private key."""

    cert_pem: bytes
    key_pem: bytes

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """Write ``<stem>.crt`` and ``<stem>.key`` (mode 0600) and return both paths."""
        crt, key = directory / f"{stem}.crt", directory / f"{stem}.key"
        crt.write_bytes(self.cert_pem)
        key.touch(mode=0o600)
        key.write_bytes(self.key_pem)
        return crt, key


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, *, ca: bool
) -> x509.CertificateBuilder:
    """A certificate valid from now for VALIDITY, signing (only) certificates when `ca`."""
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )


class TinyCA:
    """A throw-away certificate authority that issues serving and client certificates."""

    def __init__(self, common_name: str = "policy-bot-test-ca") -> None:
        self._key = _new_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        ski = x509.SubjectKeyIdentifier.from_public_key(self._key.public_key())
        self._cert = (
            _builder(name, name, self._key, ca=True)
            .add_extension(ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate, for ``--client-ca-file`` and kubeconfig ``certificate-authority``."""
        return self._cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        common_name: str,
        *,
        organizations: Sequence[str] = (),
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
        server: bool = False,
    ) -> KeyPair:
        """Issue a leaf certificate.

        For client certificates kube-apiserver takes the user name from CN and the groups from
        the O attributes; ``server=True`` makes a serving certificate for the given SANs.
        """
        key = _new_key()
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        attributes += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        ca_ski = self._cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = (
            _builder(x509.Name(attributes), self._cert.subject, key, ca=False)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False
            )
        )
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


@dataclass(frozen=True)
class ControlPlanePKI:
    """Every file kube-apiserver and its clients need, already written to ``directory``."""

    ca: TinyCA
    directory: Path
    ca_file: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_public_key: Path
    sa_private_key: Path

    @classmethod
    def create(cls, directory: Path) -> ControlPlanePKI:
        """Generate the CA, serving and admin certificates and the service-account keys."""
        directory.mkdir(parents=True, exist_ok=True)
        ca = TinyCA()
        ca_file = directory / "ca.crt"
        ca_file.write_bytes(ca.cert_pem)
        serving = ca.issue(
            "localhost", dns_names=["localhost"], ip_addresses=["127.0.0.1"], server=True
        )
        serving_cert, serving_key = serving.write(directory, "apiserver")
        admin_cert, admin_key = ca.issue("admin", organizations=["system:masters"]).write(
            directory, "admin"
        )
        sa_key = _new_key()
        sa_private_key, sa_public_key = directory / "sa.key", directory / "sa.pub"
        sa_private_key.touch(mode=0o600)
        sa_private_key.write_bytes(_key_pem(sa_key))
        sa_public_key.write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return cls(
            ca=ca,
            directory=directory,
            ca_file=ca_file,
            serving_cert=serving_cert,
            serving_key=serving_key,
            admin_cert=admin_cert,
            admin_key=admin_key,
            sa_public_key=sa_public_key,
            sa_private_key=sa_private_key,
        )
