"""Rich tables of a fine-tuning run and of a simulation's personalised sites."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def print_finetune(console: Console, results: dict) -> None:
    sampled, zero = results["sampled"], results["zero_shot"]
    final = results["final"]
    table = Table(title=f"fine-tuned on {sampled['patients']} of {sampled['of_patients']} training patients "
                        f"({sampled['label_fraction']:g}); the site's test split")
    for column in ("metric", "start (zero-shot)", "fine-tuned"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    table.add_row("macro AUC", _fmt(zero["auc_macro"]), _fmt(final["auc_macro"]))
    for name, auc in final["auc_per_label"].items():
        table.add_row(f"  AUC {name}", _fmt(zero["auc_per_label"].get(name)), _fmt(auc))
    for lang, bleu in final["bleu"].items():
        table.add_row(f"BLEU-4 {lang}", _fmt(zero["bleu"].get(lang, {}).get("bleu4")), _fmt(bleu["bleu4"]))
        table.add_row(f"ROUGE-L {lang}", _fmt(zero["rougeL"].get(lang)), _fmt(final["rougeL"].get(lang)))
    console.print(table)


def print_personalised(console: Console, personalised: dict) -> None:
    """Each site's global model against its own fine-tuned copy, on the site's own test patients."""
    table = Table(title="personalised: each site fine-tunes the global model on its own training records "
                        "(its own test patients)")
    for column in ("site", "global AUC", "personalised AUC", "global BLEU-4", "personalised BLEU-4"):
        table.add_column(column, justify="left" if column == "site" else "right")
    for site, m in personalised.items():
        if m.get("skipped"):
            table.add_row(site, f"skipped: {m['skipped']}", "", "", "")
            continue
        table.add_row(site, _fmt(m["global_auc"]), _fmt(m["personalised_auc"]), _fmt(m.get("global_bleu4")),
                      _fmt(m.get("personalised_bleu4")))
    console.print(table)
