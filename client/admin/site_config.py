"""A hospital's ``site.yaml``: who the site is, where its data and keys are, what code it runs.

Checked completely before the SuperNode connects (``m3fed site start`` / ``m3fed site check``):
unknown keys, wrong types, missing files, a dataset that fails ``m3fed data check``, a selection
that leaves nothing to train on, an invalid privacy policy. Relative paths are relative to the
file. Example::

    site: hospital-a
    superlink: fl.example.org:8000
    ca_certificate: certs/ca.crt        # the consortium CA (m3fed ca init), verifies the SuperLink
    private_key: keys/hospital-a        # m3fed site keygen; the .pub went to the operator
    data: /srv/mimic-cxr                # anything `m3fed data check` accepts
    languages: [en]                     # contributes its English reports only (en and/or zh)
    modalities: [CXR]                   # and its chest X-ray studies only (CXR and/or CT)
    privacy_policy: privacy.yaml        # optional: DP-SGD at this site (ledger in state_dir)
    text_model: /srv/models/mbert      # optional: the site's copy of the run's --text-model directory
    scrub: on                           # identifiers removed from every report before any use (default on)
    approved_apps: [<sha256 of the app bundle>]   # m3fed app hash
    state_dir: /var/lib/m3fed/hospital-a      # made 0700: decoded reports, ledger, secrets

``languages`` and ``modalities`` select what the site contributes; the data may hold more. A report
in another language, and every record of a study with images of another modality (its reports
too: the site does not contribute that study at all, ``client.data.sources.selection``), stay out of
training, the declaration and the site's evaluation; ``m3fed site check`` counts them.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from client.errors import DataError

LANGUAGES, MODALITIES = ("en", "zh"), ("CXR", "CT")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


@dataclass(frozen=True, kw_only=True)
class SiteConfig:
    site: str
    superlink: str
    data: Path
    languages: tuple[str, ...]
    modalities: tuple[str, ...]
    approved_apps: tuple[str, ...]
    state_dir: Path
    ca_certificate: Path | None = None
    private_key: Path | None = None
    privacy_policy: Path | None = None
    text_model: Path | None = None  # the site's copy of a run's --text-model (its tokenizer must match the run's)
    scrub: bool = True            # remove identifiers from reports before any use (privacy.scrub); off: already de-identified
    insecure: bool = False        # plain HTTP and no node authentication: test set-ups only
    runtime_port: int = 9094      # the SuperNode's local ClientApp runtime API (loopback)
    source: str = dataclasses.field(default="site.yaml", compare=False, repr=False)

    @property
    def ledger(self) -> Path:
        return self.state_dir / "ledger.jsonl"

    @property
    def superexec_secret(self) -> Path:
        """Signs the guard's acquire-task calls: the SuperNode hands no task to a caller without it."""
        return self.state_dir / "superexec.secret"

    def node_config(self) -> dict[str, str]:
        """What the ClientApp reads from ``context.node_config`` on this SuperNode."""
        config = {"site-name": self.site, "data-path": str(self.data), "state-dir": str(self.state_dir),
                  # what the site contributes (client.app.node.site_selection), comma-separated
                  "languages": ",".join(self.languages), "modalities": ",".join(self.modalities),
                  "scrub": "on" if self.scrub else "off"}
        if self.text_model:
            config["text-model"] = str(self.text_model)
        if self.privacy_policy:
            config.update({"privacy-policy": str(self.privacy_policy), "privacy-ledger": str(self.ledger)})
        return config


