"""Personalisation: each image site of a finished simulation fine-tunes the global model on its own data."""
from __future__ import annotations

import json

from client.finetune.personalise import personalise_sites
from shared_model.checkpoint import ModelSource, save_checkpoint
from sim.simulate import SimConfig, prepare_sites


def test_each_image_site_beats_the_global_model_on_its_own_test_patients(easy_site, tmp_path):
    # A simulation's run directory without the Flower part: the sites' manifests, and a global model
    # (random weights here: what matters is that each site's own labels move it).
    prepare_sites(SimConfig(data=str(easy_site), out=str(tmp_path), sites=2, text_only_sites=0, partition="iid",
                            languages=("en", "zh"), compare=False), tmp_path)
    save_checkpoint(tmp_path / "model.safetensors", ModelSource(preset="tiny").initial(seed=0))
    specs = json.loads((tmp_path / "sites.json").read_text(encoding="utf-8"))["specs"]
    specs += [{"name": "site-3", "text_only": True}, {"name": "site-4", "text_only": False}]  # site-4: no data

    out = personalise_sites(tmp_path, specs, seed=0, reports=False, tune="top", lr=3e-3, batch_size=16, epochs=1,
                            min_steps=100, findings=("Cardiomegaly", "Edema", "Pleural Effusion"))

    assert out["site-3"]["skipped"].startswith("text-only")
    assert "does not exist" in out["site-4"]["skipped"]  # one site's bad data does not stop the others
    for site in ("site-1", "site-2"):
        m = out[site]
        assert m["personalised_auc"] > m["global_auc"] + 0.1 and m["personalised_auc"] > 0.7, (site, m)
        assert (tmp_path / m["run_dir"] / "results.json").is_file()
        assert m["training_patients"] == len({json.loads(line)["patient_id"] for line in
                                              (tmp_path / "sites" / site / "manifest.jsonl").read_text().splitlines()
                                              if json.loads(line)["split"] == "train"})
