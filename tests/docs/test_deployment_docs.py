"""The deployment guides, run as written: every command block of ``docs/consortium-operator.md`` and
``docs/hospital-admin.md``, in order, on loopback, for an operator and two hospitals (one with the
guide's privacy policy, one without), to a finished 2-round run whose results, fetched to the
operator's side, carry an AUC, each site's evaluation and the DP site's privacy statement.

Only the settings blocks change (every folder under a temporary one, free ports, 2 rounds, one-machine
names, as each guide's "trying it on one machine" says), and what the guides say to carry between
machines is copied here (a site's ``.pub`` to the operator, ``ca.crt`` to the sites). Every process
started is stopped by PID when the test ends, pass or fail.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.docs.blocks import code_blocks, with_settings
from tests.server.processes import Processes, free_port, wait_port

pytestmark = pytest.mark.end_to_end

ROOT = Path(__file__).resolve().parents[2]
OPERATOR, ADMIN = ROOT / "docs" / "consortium-operator.md", ROOT / "docs" / "hospital-admin.md"
NOT_RUN = {"operator:install", "operator:service", "site:install", "site:service"}  # root, or another machine
DAEMONS = {"operator:start", "site:start"}
SITES = {"hospital-a": {"LANGUAGES": "en", "MODALITIES": "CXR, CT", "dp": True},
         "hospital-b": {"LANGUAGES": "zh", "MODALITIES": "CXR", "dp": False}}
SCHEDULE = {"SCHEDULE": "alternate", "LOCAL_EPOCHS": "1"}  # 2 rounds: one of each objective
RUN = ("operator:ca", "operator:request", "operator:sign", "operator:start",
       "site:trial-data", "site:data", "site:keygen", "operator:register", "operator:announce",
       "site:approve", "site:policy", "site:config", "site:check", "site:start", "operator:run", "operator:results")


def test_every_block_is_named_and_run_or_said_not_to_be():
    blocks = {**code_blocks(OPERATOR), **code_blocks(ADMIN)}
    assert set(blocks) == set(RUN) | NOT_RUN | {"operator:settings", "site:settings"}


def test_readme_policy_is_the_guides_policy():
    """The README's example policy is the one the guide runs (it trains and evaluates at 120 patients)."""
    guide = code_blocks(ADMIN)["site:policy"].split("<<'EOF'\n", 1)[1].split("\nEOF", 1)[0]
    readme = re.search(r"```yaml\n(unit: record.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    assert readme and yaml.safe_load(readme.group(1)) == yaml.safe_load(guide)


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory):
    root = tmp_path_factory.mktemp("docs")
    release = root / "release"  # the reviewed release: a snapshot, so an edit during the test cannot change its hash
    shutil.copytree(ROOT, release, ignore=shutil.ignore_patterns(".git", ".venv", "runs", "__pycache__", "*.egg-info",
                                                                 ".pytest_cache", ".hypothesis", "build"))
    fleet, control = free_port(), free_port()
    operator = {"SERVER_NAME": "localhost", "SERVER_IP": "127.0.0.1", "FLEET_PORT": str(fleet),
                "CONTROL_PORT": str(control), "RELEASE": str(release), "CA_DIR": str(root / "ca"),
                "CERTS": str(root / "server-certs"), "SERVER_STATE": str(root / "server"),
                "SITE_KEYS": str(root / "site-keys"), "ROUNDS": "2", **SCHEDULE, "RUN_DIR": str(root / "runs" / "first"),
                "RESULTS": str(root / "operator" / "results")}
    sites = {name: {"SITE": name, "SUPERLINK": f"localhost:{fleet}", "ROUNDS": "2", **SCHEDULE, "RELEASE": str(release),
                    "ETC": str(root / name / "etc"), "STATE": str(root / name / "state"),
                    "DATA": str(root / name / "data"), "LANGUAGES": spec["LANGUAGES"],
                    "MODALITIES": spec["MODALITIES"], "RUNTIME_PORT": str(free_port())}
             for name, spec in SITES.items()}
    procs = Processes(root)
    guide = Guide(root, procs, operator_settings=with_settings(code_blocks(OPERATOR)["operator:settings"], operator),
                  site_settings={n: with_settings(code_blocks(ADMIN)["site:settings"], s) for n, s in sites.items()})
    try:
        guide.walk(operator, sites, fleet=fleet, control=control)
        yield {"root": root, "operator": operator, "sites": sites, "outputs": guide.outputs}
    finally:
        alive = procs.stop_all()
        assert not alive, f"process groups still alive: {alive}"


