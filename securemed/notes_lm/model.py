"""The notes language model: a small GPT-NeoX (the Pythia architecture) and its tokenizer.

GPT-NeoX is chosen because every trained layer is an ``nn.Linear``, ``nn.Embedding`` or
``nn.LayerNorm``, which Opacus gives per-example gradients with its standard hooks, and its
input and output embeddings are separate parameters (GPT-2 ties them and uses its own
``Conv1D``, which Opacus does not know). A Pythia checkpoint in a local folder loads the same way.

Nothing is downloaded: built from :class:`NotesLMConfig`, the tokenizer is a byte-level BPE
learnt from public notes (:class:`securemed.text.tokenizer.ReportTokenizer`'s trainer), and a
folder written by :meth:`NotesLM.save` (``config.json``, weights, ``tokenizer.json``) loads back
with :meth:`NotesLM.load`, as does any Hugging Face causal LM folder with a ``tokenizer.json``.

Every note is encoded as ``<eos> note <eos>``: the leading end-of-text token lets the model
predict the note's first token, so a note's NLL covers all of it (the GPT-2/Pythia convention).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn
from torch.nn import functional as F  # noqa: N812
from transformers import AutoModelForCausalLM, GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedModel

from securemed.errors import ConfigError
from securemed.text.tokenizer import EOS_ID, ReportTokenizer

TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True)
class NotesLMConfig:
    """The size of a notes LM built from scratch (defaults: about 0.3 M parameters, trains
    a few thousand tokens a second on one CPU core)."""

    vocab_size: int = 1000
    hidden_size: int = 64
    layers: int = 2
    heads: int = 4
    intermediate_size: int = 256
    max_length: int = 256

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value < 1:
                raise ConfigError(f"notes LM {name} must be positive, got {value}")
        if self.hidden_size % self.heads:
            raise ConfigError(
                f"hidden_size {self.hidden_size} must be a multiple of heads {self.heads}"
            )


@dataclass(frozen=True)
class EncodedNotes:
    """Token ids ``(n, length)`` padded with end-of-text, and the mask of real tokens."""

    ids: torch.Tensor
    mask: torch.Tensor

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, rows: np.ndarray | Sequence[int]) -> EncodedNotes:
        index = torch.as_tensor(np.asarray(rows, dtype=np.int64))
        return EncodedNotes(self.ids[index], self.mask[index])


class NotesLM:
    """A causal LM of notes with the tokenizer and length limit it was trained with."""

    def __init__(self, model: PreTrainedModel, tokenizer: Tokenizer, *, max_length: int) -> None:
        eos = model.config.eos_token_id
        if not isinstance(eos, int):
            raise ConfigError("the language model's config must name one eos_token_id")
        if max_length < 2:
            raise ConfigError(f"max_length must be at least 2, got {max_length}")
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.eos_id = eos

    @classmethod
    def build(cls, config: NotesLMConfig, public_notes: Sequence[str]) -> NotesLM:
        """A fresh model of ``config``'s size, its tokenizer learnt from ``public_notes``."""
        learnt = ReportTokenizer.train(public_notes, vocab_size=config.vocab_size)
        tokenizer = Tokenizer.from_str(learnt.to_json())
        neox = GPTNeoXConfig(
            vocab_size=tokenizer.get_vocab_size(),
            hidden_size=config.hidden_size,
            num_hidden_layers=config.layers,
            num_attention_heads=config.heads,
            intermediate_size=config.intermediate_size,
            max_position_embeddings=config.max_length,
            bos_token_id=EOS_ID,
            eos_token_id=EOS_ID,
            pad_token_id=EOS_ID,
            tie_word_embeddings=False,
            use_cache=False,
        )
        return cls(GPTNeoXForCausalLM(neox), tokenizer, max_length=config.max_length)

    @classmethod
    def load(cls, folder: str | Path, *, max_length: int | None = None) -> NotesLM:
        """A model saved by :meth:`save` or any local Hugging Face causal LM folder that holds
        a ``tokenizer.json``; never reaches the network."""
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise ConfigError(f"{folder} is not a model folder (no config.json)")
        if not (folder / TOKENIZER_FILE).is_file():
            raise ConfigError(f"{folder} has no {TOKENIZER_FILE}")
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
        limit = max_length or int(getattr(model.config, "max_position_embeddings", 0) or 0)
        tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        return cls(model, tokenizer, max_length=limit)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.model.save_pretrained(folder)
        self.tokenizer.save(str(folder / TOKENIZER_FILE))

    def encode(self, notes: Sequence[str]) -> EncodedNotes:
        """``<eos> note <eos>`` per note, truncated to ``max_length`` tokens."""
        if not notes:
            raise ConfigError("no notes to encode")
        rows = []
        for encoding in self.tokenizer.encode_batch(list(notes), add_special_tokens=False):
            rows.append([self.eos_id, *encoding.ids, self.eos_id][: self.max_length])
        width = max(len(row) for row in rows)
        ids = torch.full((len(rows), width), self.eos_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for index, row in enumerate(rows):
            ids[index, : len(row)] = torch.tensor(row)
            mask[index, : len(row)] = 1
        return EncodedNotes(ids, mask)


def set_dropout(model: nn.Module, probability: float) -> None:
    """Every dropout layer of ``model`` at ``probability`` (the regularized fine-tuning's)."""
    if not 0 <= probability < 1:
        raise ConfigError(f"dropout must lie in [0, 1), got {probability}")
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = probability


def per_note_nll(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each note's mean token negative log-likelihood, in nats (differentiable: the training
    loss is its mean, and DP-SGD clips each note's gradient of it)."""
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    targets = ids[:, 1:]
    weights = mask[:, 1:].to(logits.dtype)
    token_nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    return (token_nll * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


@torch.no_grad()
def notes_nll(model: nn.Module, notes: EncodedNotes, *, batch_size: int = 64) -> np.ndarray:
    """:func:`per_note_nll` of every note, in evaluation mode, as a float array."""
    was_training = model.training
    model.eval()
    try:
        parts = [
            per_note_nll(
                model, notes.ids[start : start + batch_size], notes.mask[start : start + batch_size]
            )
            for start in range(0, len(notes), batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(parts).double().numpy()
