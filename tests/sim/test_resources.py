"""Where the virtual sites train (sim/resources.py): Ray client resources, and settings Ray could never
place refused in seconds with one line, before any Flower process starts."""
from __future__ import annotations

import os

import pytest

import sim.resources as resources
from sim.resources import SiteResources
from sim.sim_config import SimConfig


@pytest.fixture
def machine(monkeypatch):
    """A machine with the cores and GPUs a test says."""
    def set_machine(*, cores: int, gpus: int) -> None:
        monkeypatch.setattr(resources, "machine_cores", lambda: cores)
        monkeypatch.setattr(resources, "gpu_count", lambda: gpus)
    return set_machine


def test_on_a_cpu_machine_sites_get_no_gpu_and_train_on_the_cpu(machine):
    machine(cores=2, gpus=0)
    auto = SiteResources(cpus_per_site=1)
    assert (auto.gpus, auto.site_device()) == (0.0, "cpu")
    assert auto.federation_config() == "client-resources-num-cpus=1 client-resources-num-gpus=0"


def test_on_a_gpu_machine_the_sites_that_run_at_once_share_it(machine):
    machine(cores=16, gpus=1)
    # 4 cores each: 4 sites at once, a quarter of the GPU each (Ray hides the GPU from a site asking none).
    four = SiteResources(cpus_per_site=4)
    assert (four.gpus, four.site_device()) == (0.25, "cuda")
    assert SiteResources(cpus_per_site=16).gpus == 1.0  # one site at a time: the whole GPU
    assert SiteResources(cpus_per_site=4, gpus_per_site=0.5).gpus == 0.5  # asked for: as asked
    machine(cores=16, gpus=2)
    assert SiteResources(cpus_per_site=4).gpus == 0.5
    # --device cpu on a GPU machine: the sites stay on the CPU and hold no GPU share.
    cpu = SiteResources(device="cpu", cpus_per_site=4)
    assert (cpu.gpus, cpu.site_device()) == (0.0, "cpu")
    # auto with no share asked for the sites: CPU sites (the share, not the device, decides).
    assert SiteResources(cpus_per_site=4, gpus_per_site=0).site_device() == "cpu"


@pytest.mark.parametrize("settings, message", [
    (dict(device="cuda"), "--device cuda: no CUDA GPU is available on this machine"),
    (dict(gpus_per_site=0.25), "--gpus-per-site 0.25: no CUDA GPU is available on this machine"),
    (dict(cpus_per_site=3), "--cpus-per-site 3: this machine has 2 cores, so Ray could never place a site"),
    (dict(cpus_per_site=0), "--cpus-per-site must be at least 1"),
    (dict(gpus_per_site=-1.0), "--gpus-per-site must be 0 or more"),
    (dict(device="cpu", gpus_per_site=1.0), "--gpus-per-site 1.0 with --device cpu"),
    (dict(device="tpu"), "--device must be one of auto, cpu, cuda"),
])
def test_settings_that_cannot_work_on_this_machine_are_refused_naming_the_flag(machine, settings, message):
    machine(cores=2, gpus=0)
    with pytest.raises(ValueError, match="^" + message.replace(".", r"\.").replace("(", r"\(")):
        SiteResources(**{"cpus_per_site": 1, **settings})


def test_gpu_shares_the_machine_cannot_give_are_refused(machine):
    machine(cores=16, gpus=1)
    with pytest.raises(ValueError, match=r"--gpus-per-site 2\.0: this machine has 1 GPU\(s\)"):
        SiteResources(cpus_per_site=4, gpus_per_site=2.0)
    with pytest.raises(ValueError, match="--device cuda with --gpus-per-site 0: Ray hides the GPU"):
        SiteResources(device="cuda", cpus_per_site=4, gpus_per_site=0)
    # A Ray cluster's own resources place the sites: this machine's count is not the limit.
    assert SiteResources(cpus_per_site=64, gpus_per_site=2.0, cluster=True).gpus == 2.0


def test_the_sim_command_refuses_them_in_seconds_before_writing_anything(tmp_path, capsys, machine):
    from sim.m3fed_command import main

    machine(cores=os.cpu_count() or 1, gpus=0)
    for flags, message in ((["--device", "cuda"], "error: --device cuda: no CUDA GPU"),
                           (["--gpus-per-site", "0.5"], "error: --gpus-per-site 0.5: no CUDA GPU"),
                           (["--cpus-per-site", "999"], "error: --cpus-per-site 999: this machine has"),
                           (["--max-records-per-site", "-3"], "error: --max-records-per-site must be at least 1")):
        code = main(["sim", "--out", str(tmp_path / "run"), *flags])  # no --data: the default dataset
        err = capsys.readouterr().err
        assert code == 2 and err.startswith(message) and "Traceback" not in err, err
        # Refused before anything that takes time: the default synthetic dataset was never written.
        assert not (tmp_path / "run").exists()


def test_the_sites_device_and_the_servers_evaluation_sample_reach_the_run_config(tmp_path, machine):
    from shared_model.run_config import RunConfig
    from sim.simulate import run_config_of

    machine(cores=2, gpus=0)
    cfg = SimConfig(data="data", out=str(tmp_path), sites=3, preset="paper", max_records_per_site=8)
    run = RunConfig.from_run_config(run_config_of(cfg, tmp_path, resume=False))
    assert (run.preset, run.device, run.eval_max_records) == ("paper", "cpu", 24)
    assert SimConfig(data="data", out=str(tmp_path)).eval_max_records == 0  # the default: every record
    for bad, message in (({"device": "tpu"}, "device must be auto, cpu or cuda"),
                         ({"preset": "huge"}, "unknown preset 'huge'"),
                         ({"eval-max-records": -1}, "eval-max-records must be 0")):
        with pytest.raises(ValueError, match=message):
            RunConfig.from_run_config({**run.to_run_config(), **bad})


def test_on_a_ray_cluster_the_gpus_are_the_clusters_not_the_heads(machine):
    machine(cores=2, gpus=0)  # the head has no GPU; the workers may
    on_cluster = SiteResources(device="cuda", cpus_per_site=8, cluster=True)
    assert (on_cluster.gpus, on_cluster.site_device()) == (1.0, "cuda")
    assert SiteResources(cpus_per_site=8, gpus_per_site=0.25, cluster=True).site_device() == "cuda"
    assert SiteResources(cpus_per_site=8, cluster=True).gpus == 0.0  # auto on a cluster: CPU unless asked


def test_the_server_evaluates_on_the_cpu_of_a_host_without_a_gpu(monkeypatch):
    import torch

    from shared_model.device import server_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert server_device("cuda").type == "cpu" and server_device("auto").type == "cpu"
    assert server_device("cpu").type == "cpu"
