"""Flower's own strategies (FedAvg, FedProx, FedAdam, or a robust aggregator), told which objective each round trains.

``ObjectiveRounds`` is mixed in front of the chosen Flower strategy: it names each round's
objective, keeps a per-site round log (status, examples, loss, bytes, seconds), sends a round only
to the sites that declared its objective (``server.declarations``), screens every reply before it
can reach an average (``server.screening``), asks the sites with images to evaluate locally on the
configured rounds, and stops the run when fewer than ``min_live_sites`` sites answer.

Flower ends the whole run (``InconsistentMessageReplies``) when the replies it aggregates differ in
their metric keys, so what reaches Flower is rebuilt from the screened reply: the completed arrays
and the one weight key, whatever else a site (DP or not) put in its metrics.
"""
from __future__ import annotations

import re
import time
from collections.abc import Iterable

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx

from server.aggregation import Aggregation
from server.declarations import SiteDeclarations
from server.screening import ScreeningConfig, Verdict, examples_of, screen_reply
from server.site_evaluation import SiteEvaluation, _finite, _integer
from shared_model.config import ALIASES, fill_aliases, trained_keys
from shared_model.schedule import check_schedule, objective_for
from shared_model.update_codec import SCALES, decode

STRATEGIES = {"fedavg": FedAvg, "fedprox": FedProx, "fedadam": FedAdam}


class TooFewSites(RuntimeError):
    """Fewer live sites than the configured minimum: the run stops cleanly after this round."""


