"""The site's privacy ledger: append-only, hash-chained JSONL, one per site and dataset.

Line 1 is the header (schema, dataset fingerprint, resolved policy, site); each later line is one
released round. ε is always rebuilt by replaying the file, never from a cached accountant, so a
restarted run cannot forget past spend; each entry holds the SHA-256 of the line before it, so
edited, dropped or reordered lines are detected (HIPAA audit controls, 45 CFR 164.312(b)).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from privacy import accounting
from privacy.policy import TRAINING_KEYS, PrivacyPolicy, check_delta

SCHEMA = "m3fed.ledger/1"
HEADER_KEYS = ("schema", "dataset_fingerprint", "policy", "site", "created")
ENTRY_KEYS = ("seq", "prev_hash", "run_id", "round", "unit", "n_units", "sample_rate", "noise_multiplier",
              "max_grad_norm", "steps", "accountant", "accountant_version", "epsilon_after", "delta",
              "commit", "operator", "timestamp", "hash")


class LedgerError(ValueError):
    """A ledger that cannot be read, opened or extended: missing, foreign or damaged."""


def canonical(obj: dict) -> bytes:
    """The bytes written and hashed: sorted keys, no spaces, no NaN, so any reader can recompute them."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def line_hash(obj: dict) -> str:
    return hashlib.sha256(canonical({k: v for k, v in obj.items() if k != "hash"})).hexdigest()


def dataset_fingerprint(items: Iterable[tuple[str, bytes | str]]) -> str:
    """SHA-256 over the sorted (id, SHA-256 of content) pairs: independent of order, changes with any record."""
    pairs: dict[str, str] = {}
    for item_id, content in items:
        if str(item_id) in pairs:
            raise LedgerError(f"duplicate id {item_id!r} in the dataset fingerprint")
        pairs[str(item_id)] = hashlib.sha256(content.encode() if isinstance(content, str) else content).hexdigest()
    digest = hashlib.sha256()
    for item_id in sorted(pairs):
        digest.update(canonical({"id": item_id, "sha256": pairs[item_id]}) + b"\n")
    return "sha256:" + digest.hexdigest()


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number a ledger may hold")


def read_lines(path: Path) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LedgerError(f"{path}: cannot read ledger: {getattr(exc, 'strerror', None) or exc}") from None
    lines = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            lines.append(json.loads(line, parse_constant=_no_constant))
        except ValueError as exc:  # JSONDecodeError is a ValueError
            raise LedgerError(f"{path}: line {n} is not valid ledger JSON ({exc})") from None
        if not isinstance(lines[-1], dict):
            raise LedgerError(f"{path}: line {n} is not a JSON object")
    if not lines or lines[0].get("schema") != SCHEMA:
        raise LedgerError(f"{path}: not an m3fed ledger (the first line must be a {SCHEMA} header)")
    return lines


