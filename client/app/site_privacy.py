"""What a site enforces itself, whatever the server asks: its privacy policy, ledger, pace and refusal.

The policy and the ledger live at the site (in a simulation ``RUNDIR/sites/<site>/privacy.yaml`` and
``ledger.jsonl``; on a SuperNode the node config names them). Before a round the site checks its
ledger against its own signed head and the server's receipt of it (``privacy.ledger_head``), then
plans the round's DP-SGD steps and noise from its own policy, and refuses if they would take its ε
past the target, past ``max_epsilon_per_round``, or need more noise than ``max_noise_multiplier``;
after training, the spend is appended to the ledger (fsynced, then signed) before the update is
returned to Flower, and only then are the round's optimiser moments kept. The server sets none of
this: not how many rounds are left, not whether a round it asks again is charged again.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from client.app.node import data_path_of
from client.data.dataset import Examples
from privacy.accounting import PrivacyBudgetExhausted, RoundRefused, calibrate_noise, epsilon
from privacy.dp import private_update
from privacy.dp_losses import finding_phrases
from privacy.ledger import Ledger, dataset_fingerprint, is_round, read_lines, segments_of
from privacy.policy import PolicyError, PrivacyPolicy, check_delta, load_policy
from privacy.sampling import cap_studies_per_patient, planned_steps
from shared_model.config import trained_keys
from shared_model.kept_state import AfterRecord
from shared_model.run_config import RunConfig


@dataclass(frozen=True)
class RoundPlan:
    units: int
    steps: int
    sample_rate: float
    noise_multiplier: float


def fingerprint(examples: Examples) -> str:
    """The training records' identity and content: the same data spends the same budget in any run."""
    return dataset_fingerprint((f"{r.patient_id}/{r.study_id}/{r.image or ''}/{r.language}/{i}", r.report)
                               for i, r in enumerate(examples.records))


def units_of(examples: Examples, objective: str, unit: str) -> int:
    """N for q, the δ check, the plan and the ledger: the studies (record) or patients the round trains on."""
    from privacy.sampling import privacy_units  # the one definition of a unit, the one DP training uses

    return len(privacy_units(examples, objective, unit=unit))


def plan_round(policy: PrivacyPolicy, *, units: int, epochs: int, prior: list, charged_rounds: int) -> RoundPlan:
    """One round's steps and noise from the site's own policy and ledger; raises before any training.

    ``prior``: the ledger's (σ, q, steps) history; ``charged_rounds``: the rounds it has charged.
    Calibrate mode spreads what is left over ``planned_rounds − charged_rounds`` rounds like this one
    (never over a count the server sends). Raises ``PrivacyBudgetExhausted`` when the round would
    pass the target, ``RoundRefused`` when it would pass ``max_epsilon_per_round``, need σ above
    ``max_noise_multiplier`` (a round of noise: the budget cannot pay for a useful one) or come
    after every planned round.
    """
    p = policy
    check_delta(p, units)
    steps, q = planned_steps(units, batch_size=min(p.batch_size, units), epochs=epochs)
    common = {"delta": p.target_delta, "accountant": p.accountant}
    sigma = p.noise_multiplier
    if sigma == "calibrate":  # enough noise for every planned round left, given what was already spent
        left = p.planned_rounds - charged_rounds
        if left < 1:
            raise RoundRefused(f"the policy plans {p.planned_rounds} rounds and the ledger has charged "
                               f"{charged_rounds}: raise planned_rounds to plan more (ε spent "
                               f"{epsilon(prior, **common):.4f} of {p.target_epsilon:g})")
        try:
            sigma = calibrate_noise(target_epsilon=p.target_epsilon, sample_rate=q, steps=steps * left,
                                    prior_segments=prior, guess=prior[-1][0] if prior else None,
                                    max_sigma=p.max_noise_multiplier, **common)
            if p.max_epsilon_per_round is not None:  # pace: more noise rather than more than the cap this round
                spent = epsilon(prior, **common)
                if epsilon([*prior, (sigma, q, steps)], **common) - spent > p.max_epsilon_per_round:
                    sigma = calibrate_noise(target_epsilon=spent + p.max_epsilon_per_round, sample_rate=q,
                                            steps=steps, prior_segments=prior, max_sigma=p.max_noise_multiplier,
                                            **common)
        except RoundRefused:
            sigma = math.inf
        if sigma > p.max_noise_multiplier:
            raise RoundRefused(f"the budget left (ε spent {epsilon(prior, **common):.4f} of {p.target_epsilon:g}) "
                               f"needs σ above max_noise_multiplier {p.max_noise_multiplier:g} for the "
                               f"{left} planned round(s) left of {steps} steps: a round of noise is not trained")
    after = epsilon([*prior, (sigma, q, steps)], **common)
    if after > p.target_epsilon:
        raise PrivacyBudgetExhausted(epsilon=epsilon(prior, **common), target_epsilon=p.target_epsilon,
                                     delta=p.target_delta,
                                     what=f"{steps} more steps would pass the target; spent so far")
    if p.max_epsilon_per_round is not None:
        added = after - epsilon(prior, **common)
        if added > p.max_epsilon_per_round:
            raise RoundRefused(f"this round ({steps} steps, σ = {float(sigma):g}) would add ε = {added:.4f}, more "
                               f"than max_epsilon_per_round {p.max_epsilon_per_round:g}")
    return RoundPlan(units, steps, q, float(sigma))


