"""The consortium operator's commands: ``m3fed ca``, ``m3fed server``, ``m3fed run``."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from server.ca_cli import add_ca_commands
from server.superlink import CONTROL_PORT
from shared_model.app import m3fed_home
from shared_model.run_config import RunConfig
from shared_model.selection import SELECT_METRICS


def _state(value: str | None) -> Path:
    # On the server host the operator's state is the SuperLink's (sites.json, runs submitted): its
    # owner's alone, like everything m3fed server start writes.
    os.umask(0o077)
    return Path(value or os.environ.get("M3FED_SERVER_STATE") or m3fed_home() / "server").resolve()


def _server_start(args) -> int:
    from server.superlink import ServerConfig, start_server

    cfg = ServerConfig(state=_state(args.state), certs=Path(args.certs).resolve() if args.certs else None,
                       host=args.host, port=args.port, control_port=args.control_port, insecure=args.insecure)
    start_server(cfg)  # does not return: the process becomes the SuperLink
    return 0


def _server_unit(args) -> int:
    from server.service import server_systemd_unit

    print(server_systemd_unit(certs=Path(args.certs), state=_state(args.state), port=args.port,
                              control_port=args.control_port, host=args.host, user=args.user,
                              runs=Path(args.runs) if args.runs else None), end="")
    return 0


def _connection(args) -> dict:
    return {"superlink": args.superlink}


def _register(args) -> int:
    from server.superlink import register_site

    node = register_site(_state(args.state), args.name, Path(args.public_key), **_connection(args))
    print(f"registered site {args.name} as node {node}")
    return 0


def _unregister(args) -> int:
    from server.superlink import unregister_site

    node = unregister_site(_state(args.state), args.name, **_connection(args))
    print(f"unregistered site {args.name} (node {node}); that key can never connect again")
    return 0


def _sites(args) -> int:
    from server.superlink import read_registry

    print(json.dumps({name: s["node_id"] for name, s in read_registry(_state(args.state)).items()}, indent=2))
    return 0


def _run(args) -> int:
    from server.remote import resume_run, submit_run

    given = {"num-server-rounds": args.rounds, "min-sites": args.min_sites, "schedule": args.schedule,
             "local-epochs": args.local_epochs, "seed": args.seed, "select": args.select, "patience": args.patience,
             "preset": args.preset, "device": args.device}
    overrides = {k: v for k, v in given.items() if v is not None}
    overrides.update(_model_overrides(args))
    if args.secagg:
        overrides.update({"secagg": True, "secagg-max-weight": float(args.secagg_max_weight)})
    for pair in args.run_config or []:
        key, _, value = pair.partition("=")
        overrides[key.strip()] = _parse_value(value.strip())
    _check_model(overrides)
    if args.resume:  # the recorded run config; only what is given here changes it (e.g. more rounds)
        out = Path(args.resume)
        record = resume_run(state=_state(args.state), run_dir=out, overrides=overrides, **_connection(args))
    else:
        out = Path(args.out)
        record = submit_run(state=_state(args.state), out=out, run_config=overrides,
                            app=Path(args.app) if args.app else _default_app(), **_connection(args))
    print(f"run {record.get('run-id')} {record.get('status')}; results: {out.resolve() / 'results.json'} "
          "(on the SuperLink's host)")
    if args.fetch:
        _fetched(args.superlink, int(record["run-id"]), Path(args.fetch))
    return 0


def _model_overrides(args) -> dict:
    """--init / --vit-weights / --text-model / --adapter / --update-dtype as run-config keys."""
    paths = {"init-checkpoint": args.init, "vit-weights": args.vit_weights, "text-model": args.text_model}
    out = {k: str(Path(v).resolve()) for k, v in paths.items() if v}
    out.update({k: v for k, v in (("adapter", args.adapter), ("update-dtype", args.update_dtype)) if v})
    return out


def _check_model(overrides: dict) -> None:
    """The model's files are read on this, the server's, host: checked before anything is submitted; the
    text model's tokenizer identity goes into the run config (every site must match it)."""
    keys = ("init-checkpoint", "vit-weights", "text-model", "adapter")
    if not any(overrides.get(k) for k in keys):
        return
    from shared_model.checkpoint import ModelSource

    source = ModelSource(preset=str(overrides.get("preset", RunConfig.preset)),
                         init=str(overrides.get("init-checkpoint", "")), vit_weights=str(overrides.get("vit-weights", "")),
                         text_model=str(overrides.get("text-model", "")), adapter=str(overrides.get("adapter", "")))
    source.check()
    if source.text_model:
        overrides["tokenizer-sha256"] = source.tokenizer().sha256


def _fetched(superlink: str, run_id: int, to: Path) -> None:
    from server.artifacts import fetch

    names = fetch(superlink, run_id, to)
    print(f"fetched run {run_id} into {to.resolve()}: {', '.join(names)}")


def _fetch(args) -> int:
    from server.remote import recorded_run_id

    _fetched(args.superlink, recorded_run_id(_state(args.state), Path(args.run_dir)), Path(args.to))
    return 0


def _default_app() -> Path:
    from shared_model.app import APP_DIR

    return APP_DIR


def _parse_value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text, text.strip('"'))


def _add_connection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--superlink", default=f"127.0.0.1:{CONTROL_PORT}",
                   help="the SuperLink's control listener: 127.0.0.1:CONTROL_PORT on the server host, or the local "
                        f"end of an SSH tunnel to it (default 127.0.0.1:{CONTROL_PORT})")
    p.add_argument("--state", help="operator state folder (default $M3FED_HOME/server)")


