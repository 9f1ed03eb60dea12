"""Sample-level and patient-level DP-SGD for one site's local update of one objective (Opacus 1.6).

Wrapping, not forking: ``private_update`` runs the shared ``contrastive_epoch`` / ``lm_epoch`` once
over a Poisson-sampled batch iterable, with an Opacus ``DPOptimizer`` around the same AdamW
(``make_optimizer``) the plain path uses. For the round only, the trained submodule (``model.clip``
or ``model.lm``) carries Opacus per-sample-gradient hooks (``GradSampleModule``, hooks mode, strict;
``ModuleValidator`` finds nothing to refuse: Linear, Conv2d, LayerNorm, Embedding; timm's
LayerNorm subclass is registered with Opacus' LayerNorm sampler);
afterwards the model is a plain M3FM again, same ``state_dict`` keys, new weights. The DP clip
norm and batch are ``max_grad_norm`` and the Poisson ``batch_size``: ``TrainConfig.grad_clip``
still runs inside ``_step`` but on the non-private gradient that DPOptimizer then overwrites, and
``TrainConfig.batch_size`` is unused. Contrastive rounds use the public-negative loss of
``privacy.dp_losses``: the shared in-batch-negatives loss has no per-example sensitivity.

Unit of privacy (add/remove one unit; ``privacy.sampling.privacy_units``):
- ``record``: one study, i.e. the rows sharing ``(patient_id, study_id)``: its report, all its
  images and, where the site holds them, its translations. The loaders make one row per image and
  language, so a 3-image study is 3 contrastive pairs, and all 3 are one unit. Report generation
  trains each study's report once per language (the per-image copies are one row).
  ``max_records_per_patient`` counts studies per patient; the site drops a patient's studies past
  it before planning (``privacy.sampling.cap_studies_per_patient``), so the group bound holds.
- ``patient``: rows grouped by ``Record.patient_id``: all their studies; user-level DP-SGD
  (per-user clipping as in McMahan et al., ICLR 2018).
Both levels take the same path. Sampling: each step takes each unit with probability q, all of
its rows together. Clipping: Opacus computes one gradient row per row of the batch;
``sum_rows_by_unit`` (the only custom gradient code here) replaces ``p.grad_sample`` by the
per-unit sums just before ``DPOptimizer`` clips, so Opacus clips each unit's summed gradient to C
and adds N(0, σ²C²) to the sum of clipped unit gradients. When every unit of a batch is one row
(single-image studies) the sums are the rows themselves and no sum is taken.

Sampling and steps (``privacy.sampling``): q and the integer step count are fixed before
training; every planned step is a noised optimizer step. The steps run are counted at Opacus'
noise hook and must equal the planned steps, so the accounted (σ, q, steps) is exactly what ran.

Noise: ``loss_reduction="mean"``, ``expected_batch_size=batch_size``, so the averaged gradient is
(Σ_units clip_C(g_u) + N(0, σ²C²I)) / batch_size: std σ·C/batch_size per coordinate. The noise
generator is seeded from OS entropy, never from ``seed`` (a known seed makes the noise
reproducible and voids the guarantee); ``noise_seed`` exists for tests only. It is torch's PRNG
with Opacus ``secure_mode`` off: no defence against floating-point attacks (privacy.md §1).

Not trained in a DP round: parameters the objective gives no gradient (found by a probe on
public texts: CLIP's temperature, used detached by the DP loss; the LM encoder's unused token
embeddings), and the ViT's ``cls_token`` and ``pos_embed``: a module that owns parameters
directly and also has children sends Opacus to its functorch fallback for the whole subtree,
i.e. the ViT's whole forward under vmap, where CPU attention has no batching rule (a loop per
example, ~6x the plain step). Also every vocabulary-sized token-embedding table
(vocabulary × width): the text encoder's in contrastive rounds (~40 % of CLIP's parameters) and
the decoder's in report-generation rounds (~37 % of the LM's; it is tied to the output layer,
whose bias trains when every layer does). Opacus materialises a dense batch × vocabulary × width
per-sample gradient for such a table every step (contrastive: 0.89 → 0.54 s/step measured), and
every frozen coordinate is one the DP noise no longer lands on. They keep the global model's values.
With ``layers="top"`` (the policy's default) only the module's ``top_layers()`` train. Contrastive:
each tower's last block, the ViT's final norm and the projections; backward stops there and the
DP step costs less than the plain step; against every layer it was more accurate with the noise
off and from a public start, and at chance like it from a random start at ε = 8. Report
generation: the decoder (the encoder below it reads only the prefix tokens); with the noise off it
learned as much as every layer (BENCHMARKS.md, issue C).

FedProx's proximal gradient is added by the inner optimizer, after clipping and noise (it
depends on no data). Not covered by ε: the returned loss (computed on private data,
filler rows included), ``examples`` and ``units`` (N_k); see privacy.md §5.
"""
from __future__ import annotations

