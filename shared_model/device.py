"""Where a site trains: CUDA (bf16 autocast where supported) when present, else CPU."""
from __future__ import annotations

import contextlib

import torch


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA device is available on this machine")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def server_device(name: str) -> torch.device:
    """Where the server evaluates: the run's ``device``, except that a run asking its sites for CUDA
    still evaluates on the CPU of a server host without a GPU (a deployment's server, a Ray cluster's head)."""
    if name.startswith("cuda") and not torch.cuda.is_available():
        return torch.device("cpu")
    return resolve_device(name)


def autocast(device: torch.device):
    """bf16 autocast on GPUs that support it; full precision elsewhere (CPU bf16 is slower here)."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
