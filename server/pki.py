"""The consortium's certificates and the sites' keys, made with ``cryptography`` (no home-made crypto).

``m3fed ca init`` makes the consortium CA (the root every site trusts), ``m3fed ca issue-server``
the SuperLink's TLS certificate, whose subject alternative names must cover every name or address
sites dial. ``m3fed site keygen`` makes a site's SuperNode-authentication key pair (EC P-384 in
OpenSSH format, what ``flower-supernode --auth-supernode-private-key`` reads); the private key
stays at the site, only the ``.pub`` goes to the operator. Private keys are written 0600.
``ensure_secret`` makes the SuperExec shared secret a SuperLink or SuperNode and its SuperExec
sign runtime requests with; ``make_private`` keeps a state folder to its owner.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from client.errors import DataError

CA_CERT, CA_KEY = "ca.crt", "ca.key"
SERVER_CERT, SERVER_KEY = "server.pem", "server.key"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def ensure_secret(path: Path) -> Path:
    """A 32-byte random secret in ``path`` (0600), made once and kept: Flower reads it as raw bytes."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        _write_private(path, secrets.token_bytes(32))
    path.chmod(0o600)
    return path


def make_private(folder: Path) -> Path:
    """Create ``folder`` 0700, and take group and other access off everything already in it.

    Only the permission bits of what is there are changed: a state folder made by an earlier
    version (0755, files 0644) becomes private too, without touching its contents.
    """
    folder = Path(folder)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path in (folder, *folder.rglob("*")):
        if path.is_symlink():
            continue
        mode = path.stat().st_mode & 0o7777
        if mode & 0o077:
            path.chmod(mode & ~0o077)
    return folder


def _refuse_overwrite(*paths: Path) -> None:
    existing = [str(p) for p in paths if p.exists()]
    if existing:
        raise DataError(existing[0], "already exists; refusing to overwrite a key (move it away first)")


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def init_ca(out: Path, *, name: str, days: int = 3650) -> Path:
    """A self-signed consortium CA in ``out/ca.crt`` (+ ``ca.key``, which never leaves the operator)."""
    out = Path(out)
    _refuse_overwrite(out / CA_KEY, out / CA_CERT)
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
    _write_private(out / CA_KEY, _pem_key(key))
    (out / CA_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return out / CA_CERT


def load_certificate(path: Path) -> x509.Certificate:
    path = Path(path)
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise DataError(path, "certificate not found") from None
    except ValueError as exc:
        raise DataError(path, f"not a PEM X.509 certificate ({exc})") from None


def _load_pem_key(path: Path, missing: str):
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise DataError(path, missing) from None
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise DataError(path, f"not an unencrypted PEM private key ({exc})") from None


def _load_ca(ca_dir: Path):
    key = _load_pem_key(ca_dir / CA_KEY, "CA private key not found (m3fed ca init writes it)")
    return load_certificate(ca_dir / CA_CERT), key


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def issue_server(ca_dir: Path, *, hosts: list[str], out: Path | None = None, days: int = 825) -> Path:
    """The SuperLink's certificate, signed by the consortium CA; its SAN lists ``hosts`` (names or IPs)."""
    ca_dir = Path(ca_dir)
    out = Path(out or ca_dir)
    if not hosts:
        raise DataError("--host", "give at least one name or address that sites dial")
    ca_cert, ca_key = _load_ca(ca_dir)
    key = ec.generate_private_key(ec.SECP384R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
            .add_extension(_san(hosts), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA384()))
    _write_private(out / SERVER_KEY, _pem_key(key))
    (out / SERVER_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if out != ca_dir:  # the SuperLink serves the chain's root too
        (out / CA_CERT).write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return out / SERVER_CERT


def server_hosts(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in san.get_values_for_type(x509.DNSName)] + \
        [str(v) for v in san.get_values_for_type(x509.IPAddress)]


def check_server_certificates(certs: Path) -> None:
    """The three files the SuperLink needs, valid today, the key matching the certificate, signed by the CA."""
    certs = Path(certs)
    cert, ca = load_certificate(certs / SERVER_CERT), load_certificate(certs / CA_CERT)
    now = dt.datetime.now(dt.timezone.utc)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise DataError(certs / SERVER_CERT, f"not valid now (valid {cert.not_valid_before_utc:%Y-%m-%d} to "
                                             f"{cert.not_valid_after_utc:%Y-%m-%d}): issue a new one")
    key = _load_pem_key(certs / SERVER_KEY, "server private key not found")
    if key.public_key().public_numbers() != cert.public_key().public_numbers():
        raise DataError(certs / SERVER_KEY, f"does not match the certificate {certs / SERVER_CERT}")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError) as exc:
        raise DataError(certs / SERVER_CERT, f"not signed by the CA in {certs / CA_CERT} ({exc})") from None


def site_keygen(out: Path) -> tuple[Path, Path]:
    """The site's SuperNode key pair: ``out`` (private, OpenSSH, 0600) and ``out.pub`` (for the operator)."""
    out = Path(out)
    pub = out.with_name(out.name + ".pub")
    _refuse_overwrite(out, pub)
    key = ec.generate_private_key(ec.SECP384R1())
    _write_private(out, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                          serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                  serialization.PublicFormat.OpenSSH) + b"\n")
    return out, pub


def check_site_key(path: Path) -> None:
    """The site's private key loads as the EC key Flower expects."""
    path = Path(path)
    try:
        key = serialization.load_ssh_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise DataError(path, "site private key not found (m3fed site keygen writes it)") from None
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise DataError(path, f"not an unencrypted OpenSSH private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise DataError(path, f"is a {type(key).__name__}; SuperNode authentication needs an EC key")
    if path.stat().st_mode & 0o077:
        raise DataError(path, "is readable by other users: chmod 600 it")


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
