"""Virtual sites: by patient, training split only, label skew under Dirichlet, clear errors."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from client.data.sources import load_records
from client.data.sources.records import Record
from sim.partition import SiteSpec, assign_patients, parse_partition, write_sites


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


def test_dirichlet_skews_each_sites_labels_and_keeps_site_sizes_equal(small_mimic):
    # 400 patients over four label groups (sizes 40 %, 30 %, 20 %, 10 %): enough that sampling noise alone
    # does not look like skew.
    groups = ["normal"] * 160 + ["Atelectasis"] * 120 + ["Edema"] * 80 + ["Pneumothorax"] * 40
    records = [Record(f"p{i}", f"s{i}", None, "report", "en", "train", "CXR",
                      labels={} if label == "normal" else {label: 1.0}) for i, label in enumerate(groups)]
    overall = Counter(groups)

    def skew(scheme: str, seed: int) -> float:
        """Mean total-variation distance between a site's label mix and the whole dataset's."""
        sites = assign_patients(records, 4, scheme, seed=seed)
        sizes = Counter(sites.values())
        assert set(sizes.values()) == {100}  # label skew without size skew
        distance = 0.0
        for site in range(4):
            mix = Counter(groups[int(p[1:])] for p, s in sites.items() if s == site)
            distance += sum(abs(mix[k] / 100 - overall[k] / len(groups)) for k in overall) / 2
        return distance / 4

    iid, mild, strong = (sum(skew(s, seed) for seed in range(5)) / 5 for s in ("iid", "dirichlet:5", "dirichlet:0.1"))
    assert iid < 0.1 < mild < strong and strong > 0.25
    records, _ = load_records(small_mimic, languages=("en",))
    with pytest.raises(ValueError, match="cannot fill"):
        assign_patients(records, 10_000, "iid", seed=0)


def test_more_sites_than_test_patients_is_fine_some_sites_just_evaluate_nothing(small_mimic):
    records, _ = load_records(small_mimic, languages=("en",))
    train = {r.patient_id for r in records if r.split == "train"}
    test = {r.patient_id for r in records if r.split == "test"}
    n_sites = len(train)  # one training patient per site, far more sites than test patients
    assert assign_patients(records, n_sites, "iid", seed=0, split="train").keys() == train
    assert assign_patients(records, n_sites, "iid", seed=0, split="test").keys() == test


def test_max_records_per_site_keeps_a_seeded_sample_of_each_sites_rows(small_mimic, tmp_path):
    records, _ = load_records(small_mimic)
    sites = [SiteSpec("a", "en"), SiteSpec("b", "zh")]
    full = write_sites(records, sites, "iid", 0, tmp_path / "full")
    capped = write_sites(records, sites, "iid", 0, tmp_path / "capped", limit=3)
    write_sites(records, sites, "iid", 0, tmp_path / "again", limit=3)
    for site in sites:
        rows = lambda run: [json.loads(line) for line in (tmp_path / run / site.name / "manifest.jsonl")  # noqa: E731
                            .read_text().splitlines()]
        split_counts = Counter(row["split"] for row in rows("capped"))
        assert capped[site.name] == split_counts["train"] == min(3, full[site.name])
        assert split_counts["test"] <= 3 and split_counts["test"] > 0
        assert all(row in rows("full") for row in rows("capped"))  # a sample of what the site holds
        assert rows("capped") == rows("again")  # the same sample under the same seed
