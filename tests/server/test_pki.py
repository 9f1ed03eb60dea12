"""The consortium PKI and the SuperLink's secure defaults; TLS checked with real handshakes on loopback."""
from __future__ import annotations

import base64
import shutil
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from client.admin.keys import check_site_key, load_certificate, site_keygen
from client.errors import DataError
from server.csr import request_server, sign_csr
from server.pki import check_public_key, check_server_certificates, init_ca, issue_server, server_hosts, server_names
from server.superlink import ServerConfig, superlink_command
from sim.m3fed_command import main

LOOPBACK = {"localhost", "127.0.0.1", "::1"}


@pytest.fixture()
def ca(tmp_path):
    init_ca(tmp_path / "ca", name="test CA")
    return tmp_path / "ca"


def test_server_certificate_is_signed_by_the_ca_and_names_what_sites_dial(ca, tmp_path):
    issue_server(ca, hosts=["fl.example.org", "203.0.113.7"], out=tmp_path / "srv")
    cert = load_certificate(tmp_path / "srv" / "server.pem")
    cert.verify_directly_issued_by(load_certificate(ca / "ca.crt"))
    assert set(server_hosts(cert)) == {"fl.example.org", "203.0.113.7"} | LOOPBACK
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    for key in (ca / "ca.key", tmp_path / "srv" / "server.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    check_server_certificates(tmp_path / "srv")


def test_mismatched_key_or_foreign_ca_is_refused(ca, tmp_path):
    issue_server(ca, hosts=["a"], out=tmp_path / "one")
    issue_server(ca, hosts=["a"], out=tmp_path / "two")
    (tmp_path / "one" / "server.key").write_bytes((tmp_path / "two" / "server.key").read_bytes())
    with pytest.raises(DataError, match="does not match the certificate"):
        check_server_certificates(tmp_path / "one")
    init_ca(tmp_path / "other", name="other CA")
    (tmp_path / "two" / "ca.crt").write_bytes((tmp_path / "other" / "ca.crt").read_bytes())
    with pytest.raises(DataError, match="not signed by the CA"):
        check_server_certificates(tmp_path / "two")


def test_keys_are_never_overwritten(ca, tmp_path):
    with pytest.raises(DataError, match="refusing to overwrite"):
        init_ca(ca, name="again")
    site_keygen(tmp_path / "k")
    with pytest.raises(DataError, match="refusing to overwrite"):
        site_keygen(tmp_path / "k")


def test_site_key_is_a_private_ec_key_flower_can_read(tmp_path):
    private, public = site_keygen(tmp_path / "site")
    check_site_key(private)
    check_public_key(public)
    assert public.read_text().startswith("ecdsa-sha2-nistp384 ")
    private.chmod(0o644)
    with pytest.raises(DataError, match="readable by other users"):
        check_site_key(private)
    other = tmp_path / "ed"
    other.write_bytes(ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()))
    other.chmod(0o600)
    with pytest.raises(DataError, match="needs an EC key"):
        check_site_key(other)
    with pytest.raises(DataError, match="not an OpenSSH public key"):
        check_public_key(private)


def test_superlink_is_tls_with_node_auth_unless_insecure(ca, tmp_path):
    with pytest.raises(DataError, match="--insecure"):
        ServerConfig(state=tmp_path, certs=None)
    with pytest.raises(DataError, match="missing"):
        ServerConfig(state=tmp_path, certs=ca)  # a CA folder has no server certificate
    issue_server(ca, hosts=["localhost"])
    cmd = superlink_command(ServerConfig(state=tmp_path, certs=ca))
    assert "--enable-supernode-auth" in cmd and "--ssl-certfile" in cmd and "--insecure" not in cmd
    assert "--disable-runtime-dependency-installation" in cmd
    insecure = superlink_command(ServerConfig(state=tmp_path, certs=None, insecure=True))
    assert "--insecure" in insecure and "--enable-supernode-auth" not in insecure