import contextlib
import math
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import timm.layers
from opacus import GradSampleModule
from opacus.grad_sample import register_grad_sampler
from opacus.grad_sample.layer_norm import compute_layer_norm_grad_sample
from opacus.optimizers import DPOptimizer
from opacus.validators import ModuleValidator

from privacy.dp_losses import dp_contrastive_loss
from privacy.policy import LAYERS
from privacy.sampling import PHYSICAL_ROWS, Examples, PoissonBatches, language_of, planned_steps, privacy_units

# Same computation as torch's LayerNorm (a subclass); unregistered it would take the slow fallback.
if timm.layers.LayerNorm not in GradSampleModule.GRAD_SAMPLERS:
    register_grad_sampler(timm.layers.LayerNorm)(compute_layer_norm_grad_sample)
from shared_model.kept_state import OptimizerMemory, keep, restore
from shared_model.model import M3FM
from shared_model.objectives import (
    ProgressLR, TrainConfig, add_proximal_term, contrastive_epoch, lm_epoch, lm_per_example_loss, make_optimizer,
)

RowMap = Callable[[], tuple[torch.Tensor, int]]  # (row -> unit index or -1 for filler, number of units)


@dataclass(frozen=True)
class DPRoundResult:
    """One DP local update: what to account (σ, q, integer steps) and what is released beside it."""

    loss: float
    examples: int
    steps: int
    sample_rate: float
    noise_multiplier: float
    max_grad_norm: float
    units: int


def sum_rows_by_unit(optimizer: DPOptimizer, row_units: torch.Tensor, n_units: int) -> None:
    """Replace each ``p.grad_sample`` (one row per batch row) by one row per unit; filler rows (-1) drop out."""
    # One row per unit, in order, fillers last: the first rows already are the units.
    identity = bool((row_units[:n_units] == torch.arange(n_units)).all() and (row_units[n_units:] < 0).all())
    for p in optimizer.params:
        rows = optimizer._get_flat_grad_sample(p)
        if rows.shape[0] != row_units.shape[0]:  # a layer whose batch dim is not the record axis
            raise RuntimeError(f"per-sample gradient has {rows.shape[0]} rows for {row_units.shape[0]} records")
        if identity:
            p.grad_sample = rows[:n_units]
            continue
        index = row_units.to(rows.device)
        keep = index >= 0
        summed = rows.new_zeros((n_units, *rows.shape[1:]))
        p.grad_sample = summed.index_add_(0, index[keep], rows[keep])


class UnitDPOptimizer(DPOptimizer):
    """Opacus' DPOptimizer whose clipping unit is a group of rows (a study, a patient) rather than one row."""

    def __init__(self, optimizer: torch.optim.Optimizer, *, rows: RowMap, **kwargs) -> None:
        super().__init__(optimizer, **kwargs)
        self._rows = rows

    def pre_step(self, closure=None):
        row_units, n_units = self._rows()
        sum_rows_by_unit(self, row_units, n_units)
        return super().pre_step(closure)  # Opacus clips, sums, adds noise and scales


@contextlib.contextmanager
def private_module(module: torch.nn.Module, optimizer: torch.optim.Optimizer, *, noise_multiplier: float,
                   max_grad_norm: float, expected_batch_size: int, rows: RowMap,
                   noise_generator: torch.Generator | None = None) -> Iterator[UnitDPOptimizer]:
    """Per-sample-gradient hooks on ``module`` and a DP optimizer for the block; unwrapped on exit."""
    errors = ModuleValidator.validate(module, strict=False)
    if errors:
        raise ValueError(f"module not supported by DP-SGD: {errors}")
    if noise_generator is None:  # on the parameters' device: torch.normal needs them to match
        device = next(module.parameters()).device
        noise_generator = torch.Generator(device=device).manual_seed(secrets.randbits(63))
    with _aliases_hidden(module):
        gsm = GradSampleModule(module, batch_first=True, loss_reduction="mean", strict=True)
        try:
            yield UnitDPOptimizer(optimizer, rows=rows, noise_multiplier=noise_multiplier,
                                  max_grad_norm=max_grad_norm, expected_batch_size=expected_batch_size,
                                  loss_reduction="mean", generator=noise_generator)
        finally:
            gsm._close()  # removes the hooks and Opacus' attributes on the parameters
            for m in module.modules():  # left behind if a step died between forward and backward
                for attr in ("activations", "max_batch_len"):
                    if hasattr(m, attr):
                        delattr(m, attr)
            for p in module.parameters():
                if hasattr(p, "summed_grad"):
                    del p.summed_grad


