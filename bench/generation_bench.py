"""Reports that read like reports: decoding settings side by side, same model, same test images, one run.

For each arm (plain greedy / beam decoding as before issue I, the default ``GenerationSettings``,
and a sweep of the n-gram block per language) it generates a report for every test image in each
language, through the same bank of training-report embeddings as evaluation, and prints BLEU-1..4,
ROUGE-L (``shared_model.text_metrics``), the share of reports repeating a sentence (EN split on '.',
ZH on '。'), the mean length in tokens and the share cut at the length limit. It also prints, for
each n, the share of the test *references* that hold a repeated n-gram: reports an n-gram block of
that size could never write, i.e. what the block costs on legitimate text.

    python bench/generation_bench.py --run RUNDIR --data DATA [--beams 3] [--json OUT]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from collections import Counter

import torch

from client.data.dataset import decode
from client.data.evaldata import bank_texts, evaluation_inputs
from client.data.sources import load_records
from client.inference.bank import template_bank
from client.inference.model_files import load_inference_model
from shared_model.evaluate import embed_images, embed_texts, generate_reports, report_metrics
from shared_model.generation import UNCONSTRAINED, GenerationSettings

SEPARATORS = {"en": ".", "zh": "。"}


def repeats_a_sentence(text: str, language: str) -> bool:
    said = [" ".join(s.lower().split()) for s in text.split(SEPARATORS[language]) if s.strip()]
    return len(said) != len(set(said))


def repeated_ngram_share(pieces: list[list[int]], n: int) -> float:
    """Share of token sequences holding some n-gram twice."""
    def repeats(ids: list[int]) -> bool:
        return max(Counter(tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)).values(), default=1) > 1
    return sum(map(repeats, pieces)) / max(len(pieces), 1)


def arms(beams: int) -> dict[str, GenerationSettings]:
    default = GenerationSettings()
    out = {"greedy, plain (before)": UNCONSTRAINED, "greedy, default": default,
           f"beam {beams}, plain (before)": UNCONSTRAINED.with_beams(beams),
           f"beam {beams}, default": default.with_beams(beams),
           "greedy, n-gram block only": dataclasses.replace(UNCONSTRAINED, no_repeat_ngram_en=default.no_repeat_ngram_en,
                                                            no_repeat_ngram_zh=default.no_repeat_ngram_zh),
           "greedy, default without keep_language": dataclasses.replace(default, keep_language=False),
           "greedy, default without tidy": dataclasses.replace(default, tidy=False)}
    for en, zh in ((2, 3), (3, 4), (6, 6), (8, 8)):
        out[f"greedy, default but no-repeat en {en} / zh {zh}"] = dataclasses.replace(
            default, no_repeat_ngram_en=en, no_repeat_ngram_zh=zh)
    out["greedy, repetition penalty 1.2 only"] = dataclasses.replace(UNCONSTRAINED, repetition_penalty=1.2)
    for penalty in (1.0, 3.0):
        out[f"beam {beams}, default but length penalty {penalty}"] = dataclasses.replace(
            default, num_beams=beams, length_penalty=penalty)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run directory or checkpoint")
    parser.add_argument("--data", required=True, help="the dataset it was trained on (its test split is scored)")
    parser.add_argument("--beams", type=int, default=3)
    parser.add_argument("--bank-size", type=int, default=2000, help="as m3fed central / sim evaluate")
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device("cpu")
    loaded = load_inference_model(args.run, device)
    model = loaded.model
    records, report = load_records(args.data)
    test = decode([r for r in records if r.split == "test"], model.cfg.image_size, report)
    inputs = evaluation_inputs(test, ())
    image_emb = embed_images(model, inputs["images"], device)
    banks = {"training reports": embed_texts(model, bank_texts([r for r in records if r.split == "train"],
                                                                 args.bank_size, 0), device),
             "template reports": template_bank(loaded, device).embeddings}
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread; "
          f"{len(inputs['images'])} test images; model {loaded.path} ({loaded.weights_sha256[:12]}…)")
    results: dict = {"references": {}, "arms": {}}
    for lang, (rows, refs) in inputs["references"].items():
        pieces = model.tokenizer.pieces(refs)
        results["references"][lang] = {
            "count": len(refs), "repeat_a_sentence": sum(repeats_a_sentence(r, lang) for r in refs) / len(refs),
            "repeated_ngram": {n: repeated_ngram_share(pieces, n) for n in range(2, 13)},
            # The impression restating a finding verbatim repeats whole sentences; the rest shows how often
            # legitimate phrases (not sentences) recur.
            "repeated_ngram_without_repeated_sentence": {
                n: repeated_ngram_share([p for p, r in zip(pieces, refs) if not repeats_a_sentence(r, lang)], n)
                for n in range(2, 13)}}
    runs = [(name, settings, "training reports") for name, settings in arms(args.beams).items()]
    runs.append(("greedy, default, template bank", GenerationSettings(), "template reports"))
    print("| arm | lang | BLEU-1 | BLEU-4 | ROUGE-L | repeats a sentence | mean tokens | at length limit | s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    limit = model.cfg.max_report_len - 1
    for name, settings, bank in runs:
        for lang, (rows, refs) in inputs["references"].items():
            start = time.perf_counter()
            hyps = generate_reports(model, image_emb[rows], banks[bank], lang, device, settings=settings)
            seconds = time.perf_counter() - start
            scores = report_metrics(refs, hyps, lang)
            lengths = [len(p) for p in model.tokenizer.pieces(hyps)]
            row = {"bleu": scores["bleu"], "rougeL": scores["rougeL"],
                   "repeat_a_sentence": sum(repeats_a_sentence(h, lang) for h in hyps) / len(hyps),
                   "mean_tokens": sum(lengths) / len(lengths),
                   "at_limit": sum(n >= limit - 1 for n in lengths) / len(lengths), "seconds": seconds,
                   "settings": settings.to_dict(), "bank": bank, "example": hyps[0]}
            results["arms"].setdefault(name, {})[lang] = row
            print(f"| {name} | {lang} | {row['bleu']['bleu1']:.3f} | {row['bleu']['bleu4']:.3f} | "
                  f"{row['rougeL']:.3f} | {row['repeat_a_sentence']:.2f} | {row['mean_tokens']:.1f} | "
                  f"{row['at_limit']:.2f} | {seconds:.1f} |", flush=True)
    for lang, ref in results["references"].items():
        shares = ", ".join(f"{n}: {v:.2f}" for n, v in ref["repeated_ngram"].items())
        print(f"references {lang} ({ref['count']}): repeat a sentence {ref['repeat_a_sentence']:.2f}; "
              f"hold a repeated n-gram, by n: {shares}")
        shares = ", ".join(f"{n}: {v:.2f}" for n, v in ref["repeated_ngram_without_repeated_sentence"].items())
        print(f"  of those repeating no sentence, hold a repeated n-gram, by n: {shares}")
    for name in ("greedy, plain (before)", "greedy, default", f"beam {args.beams}, default"):
        for lang, row in results["arms"][name].items():
            print(f"{name} {lang} example: {row['example']}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2, ensure_ascii=False)


if __name__ == "__main__":
    main()
