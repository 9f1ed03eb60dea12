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
from shared_model.run_config import RunConfig

serverapp = ServerApp()


@serverapp.main()
def main(grid: Grid, context: Context) -> None:
    run = RunConfig.from_run_config(context.run_config)
    run_dir, data = Path(run.run_dir), run.data
    if not run.run_dir:
        from sim.standalone import prepare_standalone  # `flwr run .` on its own: the default federation

        run_dir, data = prepare_standalone(context.run_id, num_sites=len(list(grid.get_node_ids())))
    run_server(grid, context, run_dir=run_dir, data=data)
