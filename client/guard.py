"""The site decides what code runs: Flower's SuperExec with an approval check before every launch.

``m3fed site start`` runs the SuperNode with ``--isolation process`` and this process as its
SuperExec. Flower's own loop acquires each task from the SuperNode; before a ClientApp process
is launched, the task's app-bundle (FAB) hash is compared with the site's ``approved_apps``.
An unapproved bundle is never installed, imported or run: a small refusal process (Flower's own
runtime client, no bundle code) answers the server's message with an error naming the site and the
hash, so the server's round goes on without this site. The check lives outside the bundle, so a
bundle cannot skip it.

Flower's ``--trusted-entities`` would be the native mechanism, but in flwr 1.42 OSS it accepts
only bundles signed through Flower's platform ("App verification is not supported by the
connected SuperLink"); this guard enforces a pinned hash instead.
"""
from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path

from flwr.app import Error, Message
from flwr.common.constant import ErrorCode
from flwr.supercore.constant import TaskType
from flwr.supercore.superexec.executor import LaunchResult
from flwr.supercore.superexec.plugin import AutoExecPlugin


class ApprovedAppsPlugin(AutoExecPlugin):
    """Launches ClientApps only from approved bundles; everything else as Flower does."""

    site = "site"
    approved: frozenset[str] = frozenset()
    refusal_log: Path | None = None

    def launch_task(self, token: str, task) -> LaunchResult:
        fab_hash = str(getattr(task, "fab_hash", "") or "")
        if task.type == TaskType.CLIENT_APP and fab_hash not in self.approved:
            reason = (f"[site {self.site}] app bundle sha256:{fab_hash or '?'} is not approved by this site "
                      "(site.yaml approved_apps); it was not run")
            print(f"m3fed guard: refused run {task.run_id}: {reason}", file=sys.stderr, flush=True)
            if self.refusal_log:
                with open(self.refusal_log, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"run_id": int(task.run_id), "fab_hash": fab_hash, "reason": reason}) + "\n")
            subprocess.Popen([sys.executable, "-m", "client.guard", "refuse", "--runtime-api-address",
                              self.runtime_api_address, "--token", token, "--reason", reason])
            return LaunchResult.accepted()
        return super().launch_task(token, task)


def _refuse(args: argparse.Namespace) -> None:
    """Answer the task's message with an error, through Flower's runtime client; no bundle is touched."""
    from flwr.common.constant import SubStatus
    from flwr.supercore.interceptors import RuntimeTokenHttpInterceptor
    from flwr.supercore.retry import make_simple_http_retry_invoker
    from flwr.supercore.runtime import RuntimeHttpClient
    from flwr.supernode.runtime.run_clientapp import pull_task_input, push_message, push_task_output

    client = RuntimeHttpClient.from_server_address(server_address=args.runtime_api_address, insecure=True,
                                                   root_certificates=None,
                                                   interceptors=[RuntimeTokenHttpInterceptor(args.token)],
                                                   retry_invoker=make_simple_http_retry_invoker())
    try:
        message, context, _run, _fab = pull_task_input(client)
        reply = Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=args.reason), reply_to=message)
        push_message(client, reply, context)
        push_task_output(client=client, context=context, sub_status=SubStatus.FAILED, details=args.reason)
    finally:
        client.close()


def _serve(args: argparse.Namespace) -> None:
    module = importlib.import_module("flwr.supercore.superexec.run_superexec")
    ApprovedAppsPlugin.site = args.site
    ApprovedAppsPlugin.approved = frozenset(a.strip() for a in args.approved.split(",") if a.strip())
    ApprovedAppsPlugin.refusal_log = Path(args.refusal_log) if args.refusal_log else None
    module.AutoExecPlugin = ApprovedAppsPlugin  # the one seam: Flower's loop, our launch decision
    module.run_superexec(runtime_api_address=args.runtime_api_address, insecure=True, parent_pid=args.parent_pid,
                         runtime_dependency_install=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m client.guard")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--runtime-api-address", required=True)
    p.add_argument("--site", required=True)
    p.add_argument("--approved", required=True, help="comma-separated sha256 hashes of approved app bundles")
    p.add_argument("--refusal-log")
    p.add_argument("--parent-pid", type=int)
    p.set_defaults(func=_serve)
    p = sub.add_parser("refuse")
    p.add_argument("--runtime-api-address", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--reason", required=True)
    p.set_defaults(func=_refuse)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