@contextlib.contextmanager
def _aliases_hidden(module: torch.nn.Module) -> Iterator[None]:
    """Detach, for the block, direct parameters that are also a child's parameter (tied weights).

    BERT's LM head owns ``bias``, the very tensor that is ``decoder.bias``. A module with direct
    parameters sends Opacus to its functorch fallback for the whole module, whose meta-device copy
    unties the alias and fails; without the alias the head is a plain container and the decoder's
    Linear hook computes that bias's per-sample gradient once, as it should.
    """
    hidden = []
    for m in module.modules():
        in_children = {id(p) for child in m.children() for p in child.parameters()}
        for name, p in list(m._parameters.items()):
            if p is not None and id(p) in in_children:
                hidden.append((m, name, p))
                del m._parameters[name]
    try:
        yield
    finally:
        for m, name, p in hidden:
            m._parameters[name] = p


class PerNoisedStep:
    """Calls ``action`` once per noised step, not once per physical batch (a split sample is one step).

    ``noised`` is the count kept at Opacus' noise hook. Called as ``step()`` it advances a
    learning-rate schedule; called with a loss, it is an epoch loop's ``on_step``.
    """

    def __init__(self, action: Callable[..., None], noised: list[int]) -> None:
        self.action, self.noised, self.seen = action, noised, 0

    def __call__(self, *args) -> None:
        if self.noised[0] > self.seen:
            self.seen = self.noised[0]
            self.action(*args)

    step = __call__


@contextlib.contextmanager
def objective_parameters(model: M3FM, objective: str, *, public_texts: list[str], train: TrainConfig,
                         device: torch.device, layers: str = "all") -> Iterator[torch.nn.Module]:
    """The submodule ``objective`` trains, with only the parameters its loss reaches left trainable.

    Opacus needs a per-sample gradient for every trainable parameter; those the loss never reaches
    (CLIP's temperature, used detached; the LM encoder's token embeddings, bypassed by its prefix)
    are frozen for the block. Which they are is probed on public texts: no privacy cost.
    ``layers="top"`` also freezes everything below the module's ``top_layers()``: backward then
    stops at the top, and the noise lands on those coordinates only.
    """
    if layers not in LAYERS:
        raise ValueError(f"layers must be one of {', '.join(LAYERS)}, got {layers!r}")
    module = model.clip if objective == "contrastive" else model.lm
    module.train()
    params = [p for p in module.parameters() if p.requires_grad]
    texts = (list(public_texts) * 2)[:2]
    if objective == "contrastive":
        size = model.cfg.image_size
        loss = dp_contrastive_loss(texts)(model, torch.zeros(2, 1, size, size, device=device), texts)
    else:
        loss = lm_per_example_loss(model, texts, [language_of(t) for t in texts], noise_std=train.lm_noise_std,
                                   device=device).mean()
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    fallback = {id(p) for p in _subtree_owned(module)}
    # Vocabulary tables (the text encoder's; the decoder's, tied to its output layer): see the module docstring.
    # By role, not size: a --text-model tower's table has its own vocabulary (the LM's has 2 more tokens).
    tables = (model.clip.text, model.lm.seq2seq.encoder, model.lm.seq2seq.decoder)
    fallback |= {id(t.get_input_embeddings().weight) for t in tables}
    if layers == "top":
        top = {id(p) for m in module.top_layers() for p in m.parameters()}
        fallback |= {id(p) for p in params if id(p) not in top}
    frozen = [p for p, g in zip(params, grads) if g is None or id(p) in fallback]
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p in frozen:
            p.requires_grad_(True)


