"""A closed server host and a closed site host, real processes: ``m3fed server start`` with TLS on
0.0.0.0 and one ``m3fed site start``. Through every socket they listen on beyond loopback, a caller
holding only the consortium CA certificate (and a key of its own) plays what the attack on flwr 1.42's
shared HTTP port did: list runs, register a node (Control API and Fleet API), acquire a task on the
Runtime API. Each is refused. On loopback the Runtime APIs answer ``acquire-task`` only when it is
signed with the SuperExec secret, at the server and at the site.
"""
from __future__ import annotations

import json

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from flwr.proto.control_pb2 import ListRunsRequest
from flwr.proto.fleet_pb2 import RegisterNodeFleetRequest
from flwr.proto.runtime_pb2 import AcquireTaskRequest
from flwr.supercore.constant import TaskType
from flwr.supercore.control.control_http_client import ControlHttpClient
from flwr.supercore.interceptors.http.runtime_version import RuntimeVersionHttpInterceptor
from flwr.supercore.primitives.asymmetric import public_key_to_bytes
from flwr.supercore.runtime.runtime_http_client import RuntimeHttpClient
from flwr.supernode.fleet_http_client import FleetHttpClient
from flwr.supernode.node_auth_http_interceptor import NodeAuthHttpInterceptor

from client.admin.keys import site_keygen
from client.errors import DataError
from server.pki import init_ca, issue_server
from server.superlink import CONNECTION, flwr_cli, operator_home, read_registry
from tests.server.processes import Processes, beyond_loopback, free_port, listening, m3fed, wait_port


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    root = tmp_path_factory.mktemp("closed")
    certs, keys = root / "certs", root / "keys"
    init_ca(certs, name="test consortium")
    issue_server(certs, hosts=["127.0.0.1", "localhost"])
    for name in ("hospital-a", "rogue"):
        site_keygen(keys / name)
    procs, port, control = Processes(root), free_port(), free_port()
    # --host left at its default, 0.0.0.0: the address a real server is reached on from outside.
    server = procs.start("superlink", "server", "start", "--state", str(root / "server"), "--certs", str(certs),
                         "--port", str(port), "--control-port", str(control))
    env = {"root": root, "certs": certs, "keys": keys, "port": port, "control": control, "procs": procs,
           "server": server}
    try:
        wait_port(port, server)
        wait_port(control, server)
        done = m3fed("server", "register-site", "hospital-a", str(keys / "hospital-a.pub"), "--superlink",
                     f"127.0.0.1:{control}", "--state", str(root / "server"))
        assert done.returncode == 0, done.stdout + done.stderr
        yield env
    finally:
        assert not procs.stop_all()


def _acquire_task(address: str, *, ca=None) -> None:
    """What Flower's SuperExec sends (version headers and all), minus the SuperExec signature."""
    version = RuntimeVersionHttpInterceptor(component_name="SuperExec")
    client = RuntimeHttpClient.from_server_address(address, insecure=ca is None, root_certificates=ca,
                                                   interceptors=[version])
    try:
        client.AcquireTask(AcquireTaskRequest(supported_task_types=[t.value for t in TaskType]))
    finally:
        client.close()


def _refused(call, *args, **kwargs) -> int:
    with pytest.raises(httpx.HTTPStatusError) as refused:
        call(*args, **kwargs)
    return refused.value.response.status_code


def _outsider_home(root, address: str, ca) -> object:
    home = root / "outsider-flwr-home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
                                      f'address = "{address}"\nroot-certificates = "{ca}"\n')
    return home


def test_the_server_listens_beyond_loopback_only_for_the_sites(host):
    sockets = listening(host["server"].pid)
    assert sockets == {("0.0.0.0", host["port"]), ("127.0.0.1", host["control"])}
    assert beyond_loopback(sockets) == {("0.0.0.0", host["port"])}
    secret = host["root"] / "server" / "superexec.secret"
    assert secret.stat().st_mode & 0o777 == 0o600 and len(secret.read_bytes()) == 32
    assert (host["root"] / "server").stat().st_mode & 0o777 == 0o700


