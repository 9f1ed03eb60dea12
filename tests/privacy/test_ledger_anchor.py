"""privacy.ledger_head: a ledger cut short, deleted or replaced is caught by its signed head or the
server's receipt; a data change keeps the spend; a (run, round) is charged once."""
from __future__ import annotations

import argparse
import json
import stat

import pytest

from privacy.accounting import RoundRefused
from privacy.cli import add_privacy_commands
from privacy.ledger import Ledger, LedgerError, canonical, dataset_fingerprint, line_hash, verify_ledger
from privacy.ledger_head import head_path, key_path, signature_ok
from privacy.policy import PrivacyPolicy

POLICY = PrivacyPolicy(unit="record", target_epsilon=20.0, target_delta=1e-5, max_grad_norm=1.0,
                       noise_multiplier=1.0)
DATA = dataset_fingerprint([("p1", b"image"), ("p2", "report")])


def open_ledger(path, **overrides):
    return Ledger.open(path, **{"dataset_fingerprint": DATA, "policy": POLICY, "site": "hospital-a", **overrides})


def record(ledger, rounds, run_id="run-1"):
    for r in rounds:
        ledger.record(run_id=run_id, round=r, n_units=10_000, sample_rate=0.01, noise_multiplier=1.0, steps=50)


def cut(path, n: int) -> None:
    """Remove the last ``n`` lines, as someone refunding budget would."""
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-n]) + "\n")


def m3fed(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="m3fed")
    add_privacy_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def four(tmp_path):
    ledger = open_ledger(tmp_path / "ledger.jsonl")
    record(ledger, (1, 2, 3, 4))
    return ledger


def test_a_cut_tail_fails_verify_with_a_truncated_line(four, capsys):
    # Prepare
    assert m3fed(["privacy", "verify", "--ledger", str(four.path)]) == 0
    capsys.readouterr()
    # Execute: the hole-1 attack: drop the last two rounds, the chain of the rest still holds
    cut(four.path, 2)
    rc = m3fed(["privacy", "verify", "--ledger", str(four.path)])
    # Assert
    out = capsys.readouterr().out
    assert rc == 1
    assert "truncated: the ledger has 2 entries but its signed head" in out and "2 entries missing" in out
    assert "checked:" in out and "signed head" in out


def test_the_site_refuses_a_cut_ledger_naming_it(four):
    cut(four.path, 1)
    with pytest.raises(LedgerError, match="truncated") as info:
        open_ledger(four.path)
    assert str(four.path) in str(info.value) and "1 entry missing" in str(info.value)


def test_a_deleted_ledger_whose_head_is_left_is_not_a_fresh_budget(four):
    four.path.unlink()
    with pytest.raises(LedgerError, match="missing, but its signed head") as info:
        open_ledger(four.path)
    assert str(four.path) in str(info.value)
    assert not four.path.exists()


def test_a_head_the_site_did_not_sign_is_refused(four):
    head = json.loads(head_path(four.path).read_text())
    head["seq"] = 2  # a shorter head, written by hand to match a cut ledger
    head_path(four.path).write_text(json.dumps(head))
    cut(four.path, 2)
    with pytest.raises(LedgerError, match="signature invalid"):
        open_ledger(four.path)
    assert any("signature invalid" in p for p in verify_ledger(four.path))


def resigned_cut(ledger: Ledger, n: int) -> None:
    """The strongest local attack: cut the ledger and sign a matching head with the site's own key."""
    cut(ledger.path, n)
    head_path(ledger.path).unlink()
    shorter = Ledger(ledger.path)
    shorter._key = ledger._key
    shorter._sign(shorter.lines())


def test_a_ledger_shorter_than_the_servers_receipt_is_refused(four):
    # Prepare: the receipt the server kept after round 4, then a cut the site's own head cannot see
    receipt = four.head()
    resigned_cut(four, 2)
    reopened = open_ledger(four.path)  # consistent with its (re-signed) head
    # Execute / Assert
    with pytest.raises(LedgerError, match="truncated: the ledger has 2 entries but the server's receipt") as info:
        reopened.check_receipt(receipt)
    assert str(four.path) in str(info.value)


