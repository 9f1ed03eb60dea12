"""``m3fed run`` records what it submitted; ``--resume RUNDIR`` submits exactly that again, resume = true."""
from __future__ import annotations

import json

import pytest

from client.errors import DataError
from server import remote


@pytest.fixture
def submitted(tmp_path, monkeypatch):
    calls = []

    def submit(*, state, superlink, config, app, timeout):
        calls.append(dict(config))
        return {"run-id": 7, "status": "finished:completed"}

    hashes = {"now": "aa" * 32}
    monkeypatch.setattr(remote, "_submit", submit)
    monkeypatch.setattr("client.admin.daemon.app_hash", lambda app: hashes["now"])
    monkeypatch.setattr(remote, "flwr_cli", lambda *a, **k: {"success": True})
    state, app, out = tmp_path / "state", tmp_path / "app", tmp_path / "run"
    state.mkdir()
    remote.submit_run(state=state, superlink="127.0.0.1:9093", out=out, app=app,
                      run_config={"num-server-rounds": 3, "schedule": "alternate", "secagg": True})
    return {"calls": calls, "hashes": hashes, "state": state, "out": out}


def test_resume_submits_the_recorded_run_config_again_with_resume(submitted):
    out, state = submitted["out"], submitted["state"]
    first = submitted["calls"][0]
    assert first["run-dir"] == str(out.resolve()) and first["secagg"] is True and first["resume"] is False
    out.mkdir()
    (out / "state.json").write_text(json.dumps({"round": 1}))
    remote.resume_run(state=state, superlink="127.0.0.1:9093", run_dir=out, overrides={})
    assert submitted["calls"][1] == {**first, "resume": True}
    remote.resume_run(state=state, superlink="127.0.0.1:9093", run_dir=out, overrides={"num-server-rounds": 5})
    assert submitted["calls"][2]["num-server-rounds"] == 5 and submitted["calls"][2]["resume"] is True


def test_resume_refuses_what_it_cannot_continue(submitted, tmp_path):
    out, state = submitted["out"], submitted["state"]
    with pytest.raises(DataError, match="no run was submitted"):
        remote.resume_run(state=state, superlink="x:1", run_dir=tmp_path / "elsewhere", overrides={})
    out.mkdir()
    with pytest.raises(DataError, match="state.json is missing"):
        remote.resume_run(state=state, superlink="x:1", run_dir=out, overrides={})
    (out / "state.json").write_text(json.dumps({"round": 1}))
    submitted["hashes"]["now"] = "bb" * 32  # the app folder changed since: the sites approved the old bundle
    with pytest.raises(DataError, match="app bundle has changed"):
        remote.resume_run(state=state, superlink="x:1", run_dir=out, overrides={})
    assert len(submitted["calls"]) == 1


def test_run_checks_the_model_files_and_submits_the_tokenizer_identity(submitted, tmp_path, capsys):
    from shared_model.text_model import tokenizer_sha256
    from sim.m3fed_command import main
    from tests.shared_model.text_models import save_small_bert

    bert = save_small_bert(tmp_path / "bert")
    common = ["run", "--state", str(submitted["state"]), "--app", str(tmp_path / "app")]
    assert main([*common, "--out", str(tmp_path / "r1"), "--text-model", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err and len(submitted["calls"]) == 1  # nothing submitted
    assert main([*common, "--out", str(tmp_path / "r2"), "--text-model", str(bert), "--adapter", "lora:4",
                 "--update-dtype", "int8"]) == 0
    config = submitted["calls"][-1]
    assert config["text-model"] == str(bert) and config["tokenizer-sha256"] == tokenizer_sha256(bert)
    assert (config["adapter"], config["update-dtype"]) == ("lora:4", "int8")
