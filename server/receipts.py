"""The server's receipt of each site's ledger: the site's budget anchored outside the site.

Every ε a DP site states (its declaration, each train reply, each refusal) comes with the signed
head of its ledger (``privacy.ledger_head``). The server keeps the latest valid one per site as
``RUNDIR/receipts/<site>.json`` (kept across ``--resume``) and sends each node its own receipt
with every train message (``ledger-receipt``); the site refuses to train on a ledger shorter than
the receipt, or on another ledger than the one it was signed for (a deleted and restarted ledger).

A receipt only ever grows: a head is kept when its signature verifies under the key it names,
it is that site's, and it extends the kept receipt (same key and ledger header, no fewer
entries). The first head a site shows is trusted as its key (trust on first use); a site that
starts a new ledger on purpose (a new cohort, signed off by its privacy officer) needs the
operator to remove its receipt file. Under SecAgg+ the train replies travel in Flower's legacy
layout, which carries no head: receipts then come from the declarations only.
"""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path

from flwr.app import ConfigRecord, Message, RecordDict

from privacy.ledger_format import canonical
from privacy.ledger_head import HEAD_RECORD, RECEIPT_RECORD, signature_ok, write_private

log = logging.getLogger(__name__)
_SAFE = re.compile(r"[A-Za-z0-9._-]{1,63}")


class ReceiptStore:
    """Receipts by site name, in ``folder`` (one JSON file per site)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.events: list[str] = []  # heads not kept, and why (for the operator)

    def _path(self, site: str) -> Path | None:
        return self.folder / f"{site}.json" if _SAFE.fullmatch(site) and site not in (".", "..") else None

    def get(self, site: str) -> dict | None:
        path = self._path(site)
        if path is None or not path.is_file():
            return None
        try:
            receipt = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            self._note(f"{path}: unreadable receipt ignored ({exc})")
            return None
        return receipt if signature_ok(receipt) else None

    def offer(self, site: str, head: dict) -> bool:
        """Keep ``head`` as ``site``'s receipt if it is valid and extends the kept one; True if kept."""
        path = self._path(site)
        if path is None:
            return self._note(f"site name {site!r} cannot name a receipt file; head not kept")
        if not signature_ok(head):
            return self._note(f"{site}: ledger head with an invalid signature, not kept")
        if head["site"] != site:
            return self._note(f"{site}: sent site {head['site']!r}'s ledger head, not kept")
        kept = self.get(site)
        if kept is not None:
            if (head["public_key"], head["header_hash"]) != (kept["public_key"], kept["header_hash"]):
                return self._note(f"{site}: ledger head of another ledger than its receipt's (replaced?), not kept")
            if head["seq"] < kept["seq"]:
                return self._note(f"{site}: ledger head of {head['seq']} entries, its receipt has {kept['seq']} "
                                  "(a cut ledger?), not kept")
            if head == kept:
                return True
        self.folder.mkdir(parents=True, exist_ok=True)
        write_private(path, canonical(head) + b"\n")
        return True

    def take(self, replies: Iterable[Message], names: dict[int, str]) -> list[Message]:
        """Keep the heads that came with ``replies`` (before anything else reads or rebuilds them)."""
        replies = list(replies)
        for reply in replies:
            if reply.has_error() or HEAD_RECORD not in reply.content.config_records:
                continue
            self.offer(_name(reply, names), dict(reply.content[HEAD_RECORD]))
        return replies

    def attach(self, messages: Iterable[Message], names: dict[int, str], declarations=None) -> list[Message]:
        """Each node's train message with its own site's receipt (after the declarations' heads are kept)."""
        if declarations is not None:
            for node in [n for n in declarations.heads if n in names]:  # each declared head is offered once
                self.offer(names[node], declarations.heads.pop(node))
        out = []
        for message in messages:
            site = names.get(message.metadata.dst_node_id)
            receipt = self.get(site) if site else None
            if receipt is None:
                out.append(message)
                continue
            # Flower's strategies give every node the same RecordDict: a receipt needs a copy of its own.
            content = RecordDict({**dict(message.content.items()), RECEIPT_RECORD: ConfigRecord(receipt)})
            out.append(Message(content=content, dst_node_id=message.metadata.dst_node_id,
                               message_type=message.metadata.message_type))
        return out

    def _note(self, event: str) -> bool:
        self.events.append(event)
        log.warning(event)
        return False


def _name(reply: Message, names: dict[int, str]) -> str:
    if "site" in reply.content.config_records:
        return str(reply.content["site"]["name"])
    node = reply.metadata.src_node_id
    return names.get(node, f"node-{node}")