class Ledger:
    """One site's ledger for one dataset. ``Ledger(path)`` reads an existing one (reports, audits)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.header = read_lines(self.path)[0]
        self.policy = PrivacyPolicy.from_dict(self.header.get("policy"), source=f"{self.path} header")

    @classmethod
    def open(cls, path: str | Path, *, dataset_fingerprint: str, policy: PrivacyPolicy, site: str) -> Ledger:
        """Create the ledger, or reopen it if it belongs to this dataset, policy and site."""
        path = Path(path)
        if not path.exists():
            header = {"schema": SCHEMA, "dataset_fingerprint": dataset_fingerprint, "policy": policy.to_dict(),
                      "site": site, "created": _now()}
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "x", encoding="utf-8") as f:  # "x": two processes cannot both create it
                _append(f, header)
            fd = os.open(path.parent, os.O_RDONLY)  # make the new directory entry durable too
            os.fsync(fd)
            os.close(fd)
            return cls(path)
        ledger, mine = cls(path), policy.to_dict()
        theirs = ledger.header
        if theirs.get("dataset_fingerprint") != dataset_fingerprint:
            raise LedgerError(f"{path}: belongs to dataset {theirs.get('dataset_fingerprint')}, not "
                              f"{dataset_fingerprint}; the budget belongs to the data: each dataset has its ledger")
        # Training keys may change (and are absent from ledgers started before they existed).
        changed = sorted(k for k in (set(theirs["policy"]) | set(mine)) - TRAINING_KEYS
                         if theirs["policy"].get(k) != mine.get(k))
        if changed:
            diffs = "; ".join(f"{k}: ledger {theirs['policy'].get(k)!r}, given {mine.get(k)!r}" for k in changed)
            raise LedgerError(f"{path}: the policy differs from the one this ledger was started with ({diffs})")
        if theirs.get("site") != site:
            raise LedgerError(f"{path}: belongs to site {theirs.get('site')!r}, not {site!r}")
        _refuse_damaged(path)
        return ledger

    def entries(self) -> list[dict]:
        return read_lines(self.path)[1:]

    def segments(self) -> list[accounting.Segment]:
        """The (σ, q, steps) history, replayed from the file on every call."""
        return accounting.normalize((e["noise_multiplier"], e["sample_rate"], e["steps"]) for e in self.entries())

    def epsilon(self) -> float:
        return accounting.epsilon(self.segments(), delta=self.policy.target_delta, accountant=self.policy.accountant)

    def would_exceed(self, *, noise_multiplier: float, sample_rate: float, steps: int) -> bool:
        """Ask before computing an update: would these steps take ε past the policy's target?"""
        return accounting.would_exceed(self.segments(), (noise_multiplier, sample_rate, steps),
                                       delta=self.policy.target_delta, target_epsilon=self.policy.target_epsilon,
                                       accountant=self.policy.accountant)

    def record(self, *, run_id: str, round: int, n_units: int, sample_rate: float, noise_multiplier: float,
               steps: int, commit: str | None = None, operator: str | None = None) -> dict:
        """Append and fsync one round's spend; only after this returns may the update leave the site.

        Writes nothing and raises when ε would pass the target, δ ≥ 1/N, steps is not a positive
        integer or the file is damaged: the caller must then discard the update, not send it.
        """
        p = self.policy
        check_delta(p, n_units)
        if isinstance(round, bool) or not isinstance(round, int):
            raise LedgerError(f"round must be an integer, got {round!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise LedgerError(f"steps must be an integer ≥ 1 (count optimizer steps, never epochs/q), got {steps!r}")
        with open(self.path, "r+", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # read-the-last-line-then-append must not interleave with a writer
            _refuse_damaged(self.path)
            lines = read_lines(self.path)
            history = [(e["noise_multiplier"], e["sample_rate"], e["steps"]) for e in lines[1:]]
            eps = accounting.epsilon([*history, (noise_multiplier, sample_rate, steps)], delta=p.target_delta,
                                     accountant=p.accountant)
            if eps > p.target_epsilon:
                raise accounting.PrivacyBudgetExhausted(epsilon=eps, target_epsilon=p.target_epsilon,
                                                        delta=p.target_delta, what="after this round")
            entry = {"seq": len(lines), "prev_hash": line_hash(lines[-1]), "run_id": str(run_id), "round": round,
                     "unit": p.unit, "n_units": n_units, "sample_rate": float(sample_rate),
                     "noise_multiplier": float(noise_multiplier), "max_grad_norm": p.max_grad_norm, "steps": steps,
                     "accountant": p.accountant, "accountant_version": accounting.accountant_version(p.accountant),
                     "epsilon_after": eps, "delta": p.target_delta, "commit": commit, "operator": operator,
                     "timestamp": _now()}
            entry["hash"] = line_hash(entry)
            f.seek(0, os.SEEK_END)
            _append(f, entry)
        return entry


def verify_ledger(path: str | Path, *, check_epsilon: bool = True) -> list[str]:
    """Every problem found: edited entries, broken chain, reordering, bad steps, ε not matching replay.

    A file that cannot be read or is no ledger at all raises LedgerError instead.
    """
    lines = read_lines(Path(path))
    problems = [] if set(lines[0]) == set(HEADER_KEYS) else [f"header: keys {sorted(lines[0])} are not "
                                                             f"{sorted(HEADER_KEYS)}"]
    try:
        policy = PrivacyPolicy.from_dict(lines[0].get("policy"), source="header")
    except ValueError as exc:
        return [*problems, f"header: {exc}"]
    history: list = []
    for n, (prev, e) in enumerate(zip(lines, lines[1:]), 2):
        where = f"line {n} (seq {e.get('seq')!r})"
        if set(e) != set(ENTRY_KEYS):
            problems.append(f"{where}: keys missing {sorted(set(ENTRY_KEYS) - set(e))}, "
                            f"unknown {sorted(set(e) - set(ENTRY_KEYS))}")
        if e.get("hash") != line_hash(e):
            problems.append(f"{where}: entry hash does not match its content (edited after it was written)")
        if e.get("prev_hash") != line_hash(prev):
            problems.append(f"{where}: prev_hash does not match line {n - 1} (lines removed, inserted or reordered)")
        if e.get("seq") != n - 1:
            problems.append(f"{where}: seq out of order, expected {n - 1}")
        if (e.get("accountant"), e.get("delta")) != (policy.accountant, policy.target_delta):
            problems.append(f"{where}: accountant/δ {e.get('accountant')!r}/{e.get('delta')!r} are not the "
                            f"policy's {policy.accountant!r}/{policy.target_delta!r}")
        try:
            history = accounting.normalize([*history, (e.get("noise_multiplier"), e.get("sample_rate"),
                                                       e.get("steps"))])
        except accounting.AccountingError as exc:
            problems.append(f"{where}: {exc}; ε cannot be replayed from here on")
            check_epsilon = False
            continue
        if check_epsilon:
            eps = accounting.epsilon(history, delta=policy.target_delta, accountant=policy.accountant)
            claimed = e.get("epsilon_after")
            if isinstance(claimed, bool) or not isinstance(claimed, (int, float)) or abs(claimed - eps) > 1e-6:
                problems.append(f"{where}: epsilon_after {claimed!r} but replaying the ledger gives {eps:.6f}")
    return problems


def _refuse_damaged(path: Path) -> None:
    problems = verify_ledger(path, check_epsilon=False)  # structure only: cheap enough before every write
    if problems:
        raise LedgerError(f"{path}: damaged ledger, refusing to extend it: {problems[0]}")


def _append(f: TextIO, obj: dict) -> None:
    f.write(canonical(obj).decode() + "\n")
    f.flush()
    os.fsync(f.fileno())  # durable on disk before the caller releases anything


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
