"""Federation cost, side by side in one run: Flower simulation vs pooled training, and 10 vs 100 sites.

1. Wall time of ``m3fed sim`` (Flower simulation runtime, K sites) against pooled training of the
   same examples with the same schedule (rounds, objectives, local epochs, batch size), in one
   process, after the federation (never concurrently: 2 cores). Ratio = federated / pooled, for the
   whole Flower job and for the rounds alone (without Ray start-up and evaluation).
2. Bytes per round (down + up, all sites) from the run's results.
3. Peak RSS (sum over the whole process tree: flwr, SuperLink, Ray workers, ServerApp) of a
   one-round simulation with 10 and with 100 virtual sites on the same data.
4. ``--parts secagg``: round seconds of a 10-site simulation with and without SecAgg+ (same
   seed, data and schedule: one contrastive and one report-generation round, ``--local-epochs``
   each), alternating ``--repeats`` times; the ratios are medians over the pairs.

    python bench/federation_bench.py [--data DIR] [--out DIR]   # prints and writes one JSON file
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import threading
import time
from pathlib import Path

import torch

from shared_model.config import get_preset
from shared_model.model import build_model
from shared_model.objectives import TrainConfig
from shared_model.schedule import objective_for
from sim.baselines import load_site_examples, replay_schedule, site_manifests
from sim.simulate import SimConfig, run_simulation
from sim.synth import generate


def _tree_rss_kib(root: int) -> int:
    """Resident memory of ``root`` and all its descendants (read from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        children.setdefault(int(stat[1]), []).append(int(entry))
        rss[int(entry)] = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


class PeakRss:
    """Samples this process's tree every 0.2 s (Flower's processes are its descendants)."""

    def __enter__(self) -> "PeakRss":
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _tree_rss_kib(os.getpid()))
            time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="runs/data")
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="alternating plain/SecAgg+ pairs (--parts secagg)")
    parser.add_argument("--cpus-per-site", type=int, default=0,
                        help="--parts secagg: Ray CPUs per virtual site (0: the simulator's default, all cores)")
    parser.add_argument("--secagg-shares", type=float, default=1.0,
                        help="--parts secagg: SecAgg+ num_shares, a count (>1) or a fraction of the sites")
    parser.add_argument("--local-epochs", type=int, default=1,
                        help="--parts secagg: each site's local epochs per round (the default job trains 2)")
    parser.add_argument("--adapter", default="", help="lora:R: sites train and send adapters (--parts secagg)")
    parser.add_argument("--parts", default="ratio,rss",
                        help="ratio (federated vs pooled), rss (10 vs 100 sites), secagg (10 sites with/without)")
    args = parser.parse_args()
    out, data = Path(args.out), Path(args.data)
    if not (data / "m3fed-synth.json").is_file():
        generate(data, seed=0)
    report: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                    "torch": torch.__version__}

    if "ratio" in args.parts:
        report.update(federated_vs_pooled(data, out, args.rounds))
    if "rss" in args.parts:
        report.update(rss_10_vs_100(data, out))
    if "secagg" in args.parts:
        report.update(secagg_vs_plain(data, out, repeats=args.repeats, cpus_per_site=args.cpus_per_site,
                                      shares=args.secagg_shares, local_epochs=args.local_epochs,
                                      adapter=args.adapter))
    text = json.dumps(report, indent=2)
    print(text)
    suffix = ((f"_cpus{args.cpus_per_site}" if args.cpus_per_site else "")
              + (f"_shares{args.secagg_shares:g}" if args.secagg_shares != 1.0 else "")
              + (f"_epochs{args.local_epochs}" if args.local_epochs != 1 else "")
              + (f"_{args.adapter.replace(':', '')}" if args.adapter else "")) if "secagg" in args.parts else ""
    (out / f"federation_bench_{args.parts.replace(',', '_')}{suffix}.json").write_text(text + "\n")