def _subtree_owned(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Direct parameters of modules that also have parameterised children (the ViT's pos_embed, cls_token).

    A direct parameter that is also a child's (BERT's tied LM-head bias) is not one: ``_aliases_hidden``
    takes care of it and it trains.
    """
    owned = []
    for m in module.modules():
        in_children = {id(p) for child in m.children() for p in child.parameters()}
        if in_children:
            owned.extend(p for p in m.parameters(recurse=False) if p.requires_grad and id(p) not in in_children)
    return owned


def private_update(model: M3FM, examples: Examples, objective: str, *, train: TrainConfig, epochs: int, seed: int,
                   device: torch.device, noise_multiplier: float, max_grad_norm: float, batch_size: int, unit: str,
                   public_texts: list[str], layers: str, on_step: Callable[[float], None] | None = None,
                   proximal_mu: float = 0.0, noise_seed: int | None = None,
                   step_hook: Callable[[DPOptimizer], None] | None = None,
                   progress: tuple[float, float] | None = None,
                   memory: OptimizerMemory | None = None, physical_rows: int = PHYSICAL_ROWS) -> DPRoundResult:
    """One DP-SGD local update of ``objective``; account ``(noise_multiplier, sample_rate, steps)`` of the result.

    ``step_hook`` sees the optimizer after clipping and noise, before the weights move (tests, audits).
    ``on_step`` sees each noised step once (failure injection counts them). ``noise_seed`` fixes the
    noise for tests; leave it None in training. ``physical_rows``: the largest physical batch of a
    report-generation step (``PoissonBatches``); 0 keeps each sample whole.
    """
    if not (math.isfinite(noise_multiplier) and noise_multiplier >= 0) or not max_grad_norm > 0:
        raise ValueError(f"need noise_multiplier >= 0 and max_grad_norm > 0, "
                         f"got {noise_multiplier}, {max_grad_norm}")
    if not public_texts:
        raise ValueError("public_texts must hold at least one public (non-patient) text")
    units = privacy_units(examples, objective, unit=unit)
    n_examples = sum(len(u) for u in units)
    if not units:  # nothing for this objective here: nothing trains, nothing to account
        return DPRoundResult(float("nan"), 0, 0, 0.0, noise_multiplier, max_grad_norm, 0)
    steps, q = planned_steps(len(units), batch_size=batch_size, epochs=epochs)
    batches = PoissonBatches(examples, units, objective=objective, sample_rate=q, steps=steps,
                             generator=torch.Generator().manual_seed(seed), filler_text=public_texts[0],
                             physical_rows=physical_rows)
    loss_fn = dp_contrastive_loss(public_texts)
    torch.manual_seed(seed)  # the LM's DeCap augmentation noise (not DP noise) draws from the global RNG
    noised = [0]

    def count(optimizer: DPOptimizer) -> None:
        noised[0] += 1
        if step_hook is not None:
            step_hook(optimizer)

    lr = train.lr if objective == "contrastive" else train.lm_lr
    noise_gen = None if noise_seed is None else torch.Generator(device=device).manual_seed(noise_seed)
    with objective_parameters(model, objective, public_texts=public_texts, train=train, device=device,
                              layers=layers) as module:
        # Kept moments come from earlier noised steps: post-processing, they stay at the site.
        plain = make_optimizer(module.parameters(), lr, train.weight_decay)
        restore(plain, memory, objective)
        inner = add_proximal_term(plain, proximal_mu)
        with private_module(module, inner, noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm,
                            expected_batch_size=batch_size, rows=batches.current,
                            noise_generator=noise_gen) as optimizer:
            optimizer.attach_step_hook(count)
            batches.skip = optimizer.signal_skip_step
            # The schedule only sets the step size: post-processing, no effect on the accounting.
            scheduler = None if progress is None else PerNoisedStep(ProgressLR(optimizer, progress, steps).step, noised)
            per_step = None if on_step is None else PerNoisedStep(on_step, noised)
            if objective == "contrastive":
                loss = contrastive_epoch(model, batches, optimizer, train, device, on_step=per_step,
                                         loss_fn=loss_fn, scheduler=scheduler)
            else:
                loss = lm_epoch(model, batches, optimizer, train, device, on_step=per_step, scheduler=scheduler)
        keep(plain, memory, objective)
    if noised[0] != steps:
        raise RuntimeError(f"ran {noised[0]} noised steps, planned and accounted {steps}")
    return DPRoundResult(loss=loss, examples=n_examples, steps=steps, sample_rate=q,
                         noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm, units=len(units))
