"""The server half of the SecAgg+ seam (the client half is ``client/app/secagg.py``).

Flower 1.42 has SecAgg+ only on the legacy workflow (``SecAggPlusWorkflow`` over a
``LegacyContext`` and a legacy strategy). ``SecureGrid`` hides that behind the Grid the Message-API
strategy already talks to: a round's train messages go through the four protocol stages, and
each site that took part gets back a reply carrying only what the server is allowed to learn,
the aggregate (global + weighted mean of the masked updates) plus the site's clear metrics.
FedAvg of identical arrays is that aggregate, so ``ObjectiveRounds`` and its per-site round log,
checkpoints and evaluation work unchanged. When Flower moves SecAgg+ to the Message API, only
this file and its client twin change.

Quantisation (stated per round in the results): a site masks round(n_k/M·Q)/Q · update, clipped
to ±c and stochastically rounded to steps of 2c/Q. Against plain FedAvg of the same updates the
error per value is at most K·M/Σn·(2c/Q + max|update|/Q) ≤ 3·K·c·M/(Q·Σn) for K sites, weight
cap M = ``max_weight`` and Q = ``quantization_range``.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.common import FitIns, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.app.message_type import MessageType
from flwr.common.constant import ErrorCode
from flwr.common.secure_aggregation.secaggplus_constants import Key, RECORD_KEY_CONFIGS
from flwr.server import LegacyContext, ServerConfig
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.strategy import Strategy
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.serverapp import Grid

from client.app.secagg import CLIPPING_RANGE, KEYS, MAX_WEIGHT
from server.grid import DelegatingGrid
from shared_model.config import trained_keys
from shared_model.run_config import RunConfig


@dataclass(frozen=True, kw_only=True)
class SecAggConfig:
    """SecAgg+ settings (run config ``secagg-*``); fractions are of the sites in the round."""

    num_shares: float = RunConfig.secagg_num_shares  # >1: a count; ≤1: a fraction of the sampled sites
    reconstruction_threshold: float = RunConfig.secagg_reconstruction_threshold  # >1: a count; ≤1: of num_shares
    clipping_range: float = RunConfig.secagg_clipping_range  # on updates, not weights (checked at the site)
    quantization_range: int = 2 ** 22
    modulus_range: int = 2 ** 32
    timeout: float = RunConfig.secagg_timeout  # seconds per protocol stage; a site silent that long drops out
    max_weight: float = RunConfig.secagg_max_weight  # 0: the largest site's example count (sites.json, then last round)

    def __post_init__(self) -> None:
        if self.num_shares <= 0 or self.reconstruction_threshold <= 0:
            raise ValueError("secagg-num-shares and secagg-reconstruction-threshold must be > 0")
        if not self.clipping_range > 0 or self.timeout <= 0 or self.max_weight < 0:
            raise ValueError("secagg-clipping-range and secagg-timeout must be > 0, secagg-max-weight >= 0")
        if self.modulus_range <= self.quantization_range or self.modulus_range & (self.modulus_range - 1):
            raise ValueError("secagg-modulus-range must be a power of 2 above secagg-quantization-range")

    @classmethod
    def from_run(cls, run: RunConfig) -> "SecAggConfig":
        def count(value: float) -> float:  # Flower reads an int as a count and a float as a fraction
            return int(value) if value > 1 else float(value)
        return cls(num_shares=count(run.secagg_num_shares),
                   reconstruction_threshold=count(run.secagg_reconstruction_threshold),
                   clipping_range=run.secagg_clipping_range, timeout=run.secagg_timeout,
                   max_weight=run.secagg_max_weight)

    def error_bound(self, *, sites: int, total_examples: int, max_weight: float) -> float:
        """Largest difference per value from plain FedAvg of the same updates (module docstring)."""
        return 3 * sites * self.clipping_range * max_weight / (self.quantization_range * max(total_examples, 1))


class _Collect(Strategy):
    """The legacy strategy the workflow needs: hands out our instructions, keeps the results."""

    def __init__(self, instructions: list[tuple[GridClientProxy, FitIns]]) -> None:
        self.instructions, self.results = instructions, []

    def configure_fit(self, server_round, parameters, client_manager):
        return self.instructions

    def aggregate_fit(self, server_round, results, failures):
        self.results = results  # every FitRes now carries the unmasked aggregate
        return (results[0][1].parameters if results else None), {}

    def initialize_parameters(self, client_manager):
        return None

    def configure_evaluate(self, server_round, parameters, client_manager):
        return []

    def aggregate_evaluate(self, server_round, results, failures):
        return None, {}

    def evaluate(self, server_round, parameters):
        return None


class _SecAggPlus(SecAggPlusWorkflow):
    """Flower's workflow, except that a site lost before it shared its keys is not treated as dead.

    flwr 1.42 lists every site sampled at setup as "dead" at unmasking if it is not active, so
    a site that never shared keys (e.g. one that refused the app bundle) makes the others look up
    key shares they never received: a KeyError at every site and a lost round. After the
    share-keys stage only sites that shared can be dead: their masks are the ones to remove.
    """

    in_force: dict = {}  # the shares and threshold Flower settled on for this round's sites

    def share_keys_stage(self, grid, context, state) -> bool:
        self.in_force = {"num_shares": int(state.num_shares), "reconstruction_threshold": int(state.threshold)}
        ok = super().share_keys_stage(grid, context, state)
        state.sampled_node_ids = set(state.active_node_ids)
        return ok


class SecureGrid(DelegatingGrid):
    """A Grid whose train rounds run SecAgg+; everything else passes through to ``grid``."""

    def __init__(self, grid: Grid, context: Context, cfg: SecAggConfig, *, run_dir: Path | None = None) -> None:
        super().__init__(grid)
        self.context, self.cfg = context, cfg
        # Largest example count known: sites.json first, then every count a round reports.
        self.largest = float(max(_site_records(run_dir), default=0))
        self.rounds: dict[int, dict] = {}  # global round -> what the results state about the protocol
        self._errors: dict[int, str] = {}
        self._bytes: dict[int, int] = {}

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        messages = list(messages)
        if not messages or messages[0].metadata.message_type != MessageType.TRAIN or self._inside:
            return self._recorded(messages, timeout)
        return self._secure_round(messages)

    # -- one secure round ------------------------------------------------------------------
    _inside = False
    _in_force: dict = {}

    def _recorded(self, messages: list[Message], timeout: float | None) -> list[Message]:
        """Pass-through that, during the protocol, notes each site's error and masked-vector size."""
        replies = list(self.grid.send_and_receive(messages, timeout=timeout))
        if self._inside:
            for reply in replies:
                node = reply.metadata.src_node_id
                if reply.has_error():
                    self._errors.setdefault(node, reply.error.reason or f"error code {reply.error.code}")
                elif Key.MASKED_PARAMETERS in reply.content.config_records.get(RECORD_KEY_CONFIGS, {}):
                    masked = reply.content.config_records[RECORD_KEY_CONFIGS][Key.MASKED_PARAMETERS]
                    self._bytes[node] = sum(len(b) for b in masked)
        return replies

    def _secure_round(self, messages: list[Message]) -> list[Message]:
        arrays: ArrayRecord = messages[0].content["arrays"]
        config = dict(messages[0].content["config"])
        keys = list(arrays.keys())
        half = trained_keys(keys, str(config["objective"]))
        max_weight = self.cfg.max_weight or self.largest
        if max_weight <= 0:
            raise ValueError("secagg-max-weight is 0 and no site's example count is known yet: set "
                             "secagg-max-weight to the largest site's number of training examples")
        fit_config = {**config, KEYS: json.dumps(keys), MAX_WEIGHT: max_weight, CLIPPING_RANGE: self.cfg.clipping_range}
        parameters = ndarrays_to_parameters([arrays[k].numpy() for k in keys])
        collect = _Collect([(GridClientProxy(m.metadata.dst_node_id, self.grid, self.context.run_id),
                             FitIns(parameters, fit_config)) for m in messages])
        legacy = LegacyContext(context=Context(run_id=self.context.run_id, node_id=self.context.node_id,
                                               node_config=self.context.node_config, state=RecordDict(),
                                               run_config=self.context.run_config),
                               config=ServerConfig(num_rounds=1), strategy=collect)
        legacy.state.array_records["parameters"] = ArrayRecord()
        legacy.state.config_records["config"] = ConfigRecord({"current_round": int(config["global-round"])})
        workflow = _SecAggPlus(num_shares=self.cfg.num_shares,
                                      reconstruction_threshold=self.cfg.reconstruction_threshold,
                                      max_weight=max_weight, clipping_range=self.cfg.clipping_range,
                                      quantization_range=self.cfg.quantization_range,
                                      modulus_range=self.cfg.modulus_range, timeout=self.cfg.timeout)
        self._errors, self._bytes, self._inside = {}, {}, True
        try:
            workflow(self, legacy)
        finally:
            self._inside = False
        self._in_force = dict(workflow.in_force)
        return self._replies(messages, collect.results, arrays, half, max_weight)

    def _replies(self, messages: list[Message], results, arrays: ArrayRecord, half: list[str],
                 max_weight: float) -> list[Message]:
        by_node = {proxy.node_id: fitres for proxy, fitres in results}
        mean = parameters_to_ndarrays(results[0][1].parameters) if results else []
        aggregate = ArrayRecord({k: Array(_apply(arrays[k].numpy(), d)) for k, d in zip(half, mean, strict=True)}
                                ) if results else ArrayRecord()
        total = sum(r.num_examples for r in by_node.values())
        round_ = int(dict(messages[0].content["config"])["global-round"])
        self.rounds[round_] = {"protocol": "SecAgg+ (flwr 1.42, legacy workflow)", "completed": bool(results),
                               "sites_aggregated": len(by_node), "max_weight": max_weight,
                               "clipping_range": self.cfg.clipping_range, **self._in_force,
                               "quantization_error_bound": self.cfg.error_bound(
                                   sites=len(by_node), total_examples=total, max_weight=max_weight) if total else None}
        replies = []
        for msg in messages:
            node = msg.metadata.dst_node_id
            fitres = by_node.get(node)
            if fitres is None:
                reason = self._errors.get(node) or ("secure aggregation halted: fewer sites than the "
                                                    "reconstruction threshold; round skipped" if not results
                                                    else "dropped out during secure aggregation")
                replies.append(Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=msg))
                continue
            metrics = dict(fitres.metrics)
            status, name = metrics.pop("status", None), metrics.pop("site-name", None)
            metrics["bytes-up"] = self._bytes.get(node, 0)
            self.largest = max(self.largest, float(fitres.num_examples))
            content = RecordDict({"arrays": aggregate if fitres.num_examples else ArrayRecord(),
                                  "metrics": MetricRecord({k: v for k, v in metrics.items() if not isinstance(v, str)})})
            if status:
                content["status"] = ConfigRecord({"reason": str(status)})
            if name:
                content["site"] = ConfigRecord({"name": str(name)})
            replies.append(Message(content, reply_to=msg))
        return replies


def _apply(start: np.ndarray, update: np.ndarray) -> np.ndarray:
    """global + mean update; integer buffers (position ids) are not trained and keep their values."""
    if not np.issubdtype(start.dtype, np.floating):
        return start  # adding a ±1e-6 quantisation residue and casting back would truncate 63 to 62
    return np.asarray(start + update.reshape(start.shape), dtype=start.dtype)


def _site_records(run_dir: Path | None) -> list[int]:
    """Training-record counts of the sites, from a simulation's sites.json (none in deployment)."""
    path = None if run_dir is None else Path(run_dir) / "sites.json"
    if path is None or not path.is_file():
        return []
    return [int(n) for n in json.loads(path.read_text(encoding="utf-8")).get("records", {}).values()]