def schedule_warning(policy: PrivacyPolicy, examples: Examples, ledger: Path | None, *, epochs: dict[str, int]
                     ) -> str | None:
    """Why ``policy`` fits no round of its planned schedule at this site (None: a round fits).

    The same planning as a round (``plan_round``), against the ledger as it stands (read only, or
    none yet) and each objective's local ``epochs``; for ``m3fed site check``.
    """
    lines = read_lines(ledger) if ledger is not None and ledger.is_file() else None
    prior, charged = (segments_of(lines), sum(is_round(e) for e in lines[1:])) if lines else ([], 0)
    reasons = []
    examples, _ = cap_studies_per_patient(examples, policy.max_records_per_patient)  # what a round trains on
    for objective, n_epochs in epochs.items():
        units = units_of(examples, objective, policy.unit)
        if units < 2:
            continue
        try:
            plan_round(policy, units=units, epochs=n_epochs, prior=prior, charged_rounds=charged)
            return None
        except (PrivacyBudgetExhausted, RoundRefused, PolicyError) as exc:
            reasons.append(f"{objective} ({units} {policy.unit}s, {n_epochs} local epoch(s)): {exc}")
    return "; ".join(reasons) or f"no objective has two {policy.unit}s to train on"


@dataclass(frozen=True)
class SchedulePlan:
    """A schedule of rounds planned as the site would plan each (``plan_schedule``)."""

    objectives: tuple[str, ...]                # each round's objective, in order
    units: dict[str, int]                      # per objective the site can train: its units after the cap
    planned: tuple[tuple[int, str, RoundPlan], ...]   # (round, objective, plan) of the rounds that fit
    refused: tuple[tuple[int, str, str], ...]  # (round, objective, why) of the rounds the site would refuse
    epsilon_before: float                      # the ledger's ε before the schedule
    epsilon_after: float                       # after every round that fits

    @property
    def trained(self) -> int:
        """Rounds with something to train: the rest have fewer than two units of their objective."""
        return len(self.planned) + len(self.refused)


def plan_schedule(policy: PrivacyPolicy, examples: Examples, ledger: Path | None, *, objectives: list[str],
                  epochs: dict[str, int]) -> SchedulePlan:
    """Plan ``objectives`` (one per round) as the rounds would be planned: ``plan_round`` round after
    round, each from the ledger as it stands (read only, or none yet) plus the rounds planned before
    it; a refused round spends nothing. For ``m3fed site check``: the numbers a run would spend."""
    lines = read_lines(ledger) if ledger is not None and ledger.is_file() else None
    prior, charged = (segments_of(lines), sum(is_round(e) for e in lines[1:])) if lines else ([], 0)
    common = {"delta": policy.target_delta, "accountant": policy.accountant}
    before = epsilon(prior, **common)
    examples, _ = cap_studies_per_patient(examples, policy.max_records_per_patient)  # what a round trains on
    units = {o: n for o in dict.fromkeys(objectives) if (n := units_of(examples, o, policy.unit)) >= 2}
    planned, refused, last_refusal = [], [], {}
    for number, objective in enumerate(objectives, start=1):
        if objective not in units:  # nothing to train (a text-only site's contrastive round): nothing spent
            continue
        if last_refusal.get(objective, (None,))[0] == charged:  # same inputs since: the same refusal
            refused.append((number, objective, last_refusal[objective][1]))
            continue
        try:
            plan = plan_round(policy, units=units[objective], epochs=epochs[objective], prior=prior,
                              charged_rounds=charged)
        except (PrivacyBudgetExhausted, RoundRefused, PolicyError) as exc:
            refused.append((number, objective, str(exc)))
            last_refusal[objective] = (charged, str(exc))
            continue
        planned.append((number, objective, plan))
        prior, charged = [*prior, (plan.noise_multiplier, plan.sample_rate, plan.steps)], charged + 1
    return SchedulePlan(tuple(objectives), units, tuple(planned), tuple(refused), before,
                        epsilon(prior, **common) if planned else before)


