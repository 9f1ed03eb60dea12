"""The SuperLink's certificate through a signing request, so ``ca.key`` never leaves the CA machine.

``m3fed ca request`` runs on the server host: it makes ``server.key`` (EC P-384, 0600, never
overwritten, never copied) and ``server.csr`` naming the hosts sites dial plus loopback.
Only the CSR goes to the offline CA machine, where ``m3fed ca sign-csr`` checks it (its signature,
not a CA, at least one name) and signs a server certificate with the same extensions as
``m3fed ca issue-server``. ``server.pem`` and ``ca.crt`` come back to the folder holding
``server.key``, which ``m3fed server start --certs`` then accepts. Request and sign into one
folder (a one-machine trial) and nothing is clobbered: signing writes no key.
"""
from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from client.admin.keys import refuse_overwrite, write_private
from client.errors import DataError
from server.pki import (SERVER_KEY, _pem_key, _san, _subject, load_ca, server_names, sign_server_certificate,
                        write_server_certificate)

SERVER_CSR = "server.csr"


def request_server(out: Path, *, hosts: list[str]) -> tuple[Path, Path]:
    """``out/server.key`` (new, 0600) and ``out/server.csr`` asking for ``hosts`` + loopback."""
    out = Path(out)
    if not hosts:
        raise DataError("--host", "give at least one name or address that sites dial")
    names = server_names(hosts)
    refuse_overwrite(out / SERVER_KEY)
    key = ec.generate_private_key(ec.SECP384R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(_subject(names)).add_extension(_san(names), critical=False)
           .sign(key, hashes.SHA384()))
    write_private(out / SERVER_KEY, _pem_key(key))
    (out / SERVER_CSR).write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return out / SERVER_KEY, out / SERVER_CSR


def load_csr(path: Path) -> x509.CertificateSigningRequest:
    """A CSR (PEM or DER) whose signature verifies, i.e. made by the holder of its key and not changed since."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, "certificate signing request not found (m3fed ca request writes it)") from None
    except OSError as exc:
        raise DataError(path, f"cannot be read ({exc.strerror}); give the server.csr file") from None
    try:
        pem = b"-----BEGIN" in data
        csr = x509.load_pem_x509_csr(data) if pem else x509.load_der_x509_csr(data)
        valid = csr.is_signature_valid
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise DataError(path, f"not a certificate signing request ({exc})") from None
    if not valid:
        raise DataError(path, "the request's signature does not verify: it was changed after it was made "
                              "(make a new one with m3fed ca request)")
    return csr


def _requested_names(csr: x509.CertificateSigningRequest, path: Path) -> list[str]:
    try:
        extensions = list(csr.extensions)
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise DataError(path, f"has extensions that cannot be read ({exc})") from None
    by_type = {type(e.value): e.value for e in extensions}
    basic = by_type.get(x509.BasicConstraints)
    usage = by_type.get(x509.KeyUsage)
    if (basic is not None and basic.ca) or (usage is not None and usage.key_cert_sign):
        raise DataError(path, "asks to be a CA certificate; only a server certificate is signed here")
    san = list(by_type.get(x509.SubjectAlternativeName, []))
    hosts = [str(n.value) for n in san if isinstance(n, (x509.DNSName, x509.IPAddress))]
    others = [n for n in san if not isinstance(n, (x509.DNSName, x509.IPAddress))]
    if others:
        raise DataError(path, f"asks for names other than DNS names and IP addresses ({others[0].value})")
    if not hosts:
        raise DataError(path, "names no host (no subject alternative name): make it with "
                              "m3fed ca request --host NAME")
    return server_names(hosts, where=path)


def _check_key(public_key, path: Path) -> None:
    if isinstance(public_key, ec.EllipticCurvePublicKey) or \
            (isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size >= 2048):
        return
    raise DataError(path, f"has a {type(public_key).__name__.removeprefix('_')} key; a TLS server certificate "
                          "here needs an EC or RSA (2048 bits or more) key")


def sign_csr(ca_dir: Path, *, csr: Path, out: Path, days: int = 825) -> Path:
    """``out/server.pem`` for the CSR's key and names (+ loopback), and ``out/ca.crt``; no key is written."""
    ca_dir, csr_path, out = Path(ca_dir), Path(csr), Path(out)
    request = load_csr(csr_path)
    names = _requested_names(request, csr_path)
    try:
        public_key = request.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise DataError(csr_path, f"its public key cannot be read ({exc})") from None
    _check_key(public_key, csr_path)
    ca_cert, ca_key = load_ca(ca_dir)
    cert = sign_server_certificate(ca_cert, ca_key, public_key, names=names, days=days)
    return write_server_certificate(cert, ca_cert, ca_dir, out)