def test_a_replaced_ledger_is_refused_against_the_receipt(four):
    # Prepare: ledger, head and key all deleted; the site starts over with a new key at ε = 0
    receipt = four.head()
    for path in (four.path, head_path(four.path), key_path(four.path)):
        path.unlink()
    fresh = open_ledger(four.path)
    assert fresh.epsilon() == 0.0
    # Execute / Assert
    with pytest.raises(LedgerError, match="replaced"):
        fresh.check_receipt(receipt)


def test_a_forged_receipt_is_ignored(four):
    # Prepare: a server claims the ledger is longer than it is, without the site's key
    forged = {**four.head(), "seq": 9}
    assert not signature_ok(forged)
    # Execute / Assert: ignored (said why), not a refusal
    assert "signature does not verify" in four.check_receipt(forged)
    assert four.check_receipt(four.head()) is None


def test_a_data_change_is_an_entry_and_the_spend_carries_over(four, capsys):
    # Prepare
    spent, segments = four.epsilon(), four.segments()
    changed = dataset_fingerprint([("p1", b"image"), ("p2", "report"), ("p3", "a new patient")])
    # Execute
    reopened = open_ledger(four.path, dataset_fingerprint=changed)
    record(reopened, (5,))
    # Assert: one hash-chained dataset entry, ε composes over every round before it
    lines = reopened.lines()
    assert [e.get("kind") for e in lines[1:]] == [None] * 4 + ["dataset", None]
    assert lines[5]["dataset_fingerprint"] == changed and lines[5]["previous_fingerprint"] == DATA
    assert reopened.segments() == [(segments[0][0], segments[0][1], segments[0][2] + 50)]
    assert reopened.epsilon() > spent and len(reopened.entries()) == 5
    assert reopened.head()["dataset_fingerprint"] == changed
    assert verify_ledger(four.path) == []
    assert m3fed(["privacy", "verify", "--ledger", str(four.path)]) == 0
    assert capsys.readouterr().out.startswith("ok: 5 entries")
    # Reopening with the same data adds nothing.
    open_ledger(four.path, dataset_fingerprint=changed)
    assert len(Ledger(four.path).lines()) == 7


def test_a_run_and_round_is_charged_once(four):
    before = four.path.read_bytes()
    with pytest.raises(RoundRefused, match="already charged"):
        record(four, (3,))
    assert four.path.read_bytes() == before
    assert four.charged(run_id="run-1", round=3)["seq"] == 3
    assert four.charged(run_id="run-2", round=3) is None


def test_a_ledger_from_before_signed_heads_is_anchored_on_first_open(tmp_path):
    # Prepare: an old header (no signing key) and one round, written as that version wrote them
    path = tmp_path / "ledger.jsonl"
    header = {"schema": "m3fed.ledger/1", "dataset_fingerprint": DATA, "policy": POLICY.to_dict(),
              "site": "hospital-a", "created": "2026-01-01T00:00:00+00:00"}
    path.write_text(canonical(header).decode() + "\n")
    assert verify_ledger(path) == []  # nothing to anchor against yet
    # Execute
    ledger = open_ledger(path)
    record(ledger, (1,))
    # Assert: a key and a head now guard it; a later cut is caught
    assert key_path(path).is_file() and ledger.head()["seq"] == 1
    assert ledger.head()["header_hash"] == line_hash(header)
    cut(path, 1)
    assert any(p.startswith("truncated") for p in verify_ledger(path))


def test_every_file_the_ledger_writes_is_private(four):
    for path in (four.path, head_path(four.path), key_path(four.path)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_verify_checks_the_servers_receipt(four, tmp_path, capsys):
    receipt = tmp_path / "hospital-a.json"
    receipt.write_text(json.dumps(four.head()))
    resigned_cut(four, 1)
    rc = m3fed(["privacy", "verify", "--ledger", str(four.path), "--receipt", str(receipt)])
    out = capsys.readouterr().out
    assert rc == 1 and "truncated: the ledger has 3 entries but the server's receipt" in out
