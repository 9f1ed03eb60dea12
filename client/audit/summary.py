"""The memorisation audit for people: per-canary table, exposure against chance, regurgitation."""
from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table


def _f(value, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def privacy_line(result: dict) -> str:
    p = result["training"]["privacy"]
    t = result["training"]
    if p is None:
        return f"trained without DP: {t['path']}, {t['epochs']} epoch(s), loss {_f(t['loss'], 3)}"
    return (f"trained with DP-SGD ({p['unit']}-level, {p['layers']} layers): ε = {p['epsilon']:.3f} at "
            f"δ = {p['delta']:g} ({p['accountant']}; target {p['target_epsilon']:g}), σ = {p['noise_multiplier']:g}, "
            f"q = {p['sample_rate']:.4g}, {p['steps']} steps, C = {p['max_grad_norm']:g}, {p['units']} units; "
            f"reproduce: {p['reproduce']}")


def print_audit(console: Console, result: dict) -> None:
    c, e = result["canaries"], result["exposure"]
    console.print(f"model {result['model']['file']} (sha256 {result['model']['sha256'][:12]}…, {result['model']['preset']}); "
                  f"data {result['data']['path']}: {result['data']['training_records']} training records + "
                  f"{result['data']['canary_records']} canary records ({c['inserted']} canaries × {c['repeats']})")
    console.print(privacy_line(result))
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=f"canaries: exposure among {c['candidates']} candidates (max {c['max_exposure']:.2f} bits, "
                        f"chance {c['chance_exposure']:.2f})")
    for column in ("canary", "secret", "bits", "median", "rank", "exposure", "extrap.", "greedy"):
        table.add_column(column, no_wrap=True,
                         justify="left" if column in ("canary", "secret", "greedy") else "right")
    for r in c["per_canary"]:
        digits = "".join(ch for ch in r["completion"] if ch.isdigit())[:8] or "-"
        name = f"{'in' if r['inserted'] else 'out'}-{r['name'].rsplit('-', 1)[1]} {r['language']}"
        table.add_row(name, r["secret"], _f(r["log_perplexity_bits"], 1), _f(r["alternatives_median_bits"], 1),
                      f"{r['rank']:g}", _f(r["exposure"]), _f(r["extrapolated_exposure"]),
                      f"{digits} ✓" if r["extracted"] else digits)
    console.print(table)
    console.print("in: inserted canary, out: control (never inserted); bits: log-perplexity of its text, conditioned "
                  "on its text with the secret left out; median: of the alternatives; extrap.: skew-normal fit "
                  "(approximate); greedy: digits written after the known prefix (✓ = the secret)")
    t = e["tests"]
    console.print(f"mean exposure: inserted {e['inserted']['mean']:.2f} bits (max {e['inserted']['max']:.2f}), "
                  f"control (never inserted) {e['control']['mean']:.2f}, chance {e['chance']:.2f} "
                  f"(a mean of {c['inserted']} at chance: ±{e.get('chance_band', float('nan')):.2f}); "
                  f"secret extracted by greedy completion: {e['inserted']['extracted']} of {c['inserted']} inserted, "
                  f"{e['control']['extracted']} of {c['control']} control")
    console.print(f"ranks of the inserted canaries vs uniform: one-sided KS p = {t['uniform_p']:.3g}; vs the control "
                  f"group: one-sided Mann–Whitney p = {t.get('control_p', float('nan')):.3g}; better half "
                  f"{t['top_half']}/{c['inserted']} (binomial p = {t['top_half_p']:.3g})")
    g = result.get("regurgitation")
    if g:
        table = Table(title=f"regurgitation: {g['generated']} reports generated from {g['conditioned_on']}")
        table.add_column("measure")
        table.add_column("value", justify="right")
        for label, value in (
                ("equal to a training report", _pct(g["verbatim_train"])),
                ("… that is no test reference", _pct(g["verbatim_train_only"])),
                (f"holding a training {g['ngram']}-gram found in no test reference", _pct(g["train_only_8gram"])),
                ("longest n-gram shared with training reports, mean / max",
                 f"{_f(g['longest_ngram_mean'], 1)} / {g['longest_ngram_max']} (mean length {_f(g['mean_length'], 1)})"),
                ("holding an inserted canary's secret", _pct(g["secret"])),
                ("holding a control canary's secret", _pct(g["control_secret"]))):
            table.add_row(label, value)
        console.print(table)
        console.print(f"(tokens: {g['tokens']})")
