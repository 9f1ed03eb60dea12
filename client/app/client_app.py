"""The Flower ClientApp (Message API): a thin shell around ``client.app.site`` and ``shared_model``.

Where a site's data and state are (``client.app.node``): ``node_config["data-path"]`` on a real
SuperNode; in a simulation the virtual node's ``partition-id`` picks
``<run-dir>/sites/<name>/manifest.jsonl``.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from client.app.faults import poison_of, poisoned  # noqa: E402
from client.app.final_model import CARD_ACTION, KEPT_RECORD, MODEL_ACTION  # noqa: E402
from client.app.node import (data_path_of, decoded_cache_dir, site_name_of, site_scrub, site_selection,  # noqa: E402
                             site_state_dir)
from client.app.progress import report_progress  # noqa: E402
from client.app.secagg import is_secure, secure_train  # noqa: E402
from shared_model.config import get_preset, trained_keys  # noqa: E402
from shared_model.run_config import RunConfig  # noqa: E402
from shared_model.schedule import local_epochs_for, objective_progress  # noqa: E402
from shared_model.selection import VALIDATE_PREFIX  # noqa: E402

# torch, timm and transformers are imported inside the handlers: a SuperNode starts a new
# process for every message, and three of SecAgg+'s four stages never touch the model.

app = ClientApp()
NAN = float("nan")
PRIVACY_STATEMENT = "privacy-statement"  # evaluate replies: ConfigRecord {"json": the site's privacy statement}


def _training_examples(context: Context, image_size: int):
    """This site's contributed training examples (``client.app.site.site_examples``)."""
    from client.app.site import site_examples

    languages, modalities = site_selection(context)
    return site_examples(data_path_of(context), image_size, "train", decoded_cache_dir(context),
                         languages=languages, modalities=modalities, scrub=site_scrub(context))


def _site_record(context: Context) -> ConfigRecord:
    return ConfigRecord({"name": site_name_of(context)})


def _guarded(handler):
    """A failure becomes a short error reply naming the site: the server reports it and goes on."""
    def run(msg: Message, context: Context) -> Message:
        index = int(context.node_config.get("partition-id", -1))
        try:
            return handler(msg, context, index)
        except Exception as exc:  # noqa: BLE001 - any site failure is that site's round status
            label = context.node_config.get("site-name", index)
            reason = f"[site {label}] {type(exc).__name__}: {exc}"
            return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=msg)
    run.__name__ = handler.__name__
    return run


def _global_model(content: RecordDict, context: Context):
    """The global model the server sent, built from this site's own copy of the model's files."""
    from shared_model.device import resolve_device

    device = resolve_device(RunConfig.from_run_config(context.run_config).device)
    model = site_model_source(context).empty()
    model.load_state_dict(content["arrays"].to_torch_state_dict())
    return model.to(device), model.cfg, device


@app.train()
@_guarded
def train(msg: Message, context: Context, index: int) -> Message:
    """One local update of the objective the server asked for (under SecAgg+: through its protocol)."""
    if is_secure(msg):
        return secure_train(msg, context, lambda content: train_content(content, context, index))
    return Message(train_content(msg.content, context, index), reply_to=msg)


