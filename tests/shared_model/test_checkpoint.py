"""Where a run's weights start: drawn from its seed, or a checkpoint's (shared_model/checkpoint.py)."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from shared_model.checkpoint import CheckpointError, ModelSource, save_checkpoint
from shared_model.config import get_preset
from shared_model.model import build_model


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_run_starts_from_its_seed_or_from_the_checkpoint_it_names(tmp_path):
    tiny = ModelSource(preset="tiny")
    assert _same(tiny.initial(seed=1), tiny.initial(seed=1))
    assert not _same(tiny.initial(seed=1), tiny.initial(seed=2))
    pretrained = tiny.initial(seed=2)
    save_checkpoint(tmp_path / "public.safetensors", pretrained)
    assert _same(ModelSource(init=str(tmp_path / "public.safetensors")).initial(seed=1), pretrained)


def test_a_checkpoint_of_another_model_config_is_refused_naming_what_differs(tmp_path):
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "deeper.safetensors", build_model(dataclasses.replace(get_preset("tiny"), vit_depth=2)))
    with pytest.raises(CheckpointError, match=r"vit_depth 2 \(this run: 4\)"):
        ModelSource(init=str(tmp_path / "deeper.safetensors")).initial(seed=0)
