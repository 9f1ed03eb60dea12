"""A site's privacy policy: the signed-off YAML that fixes unit, budget, accountant and releases.

The policy is checked completely before anything trains, so a typo cannot silently weaken the
guarantee: unknown keys, wrong types and values the accounting cannot honour are refused with the
file and the key named.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

UNITS = ("record", "patient")
ACCOUNTANTS = ("prv", "rdp")
LAYERS = ("top", "all")  # which layers a DP update trains: each module's top_layers(), or all it can
# Keys a site may change between runs without a new ledger: they change what trains, not what is spent.
TRAINING_KEYS = frozenset({"contrastive_layers", "report_layers"})
# The site's pace: how it spreads its budget over rounds. Changing them re-plans what is left; the
# budget itself (target ε, δ, unit, accountant) stays the ledger's (ledgers older than them lack them).
PACE_KEYS = frozenset({"planned_rounds", "max_epsilon_per_round", "max_noise_multiplier"})
MUTABLE_KEYS = TRAINING_KEYS | PACE_KEYS
# Default cap on σ; see ``PrivacyPolicy.max_noise_multiplier``.
MAX_NOISE_MULTIPLIER = 8.0
# Outputs a site may send besides the (DP) model update; each one is listed as not covered by ε.
RELEASES = ("num-examples", "train-loss", "eval-metrics")


class PolicyError(ValueError):
    """A policy file or value that cannot be used, with the file and the key at fault."""

    def __init__(self, path: str | Path | None, key: str | None, reason: str) -> None:
        self.path = None if path is None else str(path)
        self.key = key
        self.reason = reason
        where = ": ".join(part for part in (self.path, key) if part)
        super().__init__(f"{where}: {reason}" if where else reason)


@dataclass(frozen=True, kw_only=True)
class PrivacyPolicy:
    """Per-site DP configuration (privacy.md §9); ε and δ are per site, δ per unit of privacy."""

    unit: str
    target_epsilon: float
    target_delta: float
    max_grad_norm: float
    noise_multiplier: float | str  # a fixed σ, or "calibrate" to the target over the planned steps
    accountant: str = "prv"
    poisson_sampling: bool = True
    batch_size: int = 64  # expected Poisson batch size; q = batch_size / N
    release: tuple[str, ...] = ("num-examples",)
    max_records_per_patient: int | None = None
    patient_id_field: str = "subject_id"
    # The site's own pace (PACE_KEYS), whatever the server asks:
    # - planned_rounds: the rounds this ledger's budget is planned for, over all runs; calibrate mode
    #   spreads what is left over planned_rounds minus the rounds the ledger has charged. 12 is the
    #   default job's length (``m3fed sim``), in every round of which a site with images trains.
    # - max_epsilon_per_round: ε one round may add (None: only the target bounds it). Calibrate mode
    #   raises σ to stay within it; a fixed σ that would pass it is refused.
    # - max_noise_multiplier: a round that would need more σ is refused ("budget: ...") instead of
    #   released as noise. DP-SGD's averaged gradient carries noise of std σ·C/B per coordinate
    #   against a clipped mean of norm at most C, so what a round can still learn falls as σ/B
    #   grows. Measured (one synthetic site, 226 studies, one DP report-generation round at
    #   B = 64, C = 1, 2 local epochs, README "Differential privacy at each site"): from the initial
    #   model the held-out loss gain halves with each doubling of σ, 10 % of the noise-free
    #   round's at σ = 8, 1–3 % at the 32–64 seen in issue F; from a model that has learned
    #   something (2 plain epochs) σ = 4 keeps 10 % and σ = 8 already makes it worse. Above 8 a
    #   round spends budget for nothing, at the default batch of 64; with another batch, scale
    #   the cap with B.
    planned_rounds: int = 12
    max_epsilon_per_round: float | None = None
    max_noise_multiplier: float = MAX_NOISE_MULTIPLIER
    # Training settings, not privacy ones (ε does not depend on them; see TRAINING_KEYS).
    contrastive_layers: str = "top"
    report_layers: str = "top"
    source: str | None = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        def bad(key: str, reason: str) -> PolicyError:
            return PolicyError(self.source, key, reason)

        _check_type(self, "unit", str)
        if self.unit not in UNITS:
            raise bad("unit", f"must be one of {', '.join(UNITS)}, got {self.unit!r}")
        for key in ("target_epsilon", "target_delta", "max_grad_norm"):
            _check_type(self, key, float)
            if not (math.isfinite(getattr(self, key)) and getattr(self, key) > 0):
                raise bad(key, f"must be a positive number, got {getattr(self, key)}")
        if self.target_delta >= 1:
            raise bad("target_delta", f"must be in (0, 1), got {self.target_delta}")
        if isinstance(self.noise_multiplier, str):
            if self.noise_multiplier != "calibrate":
                raise bad("noise_multiplier", f"must be a number > 0 or 'calibrate', got {self.noise_multiplier!r}")
        else:
            _check_type(self, "noise_multiplier", float)
            if not (math.isfinite(self.noise_multiplier) and self.noise_multiplier > 0):
                raise bad("noise_multiplier", f"must be > 0, got {self.noise_multiplier}")
        _check_type(self, "accountant", str)
        if self.accountant not in ACCOUNTANTS:
            raise bad("accountant", f"must be one of {', '.join(ACCOUNTANTS)} (GDP under-reports), "
                                    f"got {self.accountant!r}")
        _check_type(self, "poisson_sampling", bool)
        if not self.poisson_sampling:
            raise bad("poisson_sampling", "must be true: the privacy accounting assumes Poisson sampling; "
                                          "fixed-size or shuffled batches are not covered by the ε it reports")
        _check_type(self, "batch_size", int)
        if self.batch_size < 1:
            raise bad("batch_size", f"must be at least 1, got {self.batch_size}")
        if not isinstance(self.release, (list, tuple)):
            raise bad("release", f"must be a list, got {type(self.release).__name__} {self.release!r}")
        object.__setattr__(self, "release", tuple(self.release))  # frozen means hashable too
        unknown = [r for r in self.release if not isinstance(r, str) or r not in RELEASES]
        if unknown:
            raise bad("release", f"unknown output(s) {unknown}; allowed: {', '.join(RELEASES)}")
        if self.max_records_per_patient is not None:
            _check_type(self, "max_records_per_patient", int)
            if self.max_records_per_patient < 1:
                raise bad("max_records_per_patient", f"must be at least 1, got {self.max_records_per_patient}")
            if self.unit != "record":
                raise bad("max_records_per_patient", "only applies to unit: record (patient-level DP needs no "
                                                     "group bound)")
        for key in sorted(TRAINING_KEYS):
            _check_type(self, key, str)
            if getattr(self, key) not in LAYERS:
                raise bad(key, f"must be one of {', '.join(LAYERS)}, got {getattr(self, key)!r}")
        _check_type(self, "planned_rounds", int)
        if self.planned_rounds < 1:
            raise bad("planned_rounds", f"must be at least 1, got {self.planned_rounds}")
        if self.max_epsilon_per_round is not None:
            _check_type(self, "max_epsilon_per_round", float)
            if not (math.isfinite(self.max_epsilon_per_round) and self.max_epsilon_per_round > 0):
                raise bad("max_epsilon_per_round", f"must be a positive number, got {self.max_epsilon_per_round}")
        _check_type(self, "max_noise_multiplier", float)
        if not (math.isfinite(self.max_noise_multiplier) and self.max_noise_multiplier > 0):
            raise bad("max_noise_multiplier", f"must be a positive number, got {self.max_noise_multiplier}")
        if not isinstance(self.noise_multiplier, str) and self.noise_multiplier > self.max_noise_multiplier:
            raise bad("noise_multiplier", f"{self.noise_multiplier:g} is above max_noise_multiplier "
                                          f"{self.max_noise_multiplier:g}: every round would be refused")
        _check_type(self, "patient_id_field", str)
        if not self.patient_id_field:
            raise bad("patient_id_field", "must not be empty")

    def layers(self, objective: str) -> str:
        return self.contrastive_layers if objective == "contrastive" else self.report_layers

    def to_dict(self) -> dict:
        """The resolved policy (defaults filled in), as written into ledger headers and reports."""
        data = dataclasses.asdict(self)
        data.pop("source")
        data["release"] = list(self.release)
        return data

    @classmethod
    def from_dict(cls, data: dict, *, source: str | Path | None = None) -> PrivacyPolicy:
        src = None if source is None else str(source)
        if not isinstance(data, dict):
            raise PolicyError(src, None, f"must be a mapping of keys to values, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)} - {"source"}
        unknown = sorted(str(k) for k in set(data) - known)
        if unknown:
            raise PolicyError(src, unknown[0], f"unknown key(s) {', '.join(unknown)}; "
                                               f"known keys: {', '.join(sorted(known))}")
        missing = sorted(f.name for f in dataclasses.fields(cls)
                         if f.name in known and f.default is dataclasses.MISSING and f.name not in data)
        if missing:
            raise PolicyError(src, missing[0], f"required key(s) missing: {', '.join(missing)}")
        return cls(**data, source=src)


def _check_type(policy: PrivacyPolicy, key: str, kind: type) -> None:
    value = getattr(policy, key)
    # bool is an int subclass: `true` must not pass as a batch size or an ε.
    accepted = (int, float) if kind is float else kind
    if not isinstance(value, accepted) or (kind is not bool and isinstance(value, bool)):
        name = {float: "a number", int: "an integer", bool: "true or false", str: "a string"}[kind]
        raise PolicyError(policy.source, key, f"must be {name}, got {type(value).__name__} {value!r}")
    if kind is float:
        object.__setattr__(policy, key, float(value))  # 8 and 8.0 must resolve to the same policy


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-5` (no dot) as a string; a δ written that way must still be a number."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def load_policy(path: str | Path) -> PrivacyPolicy:
    """Read and validate a site's policy YAML; every problem is a PolicyError naming file and key."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 (safe loader)
    except OSError as exc:
        raise PolicyError(path, None, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise PolicyError(path, None, "not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise PolicyError(path, None, f"not valid YAML: {exc}") from None
    return PrivacyPolicy.from_dict(data if data is not None else {}, source=path)


def check_delta(policy: PrivacyPolicy, n_units: int) -> None:
    """Refuse δ ≥ 1/N: such a δ allows releasing one unit's data outright (privacy.md §3)."""
    if isinstance(n_units, bool) or not isinstance(n_units, int) or n_units < 1:
        raise PolicyError(policy.source, "target_delta", f"the number of {policy.unit}s must be a positive "
                                                         f"integer, got {n_units!r}")
    if policy.target_delta >= 1.0 / n_units:
        raise PolicyError(policy.source, "target_delta",
                          f"δ = {policy.target_delta:g} is not below 1/N = 1/{n_units} = {1.0 / n_units:.3g} "
                          f"({policy.unit}s); use δ ≤ 1/(10N) = {1.0 / (10 * n_units):.3g}")