def train_content(content: RecordDict, context: Context, index: int) -> RecordDict:
    """The reply content of one local update: the trained half, metrics, and a refusal's reason."""
    from client.app.site import failure_after, local_update
    from client.app.site_privacy import ReleasedUpdates, private_round, run_key, site_privacy
    from privacy.accounting import PrivacyBudgetExhausted, RoundRefused
    from privacy.ledger import LedgerError
    from shared_model.kept_state import RoundFiles
    from shared_model.objectives import TrainConfig

    started = time.perf_counter()
    run, config = RunConfig.from_run_config(context.run_config), content["config"]
    model, cfg, device = _global_model(content, context)
    examples = _training_examples(context, cfg.image_size)
    train_cfg = TrainConfig(batch_size=run.batch_size, lr=run.lr, lm_lr=run.lm_lr,
                            lm_batch_size=run.lm_batch_size or None)
    # Seeded by site, not by node id (random per run), so the same seed gives the same run.
    seed = run.seed * 100_003 + int(config["global-round"]) * 101 + (index if index >= 0 else context.node_id % 97)
    global_round, objective = int(config["global-round"]), str(config["objective"])
    dies = index in run.dropped and global_round >= run.drop_round
    update = dict(train=train_cfg, epochs=local_epochs_for(objective, run.local_epochs, run.lm_local_epochs),
                  seed=seed, device=device, on_step=failure_after(1) if dies else None,
                  proximal_mu=float(config.get("proximal-mu", 0.0)),
                  progress=objective_progress(global_round, run.schedule, run.num_server_rounds),
                  memory=RoundFiles(site_state_dir(context), global_round) if run.keep_optimizer else None)
    try:  # a ledger cut short, deleted or replaced is refused before anything trains
        privacy = site_privacy(context, examples, receipt=_receipt(content))
    except LedgerError as exc:
        return _refusal(index, f"ledger: {exc}", epsilon=NAN, site=_site_record(context))
    epsilon, release = None, ("num-examples", "train-loss")
    if privacy is None:
        loss, n = local_update(model, examples, objective, **update)
    else:  # the site's own policy and pace decide, whatever the server asked
        release = privacy.policy.release
        try:
            loss, n, epsilon = private_round(privacy, model, examples, objective, run_id=run_key(context),
                                             round=global_round, released=ReleasedUpdates(site_state_dir(context)),
                                             **update)
        except (PrivacyBudgetExhausted, RoundRefused) as exc:
            reason = (f"budget exhausted: {str(exc).removeprefix('privacy budget exhausted: ')}"
                      if isinstance(exc, PrivacyBudgetExhausted) else f"budget: {exc}")
            return _refusal(index, reason, epsilon=privacy.ledger.epsilon(), site=_site_record(context),
                            head=privacy.ledger.head())
        except LedgerError as exc:
            return _refusal(index, f"ledger: {exc}", epsilon=NAN, site=_site_record(context))
    # Only what this objective trained goes back (the other half did not change): fewer bytes up.
    state = model.cpu().state_dict()
    trained = {k: state[k] for k in trained_keys(state, objective)} if n else {}
    poison = poison_of(run, index, global_round)
    if poison and n:  # a faulty site on purpose (m3fed sim --poison-sites): after training and its ledger
        trained, n = poisoned(poison, trained, content["arrays"].to_torch_state_dict(), n)
    arrays, scales = _encoded(trained, content["arrays"], run.update_dtype)
    seconds = time.perf_counter() - started
    report_progress(run.progress_file, event="site", round=global_round, site=index,
                    objective=objective, loss=loss if n else None, examples=n, seconds=seconds)
    # Every site, DP or not, replies with the same keys; NaN: not stated (no DP, or loss withheld).
    metrics = {"num-examples": n, "bytes-up": arrays.count_bytes() + sum(a.count_bytes() for a in scales.values()),
               "site-index": index, "seconds": seconds,
               "loss": loss if n and "train-loss" in release else NAN,
               "epsilon": NAN if epsilon is None else epsilon}
    return RecordDict({"arrays": arrays, **scales, "metrics": MetricRecord(metrics), "site": _site_record(context),
                       **_head_record(privacy.ledger.head() if privacy is not None else None)})


