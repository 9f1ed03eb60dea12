"""privacy.ledger: replayed ε, refusal of foreign ledgers, write-ahead recording, tamper detection."""
from __future__ import annotations

import json

import pytest

from privacy.accounting import PrivacyBudgetExhausted, epsilon
from privacy.ledger import Ledger, LedgerError, dataset_fingerprint, verify_ledger
from privacy.policy import PolicyError, PrivacyPolicy

POLICY = PrivacyPolicy(unit="patient", target_epsilon=3.0, target_delta=1e-5, max_grad_norm=1.0,
                       noise_multiplier=1.0)
FINGERPRINT = dataset_fingerprint([("p1", b"image"), ("p2", "report")])
# Three rounds; σ is raised mid-run (a re-plan), so the history has two segments.
ROUNDS = [(1.0, 0.01, 100), (1.0, 0.01, 100), (1.5, 0.01, 100)]


def open_ledger(path, **overrides):
    kwargs = {"dataset_fingerprint": FINGERPRINT, "policy": POLICY, "site": "hospital-a", **overrides}
    return Ledger.open(path, **kwargs)


@pytest.fixture
def recorded(tmp_path):
    ledger = open_ledger(tmp_path / "ledger.jsonl")
    for r, (sigma, q, steps) in enumerate(ROUNDS, 1):
        ledger.record(run_id="run-1", round=r, n_units=10_000, sample_rate=q, noise_multiplier=sigma, steps=steps)
    return ledger


def test_record_then_replay(recorded):
    # Execute
    reopened = open_ledger(recorded.path)  # a restarted site process: nothing carried over in memory
    expected = epsilon([(1.0, 0.01, 200), (1.5, 0.01, 100)], delta=1e-5, accountant="prv")
    # Assert
    assert reopened.segments() == [(1.0, 0.01, 200), (1.5, 0.01, 100)]
    assert reopened.epsilon() == expected
    entries = reopened.entries()
    assert [e["seq"] for e in entries] == [1, 2, 3] and entries[-1]["epsilon_after"] == expected
    assert entries[0]["epsilon_after"] < entries[1]["epsilon_after"] < expected
    assert all(isinstance(e["steps"], int) and e["accountant_version"].startswith("opacus") for e in entries)
    assert verify_ledger(recorded.path) == []


def test_entry_is_fsynced_before_record_returns(tmp_path, monkeypatch):
    ledger = open_ledger(tmp_path / "ledger.jsonl")
    synced = []
    monkeypatch.setattr("privacy.ledger.os.fsync", lambda fd: synced.append(fd))
    ledger.record(run_id="r", round=1, n_units=10_000, sample_rate=0.01, noise_multiplier=1.0, steps=10)
    assert synced and len(Ledger(ledger.path).entries()) == 1


def test_reopen_with_another_policy_or_site_is_refused(recorded):
    other = PrivacyPolicy(**{**POLICY.to_dict(), "target_epsilon": 8.0, "release": ("num-examples",)})
    with pytest.raises(LedgerError, match="target_epsilon: ledger 3.0, given 8.0"):
        open_ledger(recorded.path, policy=other)
    with pytest.raises(LedgerError, match="site 'hospital-a'"):
        open_ledger(recorded.path, site="hospital-b")


def test_reopen_with_other_training_layers_or_from_an_older_header_is_accepted(tmp_path, monkeypatch):
    # Prepare: which layers train is not part of the guarantee, and ledgers started before those
    # keys existed have no such keys in their header (written here as such a version wrote it).
    full = PrivacyPolicy.to_dict
    with monkeypatch.context() as m:
        m.setattr(PrivacyPolicy, "to_dict", lambda self: {k: v for k, v in full(self).items()
                                                          if k not in ("contrastive_layers", "report_layers")})
        old = open_ledger(tmp_path / "ledger.jsonl")
        old.record(run_id="r", round=1, n_units=10_000, sample_rate=0.01, noise_multiplier=1.0, steps=10)
    assert "contrastive_layers" not in json.loads(old.path.read_text().splitlines()[0])["policy"]
    switched = PrivacyPolicy(**{**POLICY.to_dict(), "contrastive_layers": "all", "report_layers": "all"})
    # Execute
    for r, policy in enumerate((POLICY, switched), 1):
        open_ledger(old.path, policy=policy).record(run_id="r2", round=r, n_units=10_000, sample_rate=0.01,
                                                    noise_multiplier=1.0, steps=10)
    # Assert
    assert open_ledger(old.path).segments() == [(1.0, 0.01, 30)] and verify_ledger(old.path) == []


