"""The ledger's file format and its checks: what any reader (a site, an auditor, a report) needs.

``privacy.ledger`` writes ledgers; this module reads and verifies them: the canonical bytes that
are hashed and signed, the hash chain, the replay of ε, and the signed head beside the file
(``privacy.ledger_head``) that shows a cut tail.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from privacy import accounting
from privacy.policy import PrivacyPolicy

SCHEMA = "m3fed.ledger/1"
HEADER_KEYS = ("schema", "dataset_fingerprint", "policy", "site", "created")
SIGNING_KEY = "signing_key"  # header key of ledgers started since signed heads; older ledgers lack it
ENTRY_KEYS = ("seq", "prev_hash", "run_id", "round", "unit", "n_units", "sample_rate", "noise_multiplier",
              "max_grad_norm", "steps", "accountant", "accountant_version", "epsilon_after", "delta",
              "commit", "operator", "timestamp", "hash")
DATASET_KEYS = ("seq", "prev_hash", "kind", "dataset_fingerprint", "previous_fingerprint", "timestamp", "hash")


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


def is_round(line: dict) -> bool:
    """A released round (rounds carry no ``kind``; ledgers from before dataset entries hold only rounds)."""
    return "kind" not in line


def current_fingerprint(lines: list[dict]) -> str | None:
    """The dataset the ledger now belongs to: its last ``dataset`` entry's, else the header's."""
    changes = [e for e in lines[1:] if e.get("kind") == "dataset"]
    return (changes[-1] if changes else lines[0]).get("dataset_fingerprint")


def segments_of(lines: list[dict]) -> list[accounting.Segment]:
    """The (σ, q, steps) history of a ledger's lines."""
    return accounting.normalize((e["noise_multiplier"], e["sample_rate"], e["steps"])
                                for e in lines[1:] if is_round(e))


def verify_ledger(path: str | Path, *, check_epsilon: bool = True, anchored: bool = True,
                  head: Path | None = None) -> list[str]:
    """Every problem found: edited entries, broken chain, reordering, bad steps, ε not matching replay,
    and (``anchored``) a tail cut off or a head that does not match (``head``: default beside the file).

    A file that cannot be read or is no ledger at all raises LedgerError instead.
    """
    lines = read_lines(Path(path))
    extra = set(lines[0]) - set(HEADER_KEYS) - {SIGNING_KEY}
    problems = [] if set(HEADER_KEYS) <= set(lines[0]) and not extra else [
        f"header: keys {sorted(lines[0])} are not {sorted(HEADER_KEYS)} (and optionally {SIGNING_KEY})"]
    try:
        policy = PrivacyPolicy.from_dict(lines[0].get("policy"), source="header")
    except ValueError as exc:
        return [*problems, f"header: {exc}"]
    history: list = []
    for n, (prev, e) in enumerate(zip(lines, lines[1:]), 2):
        where = f"line {n} (seq {e.get('seq')!r})"
        keys = ENTRY_KEYS if is_round(e) else DATASET_KEYS
        if set(e) != set(keys):
            problems.append(f"{where}: keys missing {sorted(set(keys) - set(e))}, unknown {sorted(set(e) - set(keys))}")
        if e.get("hash") != line_hash(e):
            problems.append(f"{where}: entry hash does not match its content (edited after it was written)")
        if e.get("prev_hash") != line_hash(prev):
            problems.append(f"{where}: prev_hash does not match line {n - 1} (lines removed, inserted or reordered)")
        if e.get("seq") != n - 1:
            problems.append(f"{where}: seq out of order, expected {n - 1}")
        if not is_round(e):
            if e.get("kind") != "dataset":
                problems.append(f"{where}: unknown entry kind {e.get('kind')!r}")
            continue
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
    if anchored:
        problems += anchor_problems(lines, head or _head().head_path(Path(path)))
    return problems


def anchor_problems(lines: list[dict], head_file: Path) -> list[str]:
    """The ledger against its signed head: a cut tail ("truncated: ..."), a missing or foreign head."""
    head = _head().read_head(head_file)
    if head is None:
        if lines[0].get(SIGNING_KEY) is not None:
            return [f"no signed head ({head_file}): a ledger started with a signing key must have one; a cut tail "
                    "cannot be ruled out without it"]
        return []  # a ledger from before signed heads that no site has opened since: nothing to check against
    return _head().head_problems(lines, head, what=f"its signed head ({head_file})",
                                     public_key=lines[0].get(SIGNING_KEY))


def _head():
    from privacy import ledger_head  # it imports this module

    return ledger_head
