"""What each site declares before its first round: the objectives it can train and its languages.

The server asks every node once (a Message-API ``query``) when the node first comes up for a
round; the ClientApp answers from its own data (``client.app.site.declaration``). The answer decides
whether a node is sent a round's model at all: a text-only site is not sent contrastive rounds
(before, it downloaded the whole model and replied "0 examples"). A node that does not answer,
or answers with an error, stays undeclared and is sent every round, as before: its round status
then says what went wrong. In a simulation the question also warms each worker (imports and the
site's decoded data), so a round's time is the round's own.
"""
from __future__ import annotations

import time
from collections.abc import Iterable

from flwr.app import ConfigRecord, Message, RecordDict
from flwr.app.message_type import MessageType
from flwr.serverapp import Grid

from privacy.ledger_head import HEAD_RECORD


class SiteDeclarations:
    """Declarations by node id; ``names``, ``epsilon`` and ``heads`` (a DP site's signed ledger head,
    ``server.receipts``) carry what the sites said about themselves."""

    def __init__(self, *, timeout: float) -> None:
        self.timeout = timeout
        self.by_node: dict[int, dict] = {}
        self.names: dict[int, str] = {}
        self.epsilon: dict[int, float] = {}
        self.heads: dict[int, dict] = {}
        self.seconds = 0.0  # time spent asking (not part of any round's seconds)
        self._asked: set[int] = set()

    def ask(self, grid: Grid, nodes: Iterable[int]) -> None:
        """Query the nodes not asked yet; wait at most ``timeout`` for their answers."""
        new = [n for n in nodes if n not in self._asked]
        if not new:
            return
        started = time.perf_counter()
        self._asked.update(new)
        messages = [Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=n, message_type=MessageType.QUERY)
                    for n in new]
        for reply in grid.send_and_receive(messages, timeout=self.timeout):
            if reply.has_error() or "declaration" not in reply.content.config_records:
                continue
            node = reply.metadata.src_node_id
            self.by_node[node] = dict(reply.content["declaration"])
            if "site" in reply.content.config_records:
                self.names[node] = str(reply.content["site"]["name"])
            metrics = reply.content.metric_records.get("metrics", {})  # a reply without any must not end the run
            if "epsilon" in metrics:
                self.epsilon[node] = float(metrics["epsilon"])
            if HEAD_RECORD in reply.content.config_records:
                self.heads[node] = dict(reply.content[HEAD_RECORD])
        self.seconds += time.perf_counter() - started

    def trains(self, node: int, objective: str) -> bool:
        """Whether to send ``node`` a round of ``objective`` (an undeclared node: yes)."""
        declared = self.by_node.get(node)
        return declared is None or objective in declared.get("objectives", [])

    def by_site(self) -> dict[str, dict]:
        """Declarations keyed by site name (for the results)."""
        return {self.names.get(node, f"node-{node}"): d for node, d in sorted(self.by_node.items())}
