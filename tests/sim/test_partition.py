"""Virtual sites: by patient, training split only, label skew under Dirichlet, clear errors."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from client.sources import load_records
from sim.partition import SiteSpec, primary_label, assign_patients, parse_partition, write_sites


def test_partition_schemes_parse():
    assert parse_partition("iid") == ("iid", None)
    assert parse_partition("dirichlet:0.5") == ("dirichlet", 0.5)
    for bad in ("dirichlet:0", "dirichlet:x", "random"):
        with pytest.raises(ValueError, match="--partition"):
            parse_partition(bad)


def test_sites_hold_training_patients_each_at_one_site_and_test_patients_for_evaluation(small_mimic, tmp_path):
    records, _ = load_records(small_mimic)
    sites = [SiteSpec("a", "en"), SiteSpec("b", "zh"), SiteSpec("c", "en", text_only=True)]
    counts = write_sites(records, sites, "iid", 0, tmp_path)
    assert all(n > 0 for n in counts.values())
    owner = {}
    split_of = {r.patient_id: r.split for r in records}
    for site in sites:
        rows = [json.loads(line) for line in (tmp_path / site.name / "manifest.jsonl").read_text().splitlines()]
        assert {row["language"] for row in rows} == {site.language}
        assert all(row["image"] == "" for row in rows) == site.text_only
        assert counts[site.name] == sum(row["split"] == "train" for row in rows)
        for row in rows:
            assert row["split"] == split_of[row["patient_id"]]  # a test patient is never a training row
            assert owner.setdefault(row["patient_id"], site.name) == site.name
    assert not any(split_of[p] == "validate" for p in owner)
    for site in sites:  # every site with images evaluates locally; a text-only one cannot
        assert any(split_of[p] == "test" for p, name in owner.items() if name == site.name) != site.text_only


def test_size_skew_varies_site_sizes_not_labels(small_mimic):
    records, _ = load_records(small_mimic, languages=("en",))
    sizes = Counter(assign_patients(records, 3, "size:0.3", seed=2).values())
    assert max(sizes.values()) >= 2 * min(sizes.values(), default=0) or len(sizes) < 3


def test_dirichlet_concentrates_each_label_group_at_few_sites(small_mimic):
    records, _ = load_records(small_mimic, languages=("en",))
    by_patient = {}
    for r in records:
        if r.split == "train":
            by_patient.setdefault(r.patient_id, []).append(r)

    def purity(scheme: str) -> float:
        """Share of patients at their label group's majority site (1.0 = each group at one site)."""
        sites = assign_patients(records, 3, scheme, seed=1)
        groups: dict[str, Counter] = {}
        for patient, rs in by_patient.items():
            groups.setdefault(primary_label(rs), Counter())[sites[patient]] += 1
        return sum(max(c.values()) for c in groups.values()) / len(by_patient)

    assert purity("dirichlet:0.1") > purity("iid") + 0.2
    with pytest.raises(ValueError, match="cannot fill"):
        assign_patients(records, 10_000, "iid", seed=0)


def test_more_sites_than_test_patients_is_fine_some_sites_just_evaluate_nothing(small_mimic):
    records, _ = load_records(small_mimic, languages=("en",))
    train = {r.patient_id for r in records if r.split == "train"}
    test = {r.patient_id for r in records if r.split == "test"}
    n_sites = len(train)  # one training patient per site, far more sites than test patients
    assert assign_patients(records, n_sites, "iid", seed=0, split="train").keys() == train
    assert assign_patients(records, n_sites, "iid", seed=0, split="test").keys() == test
