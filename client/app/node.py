"""Where this node's site is: its data, name, state folder, decoded cache and what it contributes.

A deployed SuperNode names them in its node config (``client.admin.site_config``: ``data-path``,
``site-name``, ``state-dir``, ``languages``, ``modalities``); a simulated virtual node's
``partition-id`` picks ``<run-dir>/sites/<name>/manifest.jsonl`` (``flwr run .`` alone: the run
folder ``shared_model.app.standalone_run_dir`` of its run id).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from shared_model.app import standalone_run_dir
from shared_model.run_config import RunConfig

if TYPE_CHECKING:
    from flwr.app import Context


def data_path_of(context: Context) -> str:
    """Where this node's data is."""
    if "data-path" in context.node_config:
        return str(context.node_config["data-path"])
    run_dir = Path(RunConfig.from_run_config(context.run_config).run_dir or standalone_run_dir(context.run_id))
    names = json.loads((run_dir / "sites.json").read_text(encoding="utf-8"))["sites"]
    name = names[int(context.node_config["partition-id"])]
    return str(run_dir / "sites" / name / "manifest.jsonl")


def site_name_of(context: Context) -> str:
    """A deployed site's name from its node config; a virtual site's from the simulation's sites.json."""
    if "site-name" in context.node_config:
        return str(context.node_config["site-name"])
    return Path(data_path_of(context)).parent.name


def site_state_dir(context: Context) -> Path:
    """Where this site keeps what it carries from round to round of one run (never sent anywhere).

    A deployed site: under the daemon's ``state-dir``, one folder per run (keyed by the run's
    directory, which ``--resume`` keeps). A virtual site: ``<run-dir>/sites/<name>/state``.
    """
    if "state-dir" in context.node_config:
        key = hashlib.sha256(str(RunConfig.from_run_config(context.run_config).run_dir or context.run_id)
                             .encode()).hexdigest()[:16]
        return Path(str(context.node_config["state-dir"])) / "runs" / key
    return Path(data_path_of(context)).parent / "state"


def decoded_cache_dir(context: Context) -> str | None:
    """A deployed site keeps its decoded images under its state dir (``client.data.decoded_cache``); a
    simulated site maps them from the simulation's store (``m3fed sim`` fills it before round 1), and
    without one (``flwr run .`` on its own) its worker process decodes them once, in memory."""
    if "state-dir" in context.node_config:
        return str(Path(str(context.node_config["state-dir"])) / "decoded")
    return RunConfig.from_run_config(context.run_config).image_store or None


def site_scrub(context: Context) -> bool:
    """Whether the site's reports are scrubbed of identifiers before use (its site.yaml ``scrub``;
    on unless the site turned it off)."""
    return str(context.node_config.get("scrub", "on")).strip().lower() not in ("off", "false", "0", "no")


def site_selection(context: Context) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """(languages, modalities) a deployed site contributes (its site.yaml, via ``node_config``);
    None: every one (a simulated site, or a SuperNode started without them). Sorted tuples, so
    ``client.app.site.site_examples`` caches one selection once."""
    def listed(key: str) -> tuple[str, ...] | None:
        if key not in context.node_config:
            return None
        return tuple(sorted({v.strip() for v in str(context.node_config[key]).split(",") if v.strip()}))
    return listed("languages"), listed("modalities")
