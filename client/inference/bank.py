"""The report bank the decoder projects onto: text embeddings of a site's own reports, kept at the site.

At inference an image embedding is replaced by a softmax-weighted mix of report embeddings
(``shared_model.lm.project_onto_bank``) before MultiMedLM writes from it, so the bank decides which
region of the text space a report is written from. A bank file (safetensors) holds:

* ``embeddings``: (N, D) float32 unit-norm text embeddings of N distinct reports;
* header ``m3fed.bank``: the format, the weights hash and tokenizer hash of the model that embedded
  them (embeddings from other weights live in another space: such a bank is refused, naming both),
  the count per language, and where the texts came from (a site's data folder and split, or the
  built-in template reports), with how many records were skipped;
* header ``m3fed.bank.texts``: the reports and their languages, so the bank can be rebuilt with the
  next model without going back to the archive. The file holds patients' report text: it is as
  private as the reports themselves and never leaves the site.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from client.errors import DataError
from client.inference.model_files import InferenceModel
from client.inference.template_bank import DEFAULT_STUDIES, TEMPLATE_VERSION, template_reports
from shared_model.errors import CheckpointError
from shared_model.evaluate import embed_texts

FORMAT = "m3fed.bank/1"


@dataclass(frozen=True)
class Bank:
    embeddings: torch.Tensor  # (N, D) on the CPU
    texts: tuple[str, ...]
    languages: tuple[str, ...]
    info: dict  # the header: format, weights_sha256, tokenizer_sha256, model_file, counts, source

    def describe(self) -> str:
        """One line naming the bank, for every prediction's output."""
        counts = ", ".join(f"{n} {lang}" for lang, n in sorted(self.info["counts"].items()))
        source = self.info["source"]
        if source["kind"] == "template":
            return (f"built-in template reports v{source['version']} ({counts}; m3fed's finding sentences, "
                    "no site's reports: build this site's own bank with `m3fed bank build`)")
        where = f"{self.info.get('path', '?')}: site reports from {source['data']} ({source['split']} split"
        return f"{where}, {counts}, built {source['built']})"


def build_bank(loaded: InferenceModel, texts: list[str], languages: list[str], source: dict,
               device: torch.device) -> Bank:
    """Embed ``texts`` with ``loaded``'s text tower; ``source`` says where they came from."""
    if not texts:
        raise CheckpointError(f"{source.get('data', 'the bank')}: no reports to build a bank from")
    embeddings = embed_texts(loaded.model, list(texts), device).cpu().contiguous()
    info = {"format": FORMAT, "weights_sha256": loaded.weights_sha256,
            "tokenizer_sha256": loaded.model.tokenizer.sha256, "model_file": str(loaded.path.resolve()),
            "counts": dict(Counter(languages)), "size": len(texts), "embed_dim": int(embeddings.shape[1]),
            "source": {**source, "built": datetime.now(timezone.utc).isoformat(timespec="seconds")}}
    return Bank(embeddings, tuple(texts), tuple(languages), info)


def template_bank(loaded: InferenceModel, device: torch.device, *, studies: int = DEFAULT_STUDIES) -> Bank:
    """The bank of a model shipped without a site bank: built-in template reports (``template_bank``)."""
    pairs = template_reports(studies=studies)
    return build_bank(loaded, [t for t, _ in pairs], [lang for _, lang in pairs],
                      {"kind": "template", "version": TEMPLATE_VERSION, "studies": studies}, device)


def site_reports(data: str, *, size: int, seed: int, languages: tuple[str, ...] | None = None
                 ) -> tuple[list[str], list[str], dict]:
    """A site's distinct train-split reports (sampled down to ``size``), their languages, and where from.

    Only the train split: validate and test reports are the answers the site's own evaluation
    checks generated reports against, and a bank holding them would hand them to the decoder.
    """
    from client.data.evaldata import bank_texts
    from client.data.sources import load_records

    records, report = load_records(data, languages=languages)
    train = [r for r in records if r.split == "train"]
    language_of = {r.report: r.language for r in train}
    if not train:
        raise DataError(data, "no train-split reports to build a bank from (see `m3fed data check`)")
    texts = bank_texts(train, size, seed)
    source = {"kind": "site", "data": str(Path(data).resolve()), "split": "train", "records": len(train),
              "distinct": len(language_of), "sampled": len(texts), "seed": seed, "skipped": len(report.skipped)}
    return texts, [language_of[t] for t in texts], source


def save_bank(bank: Bank, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({"embeddings": bank.embeddings}, str(tmp),
              metadata={"m3fed.bank": json.dumps(bank.info),
                        "m3fed.bank.texts": json.dumps({"texts": bank.texts, "languages": bank.languages},
                                                       ensure_ascii=False)})
    tmp.replace(path)


def load_bank(path: str | Path) -> Bank:
    """A bank file, checked for shape and format (CheckpointError saying what is wrong)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such bank file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            if "m3fed.bank" not in meta or "embeddings" not in handle.keys():
                raise CheckpointError(f"{path}: not an m3fed report bank (no m3fed.bank header); "
                                      "make one with `m3fed bank build`")
            embeddings = handle.get_tensor("embeddings").float()
        info, stored = json.loads(meta["m3fed.bank"]), json.loads(meta.get("m3fed.bank.texts", "{}"))
    except (OSError, SafetensorError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable bank file ({exc})") from None
    if info.get("format") != FORMAT:
        raise CheckpointError(f"{path}: bank format {info.get('format')!r}, expected {FORMAT}")
    texts, languages = tuple(stored.get("texts", ())), tuple(stored.get("languages", ()))
    if embeddings.ndim != 2 or not len(embeddings) or len(texts) != len(embeddings) or len(languages) != len(texts):
        raise CheckpointError(f"{path}: damaged bank ({tuple(embeddings.shape)} embeddings for {len(texts)} texts)")
    return Bank(embeddings, texts, languages, {**info, "path": str(path)})


def check_bank(bank: Bank, loaded: InferenceModel) -> None:
    """Refuse a bank embedded by other weights or another tokenizer, naming both."""
    info, where = bank.info, bank.info.get("path", "the bank")
    if info["tokenizer_sha256"] != loaded.model.tokenizer.sha256:
        raise CheckpointError(f"{where}: built with tokenizer sha256 {info['tokenizer_sha256'][:12]}…, but "
                              f"{loaded.path} uses {loaded.model.tokenizer.sha256[:12]}…")
    if info["weights_sha256"] != loaded.weights_sha256:
        raise CheckpointError(
            f"{where}: built with the model {info['model_file']} (sha256 {info['weights_sha256'][:12]}…), "
            f"not {loaded.path} (sha256 {loaded.weights_sha256[:12]}…); its embeddings belong to the other "
            f"model: rebuild it with `m3fed bank build --model {loaded.path} --data DIR --out {where}`")
