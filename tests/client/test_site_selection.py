"""A site contributes part of its data: site.yaml's languages and modalities select records
(client/data/sources/selection.py), for training, the declaration, evaluation and the decoded cache."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import yaml

from client.admin.site_config import check_site, load_site_config
from client.app.node import site_selection
from client.app.site import declaration, site_examples
from client.data.sources import Record, describe_left_out, load_records, select_records
from client.errors import DataError
from sim.m3fed_command import main

HASH = "ab" * 32


def _record(study: str, *, language: str = "en", modality: str = "CXR", image: str | None = "x.jpg",
            split: str = "train") -> Record:
    return Record(patient_id="p1", study_id=study, image=image, report=f"report {study} {language}",
                  language=language, split=split, modality=modality)


def _site_yaml(tmp_path, data, **changes) -> str:
    spec = {"site": "hospital-a", "superlink": "fl.example.org:8000", "insecure": True, "data": str(data),
            "languages": ["en"], "modalities": ["CXR", "CT"], "approved_apps": [HASH], "state_dir": "state",
            **changes}
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def _text_manifest(tmp_path, language: str = "en", n: int = 6) -> str:
    """A text-only manifest in one language (nothing to decode: fast)."""
    rows = [{"report": f"no acute findings {i}", "language": language, "split": "train" if i % 3 else "test",
             "patient_id": f"p{i}", "modality": "CXR"} for i in range(n)]
    path = tmp_path / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_a_study_with_an_unselected_modality_is_left_out_whole_and_counted():
    # Prepare: study s1 has a CXR and a CT image (en + zh reports); s2 is CXR; s3 a text-only CT report.
    records = [_record("s1"), _record("s1", language="zh"), _record("s1", modality="CT"),
               _record("s1", language="zh", modality="CT"), _record("s2"), _record("s2", language="zh"),
               _record("s3", modality="CT", image=None)]
    # Execute
    kept, left_out = select_records(records, languages=("en",), modalities=("CXR",))
    # Assert: only s2's English report stays; s1's CXR rows go too (its study has CT), as does s3's report.
    assert [(r.study_id, r.language, r.modality) for r in kept] == [("s2", "en", "CXR")]
    assert left_out["records"] == 6 and left_out["languages"] == {"zh": 3} and left_out["modalities"] == {"CT": 5}
    assert left_out["in_data"]["languages"] == {"en": 4, "zh": 3} and left_out["train_contributed"] == 1
    assert describe_left_out(left_out) == "6 records (zh: 3, CT: 5)"
    assert select_records(records)[0] == records  # no selection: everything


def test_site_examples_and_the_declaration_hold_only_the_selection(small_mimic):
    # Prepare
    everything, _ = load_records(small_mimic)
    train = [r for r in everything if r.split == "train"]
    # Execute
    en = site_examples(str(small_mimic), 32, "train", languages=("en",))
    cxr = site_examples(str(small_mimic), 32, "train", modalities=("CXR",))
    # Assert
    assert {r.language for r in en.records} == {"en"} and len(en.records) == sum(r.language == "en" for r in train)
    assert {r.modality for r in cxr.records} == {"CXR"} and len(cxr.records) == sum(r.modality == "CXR" for r in train)
    assert declaration(en)["languages"] == ["en"] and declaration(cxr)["modalities"] == ["CXR"]
    assert declaration(en)["examples-report-generation"] == len(en.records)
    both = declaration(site_examples(str(small_mimic), 32, "train"))
    assert both["languages"] == ["en", "zh"] and both["modalities"] == ["CT", "CXR"]
    assert site_examples(str(small_mimic), 32, "train", languages=("en",)) is en  # cached per selection


def test_the_decoded_cache_never_serves_another_selection(tmp_path, small_mimic):
    cache = str(tmp_path / "decoded")
    for languages, expected in ((("en",), {"en"}), (None, {"en", "zh"}), (("zh",), {"zh"})):
        site_examples.cache_clear()  # a new ClientApp process: only the disk cache is left
        examples = site_examples(str(small_mimic), 32, "test", cache, languages=languages)
        assert {r.language for r in examples.records} == expected


def test_the_client_app_reads_the_selection_from_the_node_config():
    def selection(**node_config):
        return site_selection(SimpleNamespace(node_config=node_config))

    assert selection() == (None, None)  # a simulated site: everything
    assert selection(languages="zh,en", modalities="CXR") == (("en", "zh"), ("CXR",))
    cfg_node = {"languages": "en", "modalities": "CXR,CT"}
    assert selection(**cfg_node) == (("en",), ("CT", "CXR"))


def test_site_check_counts_what_is_not_contributed(tmp_path, small_mimic):
    # Prepare
    everything, _ = load_records(small_mimic)
    zh = sum(r.language == "zh" for r in everything)
    # Execute
    summary = check_site(load_site_config(_site_yaml(tmp_path, small_mimic)), image_size=32)
    # Assert: the check passes on the English reports and counts the Chinese ones
    assert summary["usable"] and set(summary["by_language"]) == {"en"}
    assert summary["not_contributed"]["records"] == zh and summary["not_contributed"]["languages"] == {"zh": zh}
    assert not summary["warnings"]
    ct = check_site(load_site_config(_site_yaml(tmp_path, small_mimic, languages=["en", "zh"], modalities=["CT"])),
                    image_size=32)
    assert set(ct["by_modality"]) == {"CT"}
    assert ct["not_contributed"]["modalities"] == {"CXR": sum(r.modality == "CXR" for r in everything)}


def test_a_selected_language_the_data_lacks_is_a_warning_and_an_empty_selection_an_error(tmp_path):
    data = _text_manifest(tmp_path, "en")
    summary = check_site(load_site_config(_site_yaml(tmp_path, data, languages=["en", "zh"])), image_size=32)
    assert summary["warnings"] == ["languages: zh selected but the data has no zh reports (it has: en)",
                                   "modalities: CT selected but the data has no CT studies (it has: CXR)"]
    with pytest.raises(DataError, match=r"site\.yaml: languages: selecting languages: zh leaves no training "
                                        r"records.*the data has languages en"):
        check_site(load_site_config(_site_yaml(tmp_path, data, languages=["zh"])), image_size=32)
    with pytest.raises(DataError, match=r"site\.yaml: modalities: selecting modalities: CT leaves no training"):
        check_site(load_site_config(_site_yaml(tmp_path, data, modalities=["CT"])), image_size=32)


def test_m3fed_site_check_prints_the_not_contributed_count(tmp_path, small_mimic, capsys):
    zh = sum(r.language == "zh" for r in load_records(small_mimic)[0])
    assert main(["site", "check", "--config", _site_yaml(tmp_path, small_mimic)]) == 0
    out = capsys.readouterr().out
    assert f"not contributed (site.yaml languages/modalities): {zh} records (zh: {zh})" in out
    assert out.rstrip().endswith("site configuration OK")
