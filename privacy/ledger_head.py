"""The signed head of a site's ledger: what anchors the ledger outside its own file.

A hash chain shows edited, inserted or reordered lines, but not a tail cut off: a ledger of 4
rounds cut to 2 still chains, and replays to less ε. So after every append the site signs the
chain's head (number of entries, hash of the last line, hash of the header, dataset fingerprint,
ε) with its own Ed25519 key (``cryptography``) and keeps it beside the ledger
(``<ledger>.head.json``, key ``<ledger>.key``, both mode 0600). The same head travels with every ε
the site reports; the server keeps the latest one as the site's *receipt*
(``server/receipts.py``, ``RUNDIR/receipts/<site>.json``) and shows it to the site with every
later round. A site refuses to train on a ledger shorter than its own head or than the receipt,
or on a ledger that is not the one the receipt was signed for.

What each part guards against. The head beside the ledger: a ledger cut short or deleted by
accident, by a restore of an older backup, or by hand. It cannot stop someone who holds the
site's key (it sits next to the ledger) from signing a shorter head; the receipt can: the server
already holds a head the site signed, which only the site's key could have made, and a site
refuses a ledger shorter than it. The signature is also what lets a site ignore a receipt the
server made up (it only ever makes the site refuse, never spend), and lets an auditor prove a cut.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from privacy.ledger_format import LedgerError, canonical, line_hash

HEAD_SCHEMA = "m3fed.ledger-head/1"
# Flower record names: the head a site sends with its ε, the receipt the server sends back.
HEAD_RECORD, RECEIPT_RECORD = "ledger-head", "ledger-receipt"
HEAD_KEYS = ("schema", "site", "seq", "line_hash", "header_hash", "dataset_fingerprint", "epsilon", "public_key",
             "signature")


def head_path(ledger: Path) -> Path:
    return ledger.with_name(ledger.stem + ".head.json")


def key_path(ledger: Path) -> Path:
    return ledger.with_name(ledger.stem + ".key")


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically (temp file, fsync, rename, fsync the folder), mode 0600."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)  # a new or renamed directory entry must be durable too
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_key(path: Path, *, create: bool) -> Ed25519PrivateKey | None:
    """The site's ledger signing key; a new one (mode 0600, never overwritten) when ``create`` and absent."""
    if not path.exists():
        if not create:
            return None
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # two processes cannot both make one
        try:
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        sync_folder(path.parent)
        return key
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise LedgerError(f"{path}: cannot read the ledger signing key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise LedgerError(f"{path}: not an Ed25519 private key")
    return key


def public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def _signed_bytes(head: dict) -> bytes:
    return canonical({k: v for k, v in head.items() if k != "signature"})


def sign_head(key: Ed25519PrivateKey, **fields) -> dict:
    head = {"schema": HEAD_SCHEMA, **fields, "public_key": public_hex(key)}
    return {**head, "signature": key.sign(_signed_bytes(head)).hex()}


def signature_ok(head: dict) -> bool:
    """Whether ``head`` is well-formed and signed by the key it names (anyone can check; nobody else can sign)."""
    if not isinstance(head, dict) or set(head) != set(HEAD_KEYS) or head.get("schema") != HEAD_SCHEMA:
        return False
    try:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(str(head["public_key"])))
        public.verify(bytes.fromhex(str(head["signature"])), _signed_bytes(head))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def read_head(path: Path) -> dict | None:
    """The head file, None when there is none; one that cannot be read is a LedgerError."""
    try:
        head = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise LedgerError(f"{path}: cannot read the ledger's signed head ({exc})") from None
    if not isinstance(head, dict):
        raise LedgerError(f"{path}: not a signed ledger head")
    return head


def head_problems(lines: list[dict], head: dict, *, what: str, public_key: str | None) -> list[str]:
    """What ``head`` (the file beside the ledger, or a server's receipt) says that ``lines`` contradict.

    ``public_key``: the key the ledger was started with (its header's), None for a ledger older
    than signed heads. The first problem is the one to show; a cut tail says "truncated".
    """
    if not signature_ok(head):
        return [f"{what}: signature invalid (not a head this site signed, or edited after it was signed)"]
    if public_key is not None and head["public_key"] != public_key:
        return [f"{what}: signed by another key than this ledger's: the ledger was replaced"]
    if head["header_hash"] != line_hash(lines[0]):
        return [f"{what}: signed for another ledger (header hash {str(head['header_hash'])[:12]}…, this "
                f"ledger's {line_hash(lines[0])[:12]}…): the ledger was replaced"]
    have, seq = len(lines) - 1, head["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        return [f"{what}: seq {seq!r} is not an entry count"]
    if seq > have:
        return [f"truncated: the ledger has {have} entries but {what} says {seq} (ε = {head['epsilon']:.4f}): "
                f"{seq - have} entr{'y' if seq - have == 1 else 'ies'} missing from its end"]
    if line_hash(lines[seq]) != head["line_hash"]:
        return [f"{what}: entry {seq} is not the one that was signed (the ledger was rewritten from there)"]
    return []