def test_record_refuses_and_writes_nothing_past_the_budget(recorded):
    before = recorded.path.read_bytes()
    assert recorded.would_exceed(noise_multiplier=1.0, sample_rate=0.1, steps=100)
    assert not recorded.would_exceed(noise_multiplier=1.0, sample_rate=0.01, steps=100)
    with pytest.raises(PrivacyBudgetExhausted, match="target ε = 3"):
        recorded.record(run_id="run-2", round=1, n_units=10_000, sample_rate=0.1, noise_multiplier=1.0, steps=100)
    with pytest.raises(PolicyError, match="1/10"):
        recorded.record(run_id="run-2", round=1, n_units=1_000_000, sample_rate=0.01, noise_multiplier=1.0, steps=1)
    with pytest.raises(LedgerError, match="never epochs/q"):
        recorded.record(run_id="run-2", round=1, n_units=10_000, sample_rate=0.01, noise_multiplier=1.0,
                        steps=2.5)
    assert recorded.path.read_bytes() == before


def edit(path, line_no, change):
    lines = path.read_text().splitlines()
    lines[line_no] = change(lines[line_no])
    path.write_text("\n".join(lines) + "\n")


def test_verify_detects_an_edited_number(recorded):
    # Execute: someone raises a recorded σ to make past spend look smaller
    edit(recorded.path, 1, lambda line: line.replace('"noise_multiplier":1.0', '"noise_multiplier":1.2'))
    problems = verify_ledger(recorded.path)
    # Assert
    assert any("line 2" in p and "hash does not match" in p for p in problems)
    assert any("line 2" in p and "replaying" in p for p in problems)
    with pytest.raises(LedgerError, match="damaged"):
        open_ledger(recorded.path)


def test_verify_detects_swapped_lines(recorded):
    lines = recorded.path.read_text().splitlines()
    lines[1], lines[2] = lines[2], lines[1]
    recorded.path.write_text("\n".join(lines) + "\n")
    problems = verify_ledger(recorded.path)
    assert any("seq out of order" in p for p in problems)
    assert any("prev_hash" in p for p in problems)


def test_verify_detects_non_integer_steps_even_with_a_recomputed_hash(recorded):
    # Prepare: a careful forger also recomputes the entry's own hash; the next line's prev_hash still breaks.
    from privacy.ledger import line_hash

    def forge(line):
        entry = json.loads(line)
        entry["steps"] = 100.5
        entry["hash"] = line_hash(entry)
        return json.dumps(entry)

    edit(recorded.path, 2, forge)
    problems = verify_ledger(recorded.path)
    assert any("steps must be" in p for p in problems)
    assert any("line 4" in p and "prev_hash" in p for p in problems)


def test_not_a_ledger_and_missing_files_raise(tmp_path):
    (tmp_path / "x.jsonl").write_text('{"hello": 1}\n')
    with pytest.raises(LedgerError, match="not an m3fed ledger"):
        verify_ledger(tmp_path / "x.jsonl")
    with pytest.raises(LedgerError, match="cannot read"):
        Ledger(tmp_path / "absent.jsonl")


def test_dataset_fingerprint_ignores_order_and_sees_any_change():
    a = dataset_fingerprint([("p1", b"x"), ("p2", b"y")])
    assert a == dataset_fingerprint([("p2", b"y"), ("p1", b"x")])
    assert a != dataset_fingerprint([("p1", b"x"), ("p2", b"z")])
    assert a != dataset_fingerprint([("p1", b"x")])
    with pytest.raises(LedgerError, match="duplicate"):
        dataset_fingerprint([("p1", b"x"), ("p1", b"y")])
