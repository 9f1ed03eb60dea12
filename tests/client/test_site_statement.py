"""A site under a privacy policy sends its privacy statement with its evaluation reply
(client_app.statement_record): what the operator's results show as the site's statement."""
from __future__ import annotations

import json
from types import SimpleNamespace

from client.app.client_app import PRIVACY_STATEMENT, statement_record
from client.app.site_privacy import SitePrivacy
from privacy.ledger import Ledger
from privacy.policy import PrivacyPolicy
from privacy.statement import privacy_statement

POLICY = PrivacyPolicy(unit="record", target_epsilon=8.0, target_delta=1e-5, max_grad_norm=1.0, noise_multiplier=1.0,
                       batch_size=4, accountant="rdp")


def _context(tmp_path) -> SimpleNamespace:
    return SimpleNamespace(node_id=1, node_config={"site-name": "hospital-a", "data-path": str(tmp_path / "data"),
                                                   "privacy-policy": str(tmp_path / "privacy.yaml"),
                                                   "privacy-ledger": str(tmp_path / "ledger.jsonl")})


def test_the_statement_round_trips_and_is_the_ledgers(tmp_path):
    # Prepare: a ledger with one charged round
    path = tmp_path / "ledger.jsonl"
    privacy = SitePrivacy(POLICY, Ledger.open(path, dataset_fingerprint="d", policy=POLICY, site="hospital-a"),
                          "hospital-a")
    privacy.record(privacy.plan(40, epochs=1), run_id="run", round=1)
    # Execute
    record = statement_record(_context(tmp_path))
    # Assert: one entry, JSON, exactly privacy_statement's, verified, and small
    assert list(record) == [PRIVACY_STATEMENT] and list(record[PRIVACY_STATEMENT]) == ["json"]
    text = record[PRIVACY_STATEMENT]["json"]
    statement = json.loads(text)
    expected = {"ledger": str(path), "verified": True, "problems": [], **privacy_statement(Ledger(path))}
    assert statement == json.loads(json.dumps(expected))
    assert statement["epsilon"] == privacy.ledger.epsilon() > 0 and statement["composition"]["rounds"] == 1
    assert statement["site"] == "hospital-a" and len(text.encode()) < 20_000


def test_a_ledger_that_fails_verification_is_said_not_stated(tmp_path):
    path = tmp_path / "ledger.jsonl"
    privacy = SitePrivacy(POLICY, Ledger.open(path, dataset_fingerprint="d", policy=POLICY, site="hospital-a"),
                          "hospital-a")
    privacy.record(privacy.plan(40, epochs=1), run_id="run", round=1)
    path.write_text(path.read_text().replace('"round":1,', '"round":2,'))  # edited after it was written
    statement = json.loads(statement_record(_context(tmp_path))[PRIVACY_STATEMENT]["json"])
    assert statement["verified"] is False and statement["problems"] and "epsilon" not in statement
    path.unlink()
    missing = json.loads(statement_record(_context(tmp_path))[PRIVACY_STATEMENT]["json"])
    assert missing["verified"] is False and "cannot read ledger" in missing["problems"][0]


def test_a_site_without_a_policy_sends_no_statement(tmp_path):
    (tmp_path / "site").mkdir()
    context = SimpleNamespace(node_id=1, node_config={"data-path": str(tmp_path / "site" / "manifest.jsonl")})
    assert statement_record(context) == {}
