"""``m3fed sim``: virtual hospitals replayed from a MIMIC-CXR-shaped dataset on Flower's simulation runtime."""
from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass
from pathlib import Path

from client.errors import DataError
from client.sources import load_records
from sim.federation import run_flower
from sim.partition import SiteSpec, parse_partition, write_sites


@dataclass(frozen=True)
class SimConfig:
    data: str
    out: str
    sites: int = 4
    rounds: int = 6
    partition: str = "dirichlet:0.5"
    languages: tuple[str, ...] = ("en", "en", "zh", "en")  # one per site, cycled
    text_only_sites: int = 1  # the last N sites keep reports only
    local_epochs: int = 2
    batch_size: int = 64
    schedule: str = "alternate"
    preset: str = "tiny"
    seed: int = 0
    timeout: float = 3600.0
    drop_sites: int = 0  # sites that die mid-round from the middle round on, chosen from the seed

    def __post_init__(self) -> None:
        parse_partition(self.partition)
        if self.sites < 2:
            raise ValueError("--sites must be at least 2")
        if not 0 <= self.text_only_sites < self.sites:
            raise ValueError("--text-only-sites must leave at least one site with images")
        if self.rounds < 1 or self.local_epochs < 1:
            raise ValueError("--rounds and --local-epochs must be at least 1")
        if not 0 <= self.drop_sites < self.sites:
            raise ValueError("--drop-sites must leave at least one site alive")
        if any(lang not in ("en", "zh") for lang in self.languages):
            raise ValueError("--languages takes en and zh")

    def site_specs(self) -> list[SiteSpec]:
        return [SiteSpec(f"site-{i + 1}", self.languages[i % len(self.languages)],
                         text_only=i >= self.sites - self.text_only_sites) for i in range(self.sites)]


def run_simulation(cfg: SimConfig, *, resume: bool = False) -> dict:
    """Partition, then run on Flower; with ``resume`` continue the run in ``cfg.out`` after its last round."""
    out = Path(cfg.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        _write_sites(cfg, out)
    run_config = {"run-dir": str(out), "data": str(Path(cfg.data).resolve()), "num-server-rounds": cfg.rounds,
                  "min-sites": cfg.sites, "local-epochs": cfg.local_epochs, "schedule": cfg.schedule,
                  "preset": cfg.preset, "seed": cfg.seed, "batch-size": cfg.batch_size, "resume": resume,
                  **_failure_injection(cfg)}
    status = run_flower(run_config, num_sites=cfg.sites, flwr_home=out / ".flwr", timeout=cfg.timeout)
    if status.get("status") != "finished:completed":
        raise DataError(out / ".flwr" / "flwr-run.log",
                        f"the Flower run ended as {status.get('status')!r}: see this log for the reason")
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


def resume_config(run_dir: str | Path) -> SimConfig:
    """The configuration a run directory was started with (``m3fed sim --resume RUNDIR``)."""
    path = Path(run_dir) / "sim-config.json"
    if not path.is_file():
        raise DataError(path, "not found: not an m3fed sim run directory")
    data = json.loads(path.read_text(encoding="utf-8"))
    data["languages"] = tuple(data["languages"])
    return SimConfig(**data)


def _write_sites(cfg: SimConfig, out: Path) -> None:
    records, _ = load_records(cfg.data)
    specs = cfg.site_specs()
    counts = write_sites(records, specs, cfg.partition, cfg.seed, out / "sites")
    empty = [name for name, n in counts.items() if n == 0]
    if empty:
        raise DataError(cfg.data, f"sites {', '.join(empty)} got no records (language missing from the data?)")
    (out / "sites.json").write_text(json.dumps({"sites": [s.name for s in specs], "records": counts,
                                                "specs": [dataclasses.asdict(s) for s in specs]}, indent=2))
    (out / "sim-config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))


def _failure_injection(cfg: SimConfig) -> dict:
    """Which sites die, and from which round: reproducible under ``--seed``."""
    if not cfg.drop_sites:
        return {"drop-sites": "", "drop-round": 1}
    dead = sorted(random.Random(cfg.seed).sample(range(cfg.sites), cfg.drop_sites))
    return {"drop-sites": ",".join(map(str, dead)), "drop-round": max(1, (cfg.rounds + 1) // 2)}
