"""The consortium PKI and the SuperLink's secure defaults, without starting anything."""
from __future__ import annotations

import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from client.errors import DataError
from server.pki import (check_public_key, check_server_certificates, check_site_key, init_ca, issue_server,
                        load_certificate, server_hosts, site_keygen)
from server.superlink import ServerConfig, superlink_command


@pytest.fixture()
def ca(tmp_path):
    init_ca(tmp_path / "ca", name="test CA")
    return tmp_path / "ca"


def test_server_certificate_is_signed_by_the_ca_and_names_what_sites_dial(ca, tmp_path):
    issue_server(ca, hosts=["fl.example.org", "203.0.113.7"], out=tmp_path / "srv")
    cert = load_certificate(tmp_path / "srv" / "server.pem")
    cert.verify_directly_issued_by(load_certificate(ca / "ca.crt"))
    assert set(server_hosts(cert)) == {"fl.example.org", "203.0.113.7"}
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
