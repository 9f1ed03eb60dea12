"""A site must use the run's tokenizer: a site whose text model has another one refuses, naming both."""
from __future__ import annotations

import shutil

import pytest
from flwr.app import Context, RecordDict

from client.app.client_app import site_model_source
from shared_model.errors import CheckpointError
from shared_model.run_config import RunConfig
from shared_model.text_model import tokenizer_sha256
from tests.shared_model.text_models import save_small_bert


@pytest.fixture(scope="module")
def berts(tmp_path_factory):
    """The run's text model, a site's exact copy of it, and a model with another vocabulary (no Chinese)."""
    root = tmp_path_factory.mktemp("berts")
    run = save_small_bert(root / "run")
    copy = shutil.copytree(run, root / "site-copy")
    other = save_small_bert(root / "other", chinese=False)
    return run, copy, other


def context(run_model, site_model=None) -> Context:
    rc = RunConfig(text_model=str(run_model), tokenizer_sha256=tokenizer_sha256(run_model)).to_run_config()
    node = {"site-name": "hospital-b", "data-path": "/nonexistent"} | ({"text-model": str(site_model)} if site_model else {})
    return Context(run_id=1, node_id=7, node_config=node, state=RecordDict(), run_config=rc)


def test_a_site_with_a_copy_of_the_run_text_model_takes_part(berts):
    run, copy, _ = berts
    source = site_model_source(context(run, copy))
    assert source.text_model == str(copy) and source.tokenizer().sha256 == tokenizer_sha256(run)


def test_a_site_with_another_tokenizer_is_refused_naming_both(berts):
    run, _, other = berts
    with pytest.raises(CheckpointError, match="tokenizer mismatch") as err:
        site_model_source(context(run, other))
    assert tokenizer_sha256(run)[:12] in str(err.value) and tokenizer_sha256(other)[:12] in str(err.value)


def test_a_site_without_the_run_text_model_says_where_to_set_it(berts, tmp_path):
    run, _, _ = berts
    with pytest.raises(CheckpointError, match="text_model in its site.yaml"):
        site_model_source(context(run, tmp_path / "missing"))
