"""``m3fed predict`` and ``m3fed bank build``: using what the federation trained, at a hospital.

A bad model or bank path ends with one ``error:`` line (exit 2, through ``sim.m3fed_command``);
a bad image file gets one line naming it and why, the others are still answered, and the exit
status is 1 when any file failed.
"""
from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

from shared_model.findings import LANGUAGES
from shared_model.generation import GenerationSettings

# torch and the model code load in the handlers, so that `m3fed --help` answers at once.


def _count(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def _generation(args: argparse.Namespace) -> GenerationSettings:
    defaults = GenerationSettings()
    return GenerationSettings(
        num_beams=args.beams,
        no_repeat_ngram_en=defaults.no_repeat_ngram_en if args.no_repeat_ngram is None else args.no_repeat_ngram[0],
        no_repeat_ngram_zh=defaults.no_repeat_ngram_zh if args.no_repeat_ngram is None else args.no_repeat_ngram[1])


def _device(name: str):
    from client.errors import DataError
    from shared_model.device import resolve_device

    try:
        return resolve_device(name)
    except (ValueError, RuntimeError) as exc:
        raise DataError("--device", str(exc).removeprefix(f"--device {name}: ")) from None


def _predict(args: argparse.Namespace) -> int:
    from client.inference.bank import check_bank, load_bank, template_bank
    from client.inference.model_files import load_inference_model
    from client.inference.predict import PredictConfig, predict_files

    cfg = PredictConfig(languages=tuple(dict.fromkeys(args.language)), generation=_generation(args))
    device = _device(args.device)
    console = Console(stderr=args.json)  # --json: stdout holds only the JSON lines
    with console.status(f"loading {args.model}"):
        loaded = load_inference_model(args.model, device)
        if args.bank:
            bank = load_bank(args.bank)
            check_bank(bank, loaded)
        else:
            bank = template_bank(loaded, device)
    header = {"model": str(loaded.path), "weights_sha256": loaded.weights_sha256, "bank": bank.describe(),
              "generation": cfg.generation.to_dict()}
    if not args.json:
        console.print(f"model: {loaded.path} (sha256 {loaded.weights_sha256[:12]}…)", highlight=False,
                      soft_wrap=True)
        console.print(f"bank: {bank.describe()}", highlight=False, soft_wrap=True)
        console.print("zero-shot score: the image's similarity to a finding's positive prompt minus its negative "
                      "prompt (EN and ZH prompts averaged); above 0 leans positive; it ranks images, it is not a "
                      "probability", highlight=False, soft_wrap=True)
    failed = 0
    for answer in predict_files(loaded, bank, args.files, cfg, device):
        failed += "error" in answer
        if args.json:
            print(json.dumps({**answer, **header}, ensure_ascii=False), flush=True)
        elif "error" in answer:
            print(f"error: {answer['file']}: {answer['error']}", file=sys.stderr, flush=True)
        else:
            _print_answer(console, answer)
    if failed and not args.json:
        console.print(f"{len(args.files) - failed} of {len(args.files)} files answered, {failed} failed")
    return 1 if failed else 0


def _print_answer(console: Console, answer: dict) -> None:
    console.print(f"[bold]{answer['file']}[/]", highlight=False, soft_wrap=True)
    table = Table("finding", "zero-shot score")
    for name, score in answer["findings"].items():
        table.add_row(name, f"{score:+.3f}", style="bold" if score > 0 else None)
    console.print(table)
    for lang, text in answer["reports"].items():
        console.print(f"[bold]report ({lang}):[/] {text or '(empty)'}", highlight=False, soft_wrap=True)
    console.print()


def _bank_build(args: argparse.Namespace) -> int:
    from client.inference.bank import build_bank, save_bank, site_reports, template_bank
    from client.inference.model_files import load_inference_model

    device = _device(args.device)
    console = Console()
    with console.status(f"loading {args.model}"):
        loaded = load_inference_model(args.model, device)
    if args.templates:
        bank = template_bank(loaded, device)
    else:
        texts, languages, source = site_reports(args.data, size=args.size, seed=args.seed,
                                                languages=tuple(args.languages) if args.languages else None)
        with console.status(f"embedding {len(texts)} reports"):
            bank = build_bank(loaded, texts, languages, source, device)
    save_bank(bank, args.out)
    bank.info["path"] = args.out
    console.print(f"wrote {bank.describe()}" if not args.templates else f"wrote {args.out}: {bank.describe()}",
                  highlight=False, soft_wrap=True)
    skipped = bank.info["source"].get("skipped", 0)
    if skipped:
        console.print(f"[yellow]{skipped} records skipped[/] (`m3fed data check --data {args.data}` lists them)")
    console.print(f"for the model {loaded.path} (sha256 {loaded.weights_sha256[:12]}…)"
                  + ("" if args.templates else "; the bank holds this site's report text: keep it at the site"),
                  highlight=False, soft_wrap=True)
    return 0


def add_inference_commands(sub: argparse._SubParsersAction) -> None:
    defaults = GenerationSettings()
    p = sub.add_parser("predict", help="zero-shot finding scores and generated reports for image files")
    p.add_argument("--model", required=True, metavar="RUNDIR|CHECKPOINT",
                   help="a run directory (its model-merged.safetensors or model.safetensors) or a checkpoint")
    p.add_argument("files", nargs="+", metavar="FILE", help="JPEG, PNG or DICOM (.dcm, .dcm.gz) images")
    p.add_argument("--language", nargs="+", default=list(LANGUAGES), choices=LANGUAGES,
                   help="write a report in each (default: en zh)")
    p.add_argument("--bank", help="this site's report bank (m3fed bank build); default: the built-in "
                                  "template reports")
    p.add_argument("--json", action="store_true", help="one JSON object per image, one per line")
    p.add_argument("--beams", type=_count(1), default=defaults.num_beams, help="1 = greedy decoding")
    p.add_argument("--no-repeat-ngram", type=_count(0), nargs=2, metavar=("EN", "ZH"),
                   help=f"n-gram blocking in word pieces (en) and characters (zh), 0 = off (default "
                        f"{defaults.no_repeat_ngram_en} {defaults.no_repeat_ngram_zh})")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, auto")
    p.set_defaults(func=_predict)

    bank = sub.add_parser("bank", help="the report bank report generation projects onto").add_subparsers(
        dest="bank_command", required=True)
    p = bank.add_parser("build", help="embed this site's own training reports (the file stays at the site)")
    p.add_argument("--model", required=True, metavar="RUNDIR|CHECKPOINT")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="the site's dataset (MIMIC-CXR tree or manifest): its train-split reports")
    source.add_argument("--templates", action="store_true",
                        help="the built-in template reports instead (no site's text)")
    p.add_argument("--out", required=True, metavar="BANK", help="bank file to write (.safetensors)")
    p.add_argument("--size", type=_count(1), default=2000,
                   help="at most this many distinct reports, sampled with --seed (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--languages", nargs="+", choices=LANGUAGES, help="only these languages' reports")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, auto")
    p.set_defaults(func=_bank_build)