def _encoded(trained: dict, received: ArrayRecord, dtype: str) -> tuple[ArrayRecord, dict]:
    """The reply's ``arrays`` (and ``scales`` for int8) in the run's update dtype (``shared_model.update_codec``)."""
    if dtype == "fp32" or not trained:
        return ArrayRecord(trained), {}
    from flwr.app import Array

    from shared_model.update_codec import SCALES, encode

    arrays, scales = encode({k: v.numpy() for k, v in trained.items()},
                            {k: received[k].numpy() for k in trained}, dtype)
    return (ArrayRecord({k: Array(v) for k, v in arrays.items()}),
            {SCALES: ArrayRecord({k: Array(v) for k, v in scales.items()})} if scales else {})


def site_model_source(context: Context):
    """The run's model source, with this site's own text-model directory where its node config names one
    (a deployed site's site.yaml); its tokenizer must be the run's, or the site refuses to take part."""
    from shared_model.checkpoint import ModelSource
    from shared_model.errors import CheckpointError

    run = RunConfig.from_run_config(context.run_config)
    text_model = str(context.node_config.get("text-model", "")) or run.text_model
    source = ModelSource(preset=run.preset, text_model=text_model, adapter=run.adapter)  # no start files: the server sends
    if bool(text_model) != bool(run.text_model):
        raise CheckpointError(f"tokenizer mismatch: this site has the text model {text_model or 'none'}, the run "
                              f"uses {run.text_model or 'the shipped tokenizer'}")
    if text_model and not Path(text_model).is_dir():
        raise CheckpointError(f"the run uses the text model {run.text_model} (tokenizer sha256 "
                              f"{run.tokenizer_sha256[:12]}…), which this site does not have: set text_model in its "
                              "site.yaml to its copy of that directory")
    ours = source.tokenizer().sha256
    if run.tokenizer_sha256 and ours != run.tokenizer_sha256:
        raise CheckpointError(f"tokenizer mismatch: the run's tokenizer is sha256 {run.tokenizer_sha256[:12]}…, this "
                              f"site's ({text_model}) is sha256 {ours[:12]}…; every site must use the same tokenizer")
    return source


def _refusal(index: int, reason: str, *, epsilon: float, site: ConfigRecord, head: dict | None = None) -> RecordDict:
    """Not an error: the site works, it declines this round; the server shows the reason as its status."""
    metrics = MetricRecord({"num-examples": 0, "site-index": index, "bytes-up": 0, "seconds": 0.0, "loss": NAN,
                            "epsilon": epsilon})
    return RecordDict({"arrays": ArrayRecord(), "metrics": metrics, "status": ConfigRecord({"reason": reason[:300]}),
                       "site": site, **_head_record(head)})


def _head_record(head: dict | None) -> dict:
    """The ledger's signed head travels with every ε a site states: the server keeps it as a receipt."""
    from privacy.ledger_head import HEAD_RECORD

    return {HEAD_RECORD: ConfigRecord(head)} if head else {}


def _receipt(content: RecordDict) -> dict | None:
    """The server's receipt of this site's ledger head (``server.receipts``), if it sent one."""
    from privacy.ledger_head import RECEIPT_RECORD

    return dict(content[RECEIPT_RECORD]) if RECEIPT_RECORD in content.config_records else None


@app.query()
@_guarded
def declare(msg: Message, context: Context, index: int) -> Message:
    """The site's declaration (``client.app.site.declaration``), asked once before its first round.

    Its data is decoded here, so a simulated site's first round does not pay for it, and a site
    under a privacy policy states the ε it has spent so far (its ledger, replayed).
    """
    from client.app.site import declaration
    from client.app.site_privacy import site_privacy

    site_model_source(context)  # a site with another tokenizer says so before round 1
    examples = _training_examples(context, get_preset(RunConfig.from_run_config(context.run_config).preset).image_size)
    from privacy.ledger import LedgerError

    metrics: dict = {"site-index": index}
    try:
        privacy = site_privacy(context, examples)
    except LedgerError:  # declared without ε; its first round is refused with the ledger named
        privacy = None
    if privacy is not None:
        metrics["epsilon"] = privacy.ledger.epsilon()
    return Message(RecordDict({"declaration": ConfigRecord(declaration(examples)), "metrics": MetricRecord(metrics),
                               "site": _site_record(context),
                               **_head_record(privacy.ledger.head() if privacy is not None else None)}), reply_to=msg)