def federated_vs_pooled(data: Path, out: Path, rounds: int) -> dict:
    report: dict = {}
    cfg = SimConfig(data=str(data), out=str(out / "fed"), rounds=rounds, schedule="alternate", compare=False)
    started = time.perf_counter()
    with PeakRss() as rss:
        results = run_simulation(cfg)
    fed_total = time.perf_counter() - started
    fed_rounds = sum(r["seconds"] for r in results["rounds"])
    report["federated"] = {"sites": cfg.sites, "rounds": cfg.rounds, "wall_s": fed_total, "rounds_s": fed_rounds,
                           "peak_rss_mib": rss.peak / 1024}
    report["bytes_per_round"] = [{"round": r["round"], "objective": r["objective"],
                                  "down": sum(s["bytes_down"] for s in r["sites"].values()),
                                  "up": sum(s["bytes_up"] for s in r["sites"].values())} for r in results["rounds"]]

    names = results["sites"]
    pooled = load_site_examples(list(site_manifests(out / "fed", names).values()), get_preset(cfg.preset).image_size)
    torch.manual_seed(cfg.seed)
    model = build_model(get_preset(cfg.preset))
    pooled_s = replay_schedule(model, pooled, rounds=cfg.rounds, schedule=cfg.schedule, local_epochs=cfg.local_epochs,
                               lm_local_epochs=cfg.lm_local_epochs, keep_optimizer=cfg.keep_optimizer,
                               train=TrainConfig(batch_size=cfg.batch_size, lr=cfg.lr, lm_lr=cfg.lm_lr,
                                                 lm_batch_size=cfg.lm_batch_size),
                               seed=cfg.seed, device=torch.device("cpu"))
    report["pooled"] = {"train_s": pooled_s, "objectives": [objective_for(r, cfg.schedule)
                                                             for r in range(1, cfg.rounds + 1)]}
    report["ratio_federated_over_pooled"] = {"whole_job": fed_total / pooled_s, "rounds_only": fed_rounds / pooled_s}
    return report


def rss_10_vs_100(data: Path, out: Path) -> dict:
    report: dict = {}

    for sites in (10, 100):
        many = SimConfig(data=str(data), out=str(out / f"sites-{sites}"), sites=sites, rounds=1, local_epochs=1,
                         languages=("en", "en", "zh", "en"), text_only_sites=max(1, sites // 4), compare=False,
                         partition="iid", cpus_per_site=1)
        started = time.perf_counter()
        with PeakRss() as rss:
            run_simulation(many)
        report[f"sites_{sites}"] = {"peak_rss_mib": rss.peak / 1024, "wall_s": time.perf_counter() - started}
    report["ratio_rss_100_over_10"] = report["sites_100"]["peak_rss_mib"] / report["sites_10"]["peak_rss_mib"]
    return report


def secagg_vs_plain(data: Path, out: Path, sites: int = 10, repeats: int = 1, cpus_per_site: int = 0,
                    shares: float = 1.0, local_epochs: int = 1, adapter: str = "") -> dict:
    """Plain and SecAgg+ runs alternate ``repeats`` times (one drifting load hits both alike); medians.

    ``cpus_per_site``: 1 runs two sites at once on two cores (both runs alike); 0 keeps the default.
    """
    cores = {"cpus_per_site": cpus_per_site} if cpus_per_site else {}
    report: dict = {"repeats": [], "cpus_per_site": cpus_per_site or SimConfig.cpus_per_site, "secagg_shares": shares,
                    "local_epochs": local_epochs, "adapter": adapter or None}
    for rep in range(repeats):
        pair: dict = {}
        for secagg in (False, True):
            cfg = SimConfig(data=str(data), out=str(out / f"secagg-{secagg}-{rep}"), sites=sites, rounds=2,
                            local_epochs=local_epochs, languages=("en", "zh"), text_only_sites=1, partition="iid",
                            schedule="alternate", compare=False, secagg=secagg, secagg_shares=shares,
                            adapter=adapter, **cores)
            results = run_simulation(cfg)
            pair["secagg" if secagg else "plain"] = {
                "round_s": [r["seconds"] for r in results["rounds"]],
                "objective": [r["objective"] for r in results["rounds"]],
                "bytes_up": [sum(s["bytes_up"] for s in r["sites"].values()) for r in results["rounds"]],
                "secagg": [r.get("secagg") for r in results["rounds"]]}
        plain, secure = pair["plain"]["round_s"], pair["secagg"]["round_s"]
        pair["ratio_per_round"] = [b / a for a, b in zip(plain, secure)]
        pair["ratio_total"] = sum(secure) / sum(plain)
        report["repeats"].append(pair)
    runs = report["repeats"]
    report["ratio_secagg_over_plain"] = {
        "per_objective_median": {obj: statistics.median(p["ratio_per_round"][i] for p in runs)
                                 for i, obj in enumerate(runs[0]["plain"]["objective"])},
        "total_median": statistics.median(p["ratio_total"] for p in runs),
        "total_pooled": sum(sum(p["secagg"]["round_s"]) for p in runs) / sum(sum(p["plain"]["round_s"]) for p in runs)}
    return report


if __name__ == "__main__":
    main()
