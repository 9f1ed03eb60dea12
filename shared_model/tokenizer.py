"""The multilingual tokenizer every site must use: the shipped, versioned one, or a local text model's own.

Weights are only meaningful with the vocabulary they were trained on, so the tokenizer's SHA-256
travels inside every checkpoint and every run's config, and a mismatch is refused (``checkpoint.py``,
``client.app.client_app``). The shipped tokenizer is one file; a ``--text-model DIR``'s is the
directory's tokenizer files (``shared_model.text_model``), with ``[EN]`` / ``[ZH]`` added.
"""
from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path

import torch
from tokenizers import Tokenizer

from shared_model.errors import CheckpointError

DEFAULT_TOKENIZER = Path(__file__).parent / "assets" / "tokenizer-v1.json"
# The released vocabulary. Rebuilding gives a new version (training ties are unordered): ship it
# as tokenizer-v2.json with its own hash rather than overwriting v1.
TOKENIZER_V1_SHA256 = "769b54de3c19326012e57dd80cdd73d9bfa8f2df242c342db524fba41bfc3cb8"
LANGUAGE_TOKENS = {"en": "[EN]", "zh": "[ZH]"}
_CJK_GAP = re.compile(r"(?<=[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]) (?=[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef])")
_SPACE_BEFORE_PUNCT = re.compile(r" ([.,;:?!%)])")


class SharedTokenizer:
    """The shipped WordPiece over EN + every GB2312 character, or (``path`` a directory) a Hugging Face
    model's fast tokenizer; language tokens start generated reports."""

    def __init__(self, path: str | Path = DEFAULT_TOKENIZER) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            from shared_model.text_model import load_backend, tokenizer_sha256

            self._tok, specials = load_backend(self.path)
            self._tok.add_special_tokens(list(LANGUAGE_TOKENS.values()))  # no-op for tokens it has
            self.sha256 = tokenizer_sha256(self.path)
        else:
            data = self.path.read_bytes()
            self.sha256 = hashlib.sha256(data).hexdigest()
            self._tok = Tokenizer.from_str(data.decode("utf-8"))
            specials = {"pad": "[PAD]", "cls": "[CLS]", "eos": "[SEP]", "unk": "[UNK]"}
        self.name = self.path.name
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        self.pad_id, self.cls_id = self._id(specials["pad"]), self._id(specials["cls"])
        self.eos_id, self.unk_id = self._id(specials["eos"]), self._id(specials["unk"])
        self.lang_ids = {lang: self._id(token) for lang, token in LANGUAGE_TOKENS.items()}

    def _id(self, token: str) -> int:
        token_id = self._tok.token_to_id(token)
        if token_id is None:
            raise ValueError(f"{self.path}: tokenizer lacks the special token {token}")
        return token_id

    def pieces(self, texts: list[str]) -> list[list[int]]:
        return [enc.ids for enc in self._tok.encode_batch(texts, add_special_tokens=False)]

    def encode_text(self, texts: list[str], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Text-encoder input ``[CLS] pieces [SEP]``, right-padded: (ids, attention mask)."""
        rows = [[self.cls_id] + ids[: max_len - 2] + [self.eos_id] for ids in self.pieces(texts)]
        return self._pad(rows, max_len)

    def encode_target(self, texts: list[str], languages: list[str], max_len: int
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder sequence ``[LANG] pieces [SEP]``: input is ``[:, :-1]``, target ``[:, 1:]``."""
        rows = []
        for ids, lang in zip(self.pieces(texts), languages):
            rows.append([self.lang_ids[lang]] + ids[: max_len - 2] + [self.eos_id])
        return self._pad(rows, max_len)

    def _pad(self, rows: list[list[int]], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        width = min(max_len, max((len(r) for r in rows), default=1))
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return ids, (ids != self.pad_id).long()

    def decode(self, ids: list[int]) -> str:
        """Readable text: WordPiece merged, no spaces between Chinese characters."""
        specials = {self.pad_id, self.cls_id, self.eos_id, *self.lang_ids.values()}
        kept = []
        for token_id in ids:
            if token_id == self.eos_id:
                break
            if token_id not in specials:
                kept.append(int(token_id))
        text = self._tok.decode(kept)
        return _SPACE_BEFORE_PUNCT.sub(r"\1", _CJK_GAP.sub("", text)).strip()


def load_tokenizer(path: str | Path = DEFAULT_TOKENIZER) -> SharedTokenizer:
    """The tokenizer at ``path`` (a file, or a --text-model directory), loaded once per process and state of its files."""
    path = Path(path).resolve()
    if not path.exists():
        raise CheckpointError(f"{path}: no such tokenizer file or --text-model directory")
    stamp = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in (sorted(path.iterdir()) if path.is_dir()
                                                                             else [path]))
    return _cached(path, stamp)


@lru_cache(maxsize=8)
def _cached(path: Path, _stamp: tuple) -> SharedTokenizer:
    return SharedTokenizer(path)
