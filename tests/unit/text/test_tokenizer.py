"""The report tokenizer: trained offline, exact round trip, saved and reloaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from securemed.data.reports import ReportWriter
from securemed.data.synthetic import SyntheticChestXRays
from securemed.errors import ConfigError
from securemed.text import ReportTokenizer
from securemed.text.tokenizer import EOS_ID, PAD_ID


@pytest.fixture(scope="module")
def reports() -> list[str]:
    writer = ReportWriter(SyntheticChestXRays(seed=0))
    return [r.text for r in writer.reports(range(500))]


@pytest.fixture(scope="module")
def tokenizer(reports) -> ReportTokenizer:
    return ReportTokenizer.train(reports, vocab_size=800)


def test_round_trip_is_exact_even_for_unseen_text(tokenizer, reports) -> None:
    for text in [*reports[:50], "Unseen: 12.5 mm ßtrange wörds ✓ and  double  spaces."]:
        ids = tokenizer.encode(text)
        assert ids[-1] == EOS_ID
        assert tokenizer.decode(ids) == text


def test_reports_compress_to_few_tokens(tokenizer, reports) -> None:
    words = sum(len(t.split()) for t in reports)
    tokens = sum(len(tokenizer.encode(t)) for t in reports)
    assert tokens < 1.5 * words  # merges learnt radiology words


def test_truncation_keeps_the_end_token_and_decoding_stops_at_it(tokenizer, reports) -> None:
    ids = tokenizer.encode(reports[0], max_length=5)
    assert len(ids) == 5 and ids[-1] == EOS_ID
    padded = [*tokenizer.encode("No effusion."), PAD_ID, *tokenizer.encode("junk")]
    assert tokenizer.decode(padded) == "No effusion."


def test_save_and_load_give_the_same_ids(tokenizer, reports, tmp_path: Path) -> None:
    tokenizer.save(tmp_path / "tokenizer.json")
    again = ReportTokenizer.load(tmp_path / "tokenizer.json")
    assert again.encode(reports[1]) == tokenizer.encode(reports[1])
    assert ReportTokenizer.from_json(tokenizer.to_json()).vocab_size == tokenizer.vocab_size


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 300"):
        ReportTokenizer.train(["a"], vocab_size=10)
    with pytest.raises(ConfigError, match="does not exist"):
        ReportTokenizer.load(tmp_path / "missing.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not a saved report tokenizer"):
        ReportTokenizer.load(tmp_path / "junk.json")
