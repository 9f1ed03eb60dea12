"""A DP round enforces max_records_per_patient on the site's data before it plans (client/app/site_privacy.py)."""
from __future__ import annotations

import logging

import torch

from client.app.site_privacy import ReleasedUpdates, SitePrivacy, private_round
from privacy.ledger import Ledger
from privacy.policy import PrivacyPolicy
from shared_model.config import get_preset
from shared_model.model import build_model
from shared_model.objectives import TrainConfig
from tests.privacy.test_dp import study_site


def test_a_dp_round_drops_the_studies_past_the_bound_counts_them_locally_and_plans_on_the_rest(tmp_path, caplog):
    # Prepare: patient p0 has studies 1 (3 images, en + zh) and 2; the policy allows 1 study per patient.
    policy = PrivacyPolicy(unit="record", target_epsilon=50.0, target_delta=1e-6, max_grad_norm=1.0,
                           noise_multiplier=1.0, batch_size=2, max_records_per_patient=1)
    ledger = Ledger.open(tmp_path / "ledger.jsonl", dataset_fingerprint="d", policy=policy, site="s")
    torch.manual_seed(0)
    model = build_model(get_preset("tiny"))
    # Execute
    with caplog.at_level(logging.WARNING):
        loss, examples, eps = private_round(SitePrivacy(policy, ledger, "s"), model, study_site(), "report-generation",
                                            run_id="run", round=1, train=TrainConfig(batch_size=2), epochs=1, seed=0,
                                            device=torch.device("cpu"), released=ReleasedUpdates(tmp_path / "kept"))
    # Assert: 3 studies left (p0 keeps study 1), 4 reports (study 1 in two languages), the ledger's N is 3,
    # and the dropped study is counted in the site's log, not in what the round returns.
    assert examples == 4 and eps > 0
    assert ledger.entries()[-1]["n_units"] == 3
    assert "1 studies (1 rows) of 1 patients not trained on" in caplog.text
