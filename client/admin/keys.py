"""A site's own keys and state folders: its SuperNode key pair, the SuperExec secret, private folders.

``m3fed site keygen`` makes a site's SuperNode-authentication key pair (EC P-384 in OpenSSH
format, what ``flower-supernode --auth-supernode-private-key`` reads); the private key stays at
the site, only the ``.pub`` goes to the operator. Private keys are written 0600.
``ensure_secret`` makes the SuperExec shared secret a SuperLink or SuperNode and its SuperExec
sign runtime requests with; ``make_private`` keeps a state folder to its owner. The consortium's
CA and the server's certificate are the operator's (``server.pki``), which uses these too.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from client.errors import DataError


def write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def ensure_secret(path: Path) -> Path:
    """A 32-byte random secret in ``path`` (0600), made once and kept: Flower reads it as raw bytes."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        write_private(path, secrets.token_bytes(32))
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


def refuse_overwrite(*paths: Path) -> None:
    existing = [str(p) for p in paths if p.exists()]
    if existing:
        raise DataError(existing[0], "already exists; refusing to overwrite a key (move it away first)")


def load_certificate(path: Path) -> x509.Certificate:
    path = Path(path)
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise DataError(path, "certificate not found") from None
    except ValueError as exc:
        raise DataError(path, f"not a PEM X.509 certificate ({exc})") from None


def site_keygen(out: Path) -> tuple[Path, Path]:
    """The site's SuperNode key pair: ``out`` (private, OpenSSH, 0600) and ``out.pub`` (for the operator)."""
    out = Path(out)
    pub = out.with_name(out.name + ".pub")
    refuse_overwrite(out, pub)
    key = ec.generate_private_key(ec.SECP384R1())
    write_private(out, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
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