def _handshake(certs: Path, trust: Path, *, dial: str = "127.0.0.1", server_hostname: str) -> bytes:
    """A TLS server on ``dial`` with ``certs``' key and certificate; a client trusting only ``trust``."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certs / "server.pem", certs / "server.key")
    client_ctx = ssl.create_default_context(cafile=str(trust))
    client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # what newer Pythons' clients check by default
    with socket.socket(socket.AF_INET6 if ":" in dial else socket.AF_INET) as listener:
        listener.settimeout(10)
        listener.bind((dial, 0))
        listener.listen(1)

        def serve() -> None:
            try:
                conn, _ = listener.accept()
                conn.settimeout(10)
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError):
                pass  # the client refused us: its side raises

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            with socket.create_connection(listener.getsockname()[:2], timeout=10) as raw, \
                    client_ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
                return tls.recv(2)
        finally:
            thread.join(10)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_every_server_certificate_names_loopback_once(ca, tmp_path):
    assert server_names(["LocalHost", "0:0::1", "fl.example.org."]) == ["localhost", "::1", "fl.example.org",
                                                                         "127.0.0.1"]
    issue_server(ca, hosts=["fl.example.org"], out=tmp_path / "srv")
    cert = load_certificate(tmp_path / "srv" / "server.pem")
    assert server_hosts(cert) == ["fl.example.org", "localhost", "127.0.0.1", "::1"]
    # The server host's own clients and a one-machine trial dial loopback, by name or address.
    for name in ("localhost", "127.0.0.1"):
        assert _handshake(tmp_path / "srv", ca / "ca.crt", server_hostname=name) == b"ok"
    if _ipv6_loopback():
        assert _handshake(tmp_path / "srv", ca / "ca.crt", dial="::1", server_hostname="::1") == b"ok"


@pytest.mark.parametrize("host", ["https://fl.example.org", "fl.example.org:8000", "10.0.0.300", "", "a b"])
def test_a_host_that_is_no_name_or_address_is_refused(ca, tmp_path, host):
    with pytest.raises(DataError, match="--host.*not a DNS name or an IP address"):
        issue_server(ca, hosts=[host], out=tmp_path / "srv")
    with pytest.raises(DataError, match="--host"):
        request_server(tmp_path / "req", hosts=[host])
    assert not (tmp_path / "srv").exists() and not (tmp_path / "req").exists()


def test_csr_round_trip_keeps_the_ca_key_offline(ca, tmp_path):
    server, carried = tmp_path / "server", tmp_path / "carried"
    key, csr = request_server(server, hosts=["fl.example.org", "203.0.113.7"])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    request = x509.load_pem_x509_csr(csr.read_bytes())
    assert request.is_signature_valid and isinstance(request.public_key(), ec.EllipticCurvePublicKey)
    san = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(n.value) for n in san} == {"fl.example.org", "203.0.113.7"} | LOOPBACK

    sign_csr(ca, csr=csr, out=carried)
    assert sorted(p.name for p in carried.iterdir()) == ["ca.crt", "server.pem"]  # no key is made or moved
    cert = load_certificate(carried / "server.pem")
    assert server_hosts(cert) == ["fl.example.org", "203.0.113.7", "localhost", "127.0.0.1", "::1"]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == \
        [ExtendedKeyUsageOID.SERVER_AUTH]

    for name in ("server.pem", "ca.crt"):
        shutil.copy(carried / name, server / name)
    check_server_certificates(server)
    ServerConfig(state=tmp_path / "state", certs=server)  # what `m3fed server start --certs` checks
    assert _handshake(server, ca / "ca.crt", server_hostname="localhost") == b"ok"
    assert _handshake(server, server / "ca.crt", server_hostname="127.0.0.1") == b"ok"
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(server, ca / "ca.crt", server_hostname="not-named.example.org")
    init_ca(tmp_path / "other", name="other CA")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(server, tmp_path / "other" / "ca.crt", server_hostname="localhost")


def test_request_and_sign_in_one_folder(ca, tmp_path):
    folder = tmp_path / "trial"
    key, csr = request_server(folder, hosts=["127.0.0.1"])
    before = key.read_bytes()
    sign_csr(ca, csr=csr, out=folder)
    assert key.read_bytes() == before and stat.S_IMODE(key.stat().st_mode) == 0o600
    check_server_certificates(folder)
    assert server_hosts(load_certificate(folder / "server.pem")) == ["127.0.0.1", "localhost", "::1"]
    assert _handshake(folder, folder / "ca.crt", server_hostname="localhost") == b"ok"


def test_request_never_overwrites_a_key(tmp_path):
    key, _ = request_server(tmp_path, hosts=["fl.example.org"])
    before = key.read_bytes()
    with pytest.raises(DataError, match=r"server\.key: already exists; refusing to overwrite"):
        request_server(tmp_path, hosts=["other.example.org"])
    assert key.read_bytes() == before


def _csr_bytes(*extensions, key=None) -> bytes:
    key = key or ec.generate_private_key(ec.SECP384R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fl.example.org")]))
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA384()).public_bytes(
        serialization.Encoding.PEM)


def test_sign_csr_refuses_what_it_should_not_sign(ca, tmp_path):
    _, csr = request_server(tmp_path / "srv", hosts=["fl.example.org"])
    der = x509.load_pem_x509_csr(csr.read_bytes()).public_bytes(serialization.Encoding.DER)
    assert der.count(b"fl.example.org") == 2  # subject and SAN
    tampered = tmp_path / "tampered.csr"
    tampered.write_bytes(b"-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(
        der.replace(b"fl.example.org", b"evil.example.o")) + b"-----END CERTIFICATE REQUEST-----\n")
    san = x509.SubjectAlternativeName([x509.DNSName("fl.example.org")])
    cases = {
        "tampered.csr": (None, "signature does not verify"),
        "ca.csr": (_csr_bytes(san, x509.BasicConstraints(ca=True, path_length=None)), "asks to be a CA"),
        "no-san.csr": (_csr_bytes(), "names no host"),
        "ed25519.csr": (_csr_bytes(san, key=ed25519.Ed25519PrivateKey.generate()), "needs an EC or RSA"),
        "bad-name.csr": (_csr_bytes(x509.SubjectAlternativeName([x509.DNSName("a b")])), "not a DNS name"),
        "cert.csr": ((ca / "ca.crt").read_bytes(), "not a certificate signing request"),
        "missing.csr": (None, "not found"),
    }
    for name, (data, reason) in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError, match=reason) as err:
            sign_csr(ca, csr=tmp_path / name, out=tmp_path / "out")
        assert err.value.path == str(tmp_path / name)
    assert not (tmp_path / "out").exists()
    (ca / "ca.key").rename(tmp_path / "elsewhere.key")  # signing on the wrong machine
    with pytest.raises(DataError, match="CA private key not found") as err:
        sign_csr(ca, csr=csr, out=tmp_path / "out")
    assert err.value.path == str(ca / "ca.key")


def test_ca_cli_request_sign_and_a_mistake(ca, tmp_path, capsys):
    server = tmp_path / "server"
    assert main(["ca", "request", "--host", "fl.example.org", "--out", str(server)]) == 0
    out = capsys.readouterr().out
    assert "asking for: fl.example.org, localhost, 127.0.0.1, ::1" in out and "carry only" in out
    assert main(["ca", "sign-csr", "--ca-dir", str(ca), "--csr", str(server / "server.csr"),
                 "--out", str(server)]) == 0
    assert "valid for: fl.example.org, localhost, 127.0.0.1, ::1" in capsys.readouterr().out
    check_server_certificates(server)

    assert main(["ca", "request", "--host", "fl.example.org", "--out", str(server)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {server / 'server.key'}: already exists")
    assert main(["ca", "sign-csr", "--ca-dir", str(ca), "--csr", str(tmp_path / "nope.csr"),
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {tmp_path / 'nope.csr'}: ")
    assert main(["ca", "issue-server", "--ca-dir", str(ca), "--host", "203.0.113.7", "--out", str(tmp_path / "i")]) == 0
    assert "valid for: 203.0.113.7, localhost, 127.0.0.1, ::1" in capsys.readouterr().out
