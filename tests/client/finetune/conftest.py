"""The site data the fine-tuning tests share: an easy synthetic site, generated once per session."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def easy_site(tmp_path_factory) -> Path:
    """100 patients, findings drawn plainly (difficulty 0): a classifier learns the clearest in ~100 steps."""
    from sim.synth import generate

    data = tmp_path_factory.mktemp("finetune_site")
    generate(data, patients=100, seed=21, difficulty=0.0)
    return data
