"""Verbatim regurgitation measures on hand-made reports."""
from __future__ import annotations

import pytest

from privacy.regurgitation import Corpus, regurgitation, tokens

TRAIN = [("en", "The heart is normal. Patient identifier 1 2 3 4 5 6. Old fracture of the left seventh rib noted."),
         ("en", "No acute process."), ("zh", "心肺未见急性病变。")]
TEST = [("en", "No acute process."), ("zh", "未见气胸。")]


def test_verbatim_copies_and_shared_ngrams_are_counted_as_scoring_tokenises():
    generated = [("en", "no acute  process ."),  # a training report that is also a test reference
                 ("en", "Old fracture of the left seventh rib noted. Patient identifier 1 2 3 4 5 6."),
                 ("en", "Something else entirely."), ("zh", "心肺未见急性病变。")]
    r = regurgitation(generated, train=TRAIN, test=TEST, secrets=["123456"], control_secrets=["654321"])
    assert r["generated"] == 4 and r["by_language"] == {"en": 3, "zh": 1}
    assert r["verbatim_train"] == pytest.approx(2 / 4)  # case and spacing aside
    assert r["verbatim_train_only"] == pytest.approx(1 / 4)  # "no acute process" is also a test reference
    assert r["train_only_8gram"] == pytest.approx(2 / 4)  # the rib sentence, and the zh report (8 characters)
    assert r["secret"] == pytest.approx(1 / 4) and r["control_secret"] == 0.0
    assert r["longest_ngram_max"] == len(tokens(". Patient identifier 1 2 3 4 5 6.", "en")) == 10


def test_the_longest_shared_ngram_is_found_by_its_length():
    corpus = Corpus(["a b c d e f", "x y z"], "en")
    assert corpus.longest_shared(tokens("q b c d r", "en")) == 3
    assert corpus.longest_shared(tokens("nothing here", "en")) == 1  # the sentence end, a token as in BLEU
    assert corpus.longest_shared(tokens("a b c d e f", "en")) == 7
