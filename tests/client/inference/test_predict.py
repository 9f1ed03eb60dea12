"""`m3fed predict` and `m3fed bank build` on a trained tiny model: real DICOM, bad files, banks and their model."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from sim.m3fed_command import main
from tests.shared_model.trained_tiny import trained_tiny


@pytest.fixture(scope="module")
def chest_dicom() -> str:
    """A real PA chest radiograph (CR, MONOCHROME1, 1955x1841), shipped offline by pydicom-data."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("RG1_UNCR.dcm")
    if path is None:
        pytest.skip("pydicom-data is not installed")
    return path


@pytest.fixture(scope="module")
def site_bank(run_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bank") / "bank.safetensors"
    assert main(["bank", "build", "--model", str(run_dir), "--data", str(trained_tiny()[0]), "--out", str(out)]) == 0
    return out


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_predict_answers_a_real_chest_dicom_and_names_a_truncated_file(run_dir, chest_dicom, tmp_path, capsys):
    # Prepare: the same DICOM cut short, and a text file posing as a PNG.
    truncated = tmp_path / "cut.dcm"
    truncated.write_bytes(Path(chest_dicom).read_bytes()[:200_000])
    fake = tmp_path / "notes.png"
    fake.write_text("not an image")
    # Execute
    status = main(["predict", "--model", str(run_dir), chest_dicom, str(truncated), str(fake), "--json"])
    out = capsys.readouterr()
    # Assert: one object per file, in order; the bad ones say why, the good one has every answer.
    assert status == 1 and "Traceback" not in out.err
    good, cut, bad = _json_lines(out.out)
    assert (good["file"], cut["file"], bad["file"]) == (chest_dicom, str(truncated), str(fake))
    assert "truncated or corrupt" in cut["error"] and "not a JPEG or PNG" in bad["error"]
    assert "Cardiomegaly" in good["findings"] and "Lung Opacity" not in good["findings"]
    assert len(good["findings"]) == 13 and all(isinstance(v, float) for v in good["findings"].values())
    assert set(good["reports"]) == {"en", "zh"}
    assert good["reports"]["en"] and not any("\u4e00" <= c <= "\u9fff" for c in good["reports"]["en"])
    assert any("\u4e00" <= c <= "\u9fff" for c in good["reports"]["zh"])
    assert good["bank"].startswith("built-in template reports")
    assert good["weights_sha256"] and good["model"].endswith("model.safetensors")


def test_human_output_prints_scores_and_both_reports_and_one_line_per_bad_file(run_dir, chest_dicom, tmp_path,
                                                                               capsys):
    truncated = tmp_path / "cut.dcm"
    truncated.write_bytes(Path(chest_dicom).read_bytes()[:200_000])
    status = main(["predict", "--model", str(run_dir), str(truncated), chest_dicom, str(tmp_path / "gone.jpg")])
    out = capsys.readouterr()
    assert status == 1
    errors = out.err.strip().splitlines()
    assert errors == [line for line in errors if line.startswith("error: ")] and len(errors) == 2
    assert str(truncated) in errors[0] and "gone.jpg: file not found" in errors[1]
    assert "Pleural Effusion" in out.out and "report (en):" in out.out and "report (zh):" in out.out
    assert "bank: built-in template reports" in out.out and "1 of 3 files answered" in out.out


def test_predict_scores_an_image_as_evaluation_does(run_dir, capsys):
    """The file read by predict gives the scores the evaluation path gives the same image, decoded for training."""
    from client.data.dataset import decode
    from client.data.sources import load_records
    from shared_model.checkpoint import load_checkpoint
    from shared_model.evaluate import PROMPT_LANGUAGES, embed_images, ensemble, finding_scores

    records, report = load_records(trained_tiny()[0])
    record = next(r for r in records if r.split == "test" and r.image)
    model, _ = load_checkpoint(run_dir / "model.safetensors")
    examples = decode([record], model.cfg.image_size, report)
    expected = ensemble(finding_scores(model, embed_images(model, examples.images, torch.device("cpu")),
                                       ["Edema", "Pneumothorax"], PROMPT_LANGUAGES, torch.device("cpu")))
    assert main(["predict", "--model", str(run_dir), record.image, "--json", "--language", "zh"]) == 0
    (answer,) = _json_lines(capsys.readouterr().out)
    assert set(answer["reports"]) == {"zh"}
    for name, value in expected.items():
        assert answer["findings"][name] == pytest.approx(float(value[0]), abs=1e-4)


def test_bank_holds_the_sites_train_reports_and_is_used_by_predict(run_dir, site_bank, chest_dicom, capsys):
    from client.data.sources import load_records
    from client.inference.bank import load_bank
    from client.inference.model_files import load_inference_model

    bank = load_bank(site_bank)
    records, _ = load_records(trained_tiny()[0])
    train = {r.report for r in records if r.split == "train"}
    assert set(bank.texts) == train and len(bank.texts) == len(bank.embeddings)
    assert bank.info["counts"] == {"en": len({r.report for r in records if r.split == "train" and r.language == "en"}),
                                   "zh": len({r.report for r in records if r.split == "train" and r.language == "zh"})}
    assert bank.info["source"]["kind"] == "site" and bank.info["source"]["split"] == "train"
    loaded = load_inference_model(run_dir, torch.device("cpu"))
    assert bank.info["weights_sha256"] == loaded.weights_sha256
    assert torch.allclose(bank.embeddings.norm(dim=1), torch.ones(len(bank.texts)), atol=1e-4)
    capsys.readouterr()
    assert main(["predict", "--model", str(run_dir), chest_dicom, "--bank", str(site_bank), "--json"]) == 0
    (answer,) = _json_lines(capsys.readouterr().out)
    assert answer["bank"].startswith(f"{site_bank}: site reports from ")


def test_a_bank_of_other_weights_is_refused_naming_both(run_dir, site_bank, chest_dicom, tmp_path, capsys):
    from shared_model.checkpoint import load_checkpoint, save_checkpoint

    model, _ = load_checkpoint(run_dir / "model.safetensors")
    with torch.no_grad():
        model.clip.text_proj.weight.add_(1e-3)
    other = tmp_path / "other.safetensors"
    save_checkpoint(other, model)
    capsys.readouterr()
    status = main(["predict", "--model", str(other), chest_dicom, "--bank", str(site_bank)])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and err.startswith("error: ")
    assert str(run_dir / "model.safetensors") in err and str(other) in err and "m3fed bank build" in err


def test_a_template_bank_file_names_itself_as_such(run_dir, chest_dicom, tmp_path, capsys):
    from client.inference.bank import load_bank
    from client.inference.template_bank import template_reports

    out = tmp_path / "templates.safetensors"
    assert main(["bank", "build", "--model", str(run_dir), "--templates", "--out", str(out)]) == 0
    bank = load_bank(out)
    assert bank.info["source"]["kind"] == "template" and list(bank.texts) == [t for t, _ in template_reports()]
    capsys.readouterr()
    assert main(["predict", "--model", str(run_dir), chest_dicom, "--bank", str(out), "--json"]) == 0
    (answer,) = _json_lines(capsys.readouterr().out)
    assert answer["bank"].startswith("built-in template reports")


def test_template_reports_are_the_synthetic_datas_sentences():
    """Every sentence the synthetic sites' train reports hold is a sentence of the template bank."""
    import re

    from client.data.sources import load_records
    from client.inference.template_bank import template_reports

    def said(text: str) -> set[str]:
        return {s.strip() for s in re.split(r"(?<=[.。])", text) if s.strip()}

    bank = set().union(*(said(text) for text, _ in template_reports()))
    records, _ = load_records(trained_tiny()[0])
    written = set().union(*(said(r.report) for r in records if r.split == "train"))
    assert written <= bank, sorted(written - bank)[:5]


@pytest.mark.parametrize("case", ["no model in the run dir", "not a bank", "no train reports"])
def test_user_mistakes_end_with_one_error_line(case, run_dir, tmp_path, capsys):
    if case == "no model in the run dir":
        argv = ["predict", "--model", str(tmp_path), "x.png"]
    elif case == "not a bank":
        argv = ["predict", "--model", str(run_dir), "x.png", "--bank", str(run_dir / "model.safetensors")]
    else:
        manifest = tmp_path / "manifest.csv"
        manifest.write_text("report,language,split,patient_id\nNo pneumothorax.,en,test,p1\n")
        argv = ["bank", "build", "--model", str(run_dir), "--data", str(manifest), "--out", str(tmp_path / "b")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_a_model_with_adapters_is_merged_on_load(tmp_path):
    import hashlib

    from client.inference.model_files import load_inference_model
    from shared_model.adapters import AdapterSpec, add_adapters
    from shared_model.checkpoint import save_checkpoint
    from shared_model.config import get_preset
    from shared_model.model import build_model

    torch.manual_seed(0)
    plain = build_model(get_preset("tiny")).state_dict()
    torch.manual_seed(0)
    adapted = add_adapters(build_model(get_preset("tiny")), AdapterSpec(2))  # B = 0: merging changes nothing
    save_checkpoint(tmp_path / "model.safetensors", adapted)
    loaded = load_inference_model(tmp_path, torch.device("cpu"))
    merged = loaded.model.state_dict()
    assert loaded.model.adapter is None and set(merged) == set(plain)
    assert all(torch.equal(merged[k], plain[k]) for k in plain)
    assert loaded.weights_sha256 == hashlib.sha256((tmp_path / "model.safetensors").read_bytes()).hexdigest()


def test_a_sites_model_folder_is_found_through_its_hash_file_and_checked(run_dir, tmp_path, capsys):
    """A simulated site's model/ holds only model.sha256 naming the run's model (client.app.final_model)."""
    import hashlib

    from client.inference.model_files import load_inference_model

    folder = tmp_path / "sites" / "site-1" / "model"
    folder.mkdir(parents=True)
    target = Path("..", "..", "..", "model.safetensors")
    shutil.copy(run_dir / "model.safetensors", tmp_path / "model.safetensors")
    digest = hashlib.sha256((tmp_path / "model.safetensors").read_bytes()).hexdigest()
    (folder / "model.sha256").write_text(f"{digest}  {target}\n")
    assert load_inference_model(folder, torch.device("cpu")).weights_sha256 == digest
    (folder / "model.sha256").write_text(f"{'0' * 64}  {target}\n")
    assert main(["predict", "--model", str(folder), "x.png"]) == 2
    assert "changed since it was delivered" in capsys.readouterr().err
