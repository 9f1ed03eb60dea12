"""A site's state folder holds decoded reports, the ledger and results: its owner's alone."""
from __future__ import annotations

import yaml

from client.admin.keys import ensure_secret, site_keygen
from client.admin.site_config import check_site, load_site_config
from server.pki import init_ca


def test_site_check_makes_an_existing_state_folder_private(tmp_path, small_mimic):
    init_ca(tmp_path / "ca", name="t")
    site_keygen(tmp_path / "keys" / "a")
    state = tmp_path / "state"
    (state / "decoded").mkdir(parents=True, mode=0o755)
    state.chmod(0o755)
    for path in (state / "ledger.jsonl", state / "decoded" / "train-0.json"):  # as an older version left them
        path.write_text("{}")
        path.chmod(0o644)
    (tmp_path / "site.yaml").write_text(yaml.safe_dump({
        "site": "a", "superlink": "fl.example.org:8000", "ca_certificate": "ca/ca.crt", "private_key": "keys/a",
        "data": str(small_mimic), "languages": ["en", "zh"], "modalities": ["CXR", "CT"],
        "approved_apps": ["ab" * 32], "state_dir": "state"}))
    check_site(load_site_config(tmp_path / "site.yaml"), image_size=64)
    assert state.stat().st_mode & 0o777 == 0o700 and (state / "decoded").stat().st_mode & 0o777 == 0o700
    assert {p.stat().st_mode & 0o777 for p in state.rglob("*") if p.is_file()} == {0o600}


def test_a_new_state_folder_is_created_private(tmp_path, small_mimic):
    init_ca(tmp_path / "ca", name="t")
    site_keygen(tmp_path / "keys" / "a")
    (tmp_path / "site.yaml").write_text(yaml.safe_dump({
        "site": "a", "superlink": "fl.example.org:8000", "ca_certificate": "ca/ca.crt", "private_key": "keys/a",
        "data": str(small_mimic), "languages": ["en", "zh"], "modalities": ["CXR", "CT"],
        "approved_apps": ["ab" * 32], "state_dir": "new/state"}))
    check_site(load_site_config(tmp_path / "site.yaml"), image_size=64)
    assert (tmp_path / "new" / "state").stat().st_mode & 0o777 == 0o700


def test_the_superexec_secret_is_made_once_and_private(tmp_path):
    secret = ensure_secret(tmp_path / "s" / "superexec.secret")
    first = secret.read_bytes()
    assert len(first) == 32 and secret.stat().st_mode & 0o777 == 0o600
    secret.chmod(0o644)
    assert ensure_secret(secret).read_bytes() == first and secret.stat().st_mode & 0o777 == 0o600