class ObjectiveRounds(SiteEvaluation):
    """Mixin over a Flower strategy; every Flower keyword argument passes through unchanged."""

    def __init__(self, *, schedule: str, site_names: list[str], round_offset: int = 0, min_live_sites: int = 1,
                 total_rounds: int = 0, client_eval_every: int = 0,
                 declarations: SiteDeclarations | None = None,
                 screening: ScreeningConfig | None = ScreeningConfig(), aggregation: Aggregation = Aggregation(),
                 update_dtype: str = "fp32", **flower_kwargs) -> None:
        check_schedule(schedule)
        super().__init__(**flower_kwargs)
        # None under SecAgg+: each reply then carries the unmasked sum, never one site's update.
        self.screening, self.aggregation = screening, aggregation
        self.update_dtype = update_dtype  # what the sites send (shared_model.update_codec), decoded before screening
        self._verdicts: dict[int, Verdict] = {}  # id(reply) -> its screening, this round
        self._start: dict = {}  # this round's global trained tensors as numpy, for screening
        self._dtypes: dict = {}  # the sites' model dtypes (set from the first global sent)
        # Flower numbers a resumed run's rounds from 1 again; the offset keeps global round numbers.
        self.schedule, self.site_names, self.round_offset = schedule, site_names, round_offset
        self.min_live_sites, self.total_rounds, self.client_eval_every = min_live_sites, total_rounds, client_eval_every
        self.round_log: dict[int, dict] = {}
        self.site_eval: dict[int, dict] = {}
        self.privacy_statements: dict[str, dict] = {}  # each DP site's own statement, from its evaluate reply
        self._started: dict[int, float] = {}
        self._bytes_down = 0
        self._global = ArrayRecord()
        self._sent: list[int] = []  # node ids asked to train this round
        self._skipped: list[int] = []  # node ids not sent this round: they declared no data for it
        self._eval_skipped: list[int] = []  # node ids not asked to evaluate: they declared no images
        self.declarations = declarations
        self.receipts = None  # server.receipts.ReceiptStore: each DP site's ledger head, set by the ServerApp
        self._epsilon: dict[str, float] = {}  # each site's last stated ε (a round it sits out keeps it)
        self.node_names: dict[int, str] = {}  # deployed sites name themselves in their replies
        self.skip_round = None  # global round -> why nothing trains in it (early stopping), or None

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
                        ) -> Iterable[Message]:
        global_round = server_round + self.round_offset
        self._bytes_down = arrays.count_bytes()
        self._global, self._verdicts, self._start = arrays, {}, {}
        reason = self.skip_round(global_round) if self.skip_round else None
        if reason:  # early stopping ended this round's stage (shared_model.selection): nothing is sent
            self._sent, self._skipped = [], []
            self.round_log[global_round] = {"objective": objective_for(global_round, self.schedule), "sites": {},
                                            "seconds": 0.0, "skipped": reason}
            return []
        # The sites' model dtypes are the first global's (the model's own state dict): FedAdam's server
        # step hands back float64, which an honest site loads into its float32 model and sends as such.
        self._dtypes = self._dtypes or {k: arrays[k].numpy().dtype for k in arrays.keys()}
        objective = objective_for(global_round, self.schedule)
        config["objective"] = objective
        config["global-round"] = global_round
        messages = list(super().configure_train(server_round, arrays, config, grid))
        self._skipped = []
        if self.declarations is not None:
            self.declarations.ask(grid, [m.metadata.dst_node_id for m in messages])
            self.node_names.update(self.declarations.names)
            for node, eps in self.declarations.epsilon.items():
                self._epsilon.setdefault(self.node_names.get(node, f"node-{node}"), eps)
            self._skipped = [m.metadata.dst_node_id for m in messages
                             if not self.declarations.trains(m.metadata.dst_node_id, objective)]
            messages = [m for m in messages if m.metadata.dst_node_id not in self._skipped]
        messages = self.receipts.attach(messages, self.node_names, self.declarations) if self.receipts else messages
        self._sent = [m.metadata.dst_node_id for m in messages]
        self._started[global_round] = time.perf_counter()  # the declarations are not the round's time
        return messages

    def screen(self, server_round: int, replies: Iterable[Message]) -> list[Message]:
        """Check every reply (``server.screening``) before anything reads its update; a reply
        already screened this round is not checked again (``SiteLevelDP`` screens before it clips)."""
        replies = list(replies)
        objective = objective_for(server_round + self.round_offset, self.schedule)
        for reply in replies:
            if reply.has_error() or id(reply) in self._verdicts:
                continue
            if self.screening is None:  # SecAgg+: nothing single to check (the module docstring)
                n = examples_of(reply.content)
                self._verdicts[id(reply)] = Verdict(None, n if isinstance(n, int) else 0)
                continue
            if not self._start:
                self._start = {k: self._global[k].numpy().astype(self._dtypes.get(k, self._global[k].numpy().dtype),
                                                                 copy=False)
                               for k in trained_keys(self._global.keys(), objective)}
            problem = decoded(reply, self._start, self.update_dtype)
            if problem:
                self._verdicts[id(reply)] = Verdict(f"update-dtype {self.update_dtype}: {problem}")
                continue
            self._verdicts[id(reply)] = screen_reply(reply.content, start=self._start, objective=objective,
                                                     declared=self._declared(reply, objective), cfg=self.screening)
        return replies

    def accepted(self, reply: Message) -> bool:
        """Screened and passed, carries an update, and is not a refusal: it goes into the average."""
        verdict = self._verdicts.get(id(reply))
        return (not reply.has_error() and verdict is not None and verdict.problem is None and verdict.examples > 0
                and "status" not in reply.content.config_records)

    def _declared(self, reply: Message, objective: str) -> int | None:
        """The example count the site declared for ``objective`` (0: none); None: no declarations kept."""
        if self.declarations is None:
            return None
        value = self.declarations.by_node.get(reply.metadata.src_node_id, {}).get(f"examples-{objective}")
        return int(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        if self.round_log.get(server_round + self.round_offset, {}).get("skipped"):
            return None, None
        replies = self.receipts.take(replies, self.node_names) if self.receipts else replies
        replies = self.screen(server_round, replies)
        sites: dict[str, dict] = {}
        useful = []
        for reply in replies:
            if reply.has_error():
                name, reason = self._error_site(reply)
                sites[name] = {"status": f"error: {reason}", "examples": 0, "bytes_up": 0,
                               "bytes_down": self._bytes_down, "seconds": None, "epsilon": None}
                continue
            name, sites[name] = self._train_entry(reply)
            if sites[name]["epsilon"] is not None:
                self._epsilon[name] = sites[name]["epsilon"]
            if self.accepted(reply):
                useful.append(reply)
        for node in self._skipped:  # alive, and said so: only this objective is not theirs
            name = self.node_names.get(node, f"node-{node}")
            sites[name] = {"status": "no data for this objective", "examples": 0, "bytes_up": 0, "bytes_down": 0,
                           "seconds": None, "epsilon": self._epsilon.get(name)}
        # Simulated sites are known by name from the start; deployed ones by node until they first answer.
        silent = self.site_names or [self.node_names.get(node, f"node-{node}") for node in self._sent]
        for name in silent:
            sites.setdefault(name, {"status": "no reply within the round timeout", "examples": 0, "bytes_up": 0,
                                    "bytes_down": self._bytes_down, "seconds": None, "epsilon": None})
        global_round = server_round + self.round_offset
        # Seconds from sending the model to having every reply: the round's training, without evaluation.
        self.round_log[global_round] = {"objective": objective_for(global_round, self.schedule), "sites": sites,
                                        "seconds": self.round_seconds(global_round)}
        # A rejected reply answered, but an average is only as trustworthy as the updates in it.
        live = sum(not s["status"].startswith(("error", "no reply", "rejected")) for s in sites.values())
        exhausted = [n for n, s in sites.items() if s["status"].startswith(("budget", "ledger"))]  # site refusals
        if live < self.min_live_sites:  # too few to trust an average: keep the old model and stop
            self.round_log[global_round]["stopped"] = (
                f"only {live} site(s) answered round {global_round}; the minimum is {self.min_live_sites}")
            return None, None
        if exhausted and not useful:  # no site can train any more
            self.round_log[global_round]["stopped"] = (
                f"no site can train in round {global_round}: refused by the privacy policy or ledger at "
                f"{', '.join(sorted(exhausted))} (their round status says why)")
            return None, None
        if not useful:
            return None, None
        skipped = self.aggregation.prepare(self, len(useful))
        if skipped:
            self.round_log[global_round]["aggregation"] = skipped
            return None, None
        for reply in useful:
            self._normalise(reply)
        # Flower's round number restarts at 1 on resume; FedAdam's bias correction must see the global one.
        arrays, metrics = super().aggregate_train(global_round, useful)
        if arrays is not None:  # what no site trained stays bit-exact: a weighted mean of equal values need not be
            trained = set(trained_keys(self._global.keys(), objective_for(global_round, self.schedule)))
            for key in self._global.keys():
                if key not in trained and key not in ALIASES and key in arrays:
                    arrays[key] = self._global[key]
            fill_aliases(arrays)
        return arrays, metrics

    def _train_entry(self, reply: Message) -> tuple[str, dict]:
        """The site's round-log entry, read defensively: the reply may be anything a site sent."""
        content = reply.content
        m = content.metric_records.get("metrics") or MetricRecord()
        name = self._site_name(_integer(m.get("site-index"), -1), reply)
        verdict = self._verdicts[id(reply)]
        status_record = content.config_records.get("status")
        # A site may decline a round (its privacy budget): its own reason becomes the status.
        declined = str(status_record.get("reason", "declined"))[:300] if status_record is not None else None
        n = verdict.examples
        status = (f"rejected: {verdict.problem}" if verdict.problem
                  else declined or ("ok" if n else "no data for this objective"))
        entry = {"status": status, "examples": n if status == "ok" else 0,
                 "loss": _finite(m.get("loss")) if status == "ok" else None,
                 "bytes_up": _integer(m.get("bytes-up"), 0), "bytes_down": self._bytes_down,
                 "seconds": _finite(m.get("seconds")), "epsilon": _finite(m.get("epsilon"))}
        if verdict.update_norm is not None:
            entry["update_norm"] = verdict.update_norm
        return name, entry

    def _normalise(self, reply: Message) -> None:
        """What Flower aggregates: the completed arrays and the weight key only, the same for every site."""
        arrays = reply.content["arrays"]
        self._complete(arrays)
        n = self._verdicts[id(reply)].examples
        # Any other weight key is site-level DP's: every site weighs the same.
        weight = n if self.weighted_by_key == "num-examples" else 1.0
        reply.content = RecordDict({"arrays": arrays, "metrics": MetricRecord({self.weighted_by_key: weight})})

    def _complete(self, arrays: ArrayRecord) -> None:
        """Sites send back only what their objective trained (each tied tensor once); the rest is the global copy."""
        for key in self._global:
            if key not in arrays:
                arrays[key] = self._global[key]
        fill_aliases(arrays)

    def _site_name(self, index: int, reply: Message) -> str:
        node = reply.metadata.src_node_id
        if "name" in reply.content.config_records.get("site", {}):  # the site's own name (its node config)
            self.node_names[node] = str(reply.content["site"]["name"])[:100]
            return self.node_names[node]
        if 0 <= index < len(self.site_names):
            return self.site_names[index]
        return self.node_names.get(node, f"node-{node}")

    def _error_site(self, reply: Message) -> tuple[str, str]:
        """Site name and a one-line reason; our ClientApp (and a site's app guard) prefix errors with
        ``[site N]`` (a simulated site's index) or ``[site NAME]`` (a deployed site)."""
        reason = (reply.error.reason or f"error code {reply.error.code}").strip()
        node = reply.metadata.src_node_id
        match = re.match(r"\[site ([^\]\s]+)\] (.*)", reason, re.S)
        if match:
            label = match.group(1)
            if re.fullmatch(r"-?\d+", label):
                name = self.site_names[int(label)] if 0 <= int(label) < len(self.site_names) else None
            else:
                name = self.node_names.setdefault(node, label)
            if name:
                return name, match.group(2)[:300]
        # Flower's own errors (crash, node unavailable) carry tracebacks: keep the last line.
        return self.node_names.get(node, f"node-{node}"), reason.splitlines()[-1][:300]

    def round_seconds(self, global_round: int) -> float:
        return time.perf_counter() - self._started.get(global_round, time.perf_counter())


def decoded(reply: Message, start: dict, dtype: str) -> str | None:
    """Replace a compressed reply's update by the fp32 weights it encodes (``shared_model.update_codec``),
    in place; what is wrong with it, if anything (screening then checks the weights as for any reply)."""
    content = reply.content
    if dtype == "fp32" or "arrays" not in content.array_records:
        return None
    try:
        arrays = {k: v.numpy() for k, v in content["arrays"].items()}
        scales = {k: v.numpy() for k, v in content[SCALES].items()} if SCALES in content.array_records else {}
    except Exception as exc:  # noqa: BLE001 - whatever the bytes are, the reply is unreadable
        return f"unreadable update ({type(exc).__name__})"
    weights, problem = decode(arrays, scales, start, dtype)
    if problem:
        return problem
    records = {k: v for k, v in content.items() if k != SCALES}
    # np.asarray, not np.ascontiguousarray: that one makes a 0-d tensor (CLIP's temperature) shape (1,).
    records["arrays"] = ArrayRecord({k: Array(np.asarray(v)) for k, v in weights.items()})
    reply.content = RecordDict(records)
    return None


def make_strategy(name: str, *, options: dict | None = None, aggregation: Aggregation = Aggregation(),
                  **kwargs) -> FedAvg:
    """``fedavg`` | ``fedprox`` (options: proximal_mu) | ``fedadam`` (options: eta, eta_l, beta_1, beta_2, tau);
    with a robust ``aggregation`` (``server.aggregation``), Flower's class for it over FedAvg's rounds."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    aggregation.check(strategy=name, secagg=False, site_dp=False)
    base = aggregation.flower_class() if aggregation.robust else STRATEGIES[name]
    cls = type(f"Objective{base.__name__}", (ObjectiveRounds, base), {})
    return cls(**kwargs, aggregation=aggregation, **(options or {}), **aggregation.options())
