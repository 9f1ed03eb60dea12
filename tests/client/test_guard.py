"""The app-approval guard: every task type checked, no task token on any command line."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from flwr.proto.task_pb2 import Task
from flwr.supercore.constant import TaskType
from flwr.supercore.superexec.executor import ExecutionSpec, LaunchResult
from flwr.supercore.superexec.executor.subprocess_executor import SubprocessExecutor

from client.admin import guard

HASH, OTHER = "ab" * 32, "cd" * 32
TOKEN = "f0" * 32


class _Executor:
    def __init__(self):
        self.launched = []

    def launch(self, spec):
        self.launched.append(spec)
        return LaunchResult.accepted()


class _Popen:
    """Records each spawned command line and what was written to its stdin."""

    spawned: list = []

    def __init__(self, args, **kwargs):
        self.args, self.kwargs, self.stdin_text = args, kwargs, []
        self.stdin = self
        _Popen.spawned.append(self)

    def write(self, text):
        self.stdin_text.append(text)

    def close(self):
        pass


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    _Popen.spawned = []
    monkeypatch.setattr(guard.subprocess, "Popen", _Popen)
    monkeypatch.setattr(guard.ApprovedAppsPlugin, "approved", frozenset({HASH}))
    monkeypatch.setattr(guard.ApprovedAppsPlugin, "site", "hospital-a")
    monkeypatch.setattr(guard.ApprovedAppsPlugin, "refusal_log", tmp_path / "refused.jsonl")
    return guard.ApprovedAppsPlugin(runtime_api_address="127.0.0.1:9094", insecure=True, root_certificates_path=None,
                                    executor=_Executor())


@pytest.mark.parametrize("task_type", [t for t in TaskType if t != TaskType.CLIENT_APP])
def test_a_task_of_any_other_type_is_never_launched(plugin, tmp_path, task_type):
    """An AGENT_APP run (say) would install and load its bundle under Flower's auto-exec."""
    result = plugin.launch_task(TOKEN, Task(task_id=3, type=task_type, run_id=9, fab_hash=OTHER))
    assert result.status == "failed" and "not approved" in result.message
    assert not plugin.executor.launched and not _Popen.spawned
    assert json.loads((tmp_path / "refused.jsonl").read_text())["fab_hash"] == OTHER
    # Not even an approved bundle runs as anything but the site's ClientApp.
    result = plugin.launch_task(TOKEN, Task(task_id=4, type=task_type, run_id=9, fab_hash=HASH))
    assert result.status == "failed" and "runs ClientApps only" in result.message
    assert not plugin.executor.launched


def test_an_unapproved_clientapp_is_answered_without_its_token_on_a_command_line(plugin):
    assert plugin.launch_task(TOKEN, Task(task_id=1, type=TaskType.CLIENT_APP, run_id=7,
                                          fab_hash=OTHER)).status == "accepted"
    (refusal,) = _Popen.spawned
    assert "refuse" in refusal.args and not any(TOKEN in a for a in refusal.args)  # ps shows argv to everyone
    assert refusal.kwargs["stdin"] == subprocess.PIPE and "".join(refusal.stdin_text).strip() == TOKEN
    assert not plugin.executor.launched
    plugin.launch_task(TOKEN, Task(task_id=2, type=TaskType.CLIENT_APP, run_id=7, fab_hash=HASH))
    assert [s.fab_hash for s in plugin.executor.launched] == [HASH]


def test_flowers_executor_is_replaced_by_one_that_keeps_the_token_off_argv():
    plugin = guard.ApprovedAppsPlugin(runtime_api_address="127.0.0.1:9094", insecure=True,
                                      root_certificates_path=None, executor=SubprocessExecutor())
    assert isinstance(plugin.executor, guard.TokenFileExecutor)


def test_clientapp_reads_its_token_from_an_unnamed_inherited_file(tmp_path, monkeypatch):
    """Flower's own flwr-clientapp argument parsing and token reading, on the command line we build."""
    out, real_popen, seen, procs = tmp_path / "token.txt", subprocess.Popen, [], []
    child = ("import sys; from flwr.supernode.cli.flwr_clientapp import _parse_args_run_flwr_clientapp as p; "
             "from flwr.common.args import try_obtain_flwr_app_token as t; "
             f"open({str(out)!r}, 'w').write(t(p().parse_args(sys.argv[1:])))")

    def popen(args, **kwargs):
        seen.append(args)
        procs.append(real_popen([sys.executable, "-c", child, *args[1:]], **kwargs))
        return procs[-1]

    monkeypatch.setattr(guard.subprocess, "Popen", popen)
    spec = ExecutionSpec(task_type=TaskType.CLIENT_APP, runtime_api_address="127.0.0.1:9094", token=TOKEN,
                         insecure=True, root_certificates_path=None, runtime_dependency_install=False,
                         parent_pid=None, suppress_output=False, task_id=5)
    assert guard.TokenFileExecutor().launch(spec).status == "accepted"
    (args,) = seen
    assert args[0] == "flwr-clientapp" and not any(TOKEN in a for a in args)
    assert args[args.index("--token-file") + 1].startswith("/dev/fd/")
    assert procs[0].wait(timeout=120) == 0 and out.read_text() == TOKEN
