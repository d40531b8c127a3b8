"""A byte-level BPE tokenizer trained on the training reports, saved with the checkpoint.

Nothing is downloaded: the vocabulary is learnt from the reports the model trains on (a few
hundred merges cover radiology prose), with the ``tokenizers`` library. Byte-level BPE maps
every string to tokens and back exactly, so no report text is altered or lost (no unknown
token, spacing and case kept). Special ids follow T5: pad 0, end of sequence 1, unknown 2; the
decoder starts from pad, as T5's does. A pretrained T5's own tokenizer (a Unigram model, see
:mod:`securemed.models.pretrained`) is wrapped by the same class.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from securemed.durable import atomic_write
from securemed.errors import ConfigError, DataError

SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")
PAD_ID, EOS_ID, UNK_ID = 0, 1, 2


class ReportTokenizer:
    """Encodes reports to ids (ending with ``</s>``) and decodes ids back to text."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        for token, expected in zip(SPECIAL_TOKENS, (PAD_ID, EOS_ID, UNK_ID), strict=True):
            if tokenizer.token_to_id(token) != expected:
                raise ConfigError(f"a report tokenizer must map {token} to id {expected}")
        self._tokenizer = tokenizer

    @classmethod
    def train(cls, texts: Iterable[str], *, vocab_size: int = 1000) -> ReportTokenizer:
        """Learn a vocabulary of at most ``vocab_size`` tokens from ``texts``."""
        if vocab_size < 300:
            raise ConfigError(
                f"vocab_size must be at least 300 (256 bytes + merges), got {vocab_size}"
            )
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        texts = list(texts)
        if not texts:
            raise DataError("a tokenizer needs at least one report to learn from")
        tokenizer.train_from_iterator(texts, trainer=trainer)
        return cls(tokenizer)

    @property
    def vocab_size(self) -> int:
        return int(self._tokenizer.get_vocab_size())

    def encode(self, text: str, *, max_length: int | None = None) -> list[int]:
        """Ids of ``text`` then ``</s>``, truncated to ``max_length`` (``</s>`` always kept)."""
        # without the tokenizer's own post-processor: T5's appends ``</s>`` too, and truncation
        # must keep the end token, so it is added here once
        ids = self._tokenizer.encode(text, add_special_tokens=False).ids
        if max_length is not None:
            if max_length < 1:
                raise ValueError("max_length must be positive")
            ids = ids[: max_length - 1]
        return [*ids, EOS_ID]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids`` up to the first ``</s>``, special tokens dropped."""
        kept = []
        for token in ids:
            if token == EOS_ID:
                break
            if token not in (PAD_ID, UNK_ID):
                kept.append(int(token))
        return str(self._tokenizer.decode(kept, skip_special_tokens=True))

    def to_json(self) -> str:
        """The whole tokenizer as JSON, to store inside a checkpoint."""
        return str(self._tokenizer.to_str())

    @classmethod
    def from_json(cls, data: str) -> ReportTokenizer:
        try:
            return cls(Tokenizer.from_str(data))
        except Exception as error:  # tokenizers raises its own Exception subclass
            raise ConfigError(f"not a saved report tokenizer: {error}") from None

    def save(self, path: str | Path) -> None:
        """Written atomically: a resumed run reloads it."""
        text = self.to_json()
        atomic_write(Path(path), lambda temporary: temporary.write_text(text, encoding="utf-8"))

    @classmethod
    def load(cls, path: str | Path) -> ReportTokenizer:
        try:
            return cls.from_json(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"tokenizer file {path} does not exist") from None
