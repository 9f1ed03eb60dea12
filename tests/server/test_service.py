"""The SuperLink's systemd unit: what it runs, as whom, and what it may write."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from client.errors import DataError
from server.service import server_systemd_unit


def _directives(unit: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def test_unit_runs_this_environments_server_as_the_user(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    unit = server_systemd_unit(certs=Path("certs"), state=tmp_path / "state", port=8443, control_port=9100,
                               host="203.0.113.7", user="m3fed")
    d = _directives(unit)
    certs, state = tmp_path / "certs", tmp_path / "state"  # relative paths made absolute
    assert shlex.split(d["ExecStart"][0]) == [str(Path(sys.executable).parent / "m3fed"), "server", "start",
                                              "--certs", str(certs), "--state", str(state), "--port", "8443",
                                              "--control-port", "9100", "--host", "203.0.113.7"]
    assert d["User"] == ["m3fed"] and d["UMask"] == ["0077"] and d["NoNewPrivileges"] == ["true"]
    assert d["ProtectSystem"] == ["strict"] and d["ReadWritePaths"] == [str(state)]
    assert d["KillMode"] == ["mixed"] and d["Restart"] == ["on-failure"]
    assert set(d["Environment"][0].split()) >= {"FLWR_TELEMETRY_ENABLED=0", "FLWR_DISABLE_UPDATE_CHECK=1",
                                                "HF_HUB_OFFLINE=1"}
    header = [line for line in unit.splitlines() if line.startswith("#")]
    assert any(f"chown -R m3fed: {certs} {state}" in line for line in header)


def test_run_folders_outside_the_state_are_writable_too(tmp_path):
    unit = server_systemd_unit(certs=tmp_path / "c", state=tmp_path / "s", port=8000, control_port=9093,
                               host="0.0.0.0", user="m3fed", runs=tmp_path / "runs")
    assert _directives(unit)["ReadWritePaths"] == [f"{tmp_path / 's'} {tmp_path / 'runs'}"]


@pytest.mark.parametrize("change, flag", [({"user": "m3fed\nUser=root"}, "--user"), ({"user": ""}, "--user"),
                                          ({"state": Path("/var/lib/m3 fed")}, "--state"),
                                          ({"certs": Path("/etc/m3fed/100%")}, "--certs"),
                                          ({"control_port": 8000}, "--control-port"), ({"port": 0}, "--port"),
                                          ({"host": "0.0.0.0 --insecure"}, "--host")])
def test_a_unit_that_would_mean_something_else_is_refused(change, flag):
    args = dict(certs=Path("/etc/m3fed/certs"), state=Path("/var/lib/m3fed/server"), port=8000,
                control_port=9093, host="0.0.0.0", user="m3fed")
    with pytest.raises(DataError) as err:
        server_systemd_unit(**{**args, **change})
    assert err.value.path == flag
