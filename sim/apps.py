"""The ServerApp ``flwr run`` loads (``[tool.flwr.app.components]``): the coordinator's run, and
what ``flwr run .`` needs when it runs alone.

``m3fed sim`` and ``m3fed run`` name the run's folder (``run-dir``) and the server's data in the run
config, and this app hands them to ``server.server_app.main``. Without ``run-dir`` nothing has
partitioned any data, so the default synthetic federation is prepared first (``sim.standalone``),
one virtual site per SuperNode. The ClientApp is ``client.app.client_app.app``.
"""
from __future__ import annotations

from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from server.server_app import main as run_server

serverapp = ServerApp()


@serverapp.main()
def main(grid: Grid, context: Context) -> None:
    rc = context.run_config
    run_dir, data = Path(str(rc["run-dir"])), str(rc["data"])
    if not str(rc["run-dir"]):
        from sim.standalone import prepare_standalone  # `flwr run .` on its own: the default federation

        run_dir, data = prepare_standalone(context.run_id, num_sites=len(list(grid.get_node_ids())))
    run_server(grid, context, run_dir=run_dir, data=data)
