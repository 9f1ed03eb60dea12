"""How the server combines the accepted updates: Flower's FedAvg or one of its robust aggregators.

``--aggregation fedavg|median|trimmed:B|krum:F|multikrum:F|bulyan:F`` (run config ``aggregation``)
picks Flower's own ``FedAvg``, ``FedMedian``, ``FedTrimmedAvg(beta=B)``, ``Krum``, ``MultiKrum`` or
``Bulyan`` (F: the number of faulty sites tolerated). Screening (``server.screening``) runs first
whatever the choice: it throws out replies that are malformed or far out of range; a robust
aggregator also bounds what a well-formed but hostile update can do.

Combinations that cannot work are refused with one line naming why: each of these needs every
single update, which SecAgg+ hides (the server sees only the sum); site-level DP calibrates its
noise to the mean of clipped updates (a median or a selection has another sensitivity); FedProx
and FedAdam are Flower subclasses of FedAvg's mean, not combined with another aggregator here.
Krum and MultiKrum need at least 2F + 3 updates (Blanchard et al., 2017), Bulyan 4F + 3 (El Mhamdi
et al., 2018): a round with fewer accepted updates keeps the previous global model.
"""
from __future__ import annotations

from dataclasses import dataclass

from flwr.serverapp.strategy import Bulyan, FedAvg, FedMedian, FedTrimmedAvg, Krum, MultiKrum

AGGREGATORS = {"fedavg": FedAvg, "median": FedMedian, "trimmed": FedTrimmedAvg, "krum": Krum,
               "multikrum": MultiKrum, "bulyan": Bulyan}
USAGE = "fedavg, median, trimmed:B (0 <= B < 0.5), krum:F, multikrum:F or bulyan:F (F >= 0 faulty sites)"


@dataclass(frozen=True)
class Aggregation:
    kind: str = "fedavg"
    beta: float = 0.0  # trimmed: the fraction cut from each end
    faulty: int = 0    # krum, multikrum, bulyan: F

    @classmethod
    def parse(cls, text: str) -> "Aggregation":
        kind, colon, value = str(text).strip().partition(":")
        try:
            if kind in ("fedavg", "median") and not colon:
                return cls(kind)
            if kind == "trimmed" and colon and 0 <= float(value) < 0.5:
                return cls(kind, beta=float(value))
            if kind in ("krum", "multikrum", "bulyan") and colon and value.isdigit():
                return cls(kind, faulty=int(value))
        except ValueError:
            pass
        raise ValueError(f"--aggregation / aggregation must be {USAGE}, got {text!r}")

    def __str__(self) -> str:
        if self.kind == "trimmed":
            return f"trimmed:{self.beta:g}"
        return f"{self.kind}:{self.faulty}" if self.kind in ("krum", "multikrum", "bulyan") else self.kind

    @property
    def robust(self) -> bool:
        return self.kind != "fedavg"

    @property
    def min_updates(self) -> int:
        """Fewest accepted updates the aggregator's guarantee needs."""
        return {"krum": 2 * self.faulty + 3, "multikrum": 2 * self.faulty + 3,
                "bulyan": 4 * self.faulty + 3}.get(self.kind, 1)

    def check(self, *, strategy: str, secagg: bool, site_dp: bool, sites: int | None = None) -> None:
        """Refuse what cannot work, before any round; ``sites``: the fewest sites any round is sent to."""
        if not self.robust:
            return
        if secagg:
            raise ValueError(f"--aggregation {self} needs each site's update, and under SecAgg+ the server sees "
                             "only their sum: use --aggregation fedavg with SecAgg+")
        if site_dp:
            raise ValueError(f"--aggregation {self} cannot carry site-level DP: its noise is calibrated to the "
                             "mean of clipped updates, and a median or a selection has another sensitivity")
        if strategy != "fedavg":
            raise ValueError(f"--aggregation {self} works with --strategy fedavg only: Flower's FedProx and "
                             "FedAdam are built on FedAvg's mean and are not combined with another aggregator")
        if sites is not None and sites < self.min_updates:
            raise ValueError(f"--aggregation {self} needs at least {self.min_updates} sites in every round "
                             f"({'4F + 3' if self.kind == 'bulyan' else '2F + 3'}); the smallest round here has "
                             f"{sites}")

    def flower_class(self) -> type:
        return AGGREGATORS[self.kind]

    def options(self) -> dict:
        """The Flower constructor's own arguments."""
        if self.kind == "trimmed":
            return {"beta": self.beta}
        return {"num_malicious_nodes": self.faulty} if self.kind in ("krum", "multikrum", "bulyan") else {}

    def prepare(self, strategy, accepted: int) -> str | None:
        """Before a round's aggregation: why it cannot aggregate ``accepted`` updates, or None.

        MultiKrum averages the n − F best-scored updates of the round (Flower takes a fixed count).
        """
        if accepted < self.min_updates:
            return (f"not aggregated: --aggregation {self} needs at least {self.min_updates} accepted updates, "
                    f"got {accepted}; the global model is unchanged")
        if self.kind == "multikrum":
            strategy.num_nodes_to_select = max(1, accepted - self.faulty)
        return None