def add_server_commands(sub: argparse._SubParsersAction) -> None:
    add_ca_commands(sub)

    server = sub.add_parser("server", help="run the SuperLink and manage the sites").add_subparsers(
        dest="server_command", required=True)
    p = server.add_parser("start", help="Flower's SuperLink: TLS and SuperNode authentication on by default")
    p.add_argument("--certs", help="folder with ca.crt, server.pem, server.key (m3fed ca issue-server)")
    p.add_argument("--state", help="SuperLink state, logs and runs (default $M3FED_HOME/server)")
    p.add_argument("--host", default="0.0.0.0", help="address of the sites' Fleet API listener")
    p.add_argument("--port", type=int, default=8000, help="the sites' Fleet API port (TLS): the only public one")
    p.add_argument("--control-port", type=int, default=CONTROL_PORT,
                   help="Control and Runtime APIs, on 127.0.0.1 only (m3fed run, register-site)")
    p.add_argument("--insecure", action="store_true", help="plain HTTP, no node authentication (tests only)")
    p.set_defaults(func=_server_start)
    p = server.add_parser("systemd-unit", help="print a systemd unit that runs the SuperLink as --user")
    p.add_argument("--certs", required=True)
    p.add_argument("--state", required=True)
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--control-port", type=int, default=CONTROL_PORT)
    p.add_argument("--runs", help="the folder run folders go under (m3fed run --out): writable by the service")
    p.add_argument("--user", default="m3fed")
    p.set_defaults(func=_server_unit)
    p = server.add_parser("register-site", help="admit a site's SuperNode key")
    p.add_argument("name")
    p.add_argument("public_key", help="the site's .pub (m3fed site keygen)")
    _add_connection(p)
    p.set_defaults(func=_register)
    p = server.add_parser("unregister-site", help="revoke a site's key, permanently")
    p.add_argument("name")
    _add_connection(p)
    p.set_defaults(func=_unregister)
    p = server.add_parser("sites", help="registered sites and their node ids")
    p.add_argument("--state")
    p.set_defaults(func=_sites)

    p = sub.add_parser("run", help="submit a training run to a SuperLink and follow it")
    _add_connection(p)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", help="run folder on the SuperLink's host (results.json, checkpoints)")
    where.add_argument("--resume", metavar="RUNDIR", help="submit the run recorded for RUNDIR again; it continues "
                                                          "after its last completed round")
    p.add_argument("--app", help="the app folder to bundle (default: this installation; --resume uses the "
                                  "recorded one)")
    defaults = RunConfig()
    p.add_argument("--rounds", type=int, help=f"number of rounds (default {defaults.num_server_rounds})")
    p.add_argument("--min-sites", type=int,
                   help=f"sites that must be connected before round 1 (default {defaults.min_sites})")
    p.add_argument("--schedule", help=f"default {defaults.schedule}")
    p.add_argument("--local-epochs", type=int, help=f"default {defaults.local_epochs}")
    p.add_argument("--seed", type=int, help=f"default {defaults.seed}")
    p.add_argument("--preset", choices=("tiny", "paper"), help=f"the model's size (default {defaults.preset})")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"),
                   help="where the server and every site train and evaluate: auto (default) = each host's GPU "
                        "when it has one, bf16 autocast where supported; cuda refuses a site without a GPU")
    p.add_argument("--init", metavar="CHECKPOINT", help="m3fed checkpoint on the server host the run starts from "
                                                         "(e.g. `m3fed central` on a public cohort)")
    p.add_argument("--vit-weights", help="local timm ViT weights on the server host for the image tower")
    p.add_argument("--text-model", metavar="DIR",
                   help="a Hugging Face encoder directory on the server host (text tower and tokenizer); every "
                        "site needs a copy with the same tokenizer (text_model in its site.yaml)")
    p.add_argument("--adapter", metavar="lora:R", help="sites train and send only LoRA adapters and heads")
    p.add_argument("--update-dtype", choices=("fp32", "fp16", "int8"), help="what a site sends (default fp32)")
    p.add_argument("--select", choices=SELECT_METRICS,
                   help=f"model selection on the sites' validate patients, per stage: auto = macro AUC, then "
                        f"BLEU-4; last = none (default {defaults.select})")
    p.add_argument("--patience", type=int, metavar="N", help="early stopping: a stage ends after N rounds without "
                                                             f"a better validation score (default {defaults.patience}: never)")
    p.add_argument("--secagg", action="store_true", help="Flower's SecAgg+ on the sites' updates")
    p.add_argument("--secagg-max-weight", type=int, default=100_000,
                   help="at least the largest site's number of training examples (sites refuse above it)")
    p.add_argument("--run-config", action="append", metavar="KEY=VALUE", help="any other run-config key")
    p.add_argument("--fetch", metavar="DIR", help="when the run has completed, copy its results, report, plots, "
                                                  "final model and round log into DIR on this machine")
    p.set_defaults(func=_run)

    p = sub.add_parser("fetch", help="copy a finished run's results and final model from the SuperLink's host")
    p.add_argument("run_dir", metavar="RUNDIR", help="the run folder given to m3fed run --out")
    p.add_argument("--to", required=True, help="folder on this machine")
    _add_connection(p)
    p.set_defaults(func=_fetch)
