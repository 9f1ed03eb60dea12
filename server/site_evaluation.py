"""The sites' own evaluation of the global model: their test patients, and their validate patients.

Mixed into ``server.strategy.ObjectiveRounds``. Sites with images are asked to evaluate on their
test patients on the configured rounds (``client-eval-every``; always the last round). In a
deployment with model selection on (``shared_model.selection``), they also score every round on
their own validate patients (``validate_rounds``), AUC and, for a report-generation stage, BLEU-4;
the server selects on the image-weighted mean (``federated_metrics``). Each site's release policy
decides whether its numbers leave it ("metrics withheld by the site's privacy policy").
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid

from shared_model.selection import VALIDATE_PREFIX



class SiteEvaluation:
    """``configure_evaluate`` / ``aggregate_evaluate`` for ``ObjectiveRounds`` (which sets the state used here)."""

    # In a deployment with selection on, the metric each round's validation selects on (round -> "auc" | "bleu4").
    validate_rounds = None

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
                           ) -> Iterable[Message]:
        global_round = server_round + self.round_offset
        self._eval_skipped = []  # Flower calls aggregate_evaluate every round, asked or not
        log = self.round_log.get(global_round, {})
        if log.get("stopped") or log.get("skipped"):
            return []
        test = global_round == self.total_rounds or (
            self.client_eval_every > 0 and global_round % self.client_eval_every == 0)
        metric = self.validate_rounds(global_round) if self.validate_rounds else None
        return self.evaluation_messages(server_round, arrays, config, grid, test=test, validate=metric)

    def evaluation_messages(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid, *,
                            test: bool, validate: str | None) -> list[Message]:
        """Messages asking the sites with images to score ``arrays`` on their test and/or validate patients."""
        if not test and not validate:
            return []
        config["global-round"] = server_round + self.round_offset
        config["splits"] = ",".join(s for s, on in (("test", test), ("validate", validate)) if on)
        config["validate-reports"] = int(validate == "bleu4")
        messages = list(super().configure_evaluate(server_round, arrays, config, grid))
        # A site that declared no images has no test images to score: it is not sent the model.
        imageless = {node for node, d in (self.declarations.by_node if self.declarations else {}).items()
                     if not d.get("images", True)}
        self._eval_skipped = [m.metadata.dst_node_id for m in messages if m.metadata.dst_node_id in imageless]
        return [m for m in messages if m.metadata.dst_node_id not in imageless]

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """Keep each site's own metrics (in its language) rather than only their average."""
        per_site = self.evaluation_entries(server_round, replies)
        if per_site:
            self.site_eval[server_round + self.round_offset] = per_site
        return None

    def evaluation_entries(self, server_round: int, replies: Iterable[Message]) -> dict[str, dict]:
        per_site = {self.node_names.get(node, f"node-{node}"): {"status": "not asked: the site declared no images",
                                                                 "test_images": 0} for node in self._eval_skipped}
        for reply in replies:
            if reply.has_error():
                name, reason = self._error_site(reply)
                per_site[name] = {"status": f"error: {reason}"}
                continue
            m = reply.content.metric_records.get("metrics") or MetricRecord()
            name = self._site_name(_integer(m.get("site-index"), -1), reply)
            per_site[name] = evaluation_entry(m)
            statement = site_statement(reply.content.config_records.get("privacy-statement"))
            if statement is not None:
                self.privacy_statements[name] = {**statement, "reported_in_round": server_round + self.round_offset}
        return per_site

    def evaluate_once(self, grid: Grid, arrays: ArrayRecord, *, server_round: int, timeout: float) -> dict[str, dict]:
        """The sites score ``arrays`` on their test patients outside the round loop (the selected model)."""
        messages = self.evaluation_messages(server_round, arrays, ConfigRecord({}), grid, test=True, validate=None)
        return self.evaluation_entries(server_round, grid.send_and_receive(messages, timeout=timeout))


def _integer(value, default: int) -> int:
    return int(value) if isinstance(value, (int, float)) and math.isfinite(value) else default


def _finite(value) -> float | None:
    """A site's stated number, or None (not stated, or NaN: what a DP site that withholds it sends)."""
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def site_statement(record) -> dict | None:
    """A deployed DP site's privacy statement (``privacy.statement``, built from its own ledger), as it
    sent it with its evaluation; anything that is not a small JSON object is ignored."""
    text = (record or {}).get("json")
    if not isinstance(text, str) or len(text) > 64_000:
        return None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return None
    # A site whose ledger fails verification says so (``verified: false``, its problems, no ε): shown as is.
    if isinstance(doc, dict) and (isinstance(doc.get("epsilon"), (int, float)) or doc.get("verified") is False):
        return doc
    return None


def evaluation_entry(m: MetricRecord) -> dict:
    """A site's evaluation metrics (test and/or validate), or why they are not used (metrics are
    fractions, counts whole)."""
    tested, validated = "num-examples" in m, f"{VALIDATE_PREFIX}num-examples" in m
    counts = [m.get(f"{p}num-examples") for p, on in (("", tested), (VALIDATE_PREFIX, validated)) if on]
    if not counts or not all(_count(c) for c in counts):
        return {"status": "rejected: num-examples is not a count"}
    if "withheld" in m:  # the site's privacy policy does not release evaluation metrics
        return {"status": "metrics withheld by the site's privacy policy", "test_images": counts[0]}
    entry: dict = {}
    for prefix, on in (("", tested), (VALIDATE_PREFIX, validated)):
        if on:
            scores, problem = _scores(m, prefix)
            if problem:
                return {"status": f"rejected: {problem} is not a fraction in [0, 1]"}
            if prefix:
                entry["validate"] = scores
            else:
                entry.update(scores)
    return {"status": "ok", **entry}


def _count(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= 0


def _scores(m: MetricRecord, prefix: str) -> tuple[dict, str | None]:
    """One split's numbers (``prefix`` "" for test, "val-" for validate), or the first bad key."""
    images = m.get(f"{prefix}num-examples")
    scores = {k: m.get(f"{prefix}{k}") for k in ("auc-macro", "bleu4")}
    scores.update({k.removeprefix(prefix): v for k, v in m.items()
                   if k.startswith(f"{prefix}bleu4-") and (prefix or not k.startswith(VALIDATE_PREFIX))})
    for key, value in scores.items():
        if key == "bleu4" and value is None and prefix:
            continue  # validation on an AUC-selected round generates no reports
        if not isinstance(value, (int, float)) or (math.isfinite(value) and not 0 <= value <= 1) or (
                not math.isfinite(value) and key != "auc-macro"):
            return {}, f"{prefix}{key}"
    bleu = scores["bleu4"]
    return ({"test_images" if not prefix else "images": images, "auc_macro": _finite(scores["auc-macro"]),
             "bleu4": float(bleu) if images and bleu is not None else None,
             "bleu4_by_language": {k.removeprefix("bleu4-"): float(v) for k, v in scores.items()
                                   if k.startswith("bleu4-")}}, None)
