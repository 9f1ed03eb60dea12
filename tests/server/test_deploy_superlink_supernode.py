"""Deployment end to end, real processes on loopback: ``m3fed server start`` (Flower's SuperLink, TLS,
SuperNode authentication), three ``m3fed site start`` daemons (SuperNode + app-approval guard) and
``m3fed run``; then the same with SecAgg+ and a DP policy at every site. Every process started here
is stopped by PID (its whole process group) when the module ends, pass or fail.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from client.admin.daemon import app_hash
from client.admin.keys import site_keygen
from server.pki import init_ca, issue_server
from shared_model.app import APP_DIR
from sim.simulate import SimConfig, prepare_sites
from sim.synth import generate
from tests.server.processes import Processes, free_port, m3fed, wait_port

pytestmark = pytest.mark.end_to_end

SITES = ("site-1", "site-2", "site-3")


@pytest.fixture(scope="module")
def consortium(tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy")
    certs, keys = root / "certs", root / "keys"
    init_ca(certs, name="test consortium")
    issue_server(certs, hosts=["127.0.0.1", "localhost"])
    for name in (*SITES, "rogue", "site-x"):
        site_keygen(keys / name)
    data = root / "data"
    generate(data, patients=60, seed=7, difficulty=0.0)
    prepare_sites(SimConfig(data=str(data), out=str(root / "federation"), sites=3, languages=("en", "zh", "en"),
                            text_only_sites=1, seed=0), root / "federation")
    policy = root / "privacy.yaml"
    policy.write_text("unit: record\ntarget_epsilon: 50.0\ntarget_delta: 1.0e-5\naccountant: rdp\n"
                      "max_grad_norm: 1.0\nnoise_multiplier: 1.0\nbatch_size: 8\n"
                      "release: [num-examples, train-loss, eval-metrics]\n")
    # The bundle comes from a snapshot, so an edit to the checkout during the test cannot change its hash.
    app = root / "app"
    shutil.copytree(APP_DIR, app, ignore=shutil.ignore_patterns(".git", ".venv", "runs", "__pycache__", "*.egg-info",
                                                                ".pytest_cache", ".hypothesis", "build"))
    procs = Processes(root)
    port, control = free_port(), free_port()
    server = procs.start("superlink", "server", "start", "--state", str(root / "server"), "--certs", str(certs),
                         "--host", "127.0.0.1", "--port", str(port), "--control-port", str(control))
    env = {"root": root, "certs": certs, "keys": keys, "port": port, "procs": procs, "policy": policy,
           "approved": app_hash(app), "app": app,
           "connection": ["--superlink", f"127.0.0.1:{control}", "--state", str(root / "server")]}
    try:
        wait_port(port, server)
        wait_port(control, server)
        for name in (*SITES, "site-x"):
            out = m3fed("server", "register-site", name, str(keys / f"{name}.pub"), *env["connection"])
            assert out.returncode == 0, out.stderr
        yield env
    finally:
        alive = procs.stop_all()
        assert not alive, f"process groups still alive: {alive}"


def _site_yaml(env, name: str, *, key: str | None = None, data_site: str | None = None, dp: bool = False,
               approved: str | None = None) -> Path:
    root = env["root"]
    folder = root / "federation" / "sites" / (data_site or name)
    spec = {"site": name, "superlink": f"127.0.0.1:{env['port']}", "ca_certificate": str(env["certs"] / "ca.crt"),
            "private_key": str(env["keys"] / (key or name)), "data": str(folder / "manifest.jsonl"),
            "languages": ["zh" if (data_site or name) == "site-2" else "en"], "modalities": ["CXR", "CT"],
            "approved_apps": [approved or env["approved"]], "state_dir": str(root / "site-state" / name / str(dp)),
            "runtime_port": free_port()}
    if dp:
        spec["privacy_policy"] = str(env["policy"])
    path = root / f"{name}-{dp}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_superlink_without_tls_is_refused_unless_insecure(tmp_path):
    refused = m3fed("server", "start", "--state", str(tmp_path / "s"), "--port", str(free_port()), timeout=60)
    assert refused.returncode == 2 and "no TLS certificates" in refused.stderr and "--insecure" in refused.stderr
    assert "Traceback" not in refused.stderr
    procs, port = Processes(tmp_path), free_port()
    try:
        wait_port(port, procs.start("insecure", "server", "start", "--state", str(tmp_path / "s"), "--insecure",
                                    "--host", "127.0.0.1", "--port", str(port), "--control-port", str(free_port())))
        assert "INSECURE" in procs.log("insecure")
    finally:
        assert not procs.stop_all()


def test_unregistered_supernode_is_refused(consortium):
    env = consortium
    rogue = env["procs"].start("rogue", "site", "start", "--config", str(_site_yaml(env, "rogue", data_site="site-1")))
    assert rogue.wait(timeout=180) == 2
    assert "refused this site's key" in env["procs"].log("rogue")


def _results(env, run: str, *extra: str) -> dict:
    out = env["root"] / run
    done = m3fed("run", *env["connection"], "--app", str(env["app"]), "--out", str(out), "--rounds", "2",
                  "--schedule", "alternate", "--local-epochs", "1",
                  "--run-config", "batch-size=16", "--run-config", "round-timeout=600",
                  "--run-config", "client-eval-every=2", *extra, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


def _federation(env, tag: str, *run_args: str, dp: bool) -> dict:
    """Three approved sites and one (site-x) that has not approved this bundle, for one 2-round run."""
    procs = env["procs"]
    daemons = [procs.start(f"{name}-{tag}", "site", "start", "--config", str(_site_yaml(env, name, dp=dp)))
               for name in SITES]
    daemons.append(procs.start(f"site-x-{tag}", "site", "start", "--config",
                               str(_site_yaml(env, "site-x", data_site="site-1", approved="0" * 64, dp=dp))))
    try:
        doc = _results(env, f"run-{tag}", "--min-sites", "4", *run_args)
    finally:
        procs.stop(*daemons)
    assert doc["schema"] == "m3fed.results/1" and doc["mode"] == "federated"
    assert [r["round"] for r in doc["rounds"]] == [1, 2]
    assert [r["objective"] for r in doc["rounds"]] == ["contrastive", "report-generation"]
    first, second = doc["rounds"][0]["sites"], doc["rounds"][1]["sites"]
    assert set(first) == {*SITES, "site-x"}
    assert first["site-1"]["status"] == "ok" and first["site-1"]["examples"] > 0
    assert first["site-3"]["examples"] == 0  # text-only: no contrastive data
    assert all(second[name]["status"] == "ok" for name in SITES)
    # The unapproved bundle never ran at site-x: refused by its guard, reported, the round went on.
    assert "not approved by this site" in first["site-x"]["status"]
    refusals = (env["root"] / "site-state" / "site-x" / str(dp) / "refused-apps.jsonl").read_text().splitlines()
    assert refusals and json.loads(refusals[0])["fab_hash"] == env["approved"]
    # The sites evaluated the global model on their own test patients; the server holds no data.
    assert doc["final"]["auc_macro"] is not None and doc["final"]["bleu"]
    assert doc["rounds"][-1]["site_eval"]["site-1"]["status"] == "ok"
    assert (env["root"] / f"run-{tag}" / "model.safetensors").is_file()
    # Every round the sites were asked to score their validate patients; these sites are partitions of a
    # simulation, which keeps the validate split at the server: none holds any, so no round has a score
    # and the last round stands (tests/docs/test_deployment_docs.py runs sites that hold some).
    assert all(r["site_eval"]["site-1"]["validate"]["images"] == 0 for r in doc["rounds"])
    assert doc["selected"]["round"] == 2 and doc["selected"]["value"] is None
    # Each message ran in a new process; the site decoded its images once and kept them at home.
    # `site start` filled its decoded-image store; the messages' processes mapped it and added nothing.
    decoded = env["root"] / "site-state" / "site-1" / str(dp) / "decoded"
    manifest = env["root"] / "federation" / "sites" / "site-1" / "manifest.jsonl"
    images = {json.loads(line)["image"] for line in manifest.read_text().splitlines()} - {""}
    (index,) = decoded.glob("images-*.json")
    assert json.loads(index.read_text())["rows"] == len(images) > 0  # each of its images decoded once
    # Decoded images and reports, ledger, Flower's home at the sites; results and checkpoints at the
    # server: the owner's alone.
    for folder in (*(env["root"] / "site-state" / n / str(dp) for n in (*SITES, "site-x")), env["root"] / "server"):
        assert folder.stat().st_mode & 0o777 == 0o700
        assert not [p for p in folder.rglob("*") if not p.is_symlink() and p.stat().st_mode & 0o077]
    assert not [p for p in (env["root"] / f"run-{tag}").rglob("*") if p.stat().st_mode & 0o077]
    # Each site keeps the final model (the server's file, byte for byte), its sha256 and the model card in
    # its own state dir; site-x never ran the bundle and is recorded as such.
    run_dir = env["root"] / f"run-{tag}"
    digest = hashlib.sha256((run_dir / "model.safetensors").read_bytes()).hexdigest()
    for name in SITES:
        kept = env["root"] / "site-state" / name / str(dp) / "model"
        assert hashlib.sha256((kept / "model.safetensors").read_bytes()).hexdigest() == digest
        assert (kept / "model.sha256").read_text().split()[0] == digest
        assert (kept / "MODEL_CARD.md").read_text() == (run_dir / "MODEL_CARD.md").read_text()
        assert doc["final_model"]["sites"][name] == {"model": "kept", "card": "kept"}
    assert doc["final_model"]["sha256"] == digest and doc["final_model"]["sites"]["site-x"]["model"].startswith("error")
    card = json.loads((run_dir / "model_card.json").read_text())
    assert card["model"]["use_sha256"] == digest and set(card["privacy"]["sites"]) == {*SITES, "site-x"}
    return doc


def test_three_sites_two_rounds_with_secagg_and_dp_at_every_site(consortium):
    """Both objectives, SecAgg+ on every update, DP-SGD and a ledger at every site, one site refusing the bundle."""
    doc = _federation(consortium, "secagg-dp", "--secagg", "--secagg-max-weight", "1000", dp=True)
    for r in doc["rounds"]:
        assert r["secagg"]["completed"] and r["secagg"]["sites_aggregated"] >= 2
        trained = {n: s for n, s in r["sites"].items() if s["examples"]}
        assert trained and all(s["status"] == "ok" and 0 < s["epsilon"] <= 50 for s in trained.values())
    for name in SITES:  # each site's ledger, at the site, written before its updates left
        ledger = consortium["root"] / "site-state" / name / "True" / "ledger.jsonl"
        assert m3fed("privacy", "verify", "--ledger", str(ledger)).returncode == 0
    # Every site's privacy line in the card has its ε and δ, the text-only site-3's too (never asked to
    # evaluate: its statement came back with the final model)
    card = json.loads((consortium["root"] / "run-secagg-dp" / "model_card.json").read_text())
    for name in SITES:
        line = card["privacy"]["sites"][name]
        assert line["dp"] and line["delta"] == 1e-5 and 0 < line["epsilon"] <= 50, (name, line)
    assert card["privacy"]["secagg"] is True


@pytest.mark.slow  # the same federation without SecAgg+ and DP (~3 min more)
def test_three_sites_two_rounds_plain(consortium):
    doc = _federation(consortium, "plain", dp=False)
    assert all(r["sites"]["site-1"]["epsilon"] is None for r in doc["rounds"])
    card = json.loads((consortium["root"] / "run-plain" / "model_card.json").read_text())
    assert [card["privacy"]["sites"][name]["line"] for name in SITES] == ["no DP"] * 3