def site_statement(ledger_path: str | Path) -> dict:
    """The site's privacy statement (``privacy.statement``) replayed from its ledger, with the ledger's
    verification (``verified``, ``problems``): what the operator's results show for the site."""
    from privacy.ledger import LedgerError, verify_ledger
    from privacy.statement import privacy_statement

    path = Path(ledger_path)
    try:
        problems = verify_ledger(path)
        return {"ledger": str(path), "verified": not problems, "problems": problems,
                **({} if problems else privacy_statement(Ledger(path)))}
    except (LedgerError, PolicyError) as exc:  # missing or unreadable: said, never a failed evaluation
        return {"ledger": str(path), "verified": False, "problems": [str(exc)]}


class SitePrivacy:
    def __init__(self, policy: PrivacyPolicy, ledger: Ledger, site: str) -> None:
        self.policy, self.ledger, self.site = policy, ledger, site

    @classmethod
    def open(cls, policy_path: str | Path, ledger_path: str | Path, *, site: str, examples: Examples) -> "SitePrivacy":
        policy = load_policy(policy_path)
        ledger = Ledger.open(ledger_path, dataset_fingerprint=fingerprint(examples), policy=policy, site=site)
        return cls(policy, ledger, site)

    def plan(self, units: int, *, epochs: int) -> RoundPlan:
        """This round's steps and noise (``plan_round``); raises before any training."""
        lines = self.ledger.lines()
        return plan_round(self.policy, units=units, epochs=epochs, prior=segments_of(lines),
                          charged_rounds=sum(is_round(e) for e in lines[1:]))

    def batch_size(self, units: int) -> int:
        """The policy's expected batch, or every unit (q = 1) at a site smaller than that."""
        return min(self.policy.batch_size, units)

    def record(self, plan: RoundPlan, *, run_id: str, round: int) -> float:
        """Write-ahead: the spend is on disk (and signed) before the update may leave; returns ε after it."""
        entry = self.ledger.record(run_id=run_id, round=round, n_units=plan.units, sample_rate=plan.sample_rate,
                                   noise_multiplier=plan.noise_multiplier, steps=plan.steps)
        return float(entry["epsilon_after"])


class ReleasedUpdates:
    """The last update the site released in a run, kept at the site (``released-r<round>.pt``, mode 0600).

    When the server asks for a (run, round) the ledger has already charged (a resumed run, a
    retried round, or a server that asks twice), the site sends the same values again: re-sending a
    released value costs no privacy, training again would be a second charge. Written before the
    ledger records the round and removed if recording fails, so whenever the ledger holds the
    charge the file holds what was released.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def _path(self, round: int) -> Path:
        return self.folder / f"released-r{round}.pt"

    def keep(self, *, run_id: str, round: int, objective: str, arrays: dict, loss: float, examples: int) -> None:
        import torch

        self.folder.mkdir(parents=True, exist_ok=True)
        path, partial = self._path(round), self._path(round).with_suffix(".partial")
        partial.unlink(missing_ok=True)
        with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            torch.save({"run_id": run_id, "round": round, "objective": objective, "arrays": arrays,
                        "loss": float(loss), "examples": int(examples)}, f)
        partial.replace(path)

    def load(self, *, run_id: str, round: int, objective: str) -> dict | None:
        import torch

        path = self._path(round)
        if not path.is_file():
            return None
        kept = torch.load(path, map_location="cpu", weights_only=True)
        return kept if (kept["run_id"], kept["round"], kept["objective"]) == (run_id, round, objective) else None

    def forget(self, round: int) -> None:
        self._path(round).unlink(missing_ok=True)

    def keep_only(self, round: int) -> None:
        for path in self.folder.glob("released-r*.pt"):
            if path != self._path(round):
                path.unlink(missing_ok=True)


def run_key(context) -> str:
    """A run's identity in the ledger, stable across ``--resume``: its run directory (Flower's run id is
    new on every resume). The same key as ``client.app.node.site_state_dir``."""
    run_dir = RunConfig.from_run_config(context.run_config).run_dir
    return "run-" + hashlib.sha256(run_dir.encode()).hexdigest()[:16] if run_dir else str(context.run_id)


def public_texts() -> list[str]:
    """Non-private negatives for DP contrastive training: the finding phrases of every language."""
    return finding_phrases()


def privacy_paths(context) -> tuple[Path, Path, str] | None:
    """(policy, ledger, site): from the node config, or next to a simulated site's manifest; None: no DP."""
    node = context.node_config
    if "privacy-policy" in node:
        return (Path(str(node["privacy-policy"])), Path(str(node["privacy-ledger"])),
                str(node.get("site-name", f"node-{context.node_id}")))
    folder = Path(data_path_of(context)).parent
    return (folder / "privacy.yaml", folder / "ledger.jsonl", folder.name) if (folder / "privacy.yaml").is_file() else None


