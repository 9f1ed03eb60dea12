"""Site-level (client-level) DP: the whole of one hospital's contribution is the protected unit.

Flower 1.42's ``DifferentialPrivacyServerSideFixedClipping`` cannot wrap m3fed's strategy as it is:
its clipping pairs a reply's arrays with the global model by position (our sites send back only
the half their objective trained), it adds noise to every array of the aggregate (integer
position ids included), and its accountant accepts only an unmodified ``FedAvg.aggregate_train``.
``SiteLevelDP`` is the same mechanism (DP-FedAvg with fixed clipping, McMahan et al. 2018) around
our strategy, built from Flower's own pieces: its clipping and noise helpers
(``flwr.supercore.differential_privacy``) and its RDP accountant (``RdpAccountant``, which
wraps Google ``dp-accounting``).

Each round: every site's update of the trained half is clipped to L2 norm C; the new global is
global + (Σ clipped updates) / K + N(0, (z·C/K)²) per value, K being the number of sites the round
was sent to (a site that fails, has nothing to train or whose reply screening rejects counts as a
zero update, so K never depends on private data); sites weigh equally. Replies are screened
(``server.screening``) before they are clipped: a NaN or inf update never reaches the clipping.
Every site is asked every round (no sampling amplification), so R released rounds compose R
Gaussian mechanisms with multiplier z under add/remove-one-site. The server sees the clear,
unclipped updates: this protects against everyone who sees the model, not against the server
(use record-level DP at the sites for that).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from flwr.supercore.differential_privacy import add_gaussian_noise_inplace, compute_clip_model_update, compute_stdv
from flwr.supercore.privacy_accounting import (GaussianPrivacyEvent, NeighboringRelation, PrivacyConfig,
                                               SamplingMethod)
from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

from shared_model.config import fill_aliases, trained_keys
from shared_model.run_config import RunConfig
from shared_model.schedule import objective_for

WEIGHT_KEY = "site-weight"  # the equal weight each reply gets (Flower's FedAvg weights by a metric)


@dataclass(frozen=True, kw_only=True)
class SiteDPConfig:
    """Run config ``site-dp-*``; ``noise_multiplier`` 0 means off."""

    noise_multiplier: float = RunConfig.site_dp_noise_multiplier
    clipping_norm: float = RunConfig.site_dp_clipping_norm
    delta: float = RunConfig.site_dp_delta
    max_epsilon: float = RunConfig.site_dp_max_epsilon  # 0: no limit; otherwise the run stops before a round would exceed it

    def __post_init__(self) -> None:
        # Named as flag / run-config key: the same checks serve `m3fed sim` and `m3fed run`.
        if self.noise_multiplier < 0:
            raise ValueError(f"site-level DP noise multiplier (--site-dp / site-dp-noise-multiplier) must be >= 0, "
                             f"got {self.noise_multiplier}")
        if not self.clipping_norm > 0:
            raise ValueError(f"site-level DP clipping norm (--site-dp-clip / site-dp-clipping-norm) must be > 0, "
                             f"got {self.clipping_norm}")
        if self.max_epsilon < 0:
            raise ValueError(f"--site-dp-max-epsilon / site-dp-max-epsilon must be >= 0, got {self.max_epsilon}")
        if not 0 < self.delta < 1:
            raise ValueError(f"--site-dp-delta / site-dp-delta must be in (0, 1), got {self.delta}")

    @property
    def on(self) -> bool:
        return self.noise_multiplier > 0

    def check_compatible(self, *, strategy: str, secagg: bool) -> None:
        """It clips clear updates at the server and adds its noise to a plain mean."""
        if self.on and secagg:
            raise ValueError("site-level DP clips each site's update at the server, which SecAgg+ hides: "
                             "use one or the other")
        if self.on and strategy == "fedadam":
            raise ValueError("site-level DP adds its noise to the mean update, before any server optimiser; "
                             "FedAdam's would run after it: use fedavg or fedprox")

    @classmethod
    def from_run(cls, run: RunConfig) -> "SiteDPConfig":
        return cls(noise_multiplier=run.site_dp_noise_multiplier, clipping_norm=run.site_dp_clipping_norm,
                   delta=run.site_dp_delta, max_epsilon=run.site_dp_max_epsilon)


def site_level_epsilon(*, noise_multiplier: float, rounds: int, delta: float) -> float:
    """ε after ``rounds`` released rounds, from Flower's RDP accountant (no sampling amplification,
    so the population size does not enter)."""
    if rounds == 0:
        return 0.0
    accountant = RdpAccountant(PrivacyConfig(target_delta=delta, population_size=1,
                                             neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
                                             sampling_method=SamplingMethod.NO_AMPLIFICATION))
    accountant.compose(GaussianPrivacyEvent(noise_multiplier=noise_multiplier, sample_size=1, population_size=1),
                       count=rounds)
    return accountant.get_epsilon(delta)


class SiteLevelDP(Strategy):
    """Wraps an ``ObjectiveRounds`` strategy built with ``weighted_by_key=WEIGHT_KEY``."""

    def __init__(self, strategy, cfg: SiteDPConfig, *, released: int = 0) -> None:
        if not cfg.on:
            raise ValueError("site-level DP needs site-dp-noise-multiplier > 0")
        if strategy.weighted_by_key != WEIGHT_KEY:
            raise ValueError(f"site-level DP needs equal site weights: build the strategy with "
                             f"weighted_by_key={WEIGHT_KEY!r}")
        self.strategy, self.cfg = strategy, cfg
        self.released = released  # rounds already released (a resumed run's earlier rounds count)
        self.rounds: dict[int, dict] = {}  # global round -> what the results state about it
        self._global, self._sent = ArrayRecord(), 0

    def __getattr__(self, name: str):  # round_log, site_eval, node_names… are the inner strategy's
        if name == "strategy":
            raise AttributeError(name)
        return getattr(self.strategy, name)

    def epsilon(self, released: int | None = None) -> float:
        return site_level_epsilon(noise_multiplier=self.cfg.noise_multiplier,
                                  rounds=self.released if released is None else released, delta=self.cfg.delta)

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
                        ) -> Iterable[Message]:
        global_round = server_round + self.strategy.round_offset
        after = self.epsilon(self.released + 1) if self.cfg.max_epsilon else 0.0
        if after > self.cfg.max_epsilon > 0:
            self.strategy.round_log[global_round] = {
                "objective": objective_for(global_round, self.strategy.schedule), "sites": {}, "seconds": 0.0,
                "stopped": f"site-level privacy budget: round {global_round} would take ε from "
                           f"{self.epsilon():.3f} to {after:.3f}, above site-dp-max-epsilon {self.cfg.max_epsilon:g}"}
            return []
        self._global = arrays
        messages = list(self.strategy.configure_train(server_round, arrays, config, grid))
        self._sent = len(messages)
        return messages

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        global_round = server_round + self.strategy.round_offset
        if self.strategy.round_log.get(global_round, {}).get("stopped"):
            return None, None  # stopped before sending (budget): keep that reason
        replies = self.strategy.screen(server_round, replies)  # before clipping: only screened updates
        half = trained_keys(self._global.keys(), objective_for(global_round, self.strategy.schedule))
        start = [self._global[k].numpy() for k in half]
        useful = [r for r in replies if self.strategy.accepted(r)]
        norms = [self._clip_and_scale(reply, half, start, share=len(useful) / max(self._sent, 1)) for reply in useful]
        arrays, metrics = self.strategy.aggregate_train(server_round, replies)
        if arrays is None:
            return arrays, metrics  # nothing released this round: nothing spent
        arrays = self._with_noise(arrays, half)
        self.released += 1
        self.rounds[global_round] = {
            "mechanism": "DP-FedAvg, fixed clipping (Flower's helpers), site-level, add/remove one site",
            "noise_multiplier": self.cfg.noise_multiplier, "clipping_norm": self.cfg.clipping_norm,
            "sites_in_denominator": self._sent, "clipped_sites": sum(n > self.cfg.clipping_norm for n in norms),
            "epsilon": self.epsilon(), "delta": self.cfg.delta, "released_rounds": self.released,
            "accountant": "Flower 1.42 RdpAccountant (Google dp-accounting RDP), no sampling amplification"}
        return arrays, metrics

    def _clip_and_scale(self, reply: Message, half: list[str], start: list[np.ndarray], *, share: float) -> float:
        """reply := global + clip(update)·R/K, so FedAvg's mean over R replies is global + Σclip/K."""
        record = reply.content["arrays"]
        for key in [k for k in record.keys() if k not in half]:  # only the clipped part may reach the mean
            del record[key]
        values = [record[k].numpy().astype(np.float64) if k in record else s.astype(np.float64)
                  for k, s in zip(half, start)]
        norm = float(np.sqrt(sum(float(np.sum((v - s) ** 2)) for v, s in zip(values, start))))
        if norm > 0:  # Flower's clip divides by the norm (screening let only finite values through)
            compute_clip_model_update(param1=values, param2=[s.astype(np.float64) for s in start],
                                      clipping_norm=self.cfg.clipping_norm)
        for k, v, s in zip(half, values, start):
            if np.issubdtype(s.dtype, np.floating):  # integer buffers are not trained
                record[k] = Array(np.asarray(s + (v - s) * share, dtype=s.dtype))
        return norm

    def _with_noise(self, arrays: ArrayRecord, half: list[str]) -> ArrayRecord:
        std = compute_stdv(self.cfg.noise_multiplier, self.cfg.clipping_norm, max(self._sent, 1))
        noisy = ArrayRecord()
        for key in arrays.keys():
            value = arrays[key].numpy()
            # Integer buffers (position ids) are not trained; FedAvg's mean may have made them float.
            if key in half and np.issubdtype(self._global[key].numpy().dtype, np.floating):
                values = [value.astype(np.float64)]
                add_gaussian_noise_inplace(values, std)
                value = values[0].astype(value.dtype)
            noisy[key] = Array(np.ascontiguousarray(value))
        fill_aliases(noisy)  # the noised tied table, under both its names
        return noisy

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
                           ) -> Iterable[Message]:
        return self.strategy.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        return self.strategy.aggregate_evaluate(server_round, replies)

    def summary(self) -> None:
        self.strategy.summary()
