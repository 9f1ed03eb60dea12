"""DP-SGD local updates (privacy/dp.py): planned steps, model intact, noise of the right scale, patients grouped."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from client.data.dataset import Examples
from client.data.sources.records import Record
from privacy.dp import private_module, private_update
from privacy.dp_losses import finding_phrases
from privacy.sampling import planned_steps, privacy_units
from shared_model.config import get_preset
from shared_model.kept_state import RoundFiles
from shared_model.model import build_model
from shared_model.objectives import ProgressLR, TrainConfig, add_proximal_term

CPU = torch.device("cpu")
PUBLIC = finding_phrases()
TRAIN = TrainConfig(batch_size=4)



def site(patients: int = 8) -> Examples:
    """Two records per patient; every third record is text-only (a report without an image)."""
    records, index, n_images = [], [], 0
    for p in range(patients):
        for k in range(2):
            i = len(records)
            image = None if i % 3 == 2 else f"img{i}.png"
            records.append(Record(patient_id=f"p{p}", study_id=f"s{i}", image=image,
                                  report=f"{PUBLIC[i % len(PUBLIC)]} {PUBLIC[(5 * i + 1) % len(PUBLIC)]}",
                                  language="en", split="train", modality="CXR"))
            index.append(n_images if image else -1)
            n_images += image is not None
    images = torch.randint(0, 256, (n_images, 1, 64, 64), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    return Examples(records, torch.tensor(index), images)


def study_site():
    """A MIMIC-shaped site as the loaders make it: one row per image and language, the study's report on each.

    Patient p0's study 1 has 3 images and an English and a Chinese report (6 rows); the others have
    1 or 2 images, English only.
    """
    en = [f"{PUBLIC[i]} {PUBLIC[-1 - 3 * i]}" for i in range(4)]  # none equals a public phrase
    zh = "心脏大小正常 未见胸腔积液"
    studies = [("p0", "1", 3, (en[0], zh)), ("p0", "2", 1, (en[1],)), ("p1", "3", 2, (en[2],)),
               ("p2", "4", 1, (en[3],))]
    records, index = [], []
    for patient, study, n_images, reports in studies:
        for k in range(n_images):
            for report in reports:
                records.append(Record(patient_id=patient, study_id=study, image=f"{study}-{k}.png", report=report,
                                      language="zh" if report == zh else "en", split="train", modality="CXR"))
                index.append(len({r.image for r in records}) - 1)
    images = torch.randint(0, 256, (len(set(index)), 1, 64, 64), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(2))
    return Examples(records, torch.tensor(index), images)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(get_preset("tiny"))


def run(model, objective, **kwargs):
    args = dict(train=TRAIN, epochs=1, seed=3, device=CPU, noise_multiplier=1.0, max_grad_norm=1.0, batch_size=4,
                unit="record", public_texts=PUBLIC, layers="all")
    return private_update(model, site(), objective, **{**args, **kwargs})


@pytest.mark.parametrize("objective,unit", [("contrastive", "record"), ("report-generation", "patient")])
def test_private_update_runs_the_planned_steps_and_leaves_a_plain_model(model, objective, unit):
    # Prepare
    before = {k: v.clone() for k, v in model.state_dict().items()}
    units = privacy_units(site(), objective, unit=unit)
    # Execute
    result = run(model, objective, unit=unit)
    # Assert: exactly the planned (accounted) steps ran, on the right units.
    assert (result.steps, result.sample_rate) == planned_steps(len(units), batch_size=4, epochs=1)
    assert isinstance(result.steps, int) and result.units == len(units)
    assert result.examples == (11 if objective == "contrastive" else 16)
    after = model.state_dict()
    assert list(after) == list(before)  # no "_module." prefixes, nothing added or dropped
    trained = "clip." if objective == "contrastive" else "lm."
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(trained))
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith(trained))
    # No Opacus state left behind: hooks removed, attributes gone, frozen parameters trainable again.
    assert not any(hasattr(p, "grad_sample") or hasattr(p, "summed_grad") for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())
    assert not any(m._forward_hooks or m._backward_hooks for m in model.modules())


def test_contrastive_dp_round_keeps_the_fallback_and_vocabulary_parameters(model):
    # Prepare: the parameters that would put the whole ViT under Opacus' vmap fallback, and the
    # text encoder's vocabulary table, stay at the global model's values (privacy/dp.py).
    kept = ("clip.visual.pos_embed", "clip.visual.cls_token", "clip.text.embeddings.word_embeddings.weight")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # Execute
    run(model, "contrastive")
    # Assert
    after = model.state_dict()
    assert all(k in after and torch.equal(before[k], after[k]) for k in kept)
    assert not torch.equal(before["clip.visual.blocks.0.attn.qkv.weight"], after["clip.visual.blocks.0.attn.qkv.weight"])
    assert not torch.equal(before["clip.visual.blocks.0.norm1.weight"], after["clip.visual.blocks.0.norm1.weight"])


def test_report_generation_dp_round_keeps_the_tied_vocabulary_table_and_trains_its_bias(model):
    # Prepare: the decoder's token table is also its output layer's weight (tied); under DP it keeps
    # the global values, the output layer's bias and the decoder's layers train.
    table = "lm.seq2seq.decoder.bert.embeddings.word_embeddings.weight"
    bias, layer = "lm.seq2seq.decoder.cls.predictions.bias", "lm.seq2seq.decoder.bert.encoder.layer.0.output.dense.weight"
    assert model.lm.seq2seq.decoder.cls.predictions.decoder.weight is model.lm.seq2seq.decoder.bert.embeddings.word_embeddings.weight
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # Execute
    run(model, "report-generation")
    # Assert
    after = model.state_dict()
    assert torch.equal(before[table], after[table])
    assert not torch.equal(before[bias], after[bias]) and not torch.equal(before[layer], after[layer])
    assert model.lm.seq2seq.decoder.cls.predictions.decoder.weight is model.lm.seq2seq.decoder.bert.embeddings.word_embeddings.weight


@pytest.mark.parametrize("objective", ["contrastive", "report-generation"])
def test_a_top_layers_round_trains_the_top_only_and_restores_every_flag(model, objective):
    # Prepare
    module = model.clip if objective == "contrastive" else model.lm
    top = {p.data_ptr() for m in module.top_layers() for p in m.parameters()}
    names = {k for k, v in model.state_dict().items() if v.data_ptr() in top}  # tied names included
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    # Execute
    run(model, objective, layers="top")
    # Assert: some of the top moved, nothing else did (tied or aliased tensors included).
    after = model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and moved <= names, sorted(moved - names)[:3]
    assert [p.requires_grad for p in model.parameters()] == flags
    with pytest.raises(ValueError, match="top, all"):
        run(model, objective, layers="last")


@pytest.mark.parametrize("physical_rows", [0, 2])
def test_on_step_sees_each_noised_step_once(model, physical_rows):
    # Prepare: 2-row physical batches split most Poisson samples of 4 expected rows.
    seen = []
    # Execute
    result = run(model, "report-generation", on_step=seen.append, physical_rows=physical_rows)
    # Assert
    assert len(seen) == result.steps > 1


def test_a_site_dying_mid_round_leaves_a_plain_model(model):
    # Prepare
    keys = list(model.state_dict())

    def die(_loss):
        raise RuntimeError("site died")

    # Execute
    with pytest.raises(RuntimeError, match="site died"):
        run(model, "report-generation", on_step=die)
    # Assert
    assert list(model.state_dict()) == keys
    assert not any(hasattr(p, "grad_sample") for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("unit", ["record", "patient"])
def test_noise_on_the_averaged_gradient_has_std_sigma_c_over_b(model, unit):
    # Prepare: large σ, so the data's part (norm ≤ C·|batch|/B) is negligible next to the noise.
    sigma, clip, batch = 20.0, 0.5, 4
    stds = []

    def capture(optimizer):  # after clipping, noise and scaling; before the weights move
        grad = torch.cat([p.grad.flatten() for p in optimizer.params])
        stds.append(float(grad.std()))

    # Execute
    result = run(model, "report-generation", unit=unit, noise_multiplier=sigma, max_grad_norm=clip,
                 batch_size=batch, step_hook=capture, noise_seed=11)
    # Assert: every step was noised, with std σ·C/B on the averaged gradient.
    assert len(stds) == result.steps
    assert stds == pytest.approx([sigma * clip / batch] * result.steps, rel=0.02)


def test_noise_is_not_derived_from_the_public_seed(model):
    # Prepare: same seed (same samples), noise from fresh entropy.
    grads = []

    def capture(optimizer):
        grads.append(torch.cat([p.grad.flatten() for p in optimizer.params]))

    # Execute
    for _ in range(2):
        run(model, "report-generation", noise_multiplier=5.0, step_hook=capture, epochs=1, batch_size=8)
    # Assert
    assert not torch.allclose(grads[0], grads[len(grads) // 2])


@pytest.mark.parametrize("unit", ["record", "patient"])
def test_physical_batches_take_the_same_noised_steps_as_whole_samples(model, unit):
    # Prepare: the same round (seeds, noise, schedule) with each sample whole and split into
    # physical batches of at most 2 rows; no DeCap augmentation noise (it draws per forward pass).
    train = dataclasses.replace(TRAIN, lm_noise_std=0.0)
    models, results = [], []
    for physical_rows in (0, 2):
        m = copy.deepcopy(model)
        results.append(run(m, "report-generation", unit=unit, train=train, batch_size=8, noise_seed=1,
                           progress=(0.25, 0.5), physical_rows=physical_rows))
        models.append(m.lm.state_dict())
    # Assert: the same accounted steps and the same weights: clipping is per unit, noise per step.
    assert results[0].steps == results[1].steps
    start = model.lm.state_dict()
    assert any(not torch.equal(start[k], models[0][k]) for k in start)
    for k in start:
        assert torch.allclose(models[0][k], models[1][k], atol=1e-5), k


def test_proximal_term_is_added_after_clipping_and_noise():
    # Prepare: the wiring private_update uses (FedProx on the inner optimiser, DP around it), a
    # weight 10 away from the round's start and a data gradient of zero.
    layer = torch.nn.Linear(3, 1, bias=False)
    inner = add_proximal_term(torch.optim.SGD(layer.parameters(), lr=0.1), mu=1.0)
    with torch.no_grad():
        layer.weight += 10.0
    rows = (torch.arange(2), 2)
    with private_module(layer, inner, noise_multiplier=0.0, max_grad_norm=0.01, expected_batch_size=2,
                        rows=lambda: rows) as optimizer:
        optimizer.zero_grad()
        (0.0 * layer(torch.ones(2, 3))).mean().backward()
        start = layer.weight.detach().clone()
        # Execute
        optimizer.step()
    # Assert: the full proximal pull mu·(w − w0) = 10 applied, not clipped to C = 0.01.
    assert torch.allclose(layer.weight.detach(), start - 0.1 * 10.0, atol=1e-5)


def test_dp_round_follows_the_run_wide_learning_rate_schedule(model):
    # Prepare: the third of four rounds; the step hook sees the lr each noised step is taken with.
    seen = []

    def capture(optimizer):
        seen.append(optimizer.param_groups[0]["lr"])

    # Execute
    result = run(model, "report-generation", step_hook=capture, progress=(0.5, 0.75))
    # Assert: one lr per accounted step, each the schedule's value at that step (decaying, below the base lr).
    probe = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=TRAIN.lm_lr)
    expected = ProgressLR(probe, (0.5, 0.75), result.steps)
    want = []
    for _ in range(result.steps):
        want.append(probe.param_groups[0]["lr"])
        expected.step()
    assert len(seen) == result.steps and seen == pytest.approx(want)
    assert seen[0] > seen[-1] and max(seen) < TRAIN.lm_lr


def test_dp_round_keeps_the_sites_optimiser_state_for_its_next_round(model, tmp_path):
    # Execute: two DP rounds of the same objective at one site.
    first = run(model, "report-generation", memory=RoundFiles(tmp_path, 1))
    second = run(model, "report-generation", memory=RoundFiles(tmp_path, 2))
    # Assert: round 2's AdamW went on from round 1's noised steps (its step count is the sum).
    state = RoundFiles(tmp_path, 3).load("report-generation")
    assert {p["step"].item() for p in state["state"].values()} == {first.steps + second.steps}


@pytest.mark.parametrize("objective,examples", [("contrastive", 10), ("report-generation", 5)])
def test_a_record_level_round_samples_studies_and_trains_each_report_once_per_language(model, objective, examples):
    # Prepare: 4 studies in 10 image-language rows; study 1 has 3 images and 2 report languages.
    ex = study_site()
    # Execute
    result = private_update(model, ex, objective, train=TRAIN, epochs=1, seed=3, device=CPU, noise_multiplier=1.0,
                            max_grad_norm=1.0, batch_size=2, unit="record", public_texts=PUBLIC, layers="top")
    # Assert: N = 4 studies (q = 2/4), every pair trained, each report once per language.
    assert (result.units, result.sample_rate, result.steps) == (4, 0.5, 2)
    assert result.examples == examples


@pytest.mark.parametrize("objective", ["contrastive", "report-generation"])
@pytest.mark.parametrize("layers", ["all", "top"])
def test_a_dp_round_on_adapters_trains_only_adapters_and_heads(objective, layers):
    # Prepare: LoRA adapters on a frozen start (shared_model.adapters)
    from shared_model.checkpoint import ModelSource
    from shared_model.config import trained_keys

    adapted = ModelSource(adapter="lora:4").initial(seed=0)
    before = {k: v.clone() for k, v in adapted.state_dict().items()}
    flags = {n: p.requires_grad for n, p in adapted.named_parameters()}
    # Execute
    result = run(adapted, objective, layers=layers)
    # Assert: noised steps ran; only what the site sends moved; every flag is as it was (base frozen)
    after = adapted.state_dict()
    sent = set(trained_keys(after, objective))
    assert result.steps > 0 and sent and all(".lora_" in k or "proj" in k or "prefix" in k or "logit" in k for k in sent)
    assert any(not torch.equal(before[k], after[k]) for k in sent if ".lora_B" in k)
    assert all(torch.equal(before[k], after[k]) for k in before if k not in sent)
    assert {n: p.requires_grad for n, p in adapted.named_parameters()} == flags
    assert not any(m._forward_hooks or m._backward_hooks for m in adapted.modules())
