"""The consortium's certificates and the sites' keys, made with ``cryptography`` (no home-made crypto).

``m3fed ca init`` makes the consortium CA (the root every site trusts), ``m3fed ca issue-server``
the SuperLink's TLS certificate and key in one step (on a machine holding ``ca.key``; the two-step
flow that keeps ``ca.key`` offline is in ``server.csr``). A server certificate's subject alternative
names cover every name or address sites dial, and always loopback (``localhost``, ``127.0.0.1``,
``::1``) for the server host's own clients and one-machine trials. ``check_server_certificates``
is what ``m3fed server start --certs`` asks of either flow's folder.

A site's key pair (``m3fed site keygen``) and what a SuperLink and a SuperNode both need (the
SuperExec secret, private state folders) are in ``client.admin.keys``; this module checks a site's
``.pub`` for the operator.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import re
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from client.admin.keys import load_certificate, refuse_overwrite, write_private
from client.errors import DataError

CA_CERT, CA_KEY = "ca.crt", "ca.key"
SERVER_CERT, SERVER_KEY = "server.pem", "server.key"
# The SuperLink host's own clients and a one-machine trial dial these; every server certificate names them.
LOOPBACK = ("localhost", "127.0.0.1", "::1")
_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_DNS_NAME = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})*")


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def init_ca(out: Path, *, name: str, days: int = 3650) -> Path:
    """A self-signed consortium CA in ``out/ca.crt`` (+ ``ca.key``, which never leaves the operator)."""
    out = Path(out)
    refuse_overwrite(out / CA_KEY, out / CA_CERT)
    key = ec.generate_private_key(ec.SECP384R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "m3fed consortium")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA384()))
    write_private(out / CA_KEY, _pem_key(key))
    (out / CA_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return out / CA_CERT


def _load_pem_key(path: Path, missing: str):
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise DataError(path, missing) from None
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise DataError(path, f"not an unencrypted PEM private key ({exc})") from None


def load_ca(ca_dir: Path):
    """The CA's certificate and private key from ``ca_dir`` (the key must be the certificate's)."""
    ca_dir = Path(ca_dir)
    cert = load_certificate(ca_dir / CA_CERT)
    key = _load_pem_key(ca_dir / CA_KEY, "CA private key not found (m3fed ca init writes it; sign on the "
                                         "machine that keeps it)")
    if not same_key(key.public_key(), cert.public_key()):
        raise DataError(ca_dir / CA_KEY, f"does not match the CA certificate {ca_dir / CA_CERT}")
    return cert, key


def same_key(a, b) -> bool:
    der, spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return a.public_bytes(der, spki) == b.public_bytes(der, spki)


def _host(host: str, where: str | Path) -> str:
    """One name or address in canonical form (``::0:1`` is ``::1``), or a DataError naming ``where``."""
    text = str(host).strip()
    try:
        return str(ipaddress.ip_address(text.removeprefix("[").removesuffix("]")))
    except ValueError:
        pass
    name = text.removesuffix(".")
    # A last label of digits only is no DNS name: most likely a mistyped IP address.
    if len(name) > 253 or not _DNS_NAME.fullmatch(name) or name.rsplit(".", 1)[-1].isdigit():
        raise DataError(where, f"{host!r} is not a DNS name or an IP address (give the name or address "
                               "sites dial, without scheme or port)")
    return name.lower()  # DNS names are case-insensitive; certificates write them in lower case


def server_names(hosts: list[str], *, where: str | Path = "--host") -> list[str]:
    """``hosts`` checked, then the loopback names, each once: a server certificate's SAN."""
    names: list[str] = []
    for host in [*hosts, *LOOPBACK]:
        name = _host(host, where)
        if name not in names:
            names.append(name)
    return names


def _subject(names: list[str]) -> x509.Name:
    # Clients check the SAN, not the subject; a common name holds at most 64 characters.
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if len(names[0]) <= 64 else "m3fed SuperLink")])


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def sign_server_certificate(ca_cert: x509.Certificate, ca_key, public_key, *, names: list[str],
                            days: int) -> x509.Certificate:
    """A server (not CA) certificate for ``public_key``: serverAuth, SAN ``names``, within the CA's validity."""
    if days < 1:
        raise DataError("--days", f"{days}: a certificate must be valid for at least one day")
    now = dt.datetime.now(dt.timezone.utc)
    return (x509.CertificateBuilder()
            .subject_name(_subject(names)).issuer_name(ca_cert.subject).public_key(public_key)
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
            .add_extension(_san(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA384()))


def write_server_certificate(cert: x509.Certificate, ca_cert: x509.Certificate, ca_dir: Path, out: Path) -> Path:
    """``out/server.pem``, and beside it a copy of ``ca.crt`` (the SuperLink serves the chain's root too)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / SERVER_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if out.resolve() != Path(ca_dir).resolve():
        (out / CA_CERT).write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return out / SERVER_CERT


def issue_server(ca_dir: Path, *, hosts: list[str], out: Path | None = None, days: int = 825) -> Path:
    """The SuperLink's key and certificate, signed by the consortium CA; SAN: ``hosts`` (names or IPs) + loopback."""
    ca_dir = Path(ca_dir)
    out = Path(out or ca_dir)
    if not hosts:
        raise DataError("--host", "give at least one name or address that sites dial")
    names = server_names(hosts)
    ca_cert, ca_key = load_ca(ca_dir)
    key = ec.generate_private_key(ec.SECP384R1())
    cert = sign_server_certificate(ca_cert, ca_key, key.public_key(), names=names, days=days)
    write_private(out / SERVER_KEY, _pem_key(key))
    return write_server_certificate(cert, ca_cert, ca_dir, out)


def server_hosts(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(name.value) for name in san if isinstance(name, (x509.DNSName, x509.IPAddress))]


def check_server_certificates(certs: Path) -> None:
    """The three files the SuperLink needs, valid today, the key matching the certificate, signed by the CA."""
    certs = Path(certs)
    cert, ca = load_certificate(certs / SERVER_CERT), load_certificate(certs / CA_CERT)
    now = dt.datetime.now(dt.timezone.utc)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise DataError(certs / SERVER_CERT, f"not valid now (valid {cert.not_valid_before_utc:%Y-%m-%d} to "
                                             f"{cert.not_valid_after_utc:%Y-%m-%d}): issue a new one")
    key = _load_pem_key(certs / SERVER_KEY, "server private key not found")
    if not same_key(key.public_key(), cert.public_key()):
        raise DataError(certs / SERVER_KEY, f"does not match the certificate {certs / SERVER_CERT}")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError) as exc:
        raise DataError(certs / SERVER_CERT, f"not signed by the CA in {certs / CA_CERT} ({exc})") from None


def check_public_key(path: Path) -> None:
    path = Path(path)
    try:
        key = serialization.load_ssh_public_key(path.read_bytes())
    except FileNotFoundError:
        raise DataError(path, "public key not found") from None
    except (ValueError, TypeError, IndexError, UnsupportedAlgorithm) as exc:
        raise DataError(path, f"not an OpenSSH public key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise DataError(path, f"is a {type(key).__name__} key; SuperNode authentication needs an EC key")
