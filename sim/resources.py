"""What each virtual site gets from Flower's simulation runtime: a device and Ray client resources.

Ray hides every GPU from a ClientApp whose client resources ask for none, so on a GPU machine a
site trains on the CPU unless ``num_gpus`` is set: ``gpus_per_site`` is that share (0.25: four
sites on one GPU at once; Ray's limits are soft, a share does not cap memory). Settings Ray could
never place (more cores or GPUs per site than the machine has) are refused here, before a Flower
process starts, instead of leaving the simulation waiting for an actor that never comes.
Importable without torch: the machine's GPUs are looked up only when a setting needs them.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass

DEVICES = ("auto", "cpu", "cuda")


def machine_cores() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True)
class SiteResources:
    device: str = "auto"  # auto: CUDA when the machine has it, else CPU
    # Ray runs floor(cores / cpus_per_site) sites at once. All cores to one site at a time keeps a
    # large site from straggling on one core while the others idle (Dirichlet sizes are skewed).
    cpus_per_site: int = machine_cores()
    gpus_per_site: float | None = None  # None: on CUDA, an equal share for the sites that run at once; else 0
    cluster: bool = False  # an existing Ray cluster places the sites: its cores, not this machine's

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"--device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.cpus_per_site < 1:
            raise ValueError(f"--cpus-per-site must be at least 1, got {self.cpus_per_site}")
        if not self.cluster and self.cpus_per_site > machine_cores():
            raise ValueError(f"--cpus-per-site {self.cpus_per_site}: this machine has {machine_cores()} cores, "
                             "so Ray could never place a site")
        if self.gpus_per_site is not None and self.gpus_per_site < 0:
            raise ValueError(f"--gpus-per-site must be 0 or more, got {self.gpus_per_site}")
        if self.device == "cpu" and self.gpus_per_site:
            raise ValueError(f"--gpus-per-site {self.gpus_per_site} with --device cpu: the sites would hold a GPU "
                             "they never use; leave one of the two out")
        if self.device == "cuda" and self.gpus_per_site == 0:
            raise ValueError("--device cuda with --gpus-per-site 0: Ray hides the GPU from a site that asks for "
                             "none; give each site a share (e.g. 0.25)")
        if self.device == "cuda" or self.gpus_per_site:
            self._check_gpus()

    def _check_gpus(self) -> None:
        if self.cluster:  # the cluster's nodes hold the GPUs, not necessarily this one (its head): Ray places
            return
        gpus = gpu_count()
        if gpus == 0:
            asked = "--device cuda" if self.device == "cuda" else f"--gpus-per-site {self.gpus_per_site}"
            raise ValueError(f"{asked}: no CUDA GPU is available on this machine (use --device cpu)")
        if not self.cluster and (self.gpus_per_site or 0) > gpus:
            raise ValueError(f"--gpus-per-site {self.gpus_per_site}: this machine has {gpus} GPU(s), "
                             "so Ray could never place a site")

    def trains_on_cuda(self) -> bool:
        return self.device == "cuda" or (self.device == "auto" and (self.gpus_per_site is None or
                                                                    self.gpus_per_site > 0) and gpu_count() > 0)

    @property
    def gpus(self) -> float:
        """Each site's GPU share as Ray is asked for it."""
        if self.gpus_per_site is not None:
            return float(self.gpus_per_site)
        if self.cluster:  # its GPUs are not this machine's to count: a whole one each, unless asked for less
            return 1.0 if self.device == "cuda" else 0.0
        if not self.trains_on_cuda():
            return 0.0
        at_once = max(1, machine_cores() // self.cpus_per_site)
        return min(1.0, gpu_count() / at_once)

    def site_device(self) -> str:
        """The run config's ``device``: what a site resolves inside its Ray actor, where its share of the
        GPUs is the only one it sees (so never an index)."""
        if self.device == "cpu" or not self.gpus:
            return "cpu"
        return "cuda"

    def federation_config(self) -> str:
        """Flower's ``--federation-config`` resources."""
        return f"client-resources-num-cpus={self.cpus_per_site} client-resources-num-gpus={self.gpus:g}"


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_ray_address(address: str, *, timeout: float = 3.0) -> None:
    """An existing Ray cluster's head (``ray start --head``) as HOST:PORT, answering now: refused here in
    seconds rather than after Ray's own minute of connection retries inside the simulation."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--ray-address must be HOST:PORT (the head's GCS port, 6379 by default), got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ValueError(f"--ray-address {address}: nothing answers there ({exc.strerror or exc}); start the "
                         f"cluster's head with `ray start --head --port {port}`") from None
