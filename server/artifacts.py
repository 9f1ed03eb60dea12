"""A finished run's results, brought from the SuperLink's host to the operator (``m3fed run --fetch``).

The ServerApp writes a deployed run's results to a folder on the SuperLink's host. The operator
reaches that host only through the loopback control listener (on the host, or through an SSH
tunnel), so the same listener serves what a run produced: ``GET /m3fed/artifacts/<run id>`` answers
a gzipped tar of the run folder's deliverables (``DELIVERABLES``: results, report, plots, final
model, round log) once Flower lists the run as finished. It is Flower's own artifact mechanism
too: ``RunArtifacts`` is the SuperLink's ``ArtifactProvider``, so ``flwr pull RUN_ID`` prints the
same address. Nothing else in the run folder is served (the sites' receipts, the strategy's state
and checkpoints stay), and the route is not on the public Fleet listener (``fleet_only``).
"""
from __future__ import annotations

import io
import json
import re
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from client.errors import DataError

ROUTE = "/m3fed/artifacts/"
# model.safetensors is the model selected on the validate split; model-last.safetensors the last round's;
# model-merged.safetensors the selected one with its adapters folded in (a run with --adapter).
DELIVERABLES = ("results.json", "report.md", "metric_per_round.png", "site_contribution.png", "model.safetensors",
                "model-last.safetensors", "model-merged.safetensors", "run.log", "MODEL_CARD.md", "model_card.json")


def run_dir_of(linkstate, run_id: int) -> tuple[Path | None, str]:
    """(the run folder its run config names, Flower's status) of a run the SuperLink knows."""
    runs = linkstate.get_run_info(run_ids=[run_id])
    if not runs:
        return None, "unknown"
    run = runs[0]
    status = f"{run.status.status}:{run.status.sub_status}" if run.status.sub_status else run.status.status
    folder = str(run.override_config.get("run-dir", ""))
    return (Path(folder) if folder else None), status


def pack(run_dir: Path) -> bytes:
    """The deliverables present in ``run_dir`` as a gzipped tar (flat names)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in DELIVERABLES:
            if (run_dir / name).is_file():
                tar.add(run_dir / name, arcname=name)
    return buffer.getvalue()


def make_provider(control_port: int):
    """Flower's ``ArtifactProvider`` for this SuperLink: the download address on the control listener."""
    from flwr.superlink.artifact_provider import ArtifactProvider

    class RunArtifacts(ArtifactProvider):
        def get_url(self, run_id: int) -> str | None:
            return f"http://127.0.0.1:{control_port}{ROUTE}{run_id}"

        @property
        def output_dir(self) -> str:  # the run folders are the ServerApp's, named in each run config
            return ""

        @property
        def tmp_dir(self) -> str:
            return ""
    return RunArtifacts()


def artifact_route(app, linkstate_of):
    """An ASGI app serving ``ROUTE<run id>`` from the run's folder and passing everything else to ``app``."""
    from starlette.responses import PlainTextResponse, Response

    async def route(scope, receive, send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(ROUTE):
            await app(scope, receive, send)
            return
        # Flower's run ids are uint64: up to 20 digits (nearly half of them have 20).
        match = re.fullmatch(r"\d{1,20}", path[len(ROUTE):])
        run_id = int(match.group(0)) if match else -1
        run_dir, status = run_dir_of(linkstate_of(), run_id) if 0 <= run_id < 2**64 else (None, "unknown")
        if run_dir is None:
            answer = PlainTextResponse(f"no run folder for {path[len(ROUTE):]!r} (status {status})\n", status_code=404)
        elif not status.startswith("finished"):
            answer = PlainTextResponse(f"the run is {status}: its results are fetched once it has finished\n",
                                       status_code=409)
        else:
            answer = Response(pack(run_dir), media_type="application/gzip")
        await answer(scope, receive, send)
    return route


def fetch(superlink: str, run_id: int, to: Path, *, timeout: float = 600) -> list[str]:
    """Download run ``run_id``'s deliverables through the control listener ``superlink`` into ``to``."""
    url = f"http://{superlink}{ROUTE}{run_id}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - loopback / SSH tunnel
            data = answer.read()
    except urllib.error.HTTPError as exc:
        raise DataError(url, f"the SuperLink refused: {exc.read().decode(errors='replace').strip()}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(url, f"cannot reach the SuperLink's control listener ({exc}); on another machine, "
                             "open the SSH tunnel first") from None
    to = Path(to)
    to.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        names = [m.name for m in tar.getmembers()]
        bad = [n for n in names if n not in DELIVERABLES]
        if bad:
            raise DataError(url, f"unexpected file {bad[0]!r} in the answer; nothing written")
        tar.extractall(to, filter="data")
    if "results.json" in names:
        json.loads((to / "results.json").read_text(encoding="utf-8"))  # a truncated answer fails here
    return names
