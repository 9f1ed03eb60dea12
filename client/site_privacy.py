"""What a site enforces itself, whatever the server asks: its privacy policy, ledger and refusal.

The policy and the ledger live at the site (in a simulation ``RUNDIR/sites/<site>/privacy.yaml`` and
``ledger.jsonl``; on a SuperNode the node config names them). Before a round the site plans the
round's DP-SGD steps, and refuses if they would take its ε past the target; after training, the
spend is appended to the ledger (fsynced) before the update is returned to Flower.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from client.dataset import Examples
from privacy.accounting import PrivacyBudgetExhausted, calibrate_noise
from privacy.dp import private_update
from privacy.dp_losses import finding_phrases
from privacy.ledger import Ledger, dataset_fingerprint
from privacy.policy import PrivacyPolicy, check_delta, load_policy
from privacy.sampling import planned_steps


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
    records = [r for r, image in zip(examples.records, examples.image_index.tolist())
               if objective != "contrastive" or image >= 0]
    return len({r.patient_id for r in records}) if unit == "patient" else len(records)


class SitePrivacy:
    def __init__(self, policy: PrivacyPolicy, ledger: Ledger, site: str) -> None:
        self.policy, self.ledger, self.site = policy, ledger, site

    @classmethod
    def open(cls, policy_path: str | Path, ledger_path: str | Path, *, site: str, examples: Examples) -> "SitePrivacy":
        policy = load_policy(policy_path)
        ledger = Ledger.open(ledger_path, dataset_fingerprint=fingerprint(examples), policy=policy, site=site)
        return cls(policy, ledger, site)

    def plan(self, units: int, *, epochs: int, rounds_left: int) -> RoundPlan:
        """This round's steps and noise; raises ``PrivacyBudgetExhausted`` before any training."""
        p = self.policy
        check_delta(p, units)
        steps, q = planned_steps(units, batch_size=self.batch_size(units), epochs=epochs)
        sigma = p.noise_multiplier
        if sigma == "calibrate":  # enough noise for every planned round left, given what was already spent
            prior = self.ledger.segments()
            sigma = calibrate_noise(target_epsilon=p.target_epsilon, delta=p.target_delta, sample_rate=q,
                                    steps=steps * max(rounds_left, 1), accountant=p.accountant,
                                    prior_segments=prior, guess=prior[-1][0] if prior else None)
        if self.ledger.would_exceed(noise_multiplier=float(sigma), sample_rate=q, steps=steps):
            spent = self.ledger.epsilon()
            raise PrivacyBudgetExhausted(epsilon=spent, target_epsilon=p.target_epsilon, delta=p.target_delta,
                                         what=f"{steps} more steps would pass the target; spent so far")
        return RoundPlan(units, steps, q, float(sigma))

    def batch_size(self, units: int) -> int:
        """The policy's expected batch, or every unit (q = 1) at a site smaller than that."""
        return min(self.policy.batch_size, units)

    def record(self, plan: RoundPlan, *, run_id: str, round: int) -> float:
        """Write-ahead: the spend is on disk before the update may leave; returns ε after it."""
        entry = self.ledger.record(run_id=run_id, round=round, n_units=plan.units, sample_rate=plan.sample_rate,
                                   noise_multiplier=plan.noise_multiplier, steps=plan.steps)
        return float(entry["epsilon_after"])


def public_texts() -> list[str]:
    """Non-private negatives for DP contrastive training: the finding phrases of every language."""
    return finding_phrases()


def privacy_paths(context) -> tuple[Path, Path, str] | None:
    """(policy, ledger, site): from the node config, or next to a simulated site's manifest; None: no DP."""
    node = context.node_config
    if "privacy-policy" in node:
        return (Path(str(node["privacy-policy"])), Path(str(node["privacy-ledger"])),
                str(node.get("site-name", f"node-{context.node_id}")))
    from client.client_app import data_path_of  # the simulated site's folder

    folder = Path(data_path_of(context)).parent
    return (folder / "privacy.yaml", folder / "ledger.jsonl", folder.name) if (folder / "privacy.yaml").is_file() else None


def site_policy(context) -> PrivacyPolicy | None:
    paths = privacy_paths(context)
    return load_policy(paths[0]) if paths else None


def site_privacy(context, examples: Examples) -> SitePrivacy | None:
    """The site's policy and ledger, or None when the site trains without DP."""
    paths = privacy_paths(context)
    return SitePrivacy.open(paths[0], paths[1], site=paths[2], examples=examples) if paths else None


def private_round(privacy: SitePrivacy, model, examples: Examples, objective: str, *, run_id: str, round: int,
                  rounds_left: int, train, epochs: int, seed: int, device, on_step=None,
                  proximal_mu: float = 0.0, progress: tuple[float, float] | None = None,
                  memory=None) -> tuple[float, int, float]:
    """Plan (or refuse), train with DP-SGD, record: (loss, examples, ε after this round)."""
    p = privacy.policy
    units = units_of(examples, objective, p.unit)
    if units < 2:  # nothing to train (a text-only site in a contrastive round): nothing spent
        return float("nan"), 0, privacy.ledger.epsilon()
    plan = privacy.plan(units, epochs=epochs, rounds_left=rounds_left)
    # Amplification by subsampling needs a sample the server cannot predict: a site-private seed,
    # not the run's public one (so DP runs are not bit-reproducible; the plain path is).
    del seed
    result = private_update(model, examples, objective, train=train, epochs=epochs, seed=secrets.randbits(62),
                            device=device,
                            noise_multiplier=plan.noise_multiplier, max_grad_norm=p.max_grad_norm,
                            batch_size=privacy.batch_size(units), unit=p.unit, public_texts=public_texts(),
                            layers=p.layers(objective), on_step=on_step,
                            proximal_mu=proximal_mu, progress=progress, memory=memory)
    if result.steps != plan.steps:
        raise RuntimeError(f"ran {result.steps} DP steps, planned {plan.steps}: refusing to release")
    return result.loss, result.examples, privacy.record(plan, run_id=run_id, round=round)
