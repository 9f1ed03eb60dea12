"""Rich tables of a run's final metrics."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table


def print_final(console: Console, final: dict, *, title: str) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("zero-shot macro AUC", f"{final['auc_macro']:.3f}")
    for name, auc in final["auc_per_label"].items():
        table.add_row(f"  AUC {name}", f"{auc:.3f}")
    for lang, bleu in final["bleu"].items():
        table.add_row(f"BLEU-4 {lang} (from images)", f"{bleu['bleu4']:.3f}")
        table.add_row(f"ROUGE-L {lang}", f"{final['rougeL'][lang]:.3f}")
    console.print(table)


def selection_line(selected: dict | None, *, unit: str) -> str:
    """'selected on the validate split: contrastive round 6 (auc 0.712), report-generation round 11 (bleu4 0.248)'."""
    if not selected:
        return ""
    if selected.get("rule") == "last":
        return f"model selection off: the last {unit}"
    parts = []
    for stage in selected.get("stages", []):
        value = "—" if stage.get("value") is None else f"{stage['value']:.3f}"
        stopped = f", stopped early after {stage['stopped_after']}" if stage.get("stopped_after") else ""
        parts.append(f"{stage['objective']} {unit} {stage.get(unit)} ({stage['metric']} {value}{stopped})")
    return "selected on the validate split: " + ", ".join(parts)
