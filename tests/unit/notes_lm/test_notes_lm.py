"""The notes LM: built from a config, saved and loaded from a folder, NLL per note, and the
three fine-tuning recipes on a few notes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from securemed.config import DPSGDConfig
from securemed.errors import ConfigError
from securemed.notes_lm.model import NotesLM, NotesLMConfig, notes_nll, set_dropout
from securemed.notes_lm.training import FineTuneRecipe, fine_tune
from securemed.phi.corpus import generate_phi_notes

TINY = NotesLMConfig(
    vocab_size=400, hidden_size=32, layers=1, heads=2, intermediate_size=64, max_length=96
)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [note.text for note in generate_phi_notes(60, seed=0)]


@pytest.fixture(scope="module")
def lm(texts: list[str]) -> NotesLM:
    torch.manual_seed(0)
    return NotesLM.build(TINY, texts)


def test_notes_are_framed_by_end_of_text_and_padded_with_a_mask(lm: NotesLM) -> None:
    encoded = lm.encode(["short note", "a somewhat longer note than the first one"])
    first = encoded.ids[0][encoded.mask[0].bool()].tolist()
    assert first[0] == first[-1] == lm.eos_id
    assert lm.tokenizer.decode(first[1:-1]) == "short note"
    assert encoded.mask[0].sum() < encoded.mask[1].sum() == encoded.ids.shape[1]


def test_long_notes_are_truncated_to_max_length(lm: NotesLM) -> None:
    assert lm.encode(["word " * 500]).ids.shape == (1, TINY.max_length)


def test_a_saved_model_loads_back_from_its_folder_with_the_same_nll(
    lm: NotesLM, texts, tmp_path
) -> None:
    lm.save(tmp_path)
    loaded = NotesLM.load(tmp_path)
    encoded, again = lm.encode(texts[:5]), loaded.encode(texts[:5])
    assert torch.equal(encoded.ids, again.ids)
    assert np.allclose(notes_nll(lm.model, encoded), notes_nll(loaded.model, again), atol=1e-5)


def test_a_folder_without_a_model_or_tokenizer_is_refused_clearly(lm: NotesLM, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"no config\.json"):
        NotesLM.load(tmp_path)
    lm.model.save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match=r"tokenizer\.json"):
        NotesLM.load(tmp_path)


def test_an_untrained_model_is_near_uniform_over_its_vocabulary(lm: NotesLM, texts) -> None:
    nll = notes_nll(lm.model, lm.encode(texts[:8]))
    assert np.all(np.abs(nll - math.log(lm.tokenizer.get_vocab_size())) < 0.5)


def test_bad_sizes_and_dropout_are_refused() -> None:
    with pytest.raises(ConfigError, match="multiple of heads"):
        NotesLMConfig(hidden_size=30, heads=4)
    with pytest.raises(ConfigError, match="dropout"):
        set_dropout(torch.nn.Dropout(), 1.0)


def _recipe(name: str, **extra) -> FineTuneRecipe:
    settings = {"epochs": 6, "learning_rate": 5e-3, "batch_size": 8} | extra
    return FineTuneRecipe(name, **settings)


def test_baseline_fine_tuning_fits_its_notes_better_than_unseen_ones(lm: NotesLM, texts) -> None:
    train, unseen = lm.encode(texts[:20]), lm.encode(texts[20:40])
    result = fine_tune(lm.model, train, unseen, _recipe("baseline", epochs=12), seed=0)
    model = type(lm.model)(lm.model.config)
    model.load_state_dict(result.state)
    assert notes_nll(model, train).mean() < notes_nll(model, unseen).mean() - 0.2
    assert result.epsilon is None and result.epochs_run == 12
    # the model passed in is left as it was
    assert not torch.equal(lm.model.state_dict()["lm_head.weight"], result.state["lm_head.weight"])


def test_early_stopping_keeps_the_best_epoch(lm: NotesLM, texts) -> None:
    seen: list[float] = []
    recipe = _recipe(
        "regularized", epochs=30, learning_rate=2e-2, weight_decay=0.1, dropout=0.1, patience=1
    )
    result = fine_tune(
        lm.model, lm.encode(texts[:10]), lm.encode(texts[40:50]), recipe, seed=0,
        progress=lambda epoch, epochs, nll: seen.append(nll),
    )  # fmt: skip
    assert result.epochs_run < 30, "ten notes at a high learning rate overfit well before 30 epochs"
    assert result.validation_nll == min(seen) == seen[result.best_epoch - 1]
    assert result.epochs_run == result.best_epoch + 1


def test_dp_fine_tuning_reports_the_accountants_epsilon(lm: NotesLM, texts) -> None:
    privacy = DPSGDConfig(target_epsilon=2.0, delta=1e-5, max_grad_norm=1.0)
    result = fine_tune(
        lm.model, lm.encode(texts[:32]), lm.encode(texts[40:50]),
        _recipe("dp", epochs=2, batch_size=8, privacy=privacy), seed=0,
    )  # fmt: skip
    assert result.epsilon is not None and 1.5 < result.epsilon <= 2.0
    assert result.noise_multiplier is not None and result.noise_multiplier > 0.5


def test_bad_recipes_are_refused() -> None:
    with pytest.raises(ConfigError, match="patience"):
        _recipe("x", patience=0)
    with pytest.raises(ConfigError, match="privacy=None"):
        _recipe("x", privacy=DPSGDConfig(enabled=False))
