"""The site's privacy ledger: append-only, hash-chained JSONL, one per site (and its patients).

Line 1 is the header (schema, dataset fingerprint, resolved policy, site, the public half of the
site's ledger signing key); each later line is one released round, or a ``dataset`` entry that
records a change of the site's data. ε is always rebuilt by replaying the file, never from a
cached accountant, so a restarted run cannot forget past spend; each entry holds the SHA-256 of
the line before it, so edited, dropped or reordered lines are detected (HIPAA audit controls, 45
CFR 164.312(b)); a signed head beside the file and the server's receipt of it detect a cut tail
or a deleted ledger (``privacy.ledger_head``).

The budget belongs to the patients, not to the file: when the site's data changes (records added,
corrected or removed) the same ledger goes on, with a ``dataset`` entry carrying the new
fingerprint, and ε keeps composing over every earlier round (conservative for the patients who
were there before). A (run, round) is charged at most once.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from privacy import accounting, ledger_head
from privacy.ledger_format import (  # noqa: F401 - re-exported: the ledger's public names stay here
    DATASET_KEYS, ENTRY_KEYS, HEADER_KEYS, SCHEMA, SIGNING_KEY, LedgerError, canonical, current_fingerprint,
    dataset_fingerprint, is_round, line_hash, read_lines, segments_of, verify_ledger,
)
from privacy.policy import MUTABLE_KEYS, PrivacyPolicy, check_delta


class Ledger:
    """One site's ledger. ``Ledger(path)`` reads an existing one (reports, audits); ``Ledger.open`` is the site's."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.header = read_lines(self.path)[0]
        self.policy = PrivacyPolicy.from_dict(self.header.get("policy"), source=f"{self.path} header")
        self._key = None  # the site's signing key, once the site has opened the ledger

    @classmethod
    def open(cls, path: str | Path, *, dataset_fingerprint: str, policy: PrivacyPolicy, site: str) -> Ledger:
        """The site's ledger: created, or reopened when it is this site's under this policy and anchored.

        Refuses (LedgerError) a ledger shorter than its signed head, a head without its ledger (a
        deleted ledger is not a fresh budget) and a head that does not match. Data that changed
        since the last round is recorded as a ``dataset`` entry: the spend carries over.
        """
        path = Path(path)
        if not path.exists():
            return cls._create(path, dataset_fingerprint=dataset_fingerprint, policy=policy, site=site)
        ledger, mine = cls(path), policy.to_dict()
        theirs = ledger.header
        # Training and pace keys may change (and are absent from ledgers started before they existed).
        changed = sorted(k for k in (set(theirs["policy"]) | set(mine)) - MUTABLE_KEYS
                         if theirs["policy"].get(k) != mine.get(k))
        if changed:
            diffs = "; ".join(f"{k}: ledger {theirs['policy'].get(k)!r}, given {mine.get(k)!r}" for k in changed)
            raise LedgerError(f"{path}: the policy differs from the one this ledger was started with ({diffs})")
        if theirs.get("site") != site:
            raise LedgerError(f"{path}: belongs to site {theirs.get('site')!r}, not {site!r}")
        _refuse_damaged(path)
        os.chmod(path, 0o600)  # ledgers written before were world-readable
        with ledger._locked() as f:
            lines = read_lines(path)
            ledger._check_head(lines)
            before = current_fingerprint(lines)
            if before != dataset_fingerprint:  # the same patients' budget goes on, whatever the file holds now
                entry = {"seq": len(lines), "prev_hash": line_hash(lines[-1]), "kind": "dataset",
                         "dataset_fingerprint": dataset_fingerprint, "previous_fingerprint": before,
                         "timestamp": _now()}
                entry["hash"] = line_hash(entry)
                f.seek(0, os.SEEK_END)
                _append(f, entry)
                ledger._sign([*lines, entry])
        return ledger

    @classmethod
    def _create(cls, path: Path, *, dataset_fingerprint: str, policy: PrivacyPolicy, site: str) -> Ledger:
        head = ledger_head.read_head(ledger_head.head_path(path))
        if head is not None:
            raise LedgerError(f"{path}: missing, but its signed head {ledger_head.head_path(path)} records "
                              f"{head.get('seq')} entries (ε = {head.get('epsilon')}): a deleted ledger is not a "
                              "fresh budget for the same patients; restore it from a backup")
        path.parent.mkdir(parents=True, exist_ok=True)
        key = ledger_head.load_key(ledger_head.key_path(path), create=True)
        header = {"schema": SCHEMA, "dataset_fingerprint": dataset_fingerprint, "policy": policy.to_dict(),
                  "site": site, "created": _now(), SIGNING_KEY: ledger_head.public_hex(key)}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # two processes cannot both create it
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            _append(f, header)
        ledger_head.sync_folder(path.parent)
        ledger = cls(path)
        with ledger._locked():
            ledger._check_head(read_lines(path))  # signs the first head
        return ledger

    @contextlib.contextmanager
    def _locked(self) -> Iterator[TextIO]:
        """The file, locked: reading the last line, appending and signing must not interleave with a writer."""
        with open(self.path, "r+", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield f

    def _check_head(self, lines: list[dict]) -> None:
        """Refuse a ledger its own signed head contradicts; sign one for a ledger that has none yet."""
        header_key = lines[0].get(SIGNING_KEY)
        kp, hp = ledger_head.key_path(self.path), ledger_head.head_path(self.path)
        key = ledger_head.load_key(kp, create=header_key is None)
        if key is None:
            raise LedgerError(f"{self.path}: its signing key {kp} is missing: restore it from a backup (without it "
                              "no new round can be signed)")
        if header_key is not None and ledger_head.public_hex(key) != header_key:
            raise LedgerError(f"{self.path}: the signing key {kp} is not the one this ledger was started with")
        self._key = key
        head = ledger_head.read_head(hp)
        if head is None:
            if header_key is not None and len(lines) > 1:
                raise LedgerError(f"{self.path}: its signed head {hp} is missing, so a cut tail cannot be ruled out: "
                                  "restore the head from a backup")
            self._sign(lines)  # a new ledger, or one from before signed heads: anchored from now on
            return
        problems = ledger_head.head_problems(lines, head, what=f"its signed head {hp.name}",
                                             public_key=ledger_head.public_hex(key))
        if problems:
            raise LedgerError(f"{self.path}: {problems[0]}; refusing to use it (restore the ledger from a backup; "
                              "a shorter ledger would refund spent budget)")
        if head["seq"] < len(lines) - 1:  # stopped between an append and its head: more spent, never less
            self._sign(lines)

    def _sign(self, lines: list[dict], *, epsilon: float | None = None) -> dict:
        eps = epsilon if epsilon is not None else accounting.epsilon(
            segments_of(lines), delta=self.policy.target_delta, accountant=self.policy.accountant)
        head = ledger_head.sign_head(self._key, site=lines[0]["site"], seq=len(lines) - 1,
                                     line_hash=line_hash(lines[-1]), header_hash=line_hash(lines[0]),
                                     dataset_fingerprint=current_fingerprint(lines), epsilon=eps)
        ledger_head.write_private(ledger_head.head_path(self.path), canonical(head) + b"\n")
        return head

    def head(self) -> dict | None:
        """The signed head beside the ledger (what the site reports with its ε)."""
        return ledger_head.read_head(ledger_head.head_path(self.path))

    def check_receipt(self, receipt: dict) -> str | None:
        """Refuse (LedgerError) a ledger shorter than the server's receipt of it, or not the one it was for.

        A receipt is a head this site signed and reported. One whose signature does not verify, or
        another site's, is ignored (returns why): the server cannot make one, and it could only
        make the site refuse, never spend. None: checked and consistent.
        """
        if not ledger_head.signature_ok(receipt):
            return "the server's receipt was ignored: its signature does not verify"
        if receipt["site"] != self.header["site"]:
            return f"the server's receipt was ignored: it is site {receipt['site']!r}'s"
        lines = read_lines(self.path)
        mine = lines[0].get(SIGNING_KEY) or (ledger_head.public_hex(self._key) if self._key else None)
        problems = ledger_head.head_problems(lines, receipt, what="the server's receipt (a head this site signed)",
                                             public_key=mine)
        if problems:
            raise LedgerError(f"{self.path}: {problems[0]}; refusing to train on it")
        return None

    def lines(self) -> list[dict]:
        return read_lines(self.path)

    def entries(self) -> list[dict]:
        """The released rounds (without ``dataset`` entries)."""
        return [e for e in read_lines(self.path)[1:] if is_round(e)]

    def charged(self, *, run_id: str, round: int) -> dict | None:
        """The entry that charged this (run, round), if one did: a round is charged at most once."""
        return _charged(read_lines(self.path), run_id, round)

    def segments(self) -> list[accounting.Segment]:
        """The (σ, q, steps) history, replayed from the file on every call."""
        return segments_of(read_lines(self.path))

    def epsilon(self) -> float:
        return accounting.epsilon(self.segments(), delta=self.policy.target_delta, accountant=self.policy.accountant)

    def would_exceed(self, *, noise_multiplier: float, sample_rate: float, steps: int) -> bool:
        """Ask before computing an update: would these steps take ε past the policy's target?"""
        return accounting.would_exceed(self.segments(), (noise_multiplier, sample_rate, steps),
                                       delta=self.policy.target_delta, target_epsilon=self.policy.target_epsilon,
                                       accountant=self.policy.accountant)

    def record(self, *, run_id: str, round: int, n_units: int, sample_rate: float, noise_multiplier: float,
               steps: int, commit: str | None = None, operator: str | None = None) -> dict:
        """Append and fsync one round's spend, then sign the new head; only then may the update leave.

        Writes nothing and raises when ε would pass the target, δ ≥ 1/N, steps is not a positive
        integer, this (run, round) is already charged, or the file is damaged or cut short: the
        caller must then discard the update, not send it.
        """
        p = self.policy
        check_delta(p, n_units)
        if isinstance(round, bool) or not isinstance(round, int):
            raise LedgerError(f"round must be an integer, got {round!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise LedgerError(f"steps must be an integer ≥ 1 (count optimizer steps, never epochs/q), got {steps!r}")
        with self._locked() as f:
            _refuse_damaged(self.path)
            lines = read_lines(self.path)
            self._check_head(lines)  # appending to a cut ledger would sign the cut
            done = _charged(lines, str(run_id), round)
            if done is not None:
                raise accounting.RoundRefused(f"round {round} of run {run_id} is already charged (ledger entry "
                                              f"{done['seq']}): a round is charged at most once")
            eps = accounting.epsilon([*segments_of(lines), (noise_multiplier, sample_rate, steps)],
                                     delta=p.target_delta, accountant=p.accountant)
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
            self._sign([*lines, entry], epsilon=eps)
        return entry


def _charged(lines: list[dict], run_id: str, round: int) -> dict | None:
    return next((e for e in lines[1:] if is_round(e) and e.get("run_id") == run_id and e.get("round") == round),
                None)


def _refuse_damaged(path: Path) -> None:
    problems = verify_ledger(path, check_epsilon=False, anchored=False)  # structure only: cheap before every write
    if problems:
        raise LedgerError(f"{path}: damaged ledger, refusing to extend it: {problems[0]}")


def _append(f: TextIO, obj: dict) -> None:
    f.write(canonical(obj).decode() + "\n")
    f.flush()
    os.fsync(f.fileno())  # durable on disk before the caller releases anything


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
