"""``m3fed site check``'s privacy plan: the site's policy planned over the consortium's schedule.

Each round is planned exactly as the ClientApp plans it (``client.app.site_privacy.plan_schedule``, which
calls ``plan_round`` with the ledger as it stands plus the rounds planned before), so the ε printed
here is what the rounds would spend. A policy that fits no round makes ``site check`` fail and
``site start`` warn (the site joins; every round is refused and reported to the operator).
"""
from __future__ import annotations

from client.errors import DataError


def privacy_plan(cfg, train, *, rounds: int | None, local_epochs: int | None, joining: bool,
                 schedule: str | None = None) -> tuple[bool, list[str]]:
    """Plan the site's privacy policy over a schedule as each round would be planned: (a round fits,
    the lines to print). No policy: (True, []).

    ``rounds`` None: the rounds the policy still plans (planned_rounds less those the ledger has
    charged); ``local_epochs`` and ``schedule`` None: the run config's defaults (``RunConfig``).
    ``joining`` (site start): say so, but only warn.
    """
    if not cfg.privacy_policy:
        return True, []
    from client.app.site_privacy import plan_schedule
    from privacy.ledger import LedgerError, is_round, read_lines
    from privacy.policy import load_policy
    from shared_model.run_config import RunConfig
    from shared_model.schedule import local_epochs_for, objective_for

    policy, run = load_policy(cfg.privacy_policy), RunConfig()
    try:
        charged = sum(is_round(e) for e in read_lines(cfg.ledger)[1:]) if cfg.ledger.is_file() else 0
        rounds = max(policy.planned_rounds - charged, 1) if rounds is None else rounds
        local_epochs = run.local_epochs if local_epochs is None else local_epochs
        epochs = {o: local_epochs_for(o, local_epochs, run.lm_local_epochs)
                  for o in ("contrastive", "report-generation")}
        objectives = [objective_for(r, schedule or run.schedule) for r in range(1, rounds + 1)]
        plan = plan_schedule(policy, train, cfg.ledger, objectives=objectives, epochs=epochs)
    except LedgerError as exc:  # every round would be refused for it too: say which file and how to look
        raise DataError(cfg.ledger, f"cannot plan from this ledger: {exc} (m3fed privacy verify --ledger "
                                    f"{cfg.ledger})") from None
    return bool(plan.planned), _plan_lines(plan, policy, cfg.privacy_policy, rounds=rounds, epochs=epochs,
                                           joining=joining)