def test_a_caller_with_only_the_ca_certificate_can_do_nothing_beyond_loopback(host):
    ca, rogue = str(host["certs"] / "ca.crt"), host["keys"] / "rogue"
    sockets = beyond_loopback(listening(host["server"].pid))
    assert sockets
    for address, port in sockets:
        dial = f"{'127.0.0.1' if address in ('0.0.0.0', '::') else address}:{port}"
        # Control API: list runs (an empty request was enough), flwr ls, flwr supernode register.
        control = ControlHttpClient.from_server_address(dial, insecure=False, root_certificates=ca, interceptors=[])
        assert _refused(control.ListRuns, ListRunsRequest()) == 404
        control.close()
        home = _outsider_home(host["root"], dial, ca)
        with pytest.raises(DataError):
            flwr_cli(home, "ls", CONNECTION)
        with pytest.raises(DataError):
            flwr_cli(home, "supernode", "register", f"{rogue}.pub", CONNECTION, "--name", "rogue")
        # Fleet API: self-registration with a key of its own, signed as a SuperNode signs.
        key = serialization.load_ssh_private_key(rogue.read_bytes(), password=None)
        fleet = FleetHttpClient.from_server_address(dial, insecure=False, root_certificates=ca,
                                                    interceptors=[NodeAuthHttpInterceptor(key, key.public_key())])
        assert _refused(fleet.RegisterNode, RegisterNodeFleetRequest(
            public_key=public_key_to_bytes(key.public_key()))) >= 400
        fleet.close()
        # Runtime API: the request that was handed the pending ServerApp task and its token.
        assert _refused(_acquire_task, dial, ca=ca) == 404
    # Nothing was registered: the operator, on loopback, still sees only the site it admitted.
    nodes = flwr_cli(operator_home(host["root"] / "server", f"127.0.0.1:{host['control']}"), "supernode", "list",
                     CONNECTION)
    admitted = read_registry(host["root"] / "server")["hospital-a"]["node_id"]
    assert [int(n["node-id"]) for n in nodes["nodes"]] == [admitted], json.dumps(nodes)


def test_the_server_runtime_api_hands_no_task_without_the_superexec_secret(host):
    assert _refused(_acquire_task, f"127.0.0.1:{host['control']}") == 401
    # The operator's own tools work there (this is where m3fed run and register-site talk).
    runs = flwr_cli(operator_home(host["root"] / "server", f"127.0.0.1:{host['control']}"), "ls", CONNECTION)
    assert runs["runs"] == []


def test_a_site_listens_on_loopback_only_and_hands_no_task_without_the_secret(host, small_mimic):
    root, runtime = host["root"], free_port()
    state = root / "site-state"
    state.mkdir(mode=0o755)
    (state / "left-by-an-older-version.json").write_text("{}")
    (state / "left-by-an-older-version.json").chmod(0o644)
    config = root / "site.yaml"
    config.write_text(yaml.safe_dump({
        "site": "hospital-a", "superlink": f"127.0.0.1:{host['port']}", "ca_certificate": str(host["certs"] / "ca.crt"),
        "private_key": str(host["keys"] / "hospital-a"), "data": str(small_mimic), "languages": ["en", "zh"],
        "modalities": ["CXR", "CT"], "approved_apps": ["ab" * 32], "state_dir": str(state),
        "runtime_port": runtime}))
    site = host["procs"].start("site", "site", "start", "--config", str(config))
    try:
        wait_port(runtime, site, seconds=180)
        assert listening(site.pid) == {("127.0.0.1", runtime)}
        assert _refused(_acquire_task, f"127.0.0.1:{runtime}") == 401
        assert state.stat().st_mode & 0o777 == 0o700
        loose = [p for p in state.rglob("*") if not p.is_symlink() and p.stat().st_mode & 0o077]
        assert not loose and (state / "superexec.secret").is_file() and (state / "flwr-home").is_dir()
    finally:
        host["procs"].stop(site)
