"""``m3fed sim``: virtual hospitals replayed from a MIMIC-CXR-shaped dataset on Flower's simulation runtime."""
from __future__ import annotations

import dataclasses
import json
import random
import shutil
import time
from pathlib import Path

from rich.console import Console

from client.data.sources import load_records
from client.data.store_build import check_store, decode_with_progress, store_line
from client.errors import DataError
from privacy.policy import load_policy
from server.evaluation import ServerEvaluation, evaluation_records
from server.final_model import note_virtual_sites
from server.model_card import write_model_card
from server.report import write_report
from shared_model.results import update_results
from server.run_state import WEIGHTS
from shared_model.checkpoint import load_checkpoint
from shared_model.device import resolve_device
from shared_model.objectives import TrainConfig
from shared_model.run_config import RunConfig
from sim.baselines import run_baselines
from sim.flower_launch import run_flower
from sim.live import LiveProgress
from sim.partition import write_sites
from sim.sim_config import SimConfig

PROGRESS = "progress.jsonl"


def run_config_of(cfg: SimConfig, out: Path, *, resume: bool) -> dict:
    """The Flower run config (kebab-case keys of ``[tool.flwr.app.config]``) for this simulation."""
    return RunConfig(
        run_dir=str(out), data=str(Path(cfg.data).resolve()), num_server_rounds=cfg.rounds, min_sites=cfg.sites,
        local_epochs=cfg.local_epochs, lm_local_epochs=cfg.lm_local_epochs, schedule=cfg.schedule,
        preset=cfg.preset, device=cfg.resources().site_device(), eval_max_records=cfg.eval_max_records,
        image_store=str(cfg.store()[0]),
        seed=cfg.seed, batch_size=cfg.batch_size, resume=resume,
        lm_batch_size=cfg.lm_batch_size, keep_optimizer=cfg.keep_optimizer, strategy=cfg.strategy,
        proximal_mu=cfg.proximal_mu, server_lr=cfg.server_lr, lr=cfg.lr, lm_lr=cfg.lm_lr,
        min_live_sites=cfg.min_live_sites, client_eval_every=cfg.client_eval_every,
        progress_file=str(out / PROGRESS), secagg=cfg.secagg,
        secagg_reconstruction_threshold=float(cfg.secagg_threshold), secagg_timeout=cfg.secagg_timeout,
        secagg_num_shares=float(cfg.secagg_shares), site_dp_noise_multiplier=float(cfg.site_dp),
        site_dp_clipping_norm=float(cfg.site_dp_clip), site_dp_delta=float(cfg.site_dp_delta),
        site_dp_max_epsilon=float(cfg.site_dp_max_epsilon), select=cfg.select, patience=cfg.patience,
        **_model_settings(cfg),
        aggregation=cfg.aggregation, max_update_rms=float(cfg.max_update_rms), poison=cfg.poison,
        **_failure_injection(cfg)).to_run_config()


def _model_settings(cfg: SimConfig) -> dict:
    """Where the model comes from, as absolute paths (the Flower processes run elsewhere), with the tokenizer's identity."""
    source = cfg.model_source()
    return {"init_checkpoint": source.init, "text_model": source.text_model, "vit_weights": source.vit_weights,
            "adapter": source.adapter, "update_dtype": cfg.update_dtype,
            "tokenizer_sha256": source.tokenizer().sha256 if source.text_model else ""}


