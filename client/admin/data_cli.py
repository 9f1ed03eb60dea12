"""``m3fed data check`` and ``m3fed data preview``: what a hospital runs before joining."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from client.admin.scrub_cli import add_scrub_parser
from shared_model.config import get_preset

# client.data.dataset and client.data.preview load torch: imported where used, so that `m3fed --help` and
# a mistyped option answer at once.


def check_dataset(data: str, image_size: int, *, max_records_per_patient: int | None = None,
                  languages: tuple[str, ...] | None = None, modalities: tuple[str, ...] | None = None) -> dict:
    """Read every record and decode every image; the summary lists each skipped item with its reason.

    With a DP policy's ``max_records_per_patient``, the training studies a DP round drops to enforce
    it are listed too (skipped, reason "over max_records_per_patient") and counted. ``languages`` /
    ``modalities``: what a site contributes (``client.data.sources.selection``); the rest is not read
    further and is counted under ``not_contributed``.
    """
    return read_dataset(data, image_size, max_records_per_patient=max_records_per_patient, languages=languages,
                        modalities=modalities)[0]


def read_dataset(data: str, image_size: int, *, max_records_per_patient: int | None = None,
                 languages: tuple[str, ...] | None = None, modalities: tuple[str, ...] | None = None,
                 store: Path | None = None, console: Console | None = None, scrub: bool = True):
    """``check_dataset``'s summary and the decoded training examples it checked (before the DP cap).
    ``store``: decode through that decoded-image store, in parallel with a progress bar on ``console``
    (a site's ``state_dir/decoded``, which its rounds then read instead of decoding again)."""
    from client.data.dataset import decode
    from client.data.sources import load_records, select_records
    from client.data.store_build import decode_with_progress, default_workers, store_line
    from privacy.sampling import cap_studies_per_patient

    records, report = load_records(data, scrub=scrub, scrub_cache=store)
    records, left_out = select_records(records, languages=languages, modalities=modalities)
    if store is None:
        examples = decode(records, image_size, report)
    else:
        counts = {"store": str(store)}
        examples = decode_with_progress(records, image_size, report, store=store, workers=default_workers(),
                                        console=console, counts=counts)
        if console is not None:
            console.print(store_line(counts), markup=False, highlight=False)
    train = examples.subset(lambda r: r.split == "train")
    _, cap = cap_studies_per_patient(train, max_records_per_patient, report=report)
    summary = report.summary(examples.records)
    summary["max_records_per_patient"] = cap.to_dict()
    summary["not_contributed"] = left_out
    summary["usable"] = any(r.split == "train" for r in examples.records)
    return summary, train


def _check(args: argparse.Namespace) -> int:
    summary = check_dataset(args.data, get_preset(args.preset).image_size)
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        _print_summary(Console(), summary)
    return 0 if summary["usable"] else 1


def _print_summary(console: Console, s: dict) -> None:
    console.print(f"[bold]{s['source']}[/]: {s['records']} records, {s['images']} images, "
                  f"{s['patients']} patients, {s['text_only']} text-only")
    table = Table("group", "value", "records")
    for group in ("by_split", "by_language", "by_modality"):
        for key, n in sorted(s[group].items()):
            table.add_row(group[3:], key, str(n))
    console.print(table)
    labels = Table("label", "1 (positive)", "0 (negative)", "-1 (uncertain)", "blank")
    for name, counts in s["labels"].items():
        labels.add_row(name, *(str(counts.get(k, 0)) for k in ("1", "0", "-1", "blank")))
    console.print(labels)
    if s["skipped_items"]:
        console.print(f"[yellow]{s['skipped']} skipped:[/]")
        for item in s["skipped_items"]:
            console.print(f"  {item['path']}: {item['reason']}", markup=False, highlight=False)
    verdict = "[green]usable[/]" if s["usable"] else "[red]not usable: no training records[/]"
    console.print(f"dataset {verdict}")


def _preview(args: argparse.Namespace) -> int:
    from client.data.preview import preview_file

    size = args.size or get_preset(args.preset).image_size
    window = tuple(args.ct_window) if args.ct_window else None
    info = preview_file(args.file, args.out, size=size, ct_window=window)
    print(json.dumps(info, default=str))
    return 0


def add_data_commands(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="check a site's dataset or preview an image").add_subparsers(
        dest="data_command", required=True)
    p = data.add_parser("check", help="counts per split/language/modality/label and every unusable file")
    p.add_argument("--data", required=True)
    p.add_argument("--json", action="store_true")
    p.add_argument("--preset", default="tiny", choices=("tiny", "paper"))
    p.set_defaults(func=_check)
    p = data.add_parser("preview", help="write the image exactly as the model will see it")
    p.add_argument("file")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--preset", default="paper", choices=("tiny", "paper"), help="sets the model input size")
    p.add_argument("--size", type=int, help="override the input size in pixels")
    p.add_argument("--ct-window", type=float, nargs=2, metavar=("CENTER", "WIDTH"),
                   help="CT window in HU (default lung window -600 1500)")
    p.set_defaults(func=_preview)
    add_scrub_parser(data)
