"""The site decides what code runs: Flower's SuperExec with an approval check before every launch.

``m3fed site start`` runs the SuperNode with ``--isolation process`` and this process as its
SuperExec. Flower's own loop acquires each task from the SuperNode (signed with the site's
SuperExec secret: the SuperNode hands no task to anyone else); before anything is launched, the
task's app-bundle (FAB) hash is compared with the site's ``approved_apps``, whatever the task's
type. An unapproved bundle is never installed, imported or run: for a ClientApp task a small
refusal process (Flower's own runtime client, no bundle code) answers the server's message with an
error naming the site and the hash, so the server's round goes on without this site; a task of any
other type (an AGENT_APP run would install and load its bundle) is not launched at all, and
neither is one of an approved bundle: a site runs ClientApps and nothing else. The check lives
outside the bundle, so a bundle cannot skip it.

No task token is put on a command line (every local user can read those in ``ps``): the refusal
process reads it from its stdin, and a ClientApp (``flwr-clientapp`` takes ``--token`` or
``--token-file`` only) gets ``--token-file /dev/fd/N``, N an inherited descriptor of a 0600 file
that was unlinked before the app started, so the token has no name anywhere.

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
import tempfile
from pathlib import Path

from flwr.app import Error, Message
from flwr.common.constant import ErrorCode
from flwr.supercore.constant import TASK_TYPE_TO_APPIO_API_ADDRESS_ARG, TASK_TYPE_TO_COMMAND, TaskType
from flwr.supercore.superexec.executor import ExecutionSpec, LaunchResult
from flwr.supercore.superexec.executor.subprocess_executor import SubprocessExecutor
from flwr.supercore.superexec.plugin import AutoExecPlugin


class TokenFileExecutor(SubprocessExecutor):
    """Flower's subprocess executor, the task token passed in an unnamed file instead of on argv."""

    def launch(self, spec: ExecutionSpec) -> LaunchResult:
        with tempfile.TemporaryFile("w+", encoding="ascii") as token:  # 0600, already unlinked
            token.write(spec.token)
            token.flush()
            fd = token.fileno()
            args = [TASK_TYPE_TO_COMMAND[spec.task_type], TASK_TYPE_TO_APPIO_API_ADDRESS_ARG[spec.task_type],
                    spec.runtime_api_address, "--token-file", f"/dev/fd/{fd}"]
            if spec.insecure:
                args.append("--insecure")
            elif spec.root_certificates_path is not None:
                args += ["--root-certificates", spec.root_certificates_path]
            if spec.parent_pid is not None:
                args += ["--parent-pid", str(spec.parent_pid)]
            if spec.runtime_dependency_install:
                args.append("--allow-runtime-dependency-installation")
            quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL} if spec.suppress_output else {}
            subprocess.Popen(args, pass_fds=(fd,), **quiet)  # the child holds its own copy of fd
        return LaunchResult.accepted()


class ApprovedAppsPlugin(AutoExecPlugin):
    """Launches ClientApps only from approved bundles, and nothing else."""

    site = "site"
    approved: frozenset[str] = frozenset()
    refusal_log: Path | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if type(self.executor) is SubprocessExecutor:  # Flower's default: its argv carries the token
            self.executor = TokenFileExecutor()

    def launch_task(self, token: str, task) -> LaunchResult:
        fab_hash = str(getattr(task, "fab_hash", "") or "")
        if fab_hash in self.approved and task.type == TaskType.CLIENT_APP:
            return super().launch_task(token, task)
        if fab_hash not in self.approved:
            reason = (f"[site {self.site}] app bundle sha256:{fab_hash or '?'} is not approved by this site "
                      "(site.yaml approved_apps); it was not run")
        else:
            reason = f"[site {self.site}] runs ClientApps only; a {task.type} task was not run"
        print(f"m3fed guard: refused run {task.run_id}: {reason}", file=sys.stderr, flush=True)
        if self.refusal_log:
            with open(self.refusal_log, "a", encoding="utf-8") as f:
                f.write(json.dumps({"run_id": int(task.run_id), "fab_hash": fab_hash, "reason": reason}) + "\n")
        if task.type != TaskType.CLIENT_APP:  # no message protocol we know to answer: left to expire
            return LaunchResult.failed(reason)
        refusal = subprocess.Popen([sys.executable, "-m", "client.admin.guard", "refuse", "--runtime-api-address",
                                    self.runtime_api_address, "--reason", reason],
                                   stdin=subprocess.PIPE, text=True)
        try:
            refusal.stdin.write(token + "\n")  # a few bytes: fits the pipe, never blocks
            refusal.stdin.close()
        except BrokenPipeError:  # it died at start; the task expires as any unanswered one does
            pass
        return LaunchResult.accepted()


def _refuse(args: argparse.Namespace) -> None:
    """Answer the task's message with an error, through Flower's runtime client; no bundle is touched."""
    from flwr.common.constant import SubStatus
    from flwr.supercore.interceptors import RuntimeTokenHttpInterceptor
    from flwr.supercore.retry import make_simple_http_retry_invoker
    from flwr.supercore.runtime import RuntimeHttpClient
    from flwr.supernode.runtime.run_clientapp import pull_task_input, push_message, push_task_output

    token = sys.stdin.readline().strip()
    client = RuntimeHttpClient.from_server_address(server_address=args.runtime_api_address, insecure=True,
                                                   root_certificates=None,
                                                   interceptors=[RuntimeTokenHttpInterceptor(token)],
                                                   retry_invoker=make_simple_http_retry_invoker())
    try:
        message, context, _run, _fab = pull_task_input(client)
        reply = Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=args.reason), reply_to=message)
        push_message(client, reply, context)
        push_task_output(client=client, context=context, sub_status=SubStatus.FAILED, details=args.reason)
    finally:
        client.close()


def _serve(args: argparse.Namespace) -> None:
    from flwr.supercore.auth import load_superexec_auth_secret

    module = importlib.import_module("flwr.supercore.superexec.run_superexec")
    ApprovedAppsPlugin.site = args.site
    ApprovedAppsPlugin.approved = frozenset(a.strip() for a in args.approved.split(",") if a.strip())
    ApprovedAppsPlugin.refusal_log = Path(args.refusal_log) if args.refusal_log else None
    module.AutoExecPlugin = ApprovedAppsPlugin  # the one seam: Flower's loop, our launch decision
    module.run_superexec(runtime_api_address=args.runtime_api_address, insecure=True, parent_pid=args.parent_pid,
                         superexec_auth_secret=load_superexec_auth_secret(args.superexec_auth_secret_file),
                         runtime_dependency_install=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m client.admin.guard")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--runtime-api-address", required=True)
    p.add_argument("--site", required=True)
    p.add_argument("--approved", required=True, help="comma-separated sha256 hashes of approved app bundles")
    p.add_argument("--superexec-auth-secret-file", help="signs acquire-task (the SuperNode's must be the same)")
    p.add_argument("--refusal-log")
    p.add_argument("--parent-pid", type=int)
    p.set_defaults(func=_serve)
    p = sub.add_parser("refuse", help="the task token is read from stdin")
    p.add_argument("--runtime-api-address", required=True)
    p.add_argument("--reason", required=True)
    p.set_defaults(func=_refuse)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