@app.evaluate()
@_guarded
def evaluate(msg: Message, context: Context, index: int) -> Message:
    """The global model on this site's own test patients (client-side evaluation).

    A site under a privacy policy also sends its privacy statement (``PRIVACY_STATEMENT``), whether
    or not its policy releases the metrics: the statement is not an evaluation of private data,
    it restates the ε the site already states every round, replayed from its ledger.
    """
    from client.app.site import local_evaluation
    from client.app.site_privacy import site_policy

    model, cfg, device = _global_model(msg.content, context)
    data = data_path_of(context)
    languages, modalities = site_selection(context)
    config = msg.content.config_records.get("config", ConfigRecord())
    metrics = {}
    # Test patients (the default: an older server asks no split), and validate patients for model
    # selection (server.site_evaluation), with reports only when the round selects on BLEU-4.
    for split in str(config.get("splits", "test")).split(","):
        if split not in ("test", "validate"):
            raise ValueError(f"evaluation split {split!r}: expected test or validate")
        scores = local_evaluation(model, data, cfg.image_size, device,
                                  seed=RunConfig.from_run_config(context.run_config).seed,
                                  cache_dir=decoded_cache_dir(context), languages=languages, modalities=modalities,
                                  scrub=site_scrub(context), split=split, reports=split == "test" or bool(config.get("validate-reports", 0)))
        metrics.update({f"{VALIDATE_PREFIX if split == 'validate' else ''}{k}": v for k, v in scores.items()})
    policy = site_policy(context)
    if policy is not None and "eval-metrics" not in policy.release:  # the site's policy keeps them home
        metrics = {k: v for k, v in metrics.items() if k.endswith("num-examples")} | {"withheld": 1}
    return Message(RecordDict({"metrics": MetricRecord({**metrics, "site-index": index}),
                               "site": _site_record(context), **statement_record(context)}), reply_to=msg)


def statement_record(context: Context) -> dict:
    """``{PRIVACY_STATEMENT: ConfigRecord({"json": ...})}`` for a site under a privacy policy, else {}:
    its statement replayed from its ledger (``client.app.site_privacy.site_statement``), a few KB."""
    from client.app.site_privacy import privacy_paths, site_statement

    paths = privacy_paths(context)
    if paths is None:
        return {}
    return {PRIVACY_STATEMENT: ConfigRecord({"json": json.dumps(site_statement(paths[1]), ensure_ascii=False)})}


@app.query(MODEL_ACTION)
@_guarded
def final_model(msg: Message, context: Context, index: int) -> Message:
    """The run's final model, sent once at the end of a deployed run: checked against its sha256 and this
    site's tokenizer, kept in the site's state directory (``client.app.final_model``). The reply states
    the sha256 of the file kept and, under a privacy policy, the site's privacy statement (for the card)."""
    from client.app.final_model import keep_model, model_dir

    run = RunConfig.from_run_config(context.run_config)
    kept = keep_model(msg.content, model_dir(context), tokenizer_sha256=site_model_source(context).tokenizer().sha256,
                      run={"run_id": context.run_id, "run_dir": run.run_dir})
    return Message(RecordDict({KEPT_RECORD: ConfigRecord(kept), "site": _site_record(context),
                               **statement_record(context)}), reply_to=msg)


@app.query(CARD_ACTION)
@_guarded
def model_card(msg: Message, context: Context, index: int) -> Message:
    """The run's model card, kept beside the final model it names."""
    from client.app.final_model import keep_card, model_dir

    kept = keep_card(msg.content, model_dir(context))
    return Message(RecordDict({KEPT_RECORD: ConfigRecord(kept), "site": _site_record(context)}), reply_to=msg)