def site_policy(context) -> PrivacyPolicy | None:
    paths = privacy_paths(context)
    return load_policy(paths[0]) if paths else None


def site_privacy(context, examples: Examples, *, receipt: dict | None = None) -> SitePrivacy | None:
    """The site's policy and ledger, or None when the site trains without DP.

    Raises LedgerError (the site refuses the round) when the ledger is shorter than its own signed
    head or than the server's ``receipt`` of it, or is not the ledger that receipt was signed for.
    """
    paths = privacy_paths(context)
    if not paths:
        return None
    privacy = SitePrivacy.open(paths[0], paths[1], site=paths[2], examples=examples)
    if receipt is not None:
        ignored = privacy.ledger.check_receipt(receipt)
        if ignored:
            logging.getLogger(__name__).warning("%s: %s", privacy.ledger.path, ignored)
    return privacy


def private_round(privacy: SitePrivacy, model, examples: Examples, objective: str, *, run_id: str, round: int,
                  train, epochs: int, seed: int, device, released: ReleasedUpdates, on_step=None,
                  proximal_mu: float = 0.0, progress: tuple[float, float] | None = None,
                  memory=None) -> tuple[float, int, float]:
    """Plan (or refuse), train with DP-SGD, record: (loss, examples, ε after this round).

    A (run, round) the ledger has already charged is not trained again: the update released for it
    is loaded into ``model`` and sent again, or the round is refused when it is no longer kept.
    """
    p = privacy.policy
    done = privacy.ledger.charged(run_id=run_id, round=round)
    if done is not None:
        kept = released.load(run_id=run_id, round=round, objective=objective)
        if kept is None:
            raise RoundRefused(f"round {round} of this run is already charged (ledger entry {done['seq']}) and the "
                               "update released for it is no longer kept: a round is charged at most once")
        model.load_state_dict(kept["arrays"], strict=False)
        return kept["loss"], kept["examples"], privacy.ledger.epsilon()
    examples, cap = cap_studies_per_patient(examples, p.max_records_per_patient)
    if cap.studies_dropped:  # the site's own log only: the count says something about its data
        logging.getLogger(__name__).warning(
            "max_records_per_patient %d: %d studies (%d rows) of %d patients not trained on (each patient keeps "
            "its lowest study ids)", cap.max_studies_per_patient, cap.studies_dropped, cap.rows_dropped,
            cap.patients_over)
    units = units_of(examples, objective, p.unit)
    if units < 2:  # nothing to train (a text-only site in a contrastive round): nothing spent
        return float("nan"), 0, privacy.ledger.epsilon()
    plan = privacy.plan(units, epochs=epochs)
    # Amplification by subsampling needs a sample the server cannot predict: a site-private seed,
    # not the run's public one (so DP runs are not bit-reproducible; the plain path is).
    del seed
    # The round's AdamW moments come from its noised steps; kept only once the ledger holds the round.
    moments = None if memory is None else AfterRecord(memory)
    result = private_update(model, examples, objective, train=train, epochs=epochs, seed=secrets.randbits(62),
                            device=device,
                            noise_multiplier=plan.noise_multiplier, max_grad_norm=p.max_grad_norm,
                            batch_size=privacy.batch_size(units), unit=p.unit, public_texts=public_texts(),
                            layers=p.layers(objective), on_step=on_step,
                            proximal_mu=proximal_mu, progress=progress, memory=moments)
    if result.steps != plan.steps:
        raise RuntimeError(f"ran {result.steps} DP steps, planned {plan.steps}: refusing to release")
    state = model.state_dict()
    released.keep(run_id=run_id, round=round, objective=objective, loss=result.loss, examples=result.examples,
                  arrays={k: state[k].detach().cpu().clone() for k in trained_keys(state, objective)})
    try:
        eps = privacy.record(plan, run_id=run_id, round=round)
    except BaseException:
        released.forget(round)  # nothing leaves, nothing is kept
        raise
    if moments is not None:
        moments.commit()
    released.keep_only(round)
    return result.loss, result.examples, eps
