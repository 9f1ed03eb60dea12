"""site.yaml validation, the daemon's commands and the app-approval guard, without a SuperLink."""
from __future__ import annotations

import json

import pytest
import yaml
from flwr.proto.task_pb2 import Task
from flwr.supercore.constant import TaskType
from flwr.supercore.superexec.executor import LaunchResult

from client.admin import guard
from client.admin.daemon import guard_command, supernode_command, systemd_unit
from client.admin.keys import site_keygen
from client.admin.site_config import check_site, load_site_config
from client.errors import DataError
from server.pki import init_ca

HASH = "ab" * 32


def _write(tmp_path, **changes) -> str:
    spec = {"site": "hospital-a", "superlink": "fl.example.org:8000", "ca_certificate": "ca/ca.crt",
            "private_key": "keys/a", "data": "data", "languages": ["en"], "modalities": ["CXR"],
            "approved_apps": [HASH], "state_dir": "state", **changes}
    spec = {k: v for k, v in spec.items() if v is not None}
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def test_valid_config_resolves_paths_and_node_config(tmp_path):
    cfg = load_site_config(_write(tmp_path, privacy_policy="privacy.yaml"))
    assert cfg.data == tmp_path / "data" and cfg.ledger == tmp_path / "state" / "ledger.jsonl"
    assert cfg.node_config() == {"site-name": "hospital-a", "data-path": str(tmp_path / "data"),
                                 "state-dir": str(tmp_path / "state"), "languages": "en", "modalities": "CXR",
                                 "scrub": "on", "privacy-policy": str(tmp_path / "privacy.yaml"),
                                 "privacy-ledger": str(tmp_path / "state" / "ledger.jsonl")}
    cmd = supernode_command(cfg)
    assert cmd[cmd.index("--superlink") + 1] == "fl.example.org:8000" and "--insecure" not in cmd
    assert cmd[cmd.index("--isolation") + 1] == "process"  # ClientApps only through the guard
    assert "--auth-supernode-private-key" in cmd and "--root-certificates" in cmd
    assert HASH in guard_command(cfg, 123)


@pytest.mark.parametrize("changes, message", [
    ({"colour": "blue"}, "unknown key"),
    ({"data": None}, "required key"),
    ({"superlink": "https://fl.example.org:8000"}, "no scheme"),
    ({"approved_apps": ["not-a-hash"]}, "sha256"),
    ({"languages": ["fr"]}, "unknown value"),
    ({"ca_certificate": None}, "required unless insecure"),
    ({"insecure": "yes"}, "true or false"),
    ({"site": "a b"}, "letters, digits"),
    ({"scrub": "maybe"}, "scrub: must be on or off"),
])
def test_bad_config_names_the_key(tmp_path, changes, message):
    with pytest.raises(DataError, match=message) as err:
        load_site_config(_write(tmp_path, **changes))
    assert "site.yaml" in str(err.value)


@pytest.mark.parametrize("value, expected", [(False, "off"), ("off", "off"), ("on", "on"), (True, "on")])
def test_scrub_reaches_the_node_config(tmp_path, value, expected):
    assert load_site_config(_write(tmp_path, scrub=value)).node_config()["scrub"] == expected


def test_insecure_needs_no_keys(tmp_path):
    cfg = load_site_config(_write(tmp_path, insecure=True, ca_certificate=None, private_key=None))
    assert "--insecure" in supernode_command(cfg)


def test_check_refuses_missing_keys_and_a_missing_data_path(tmp_path, small_mimic):
    with pytest.raises(DataError, match="certificate not found"):
        check_site(load_site_config(_write(tmp_path, data=str(small_mimic))), image_size=64)
    init_ca(tmp_path / "ca", name="t")
    site_keygen(tmp_path / "keys" / "a")
    with pytest.raises(DataError, match="data path not found"):
        check_site(load_site_config(_write(tmp_path, data="nowhere")), image_size=64)
    summary = check_site(load_site_config(_write(tmp_path, data=str(small_mimic), languages=["en", "zh"],
                                                 modalities=["CXR", "CT"])), image_size=64)
    assert summary["usable"] and (tmp_path / "state").is_dir()
    assert summary["not_contributed"]["records"] == 0 and not summary["warnings"]