def _plan_lines(plan, policy, path, *, rounds: int, epochs: dict, joining: bool) -> list[str]:
    from privacy.sampling import planned_steps

    unit = f"{policy.unit}s"
    trained = [o for o in dict.fromkeys(plan.objectives) if o in plan.units]
    counts = sorted({plan.units[o] for o in trained})
    at = (f"{counts[0]} {unit}" if len(counts) == 1 else
          " / ".join(f"{plan.units[o]} {unit} ({o})" for o in trained) if trained else f"fewer than two {unit}")
    per = sorted({epochs[o] for o in (trained or epochs)})
    schedule = f"{rounds} round{'s' * (rounds != 1)} × {per[0]} local epoch{'s' * (per[0] != 1)}"
    if len(per) > 1:
        schedule += f" ({', '.join(f'{o}: {epochs[o]}' for o in trained)})"
    head = f"privacy plan: {schedule} at {at}"
    warn = "warning: " if joining else ""  # site start joins anyway: what fails site check is a warning there
    if not trained:
        return [f"{warn}{head}: no round has anything to train (each objective needs at least two {unit})"]
    if plan.planned:
        plans = [p for _, _, p in plan.planned]
        so_far = f" ({plan.epsilon_before:.2f} spent before)" if plan.epsilon_before else ""
        lines = [f"{head} ({_spread('σ', [p.noise_multiplier for p in plans])}, "
                 f"{_spread('q', [p.sample_rate for p in plans])}, {_spread('', [p.steps for p in plans])} DP steps "
                 f"a round): ε {plan.epsilon_after:.2f} of {policy.target_epsilon:g} after {rounds} rounds{so_far}; "
                 + ("every round fits" if not plan.refused else f"only {len(plan.planned)} of {plan.trained} rounds "
                    "fit")
                 + (f" (the site trains in {plan.trained}: the others' objective has fewer than two {unit})"
                    if plan.trained < rounds else "")]
        if plan.refused:
            number, objective, why = plan.refused[0]
            lines += [f"warning: round {number} ({objective}) and {len(plan.refused) - 1} later round(s) would be "
                      f"refused: {why}", f"  {_advice(policy, path, why)}"]
        return lines
    lines = [f"{warn}{head}: no round fits; every round would be refused"
             + ("; the site joins, and each refusal is reported to the operator" if joining else "")]
    firsts: dict[tuple, list] = {}  # each objective's first refusal; objectives refused alike share a line
    for objective in trained:
        number, _, why = next(r for r in plan.refused if r[1] == objective)
        firsts.setdefault((plan.units[objective], epochs[objective], why), []).append((number, objective))
    for (units, n_epochs, why), rounds_of in firsts.items():
        batch = min(policy.batch_size, units)
        steps, q = planned_steps(units, batch_size=batch, epochs=n_epochs)
        which = " and ".join(f"round {number} ({objective})" for number, objective in rounds_of)
        lines.append(f"  {which}: {units} {unit}, batch_size {batch} → q {q:.3g}, {n_epochs} local epoch(s) = "
                     f"{steps} DP steps: {why}")
    sigma = policy.noise_multiplier if policy.noise_multiplier == "calibrate" else f"{policy.noise_multiplier:g}"
    cap = "none" if policy.max_epsilon_per_round is None else f"{policy.max_epsilon_per_round:g}"
    lines += [f"  policy {path}: target_epsilon {policy.target_epsilon:g}, target_delta {policy.target_delta:g}, "
              f"noise_multiplier {sigma}, max_noise_multiplier {policy.max_noise_multiplier:g}, max_epsilon_per_round "
              f"{cap}, planned_rounds {policy.planned_rounds}, batch_size {policy.batch_size}; ε spent so far "
              f"{plan.epsilon_before:.2f}", f"  {_advice(policy, path, plan.refused[0][2])}"]
    return lines


def _spread(name: str, values: list) -> str:
    low, high = min(values), max(values)
    text = (lambda v: f"{v:.3g}") if isinstance(low, float) else str
    label = f"{name} " if name else ""
    return f"{label}{text(low)}" if low == high else f"{label}{text(low)}–{text(high)}"


def _advice(policy, path, why: str) -> str:
    """What a hospital admin can change so rounds fit: each of these lowers the ε a round adds."""
    calibrated = policy.noise_multiplier == "calibrate"
    if "raise planned_rounds" in why:  # every planned round is charged (plan_round): only more rounds help
        return (f"to plan more rounds, raise planned_rounds in {path} (now {policy.planned_rounds}); what is left of "
                f"target_epsilon {policy.target_epsilon:g} is then spread over them")
    items = [f"allow more noise (raise max_noise_multiplier, now {policy.max_noise_multiplier:g})" if calibrated else
             f"add more noise (raise noise_multiplier, now {policy.noise_multiplier:g}, at most max_noise_multiplier "
             f"{policy.max_noise_multiplier:g})", f"a bigger target_epsilon (now {policy.target_epsilon:g})"]
    if policy.max_epsilon_per_round is not None:
        items.append(f"a bigger max_epsilon_per_round (now {policy.max_epsilon_per_round:g})")
    if calibrated:
        items.append(f"fewer planned_rounds (now {policy.planned_rounds})")
    items.append(f"a smaller batch_size (now {policy.batch_size})")
    return (f"to make rounds fit, change {path}: {', '.join(items[:-1])} or {items[-1]}; or agree fewer rounds or "
            "local epochs with the consortium (try them with m3fed site check --rounds R --local-epochs E)")
