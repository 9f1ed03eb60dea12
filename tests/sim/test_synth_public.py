"""``m3fed synth --style public``: a cohort for a pretrained start that is not the private sites' cohort."""
from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sim.m3fed_command import main
from sim.synth import generate


def subjects(root: Path) -> set[str]:
    with gzip.open(root / "mimic-cxr-2.0.0-split.csv.gz", "rt", encoding="utf-8", newline="") as f:
        return {row["subject_id"] for row in csv.DictReader(f)}


def top_rows(root: Path) -> np.ndarray:
    """Mean and spread of each image's top two rows (where the public cohort's collimation border is)."""
    images = [np.asarray(Image.open(p), dtype=np.float32) / 255 for p in sorted(root.rglob("*.jpg"))]
    return np.array([(im[:2].mean(), im[:2].std()) for im in images])


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    private, public = tmp_path_factory.mktemp("private"), tmp_path_factory.mktemp("public")
    generate(private, patients=24, seed=3)
    # Same seed on purpose: the style alone must keep the cohorts apart.
    assert main(["synth", "--out", str(public), "--patients", "24", "--seed", "3", "--style", "public"]) == 0
    return private, public


def test_public_cohort_has_other_patients(cohorts):
    private, public = cohorts
    assert subjects(public) and not subjects(public) & subjects(private)
    assert all(s.startswith("2") for s in subjects(public)) and all(s.startswith("1") for s in subjects(private))
    assert json.loads((public / "m3fed-synth.json").read_text())["style"] == "public"


def test_public_cohort_has_a_visible_acquisition_shift(cohorts):
    private, public = cohorts
    pub, priv = top_rows(public), top_rows(private)
    # Every public image carries the dark, flat collimation border; the private images do not.
    assert (np.abs(pub[:, 0] - 0.05) < 0.03).all() and (pub[:, 1] < 0.06).all()
    assert np.mean(np.abs(priv[:, 0] - 0.05) < 0.03) < 0.5 or np.mean(priv[:, 1]) > 3 * np.mean(pub[:, 1])


def test_unknown_style_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["synth", "--out", str(tmp_path), "--style", "hospital-b"])
    assert "invalid choice" in capsys.readouterr().err
