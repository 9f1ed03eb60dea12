"""privacy.statement: the officer's statement is rebuilt from a verified ledger and lists its gaps."""
from __future__ import annotations

import math

import pytest

from privacy.ledger import Ledger, LedgerError, dataset_fingerprint
from privacy.policy import PrivacyPolicy
from privacy.statement import group_bound, privacy_statement, render_markdown, tier

RECORD_POLICY = PrivacyPolicy(unit="record", target_epsilon=4.0, target_delta=1e-6, max_grad_norm=1.0,
                              noise_multiplier=1.0, max_records_per_patient=3, release=("num-examples", "train-loss"))


@pytest.fixture
def ledger(tmp_path):
    led = Ledger.open(tmp_path / "ledger.jsonl", dataset_fingerprint=dataset_fingerprint([("r1", b"x")]),
                      policy=RECORD_POLICY, site="hospital-a")
    for r, sigma in enumerate((1.0, 1.0, 1.3), 1):
        led.record(run_id="run-1", round=r, n_units=100_000, sample_rate=0.005, noise_multiplier=sigma, steps=50)
    return led


def test_statement_replays_epsilon_and_summarises_the_composition(ledger):
    # Execute
    s = privacy_statement(ledger)
    # Assert
    assert s["epsilon"] == ledger.epsilon() and s["delta"] == 1e-6
    assert s["dp_flavour"] == "(ε, δ)-DP, add/remove-one neighbouring" and s["unit"] == "record"
    assert s["composition"]["rounds"] == 3 and s["composition"]["steps"] == 150
    assert [(x["rounds"], x["noise_multiplier"]) for x in s["composition"]["segments"]] == [(2, 1.0), (1, 1.3)]
    assert s["group_privacy"]["epsilon"] == pytest.approx(3 * s["epsilon"])
    assert s["accountant"] == "prv" and s["accountant_version"].startswith("opacus")
    joined = " ".join(s["not_covered"])
    for words in ("train-loss", "exact dataset size", "evaluation on private data", "hyperparameter tuning",
                  "memory bank", "torchcsprng", "not site-level"):
        assert words in joined
    assert "public-negative InfoNCE" in s["mechanism"]["contrastive_loss"]


def test_markdown_states_the_claim_and_the_exclusions(ledger):
    text = render_markdown(privacy_statement(ledger))
    assert "(ε = " in text and "δ = 1e-06)-DP" in text and "add/remove-one" in text
    assert "Contrastive rounds: public-negative InfoNCE" in text
    assert "## Not covered by this guarantee" in text and "| 2 | 100 | 0.005 | 1 | 1 |" in text


def test_statement_is_refused_for_a_tampered_ledger(ledger):
    text = ledger.path.read_text().replace('"steps":50', '"steps":5', 1)
    ledger.path.write_text(text)
    with pytest.raises(LedgerError, match="fails verification"):
        privacy_statement(ledger)


def test_tier_and_group_bound():
    assert [tier(e) for e in (0.5, 1.0, 3.0, 10.0, 10.5)] == ["strong", "strong", "reasonable", "reasonable", "weak"]
    g = group_bound(1.0, 1e-6, 3)
    assert g["epsilon"] == 3.0 and g["delta"] == pytest.approx(3 * math.exp(2.0) * 1e-6) and not g["vacuous"]
    assert group_bound(8.0, 1e-6, 10)["vacuous"] and group_bound(8.0, 1e-6, 10)["delta"] == 1.0


def test_statement_names_the_study_as_the_unit_and_quotes_the_enforced_bound(ledger):
    # Execute: without and with what enforcing the bound dropped from the site's data.
    s = privacy_statement(ledger)
    text = render_markdown(s)
    dropped = {"max_studies_per_patient": 3, "patients_over": 2, "studies_dropped": 5, "rows_dropped": 9}
    known = render_markdown(privacy_statement(ledger, dropped=dropped))
    # Assert
    assert s["unit_meaning"] == "one study: its report, all its images and translations"
    assert "the unit of privacy is one study: its report, all its images and translations." in text
    assert "image or report" not in text
    cap = s["max_records_per_patient"]
    assert cap["value"] == 3 and cap["counts"] == "studies per patient" and "lowest study ids" in cap["enforced"]
    g = s["group_privacy"]
    assert ("At most 3 studies per patient are trained on" in text
            and f"Group privacy for one patient: (ε = {g['epsilon']:.3f}, δ = {g['delta']:.3g})" in text)
    assert "Dropped to enforce it: not known to this statement" in text
    assert "Dropped to enforce it: 5 studies (9 rows) of 2 patients." in known


def test_patient_level_statement_names_the_patient_and_no_group_bound(tmp_path):
    policy = PrivacyPolicy(unit="patient", target_epsilon=4.0, target_delta=1e-6, max_grad_norm=1.0,
                           noise_multiplier=1.0)
    led = Ledger.open(tmp_path / "ledger.jsonl", dataset_fingerprint="d", policy=policy, site="b")
    led.record(run_id="r", round=1, n_units=1000, sample_rate=0.064, noise_multiplier=1.0, steps=10)
    s = privacy_statement(led)
    assert s["group_privacy"] is None and s["max_records_per_patient"] is None
    assert "the unit of privacy is one patient: all their studies." in render_markdown(s)


def test_record_level_without_a_bound_says_no_bound_per_patient(tmp_path):
    policy = PrivacyPolicy(unit="record", target_epsilon=4.0, target_delta=1e-6, max_grad_norm=1.0,
                           noise_multiplier=1.0)
    led = Ledger.open(tmp_path / "ledger.jsonl", dataset_fingerprint="d", policy=policy, site="c")
    s = privacy_statement(led)
    assert s["group_privacy"] is None and s["max_records_per_patient"] is None
    assert any("patients with several studies" in item and "no bound per patient" in item for item in s["not_covered"])
