"""``m3fed sim``'s settings: one frozen, validated config, importable without torch (the CLI's defaults)."""
from __future__ import annotations

from pathlib import Path
from dataclasses import dataclass

from client.app.faults import POISONS
from server.aggregation import Aggregation
from server.screening import ScreeningConfig
from server.site_dp import SiteDPConfig
from server.strategy import STRATEGIES
from shared_model.config import get_preset
from shared_model.errors import CheckpointError
from shared_model.run_config import UPDATE_DTYPES, RunConfig as Run
from shared_model.schedule import check_schedule, objective_for
from shared_model.selection import SelectionConfig
from sim.partition import SiteSpec, parse_partition
from sim.resources import SiteResources, check_ray_address, machine_cores


@dataclass(frozen=True)
class SimConfig:
    data: str
    out: str
    sites: int = 4
    rounds: int = Run.num_server_rounds
    partition: str = "dirichlet:0.5"
    languages: tuple[str, ...] = ("en", "zh", "en", "zh")  # one per site, cycled
    text_only_sites: int = 1  # the last N sites keep reports only
    local_epochs: int = Run.local_epochs
    lm_local_epochs: int = Run.lm_local_epochs  # report-generation rounds (0: same as local_epochs)
    batch_size: int = Run.batch_size
    schedule: str = Run.schedule
    preset: str = Run.preset
    seed: int = Run.seed
    timeout: float = 3600.0  # seconds the whole Flower run may take
    drop_sites: int = 0  # sites that die mid-round from the middle round on, chosen from the seed
    poison_sites: int = 0  # sites that send a bad reply from the middle round on, chosen from the seed
    poison: str = Run.poison  # which bad reply (client/app/faults.py)
    aggregation: str = Run.aggregation  # Flower's FedAvg or a robust aggregator (server/aggregation.py)
    max_update_rms: float = Run.max_update_rms  # screening's bound on a reply's update (server/screening.py)
    strategy: str = Run.strategy
    proximal_mu: float = Run.proximal_mu
    server_lr: float = Run.server_lr
    lr: float = Run.lr
    lm_lr: float = Run.lm_lr  # report generation (BENCHMARKS.md, LM replay)
    lm_batch_size: int = Run.lm_batch_size
    # Each site keeps its AdamW state across its rounds (the baselines do the same); False: a
    # fresh optimiser every round (BENCHMARKS.md compares the two).
    keep_optimizer: bool = Run.keep_optimizer
    min_live_sites: int = Run.min_live_sites
    client_eval_every: int = Run.client_eval_every
    # Where and on what the sites train (sim.resources): Ray client resources per virtual site.
    device: str = "auto"
    cpus_per_site: int = machine_cores()
    gpus_per_site: float | None = None
    max_records_per_site: int = 0  # a quick look at a big dataset: N training records per site (0: all)
    ray_address: str = ""  # an existing Ray cluster's head, HOST:PORT ("": a Ray instance of this run's own)
    image_cache: str = ""  # the decoded-image store ("": $M3FED_HOME/decoded, shared with m3fed central)
    workers: int = 0  # processes decoding the images the store lacks (0: every core)
    compare: bool = True  # also train pooled and single-site baselines on the same schedule
    dp: str | None = None  # a site privacy policy (YAML): DP-SGD, ledgers, refusal
    dp_sites: int | None = None  # the first N sites get the policy, the others train without DP (None: all)
    secagg: bool = Run.secagg  # Flower's SecAgg+ on the sites' updates
    secagg_threshold: float = Run.secagg_reconstruction_threshold  # a count (>1) or a fraction of the shares
    secagg_shares: float = Run.secagg_num_shares  # a count (>1) or a fraction of the round's sites
    secagg_timeout: float = Run.secagg_timeout  # seconds per protocol stage
    site_dp: float = Run.site_dp_noise_multiplier  # site-level DP's noise multiplier (0: off)
    site_dp_clip: float = Run.site_dp_clipping_norm  # L2 clipping norm C of one site's update
    site_dp_delta: float = Run.site_dp_delta
    site_dp_max_epsilon: float = Run.site_dp_max_epsilon  # 0: no limit
    # An m3fed checkpoint (e.g. pretrained on public data) the federation and its baselines start from
    # instead of weights drawn from the seed.
    init: str | None = None
    text_model: str | None = None  # a local Hugging Face encoder directory: text tower and tokenizer
    vit_weights: str | None = None  # local timm ViT weights for the image tower
    adapter: str = Run.adapter  # "" or lora:R (shared_model.adapters)
    update_dtype: str = Run.update_dtype  # what a site sends: fp32 | fp16 | int8
    # Model selection on the validate split, the same rule for the federation and its baselines.
    select: str = Run.select
    patience: int = Run.patience
    # After the federation, each image site fine-tunes the global model on its own training records
    # (client.finetune.personalise) and reports it beside the global model on its own test patients.
    personalise: bool = False

    def __post_init__(self) -> None:
        parse_partition(self.partition)
        get_preset(self.preset)
        if self.workers < 0:
            raise ValueError(f"--workers must be at least 1 (0: every core), got {self.workers}")
        if self.max_records_per_site < 0:
            raise ValueError(f"--max-records-per-site must be at least 1 (0: all), got {self.max_records_per_site}")
        if self.ray_address:
            check_ray_address(self.ray_address)
        self.resources()
        if self.sites < 2:
            raise ValueError("--sites must be at least 2")
        if not 0 <= self.text_only_sites < self.sites:
            raise ValueError("--text-only-sites must leave at least one site with images")
        if self.rounds < 1 or self.local_epochs < 1 or self.lm_local_epochs < 0:
            raise ValueError("--rounds and --local-epochs must be at least 1")
        if self.batch_size < 2 or self.lm_batch_size < 1:
            raise ValueError("--batch-size must be at least 2 and --lm-batch-size at least 1")
        if not 0 <= self.drop_sites < self.sites:
            raise ValueError("--drop-sites must leave at least one site alive")
        if any(lang not in ("en", "zh") for lang in self.languages):
            raise ValueError("--languages takes en and zh")
        check_schedule(self.schedule)
        if self.strategy not in STRATEGIES:
            raise ValueError(f"--strategy must be one of {', '.join(STRATEGIES)}")
        if not 1 <= self.min_live_sites <= self.sites:
            raise ValueError("--min-live-sites must be between 1 and --sites")
        if self.secagg_threshold <= 0 or self.secagg_timeout <= 0 or self.secagg_shares <= 0:
            raise ValueError("--secagg-threshold, --secagg-shares and --secagg-timeout must be > 0")
        self.site_dp_config().check_compatible(strategy=self.strategy, secagg=self.secagg)
        self.check_trust()
        if self.secagg and self.update_dtype != "fp32":
            raise ValueError("--update-dtype: SecAgg+ quantises the updates itself; use fp32 with --secagg")
        if self.update_dtype not in UPDATE_DTYPES:
            raise ValueError(f"--update-dtype must be one of {', '.join(UPDATE_DTYPES)}")
        self.selection()
        self.check_model()

    @property
    def eval_max_records(self) -> int:
        """The server's validate and test splits under --max-records-per-site: as many records as the sites
        hold together, so that a quick look does not spend its time scoring a full-size test split."""
        return self.max_records_per_site * self.sites

    def store(self) -> tuple[Path, int]:
        """The decoded-image store (absolute: the Flower processes run elsewhere) and how many processes fill it."""
        from client.data.store_build import default_store, default_workers

        return (Path(self.image_cache) if self.image_cache else default_store()).resolve(), \
            self.workers or default_workers()

    def resources(self) -> SiteResources:
        return SiteResources(device=self.device, cpus_per_site=self.cpus_per_site, gpus_per_site=self.gpus_per_site,
                             cluster=bool(self.ray_address))

    def selection(self) -> SelectionConfig:
        return SelectionConfig(metric=self.select, patience=self.patience)

    def check_model(self) -> None:
        """The model's files (--init, --text-model, --vit-weights, --adapter): refused here, before any
        Flower process starts, rather than inside the ServerApp."""
        if not (self.init or self.text_model or self.vit_weights or self.adapter):
            return  # the preset alone: nothing to read, and no torch import for the CLI's defaults
        from shared_model.text_model import check_coverage

        try:
            self.model_source().check()
            if self.text_model:
                check_coverage(self.model_source().tokenizer(), self.languages)
        except CheckpointError as exc:
            raise ValueError(str(exc)) from None

    def model_source(self):
        from shared_model.checkpoint import ModelSource

        return ModelSource(preset=self.preset, text_model=_resolved(self.text_model),
                           vit_weights=_resolved(self.vit_weights), init=_resolved(self.init),
                           adapter=self.adapter)

    def check_trust(self) -> None:
        """Fault injection, mixed DP, screening and aggregation: refused here, before any Flower process."""
        if not 0 <= self.poison_sites < self.sites:
            raise ValueError("--poison-sites must leave at least one site sending honest replies")
        if self.poison not in POISONS:
            raise ValueError(f"--poison must be one of {', '.join(POISONS)}, got {self.poison!r}")
        if self.dp_sites is not None and not self.dp:
            raise ValueError("--dp-sites needs --dp POLICY.yaml (the policy the first N sites train under)")
        if self.dp_sites is not None and not 1 <= self.dp_sites <= self.sites:
            raise ValueError(f"--dp-sites must be between 1 and --sites ({self.sites}), got {self.dp_sites}")
        ScreeningConfig(max_update_rms=self.max_update_rms)
        # The fewest sites a round is sent to: contrastive rounds leave the text-only sites out.
        objectives = {objective_for(r, self.schedule) for r in range(1, self.rounds + 1)}
        fewest = min(self.sites - self.text_only_sites if o == "contrastive" else self.sites for o in objectives)
        Aggregation.parse(self.aggregation).check(strategy=self.strategy, secagg=self.secagg,
                                                  site_dp=self.site_dp > 0, sites=fewest)

    def site_dp_config(self) -> SiteDPConfig:
        return SiteDPConfig(noise_multiplier=self.site_dp, clipping_norm=self.site_dp_clip,
                            delta=self.site_dp_delta, max_epsilon=self.site_dp_max_epsilon)

    def site_specs(self) -> list[SiteSpec]:
        return [SiteSpec(f"site-{i + 1}", self.languages[i % len(self.languages)],
                         text_only=i >= self.sites - self.text_only_sites) for i in range(self.sites)]


def _resolved(path: str | None) -> str:
    """An absolute path ("" for none): the Flower processes run from another folder."""
    return str(Path(path).resolve()) if path else ""