def run_simulation(cfg: SimConfig, *, resume: bool = False, console: Console | None = None) -> dict:
    """Partition, run on Flower, then (``cfg.compare``) the baselines; writes results.json and report.md.

    With ``resume`` the run in ``cfg.out`` continues after its last completed round, up to
    ``cfg.rounds`` (which may be more than it was started with: ``resume_config(rounds=...)``).
    """
    console = console or Console(quiet=True)
    out = Path(cfg.out).resolve()
    if not resume:
        prepare_sites(cfg, out)
        (out / PROGRESS).unlink(missing_ok=True)
    else:  # a later --resume continues to the rounds asked for now
        (out / "sim-config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    sites = json.loads((out / "sites.json").read_text(encoding="utf-8"))
    decoding = fill_store(cfg, out, sites["sites"], console)
    with LiveProgress(console, str(out / PROGRESS), sites=sites["sites"], rounds=cfg.rounds) as live:
        status = run_flower(run_config_of(cfg, out, resume=resume), num_sites=cfg.sites, flwr_home=out / ".flwr",
                            resources=cfg.resources().federation_config(), ray_address=cfg.ray_address,
                            timeout=cfg.timeout, on_tick=live.tick)
        if status.get("status") != "finished:completed":
            raise DataError(out / ".flwr" / "flwr-run.log",
                            f"the Flower run ended as {status.get('status')!r}: see this log for the reason")
        extra = {"site_specs": {s["name"]: s for s in sites["specs"]}, "site_records": sites["records"],
                 "image_store": decoding,
                 **fault_summary(cfg, sites["sites"])}
        if cfg.dp:
            extra["privacy"] = site_statements(out, sites["sites"])
        if cfg.compare:
            extra["baselines"] = _baselines(cfg, out, sites["specs"], live.baseline)
    if cfg.personalise and (out / WEIGHTS).is_file():
        from client.finetune.personalise import personalise_sites

        store, workers = cfg.store()
        extra["personalised"] = personalise_sites(out, sites["specs"], seed=cfg.seed, device=cfg.device,
                                                  image_cache=str(store), workers=workers, console=console)
    if (cfg.dp or cfg.site_dp) and cfg.compare:  # the accuracy cost of DP: the same federation without it
        plain = run_simulation(dataclasses.replace(cfg, dp=None, dp_sites=None, site_dp=0.0, compare=False,
                                                   personalise=False,
                                                   out=str(out / "non-private")))
        extra["non_private"] = {"auc_macro": plain["final"]["auc_macro"],
                                "bleu": {k: v["bleu4"] for k, v in plain["final"]["bleu"].items()},
                                "run_dir": str(out / "non-private")}
    results = update_results(out, **extra)
    write_report(out)
    write_model_card(out)  # after the baselines: the card gives their intervals
    note_virtual_sites(out, sites["sites"])
    return results


def site_statements(out: Path, sites: list[str]) -> dict:
    """Each site's privacy statement, replayed from its ledger, and the ledger's verification."""
    from client.app.site_privacy import site_statement

    return {name: site_statement(out / "sites" / name / "ledger.jsonl") for name in sites
            if (out / "sites" / name / "ledger.jsonl").is_file()}


def _baselines(cfg: SimConfig, out: Path, specs: list[dict], on_event) -> dict:
    source = cfg.model_source()
    model_cfg, device = source.config(), resolve_device(cfg.device)
    evaluation = ServerEvaluation(str(Path(cfg.data).resolve()), model_cfg.image_size, seed=cfg.seed, run_dir=out,
                                  max_records=cfg.eval_max_records, store=str(cfg.store()[0]),
                                  sites=[s["name"] for s in specs])
    train = TrainConfig(batch_size=cfg.batch_size, lr=cfg.lr, lm_lr=cfg.lm_lr, lm_batch_size=cfg.lm_batch_size)
    # The run's selected global model; a run that ended before writing one has no difference to show.
    federated = load_checkpoint(out / WEIGHTS)[0].to(device) if (out / WEIGHTS).is_file() else None
    return run_baselines(run_dir=out, sites=specs, model_cfg=model_cfg, evaluation=evaluation, device=device,
                         federated=federated, init_seed=cfg.seed, source=source, on_event=on_event,
                         selection=cfg.selection(), store=str(cfg.store()[0]),
                         rounds=cfg.rounds, schedule=cfg.schedule, local_epochs=cfg.local_epochs,
                         lm_local_epochs=cfg.lm_local_epochs, train=train, seed=cfg.seed, keep_optimizer=cfg.keep_optimizer)


def fill_store(cfg: SimConfig, out: Path, sites: list[str], console: Console) -> dict:
    """Decode, in parallel, every image the run will read that the decoded-image store lacks: the sites'
    records and the server's evaluation splits. The sites and the server then map them from disk."""
    store, workers = cfg.store()
    check_store(store)
    records, report = load_records(cfg.data)
    evaluated = evaluation_records(records, cfg.eval_max_records, cfg.seed)
    wanted = [r for name in sites for r in load_records(out / "sites" / name / "manifest.jsonl")[0]]
    wanted += evaluated["test"] + evaluated["validate"]
    counts = {"store": str(store)}
    started = time.perf_counter()
    decode_with_progress(wanted, cfg.model_source().config().image_size, report, store=store, workers=workers,
                         console=console, counts=counts)
    counts["seconds"] = time.perf_counter() - started
    console.print(store_line(counts))
    return counts


def resume_config(run_dir: str | Path, *, rounds: int | None = None) -> SimConfig:
    """The configuration a run directory was started with (``m3fed sim --resume RUNDIR``);
    ``rounds``: continue to this many rounds instead (``--resume RUNDIR --rounds R``), at least
    the rounds it has completed."""
    path = Path(run_dir) / "sim-config.json"
    if not path.is_file():
        raise DataError(path, "not found: not an m3fed sim run directory")
    data = json.loads(path.read_text(encoding="utf-8"))
    data["languages"] = tuple(data["languages"])
    # Settings a run written by an earlier version does not record: what that version did.
    data.setdefault("lm_batch_size", data.get("batch_size", SimConfig.batch_size))
    data.setdefault("keep_optimizer", False)
    known = {f.name for f in dataclasses.fields(SimConfig)}
    if rounds is not None:
        state = Path(run_dir) / "state.json"
        done = json.loads(state.read_text(encoding="utf-8"))["round"] if state.is_file() else 0
        if rounds < done:
            raise DataError(path, f"cannot resume to --rounds {rounds}: the run has completed {done} rounds")
        data["rounds"] = rounds
    try:
        return SimConfig(**{k: v for k, v in data.items() if k in known})
    except ValueError as exc:  # e.g. the --init checkpoint has gone: the baselines still start from it
        raise DataError(path, f"cannot resume: {exc}") from None


def prepare_sites(cfg: SimConfig, out: Path) -> None:
    """Partition the dataset into ``out/sites/<site>/manifest.jsonl`` and record the configuration."""
    out.mkdir(parents=True, exist_ok=True)
    records, _ = load_records(cfg.data)
    specs = cfg.site_specs()
    counts = write_sites(records, specs, cfg.partition, cfg.seed, out / "sites", limit=cfg.max_records_per_site)
    empty = [name for name, n in counts.items() if n == 0]
    if empty:
        raise DataError(cfg.data, f"sites {', '.join(empty)} got no records (language missing from the data?)")
    (out / "sites.json").write_text(json.dumps({"sites": [s.name for s in specs], "records": counts,
                                                "specs": [dataclasses.asdict(s) for s in specs]}, indent=2))
    if cfg.dp:  # each site gets its own copy: the site, not the server, enforces it
        load_policy(cfg.dp)
        for spec in specs[:cfg.dp_sites]:  # --dp-sites N: the first N; the others train without DP
            shutil.copyfile(cfg.dp, out / "sites" / spec.name / "privacy.yaml")
    (out / "sim-config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))


def _failure_injection(cfg: SimConfig) -> dict:
    """Which sites die or send bad replies, and from which round (the middle): reproducible under ``--seed``."""
    middle = max(1, (cfg.rounds + 1) // 2)
    dead = sorted(random.Random(cfg.seed).sample(range(cfg.sites), cfg.drop_sites)) if cfg.drop_sites else []
    # Drawn apart from the dying sites: the same seed need not make the same site die and lie.
    bad = (sorted(random.Random(f"poison-{cfg.seed}").sample(range(cfg.sites), cfg.poison_sites))
           if cfg.poison_sites else [])
    return {"drop_sites": ",".join(map(str, dead)), "drop_round": middle if dead else 1,
            "poison_sites": ",".join(map(str, bad)), "poison_round": middle if bad else 1}


def fault_summary(cfg: SimConfig, names: list[str]) -> dict:
    """What results.json and report.md say about the faults this run injected on purpose."""
    rc = _failure_injection(cfg)
    faults = {}
    if rc["drop_sites"]:
        faults["dropped"] = {"sites": [names[int(i)] for i in rc["drop_sites"].split(",")],
                             "from_round": rc["drop_round"]}
    if rc["poison_sites"]:
        faults["poisoned"] = {"sites": [names[int(i)] for i in rc["poison_sites"].split(",")],
                              "from_round": rc["poison_round"], "kind": cfg.poison}
    return {"fault_injection": faults} if faults else {}
