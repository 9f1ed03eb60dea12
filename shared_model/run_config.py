"""The run config both Flower apps read: one frozen dataclass, its defaults defined here once.

Flower hands each app ``context.run_config``, a flat dict with the kebab-case keys of
``[tool.flwr.app.config]`` (pyproject.toml). ``RunConfig.from_run_config`` types and checks it;
``to_run_config`` writes it back (``m3fed sim`` and ``m3fed run`` submit that). pyproject's table,
``m3fed sim``'s and ``m3fed run``'s defaults are these (tests/shared_model/test_run_config.py).
The defaults are the measured simulation recipe (BENCHMARKS.md): 12 rounds, 8 contrastive then
report generation, 2 local epochs. Importable without torch (the CLIs use it).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from shared_model.config import get_preset
from shared_model.schedule import check_schedule
from shared_model.selection import SelectionConfig


UPDATE_DTYPES = ("fp32", "fp16", "int8")


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    preset: str = "tiny"
    num_server_rounds: int = 12
    local_epochs: int = 2
    lm_local_epochs: int = 0  # report-generation rounds' local epochs (0: same as local-epochs)
    schedule: str = "staged:8"  # 8 contrastive rounds, then report generation
    strategy: str = "fedavg"  # fedavg | fedprox | fedadam (Flower's own)
    proximal_mu: float = 0.01  # fedprox
    server_lr: float = 0.01  # fedadam's server learning rate (eta)
    min_live_sites: int = 1  # fewer sites answering a round than this ends the run cleanly
    client_eval_every: int = 0  # sites evaluate locally every N rounds (0: final round only)
    progress_file: str = ""
    batch_size: int = 32  # learned faster than 64 per second of CPU on the synthetic data (BENCHMARKS.md)
    lr: float = 1e-3
    # Report generation: a site holds a fraction of the reports, so per round it takes a fraction of
    # pooled training's steps; smaller batches and a higher rate give its decoder steps that count.
    lm_lr: float = 3e-3
    lm_batch_size: int = 16  # 0: batch-size
    keep_optimizer: bool = True  # each site keeps its own AdamW state across its rounds (never sent)
    seed: int = 0
    min_sites: int = 2
    round_timeout: float = 3600.0
    device: str = "auto"
    run_dir: str = ""
    data: str = ""  # the server's evaluation data ("": a deployment, the sites evaluate)
    eval_max_records: int = 0  # its validate and test splits: a seeded sample of N records each (0: all)
    image_store: str = ""  # a simulation's decoded-image store, shared by its sites and server ("": none)
    resume: bool = False
    drop_sites: str = ""  # comma-separated simulated site indices that die mid-round (failure injection)
    drop_round: int = 1
    poison_sites: str = ""  # comma-separated simulated site indices that send a bad reply (fault injection)
    poison_round: int = 1  # ... from this round on
    poison: str = "nan"  # nan | inf | scale | shape | weight (client/app/faults.py)
    aggregation: str = "fedavg"  # fedavg | median | trimmed:B | krum:F | multikrum:F | bulyan:F
    max_update_rms: float = 1.0  # screening: reply update norm above this × √(trained values) is rejected
    secagg: bool = False  # Flower's SecAgg+ on the sites' updates
    secagg_num_shares: float = 1.0  # >1: count; <=1: fraction of the round's sites
    secagg_reconstruction_threshold: float = 0.6  # >1: count; <=1: fraction of num-shares
    secagg_clipping_range: float = 1.0  # |update| bound, checked at each site (never silently clipped)
    secagg_timeout: float = 600.0  # seconds per protocol stage
    secagg_max_weight: float = 0.0  # 0: largest site's example count
    site_dp_noise_multiplier: float = 0.0  # site-level DP (server/site_dp.py); 0: off
    site_dp_clipping_norm: float = 1.0  # L2 norm of one site's update
    site_dp_delta: float = 1e-5
    site_dp_max_epsilon: float = 0.0  # 0: no limit
    init_checkpoint: str = ""  # m3fed checkpoint the global model starts from ("": weights drawn from seed)
    # Where the model comes from (shared_model.checkpoint.ModelSource): local files, never a hub.
    text_model: str = ""  # a Hugging Face encoder directory: the text tower and the tokenizer
    tokenizer_sha256: str = ""  # its tokenizer's identity, which every site must match ("": the shipped one)
    vit_weights: str = ""  # local timm ViT weights for the image tower
    adapter: str = ""  # "": the whole model trains; lora:R: peft LoRA adapters and heads on a frozen start
    update_dtype: str = "fp32"  # what a site sends: fp32 | fp16 | int8 (per-tensor scale); SecAgg+ quantises itself
    # Model selection on the validate split (shared_model.selection): auto | auc | bleu4 | last (off).
    select: str = "auto"
    patience: int = 0  # a stage stops after this many rounds without a better validation score (0: never)

    def __post_init__(self) -> None:
        check_schedule(self.schedule)
        if self.num_server_rounds < 1 or self.local_epochs < 1 or self.lm_local_epochs < 0:
            raise ValueError("num-server-rounds and local-epochs must be at least 1, lm-local-epochs at least 0")
        if self.batch_size < 2 or self.lm_batch_size < 0:
            raise ValueError("batch-size must be at least 2 and lm-batch-size at least 0")
        if self.min_sites < 1 or self.min_live_sites < 1 or self.round_timeout <= 0:
            raise ValueError("min-sites and min-live-sites must be at least 1, round-timeout > 0")
        get_preset(self.preset)
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.eval_max_records < 0:
            raise ValueError(f"eval-max-records must be 0 (all) or more, got {self.eval_max_records}")
        if self.update_dtype not in UPDATE_DTYPES:
            raise ValueError(f"update-dtype must be one of {', '.join(UPDATE_DTYPES)}, got {self.update_dtype!r}")
        if self.secagg and self.update_dtype != "fp32":
            raise ValueError("update-dtype: SecAgg+ quantises the updates itself (its clipping and quantisation "
                             "ranges); leave update-dtype at fp32 with secagg")
        if self.adapter and not self.adapter.startswith("lora:"):
            raise ValueError(f"adapter must be lora:R, got {self.adapter!r}")
        for name in ("drop_sites", "poison_sites"):
            _indices(getattr(self, name), key(name))
        try:
            SelectionConfig(metric=self.select, patience=self.patience)
        except ValueError as exc:  # the run config names keys, not flags
            raise ValueError(str(exc).replace("--select", "select").replace("--patience", "patience")) from None

    @classmethod
    def from_run_config(cls, rc) -> "RunConfig":
        """Typed from Flower's dict; a missing key takes its default, an unknown or mistyped one is refused."""
        known = {key(f.name): f for f in fields(cls)}
        unknown = sorted(set(rc) - set(known))
        if unknown:
            raise ValueError(f"run config: unknown key(s) {', '.join(unknown)}")
        values = {}
        for k, value in rc.items():
            f = known[k]
            try:
                values[f.name] = _typed(value, f.type)
            except (TypeError, ValueError):
                raise ValueError(f"run config: {k} must be {f.type}, got {value!r}") from None
        return cls(**values)

    def to_run_config(self) -> dict:
        """The kebab-case dict Flower takes (``flwr run --run-config``, recorded in results.json)."""
        return {key(f.name): getattr(self, f.name) for f in fields(self)}

    @property
    def dropped(self) -> frozenset[int]:
        return _indices(self.drop_sites, "drop-sites")

    @property
    def poisoned(self) -> frozenset[int]:
        return _indices(self.poison_sites, "poison-sites")


def key(name: str) -> str:
    """A field's run-config key: ``num_server_rounds`` -> ``num-server-rounds``."""
    return name.replace("_", "-")


def _typed(value, kind: str):
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise ValueError(value)
    if kind == "int":
        if isinstance(value, bool) or float(value) != int(float(value)):
            raise ValueError(value)
        return int(float(value))
    if kind == "float":
        if isinstance(value, bool):
            raise ValueError(value)
        return float(value)
    return str(value)


def _indices(text: str, name: str) -> frozenset[int]:
    try:
        return frozenset(int(i) for i in text.split(",") if i.strip())
    except ValueError:
        raise ValueError(f"run config: {name} takes comma-separated site indices, got {text!r}") from None