class Guide:
    """Runs the guides' blocks as their reader would, each in bash with its guide's settings."""

    def __init__(self, root: Path, procs: Processes, *, operator_settings: str, site_settings: dict) -> None:
        self.root, self.procs = root, procs
        self.settings = {"operator": operator_settings, **site_settings}
        self.blocks = {**code_blocks(OPERATOR), **code_blocks(ADMIN)}
        self.outputs: dict[str, str] = {}
        self.env = {**os.environ, "HOME": str(root / "home"), "HF_HUB_OFFLINE": "1", "FLWR_TELEMETRY_ENABLED": "0",
                    "FLWR_DISABLE_UPDATE_CHECK": "1",
                    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        (root / "home").mkdir()

    def script(self, name: str, who: str) -> str:
        return f"set -euo pipefail\n{self.settings[who]}\n{self.blocks[name]}\n"

    def run(self, name: str, who: str = "operator", timeout: float = 900) -> str:
        proc = subprocess.run(["bash", "-c", self.script(name, who)], env=self.env, cwd=self.root, text=True,
                              capture_output=True, timeout=timeout)
        out = proc.stdout + proc.stderr
        self.outputs[f"{name}@{who}"] = out
        assert proc.returncode == 0, f"{name} ({who}) exited {proc.returncode}:\n{out[-4000:]}"
        return out

    def daemon(self, name: str, who: str = "operator") -> subprocess.Popen:
        log = open(self.root / f"{name.replace(':', '-')}-{who}.log", "w", encoding="utf-8")
        proc = subprocess.Popen(["bash", "-c", self.script(name, who).replace("\nm3fed ", "\nexec m3fed ")],
                                env=self.env, cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.started.append(proc)
        return proc

    def walk(self, operator: dict, sites: dict, *, fleet: int, control: int) -> None:
        self.run("operator:ca")
        self.run("operator:request")
        self.run("operator:sign")
        server = self.daemon("operator:start")
        wait_port(fleet, server, 120)
        wait_port(control, server, 120)
        Path(operator["SITE_KEYS"]).mkdir(parents=True)
        for name, s in sites.items():
            self.run("site:trial-data", name)
            self.run("site:data", name)
            self.run("site:keygen", name)
            shutil.copy(Path(s["ETC"]) / "keys" / f"{name}.pub", operator["SITE_KEYS"])  # sent to the operator
        self.run("operator:register")
        self.run("operator:announce")
        for name, s in sites.items():
            shutil.copy(Path(operator["CERTS"]) / "ca.crt", Path(s["ETC"]) / "ca.crt")  # sent to the sites
            self.run("site:approve", name)
            if SITES[name]["dp"]:
                self.run("site:policy", name)
            self.run("site:config", name)
            self.run("site:check", name)
            self.daemon("site:start", name)
        self.run("operator:run", timeout=1800)
        self.run("operator:results")


def test_the_guides_give_a_finished_run_with_results_at_the_operator(walkthrough):
    results_dir = Path(walkthrough["operator"]["RESULTS"])
    results = json.loads((results_dir / "results.json").read_text(encoding="utf-8"))
    assert [r["round"] for r in results["rounds"]] == [1, 2] and "stopped" not in results
    for r in results["rounds"]:
        assert {s["status"] for s in r["sites"].values()} <= {"ok", "no data for this objective"}, r["sites"]
        assert set(r["site_eval"]) == set(SITES) and all(e["status"] == "ok" for e in r["site_eval"].values())
    assert 0 < results["final"]["auc_macro"] < 1
    # Each site scored every round on its own validate patients; the server kept the best round.
    assert all(e["validate"]["images"] > 0 for r in results["rounds"] for e in r["site_eval"].values())
    assert results["selected"]["round"] in (1, 2) and 0 < results["selected"]["value"] < 1
    assert (results_dir / "model-last.safetensors").stat().st_size > 0
    assert set(results["privacy"]) == {"hospital-a"}  # the DP site's statement; the other has no policy
    statement = results["privacy"]["hospital-a"]
    assert statement["site"] == "hospital-a" and 0 < statement["epsilon"] <= statement["target_epsilon"]
    for name in ("report.md", "metric_per_round.png", "site_contribution.png", "model.safetensors", "run.log"):
        assert (results_dir / name).stat().st_size > 0, name
    assert "m3fed round 2" in (results_dir / "run.log").read_text(encoding="utf-8")
    assert "macro AUC" in walkthrough["outputs"]["operator:results@operator"]


def test_the_approved_hash_is_the_one_the_guide_computes(walkthrough):
    announced = walkthrough["outputs"]["operator:announce@operator"].split()[0]
    assert re.fullmatch(r"[0-9a-f]{64}", announced)
    for name, s in walkthrough["sites"].items():
        assert announced in (Path(s["ETC"]) / "site.yaml").read_text(encoding="utf-8")


def test_a_site_contributes_only_what_it_selects(walkthrough):
    results = json.loads((Path(walkthrough["operator"]["RESULTS"]) / "results.json").read_text(encoding="utf-8"))
    declared = results["declarations"]
    assert declared["hospital-a"]["languages"] == ["en"] and declared["hospital-b"]["languages"] == ["zh"]
    assert declared["hospital-b"]["modalities"] == ["CXR"]
    assert "not contributed" in walkthrough["outputs"]["site:check@hospital-a"]
