"""``m3fed data check`` / ``preview`` as a hospital runs them: exit codes, reasons, no tracebacks."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

from client.admin.data_cli import check_dataset
from sim.m3fed_command import main


def _m3fed(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sim.m3fed_command", *args], capture_output=True, text=True, timeout=300)


def test_check_reports_every_unusable_file(small_mimic, tmp_path, capsys):
    data = Path(shutil.copytree(small_mimic, tmp_path / "d"))
    jpgs = sorted((data / "files").rglob("*.jpg"))
    jpgs[0].write_bytes(jpgs[0].read_bytes()[:300])  # truncated
    jpgs[1].unlink()
    assert main(["data", "check", "--data", str(data), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    reasons = {item["path"]: item["reason"] for item in summary["skipped_items"]}
    assert "truncated" in reasons[str(jpgs[0])] or "corrupt" in reasons[str(jpgs[0])]
    assert any(jpgs[1].stem in p and "not found" in r for p, r in reasons.items())
    assert summary["usable"] and summary["by_language"]["zh"] > 0 and summary["by_modality"]["CT"] > 0


def test_check_exit_status_says_unusable(tmp_path):
    (tmp_path / "manifest.csv").write_text("report,language,split,patient_id\nNo edema.,en,test,p1\n")
    assert main(["data", "check", "--data", str(tmp_path)]) == 1


def test_user_mistakes_end_in_one_line_not_a_traceback(tmp_path):
    missing = _m3fed("data", "check", "--data", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert "error:" in missing.stderr and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad_image = tmp_path / "x.png"
    bad_image.write_bytes(b"not an image")
    preview = _m3fed("data", "preview", str(bad_image), "--out", str(tmp_path / "p.png"))
    assert preview.returncode == 2 and "Traceback" not in preview.stderr and str(bad_image) in preview.stderr
    synth = _m3fed("synth", "--out", str(tmp_path / "s"), "--difficulty", "3")
    assert synth.returncode == 2 and "--difficulty" in synth.stderr


def test_preview_writes_the_model_input(small_mimic, tmp_path):
    image = next((small_mimic / "files").rglob("*.jpg"))
    out = tmp_path / "preview.png"
    assert main(["data", "preview", str(image), "--out", str(out), "--preset", "tiny"]) == 0
    assert Image.open(out).size == (64, 64)


def test_central_refuses_bad_options_plainly(small_mimic, tmp_path):
    no_gpu = _m3fed("central", "--data", str(small_mimic), "--out", str(tmp_path / "r"), "--device", "cuda:7",
                    "--contrastive-epochs", "0", "--lm-epochs", "0")
    assert no_gpu.returncode == 2 and "Traceback" not in no_gpu.stderr
    assert "cuda:7" in no_gpu.stderr
    negative = _m3fed("central", "--data", str(small_mimic), "--out", str(tmp_path / "r"), "--lm-epochs", "-1")
    assert negative.returncode == 2 and "epochs" in negative.stderr and "Traceback" not in negative.stderr


def test_check_counts_the_studies_max_records_per_patient_drops(small_mimic):
    # Execute: every patient keeps 1 training study.
    plain = check_dataset(str(small_mimic), 32)
    capped = check_dataset(str(small_mimic), 32, max_records_per_patient=1)
    # Assert: the dropped studies are skipped items of the data report, one each, with their count.
    cap = capped["max_records_per_patient"]
    assert plain["max_records_per_patient"]["studies_dropped"] == 0 and cap["studies_dropped"] > 0
    assert capped["skipped_reasons"]["over max_records_per_patient"] == cap["studies_dropped"]
    assert capped["skipped"] == plain["skipped"] + cap["studies_dropped"]