def test_systemd_unit_runs_the_site_and_signals_only_the_daemon(tmp_path):
    path = _write(tmp_path)
    unit = systemd_unit(tmp_path / "site.yaml", load_site_config(path), user="m3fed")
    lines = unit.splitlines()
    assert any(line.endswith(f"site start --config {tmp_path / 'site.yaml'}") for line in lines)
    assert {"KillMode=mixed", "User=m3fed", "UMask=0077", "ProtectSystem=strict", "RestartSec=60",
            f"ReadWritePaths={tmp_path / 'state'}"} <= set(lines)


@pytest.mark.parametrize("user, state_dir, named", [("m3fed\nUser=root", "state", "--user"),
                                                    ("m3fed", "my state", "state_dir")])
def test_a_site_unit_that_would_mean_something_else_is_refused(tmp_path, user, state_dir, named):
    cfg = load_site_config(_write(tmp_path, state_dir=state_dir))
    with pytest.raises(DataError, match=named):
        systemd_unit(tmp_path / "site.yaml", cfg, user=user)


class _Executor:
    def __init__(self):
        self.launched = []

    def launch(self, spec):
        self.launched.append(spec)
        return LaunchResult.accepted()


def test_guard_launches_only_approved_bundles(tmp_path, monkeypatch):
    spawned = []

    class Popen:  # the refusal process: its token arrives on stdin
        def __init__(self, args, **kw):
            spawned.append(args)
            self.stdin = self

        def write(self, text):
            spawned[-1] = [*spawned[-1], "<stdin>", text.strip()]

        def close(self):
            pass

    monkeypatch.setattr(guard.subprocess, "Popen", Popen)
    monkeypatch.setattr(guard.ApprovedAppsPlugin, "approved", frozenset({HASH}))
    monkeypatch.setattr(guard.ApprovedAppsPlugin, "site", "hospital-a")
    monkeypatch.setattr(guard.ApprovedAppsPlugin, "refusal_log", tmp_path / "refused.jsonl")
    executor = _Executor()
    plugin = guard.ApprovedAppsPlugin(runtime_api_address="127.0.0.1:9094", insecure=True,
                                      root_certificates_path=None, executor=executor)
    plugin.launch_task("tok-1", Task(task_id=1, type=TaskType.CLIENT_APP, run_id=7, fab_hash=HASH))
    assert len(executor.launched) == 1 and executor.launched[0].fab_hash == HASH and not spawned
    plugin.launch_task("tok-2", Task(task_id=2, type=TaskType.CLIENT_APP, run_id=8, fab_hash="cd" * 32))
    assert len(executor.launched) == 1  # the unapproved bundle is not launched...
    assert spawned and "refuse" in spawned[0] and spawned[0][-2:] == ["<stdin>", "tok-2"]  # ...answered with an error
    reason = spawned[0][spawned[0].index("--reason") + 1]
    assert reason.startswith("[site hospital-a]") and "not approved" in reason
    entry = json.loads((tmp_path / "refused.jsonl").read_text())
    assert entry == {"run_id": 8, "fab_hash": "cd" * 32, "reason": reason}


def test_a_text_model_reaches_the_node_config_and_site_check_refuses_one_without_the_site_language(
        tmp_path, small_mimic):
    from tests.shared_model.text_models import save_small_bert

    save_small_bert(tmp_path / "bert-en", chinese=False)
    cfg = load_site_config(_write(tmp_path, insecure=True, ca_certificate=None, private_key=None,
                                  data=str(small_mimic), text_model="bert-en", languages=["en", "zh"]))
    assert cfg.node_config()["text-model"] == str(tmp_path / "bert-en")
    with pytest.raises(DataError, match="text_model: .*does not cover zh"):
        check_site(cfg, image_size=64)
    english = load_site_config(_write(tmp_path, insecure=True, ca_certificate=None, private_key=None,
                                      data=str(small_mimic), text_model="bert-en", languages=["en"]))
    assert check_site(english, image_size=64)["usable"]
