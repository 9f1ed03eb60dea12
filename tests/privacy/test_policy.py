"""privacy.policy: the site's YAML is validated completely, naming the file and the key at fault."""
from __future__ import annotations

from pathlib import Path

import pytest

from privacy.policy import PolicyError, PrivacyPolicy, check_delta, load_policy

VALID = """\
unit: patient
target_epsilon: 8
target_delta: 1e-5          # YAML 1.1 would read this as a string; the loader reads a number
accountant: prv
max_grad_norm: 1.0
noise_multiplier: calibrate
poisson_sampling: true
release: [num-examples, train-loss]
patient_id_field: subject_id
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_valid_policy_loads_with_defaults(tmp_path):
    # Execute
    policy = load_policy(write(tmp_path, VALID))
    # Assert
    assert policy.unit == "patient" and policy.noise_multiplier == "calibrate"
    assert policy.target_epsilon == 8.0 and isinstance(policy.target_epsilon, float)
    assert policy.target_delta == 1e-5
    assert policy.batch_size == 64 and policy.release == ("num-examples", "train-loss")
    assert PrivacyPolicy.from_dict(policy.to_dict()) == policy


def test_minimal_policy_defaults_release_to_num_examples(tmp_path):
    text = "unit: record\ntarget_epsilon: 3.0\ntarget_delta: 1.0e-6\nmax_grad_norm: 0.5\nnoise_multiplier: 1.1\n"
    policy = load_policy(write(tmp_path, text))
    assert policy.accountant == "prv" and policy.release == ("num-examples",)
    assert policy.max_records_per_patient is None and policy.patient_id_field == "subject_id"
    # DP rounds train each module's top: each tower's last block, the LM's decoder (BENCHMARKS.md).
    assert (policy.layers("contrastive"), policy.layers("report-generation")) == ("top", "top")


def test_unknown_key_is_refused_by_name(tmp_path):
    path = write(tmp_path, VALID + "target_epsilom: 3\n")
    with pytest.raises(PolicyError, match="target_epsilom") as info:
        load_policy(path)
    assert info.value.key == "target_epsilom" and info.value.path == str(path)


@pytest.mark.parametrize("line, key", [
    ("target_epsilon: eight", "target_epsilon"),
    ("batch_size: true", "batch_size"),
    ("batch_size: 64.5", "batch_size"),
    ("noise_multiplier: auto", "noise_multiplier"),
    ("release: num-examples", "release"),
    ("poisson_sampling: 'yes'", "poisson_sampling"),
])
def test_wrong_type_is_refused_naming_key_and_file(tmp_path, line, key):
    path = write(tmp_path, VALID + line + "\n")  # a later duplicate key wins in YAML
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert info.value.key == key and str(path) in str(info.value)


@pytest.mark.parametrize("line, key, words", [
    ("poisson_sampling: false", "poisson_sampling", "Poisson sampling"),
    ("accountant: gdp", "accountant", "GDP under-reports"),
    ("target_delta: 1.5", "target_delta", "(0, 1)"),
    ("target_epsilon: -1", "target_epsilon", "positive"),
    ("release: [num-examples, gradients]", "release", "gradients"),
    ("max_records_per_patient: 5", "max_records_per_patient", "unit: record"),
    ("unit: site", "unit", "record, patient"),
    ("contrastive_layers: last", "contrastive_layers", "top, all"),
    ("report_layers: 2", "report_layers", "a string"),
])
def test_values_accounting_cannot_honour_are_refused_with_a_reason(tmp_path, line, key, words):
    with pytest.raises(PolicyError, match=words) as info:
        load_policy(write(tmp_path, VALID + line + "\n"))
    assert info.value.key == key


def test_missing_required_key_and_unreadable_files(tmp_path):
    with pytest.raises(PolicyError, match="required key"):
        load_policy(write(tmp_path, "unit: patient\n"))
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "absent.yaml")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(write(tmp_path, "unit: [patient\n"))
    with pytest.raises(PolicyError, match="mapping"):
        load_policy(write(tmp_path, "- unit\n"))


def test_check_delta_refuses_delta_not_below_one_over_n(tmp_path):
    # Prepare: δ = 1e-5 per patient
    policy = load_policy(write(tmp_path, VALID))
    # Execute / Assert: fine for 10,000 patients, refused for 100,000 (δ = 1/N) and 1,000,000 (δ > 1/N)
    check_delta(policy, 10_000)
    for n in (100_000, 1_000_000):
        with pytest.raises(PolicyError, match=f"1/{n}") as info:
            check_delta(policy, n)
        assert f"{1 / (10 * n):.3g}" in str(info.value) and info.value.key == "target_delta"