def load_site_config(path: str | Path) -> SiteConfig:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(path, "site configuration not found") from None
    except yaml.YAMLError as exc:
        raise DataError(path, f"not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise DataError(path, "must be a mapping of keys to values")
    return site_config_from_dict(raw, base=path.parent.resolve(), source=str(path))


def site_config_from_dict(raw: dict, *, base: Path, source: str) -> SiteConfig:
    def bad(key: str, reason: str) -> DataError:
        return DataError(source, f"{key}: {reason}")

    known = {f.name for f in dataclasses.fields(SiteConfig)} - {"source"}
    unknown = sorted(str(k) for k in set(raw) - known)
    if unknown:
        raise bad(unknown[0], f"unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
    required = ("site", "superlink", "data", "languages", "modalities", "approved_apps", "state_dir")
    missing = [k for k in required if k not in raw]
    if missing:
        raise bad(missing[0], f"required key(s) missing: {', '.join(missing)}")

    def text(key: str) -> str:
        value = raw[key]
        if not isinstance(value, str) or not value.strip():
            raise bad(key, f"must be a non-empty string, got {value!r}")
        return value.strip()

    def path(key: str) -> Path | None:
        return (base / Path(text(key)).expanduser()).resolve() if raw.get(key) is not None else None

    def listed(key: str, allowed: tuple[str, ...] | None) -> tuple[str, ...]:
        value = raw[key]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise bad(key, f"must be a non-empty list of strings, got {value!r}")
        wrong = [v for v in value if allowed is not None and v not in allowed]
        if wrong:
            raise bad(key, f"unknown value(s) {wrong}; allowed: {', '.join(allowed)}")
        return tuple(dict.fromkeys(value))

    site = text("site")
    if not _NAME.match(site):
        raise bad("site", f"{site!r}: use letters, digits, '.', '_' or '-' (at most 63)")
    superlink = text("superlink")
    if "://" in superlink or not re.match(r"^[^:\s]+:\d{1,5}$", superlink):
        raise bad("superlink", f"{superlink!r}: give HOST:PORT (no scheme; TLS is implied)")
    apps = listed("approved_apps", None)
    malformed = [a for a in apps if not _SHA256.match(a)]
    if malformed:
        raise bad("approved_apps", f"{malformed[0]!r} is not a sha256 hex digest (m3fed app hash prints one)")
    insecure = raw.get("insecure", False)
    if not isinstance(insecure, bool):
        raise bad("insecure", f"must be true or false, got {insecure!r}")
    scrub = raw.get("scrub", True)
    if isinstance(scrub, str) and scrub.strip().lower() in ("on", "off"):
        scrub = scrub.strip().lower() == "on"
    if not isinstance(scrub, bool):
        raise bad("scrub", f"must be on or off, got {scrub!r}")
    port = raw.get("runtime_port", 9094)
    if not isinstance(port, int) or isinstance(port, bool) or not 1024 <= port <= 65535:
        raise bad("runtime_port", f"must be a port number in 1024..65535, got {port!r}")
    for key in ("ca_certificate", "private_key"):
        if not insecure and raw.get(key) is None:
            raise bad(key, "required unless insecure: true (TLS and node authentication are on by default)")
    return SiteConfig(site=site, superlink=superlink, data=path("data"), languages=listed("languages", LANGUAGES),
                      modalities=listed("modalities", MODALITIES), approved_apps=apps, state_dir=path("state_dir"),
                      ca_certificate=path("ca_certificate"), private_key=path("private_key"),
                      privacy_policy=path("privacy_policy"), text_model=path("text_model"), scrub=scrub,
                      insecure=insecure, runtime_port=port, source=source)


def check_site(cfg: SiteConfig, *, image_size: int) -> dict:
    """Everything that can be checked before connecting; returns the data check's summary."""
    return inspect_site(cfg, image_size=image_size)[0]


def inspect_site(cfg: SiteConfig, *, image_size: int, store: bool = False, console=None):
    """``check_site``'s summary and the decoded training examples the site contributes.

    Besides the data check's keys, the summary has ``not_contributed`` (what ``languages`` and
    ``modalities`` leave out, ``client.data.sources.selection``) and ``warnings`` (a selected language
    or modality the data does not have). A selection that leaves no training record is an error.
    ``store``: decode into the site's decoded-image store (``state_dir/decoded``), which its rounds read.
    """
    from client.admin.data_cli import read_dataset
    from client.admin.keys import check_site_key, load_certificate, make_private
    from privacy.policy import load_policy

    if not cfg.insecure:
        load_certificate(cfg.ca_certificate)
        check_site_key(cfg.private_key)
    policy = load_policy(cfg.privacy_policy) if cfg.privacy_policy else None
    if cfg.text_model:
        _check_text_model(cfg)
    if not cfg.data.exists():
        raise DataError(cfg.data, f"data path not found (site.yaml {cfg.source}: data)")
    if store:  # the decoded images are the site's data: in its private state folder from the start
        make_private(cfg.state_dir)
    summary, train = read_dataset(str(cfg.data), image_size, languages=cfg.languages, modalities=cfg.modalities,
                                  max_records_per_patient=policy.max_records_per_patient if policy else None,
                                  store=cfg.state_dir / "decoded" if store else None, console=console,
                                  scrub=cfg.scrub)
    left_out = summary["not_contributed"]
    summary["warnings"] = _selection_warnings(cfg, left_out["in_data"])
    if not summary["usable"]:
        if left_out["in_data"]["train"] and not left_out["train_contributed"]:  # the selection left none
            raise _nothing_selected(cfg, left_out)
        raise DataError(cfg.data, "m3fed data check: no usable training records (run it for the reasons)")
    make_private(cfg.state_dir)  # decoded reports, ledger, results: this site's account only (0700)
    return summary, train


def _check_text_model(cfg: SiteConfig) -> None:
    """The text model's directory loads as a tokenizer that covers the site's languages."""
    from shared_model.errors import CheckpointError
    from shared_model.text_model import check_coverage
    from shared_model.tokenizer import load_tokenizer

    try:
        check_coverage(load_tokenizer(cfg.text_model), cfg.languages)
    except CheckpointError as exc:
        raise DataError(cfg.source, f"text_model: {exc}") from None


def _has(counts: dict) -> str:
    return ", ".join(sorted(k for k, n in counts.items() if n)) or "nothing"


def _selection_warnings(cfg: SiteConfig, in_data: dict) -> list[str]:
    """A selected value the data lacks is not an error (the data may grow into it), but it is said."""
    warnings = [f"languages: {lang} selected but the data has no {lang} reports (it has: {_has(in_data['languages'])})"
                for lang in cfg.languages if not in_data["languages"].get(lang)]
    warnings += [f"modalities: {m} selected but the data has no {m} studies (it has: {_has(in_data['modalities'])})"
                 for m in cfg.modalities if not in_data["modalities"].get(m)]
    return warnings


def _nothing_selected(cfg: SiteConfig, left_out: dict) -> DataError:
    in_data = left_out["in_data"]
    keys = [key for key, chosen in (("languages", cfg.languages), ("modalities", cfg.modalities))
            if not any(in_data[key].get(v) for v in chosen)] or ["languages", "modalities"]
    chosen = "; ".join(f"{key}: {', '.join(getattr(cfg, key))}" for key in keys)
    return DataError(cfg.source, f"{' and '.join(keys)}: selecting {chosen} leaves no training records to "
                                 f"contribute (the data has languages {_has(in_data['languages'])}, modalities "
                                 f"{_has(in_data['modalities'])})")
