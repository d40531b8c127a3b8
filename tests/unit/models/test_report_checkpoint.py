"""The report checkpoint: a faithful round trip, and every way a bad checkpoint is refused."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from securemed.data.reports import ReportWriter
from securemed.data.synthetic import SyntheticChestXRays
from securemed.errors import CheckpointError, ConfigError
from securemed.models import report_checkpoint
from securemed.models.report_checkpoint import (
    CHECKPOINT_FILES,
    MANIFEST_FILE,
    LoadedReportModel,
    TrainingFacts,
    load_report_checkpoint,
    save_report_checkpoint,
)
from securemed.models.report_generator import ReportGenerator, ReportModelConfig
from securemed.text import ReportTokenizer

SMALL = ReportModelConfig(
    image_size=32, vision_width=8, d_model=32, d_ff=64, encoder_layers=1, decoder_layers=1,
    heads=2, vocab_size=400, max_report_tokens=20,
)  # fmt: skip
TIED = (
    "text.shared.weight",
    "text.encoder.embed_tokens.weight",
    "text.decoder.embed_tokens.weight",
    "text.lm_head.weight",
)
FACTS = TrainingFacts(
    modes=("dp", "adversarial"),
    epsilon=3.0,
    delta=1e-5,
    accountant="rdp",
    noise_multiplier=1.1,
    max_grad_norm=1.0,
    sample_rate=0.004,
    dp_parameters=("text.lm_head.weight",),
    frozen_parameters=("vision.conv1.weight",),
    steps=120,
    epochs=2,
    train_examples=600,
    data={"source": "synthetic", "seed": 0, "train": 600, "validation": 100},
    adversarial={"attack": "pgd", "epsilon": 0.03},
    created_at="2025-01-01T00:00:00+00:00",
)


@pytest.fixture(scope="module")
def tokenizer() -> ReportTokenizer:
    writer = ReportWriter(SyntheticChestXRays(image_size=32, seed=0))
    return ReportTokenizer.train([r.text for r in writer.reports(range(300))], vocab_size=400)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.from_numpy(SyntheticChestXRays(image_size=32, seed=0).images(np.arange(3)))


@pytest.fixture
def model() -> ReportGenerator:
    torch.manual_seed(0)
    model = ReportGenerator(SMALL)
    with torch.no_grad():  # weights no fresh model has, so loading them is visible
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model.eval()


@pytest.fixture
def saved(tmp_path, model, tokenizer) -> tuple[Path, str]:
    directory = tmp_path / "checkpoint"
    return directory, save_report_checkpoint(directory, model, tokenizer, FACTS)


def _rewrite(directory: Path, name: str, data: bytes) -> None:
    """Replace a file and update the manifest to match, as a writer (or attacker) could."""
    (directory / name).write_bytes(data)
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    manifest["files"][name] = hashlib.sha256(data).hexdigest()
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest))


def _edit_json(directory: Path, name: str, **changes) -> None:
    values = json.loads((directory / name).read_text())
    _rewrite(directory, name, json.dumps({**values, **changes}).encode())


def test_a_loaded_checkpoint_generates_exactly_what_the_saved_model_did(
    saved, model, tokenizer, images
) -> None:
    directory, digest = saved
    loaded = load_report_checkpoint(directory)
    assert isinstance(loaded, LoadedReportModel)
    assert not loaded.model.training
    assert (
        loaded.digest
        == digest
        == hashlib.sha256((directory / MANIFEST_FILE).read_bytes()).hexdigest()
    )
    assert loaded.config == SMALL
    assert loaded.facts == FACTS
    assert loaded.tokenizer.to_json() == tokenizer.to_json()
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], tensor), name
    for beams in (1, 3):
        assert torch.equal(
            loaded.model.generate(images, num_beams=beams, max_new_tokens=8),
            model.generate(images, num_beams=beams, max_new_tokens=8),
        )


def test_tied_embeddings_are_stored_once_and_tied_again_on_load(saved) -> None:
    directory, _ = saved
    stored = safetensors.torch.load_file(directory / "model.safetensors")
    assert [name for name in TIED if name in stored] == [TIED[0]]
    model = load_report_checkpoint(directory).model
    pointers = {model.state_dict()[name].data_ptr() for name in TIED}
    assert len(pointers) == 1


def test_the_manifest_records_hashes_and_library_versions(saved) -> None:
    directory, _ = saved
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    assert manifest["format"] == "securemed-report-checkpoint" and manifest["version"] == 1
    assert set(manifest["files"]) == set(CHECKPOINT_FILES)
    for name, sha in manifest["files"].items():
        assert hashlib.sha256((directory / name).read_bytes()).hexdigest() == sha
    assert set(manifest["software"]) == {"torch", "transformers", "open_clip"}
    assert manifest["software"]["torch"] == torch.__version__


def test_the_pinned_digest_is_accepted_and_any_other_refused(saved) -> None:
    directory, digest = saved
    assert load_report_checkpoint(directory, expected_digest=digest).digest == digest
    with pytest.raises(CheckpointError, match=r"manifest\.json has digest .* not the pinned"):
        load_report_checkpoint(directory, expected_digest="0" * 64)


def test_a_consistently_rewritten_checkpoint_passes_the_manifest_but_not_the_pin(saved) -> None:
    directory, digest = saved
    poisoned = safetensors.torch.load_file(directory / "model.safetensors")
    poisoned["finding_head.bias"] += 5.0
    _rewrite(directory, "model.safetensors", safetensors.torch.save(poisoned))
    assert load_report_checkpoint(directory).digest != digest  # the manifest alone is fooled
    with pytest.raises(CheckpointError, match="not the pinned"):
        load_report_checkpoint(directory, expected_digest=digest)


@pytest.mark.parametrize("name", CHECKPOINT_FILES)
def test_a_file_changed_after_saving_is_refused_as_tampered(saved, name: str) -> None:
    directory, _ = saved
    data = bytearray((directory / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (directory / name).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=rf"{name} does not match the sha256.*tampered"):
        load_report_checkpoint(directory)


@pytest.mark.parametrize("name", [*CHECKPOINT_FILES, MANIFEST_FILE])
def test_a_missing_file_is_named(saved, name: str) -> None:
    directory, _ = saved
    (directory / name).unlink()
    with pytest.raises(CheckpointError, match=rf"{name} is missing.*copy the whole directory"):
        load_report_checkpoint(directory)


def test_a_missing_directory_is_refused(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="nowhere does not exist"):
        load_report_checkpoint(tmp_path / "nowhere")


def test_extra_files_in_the_directory_are_ignored(saved) -> None:
    directory, digest = saved
    (directory / "README.txt").write_text("notes")
    assert load_report_checkpoint(directory, expected_digest=digest).digest == digest


def test_a_manifest_of_another_format_is_refused(saved) -> None:
    directory, _ = saved
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    (directory / MANIFEST_FILE).write_text(json.dumps({**manifest, "format": "other"}))
    with pytest.raises(CheckpointError, match="describes a 'other' checkpoint"):
        load_report_checkpoint(directory)


def test_a_manifest_of_a_newer_version_asks_for_an_upgrade(saved) -> None:
    directory, _ = saved
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    (directory / MANIFEST_FILE).write_text(json.dumps({**manifest, "version": 2}))
    with pytest.raises(CheckpointError, match=r"format version 2.*upgrade SecureMed"):
        load_report_checkpoint(directory)


def test_a_tokenizer_larger_than_the_vocabulary_is_refused(saved) -> None:
    directory, _ = saved
    _edit_json(directory, "model_config.json", vocab_size=300)
    with pytest.raises(CheckpointError, match=r"tokenizer\.json has 400 tokens.* only 300"):
        load_report_checkpoint(directory)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("finding_head.bias"), r"missing finding_head\.bias"),
        (lambda s: s.update(extra=torch.zeros(1)), "unexpected extra"),
        (
            lambda s: s.update({"projection.bias": torch.zeros(7)}),
            r"wrong shapes projection\.bias \[7\]",
        ),
    ],
    ids=["missing", "unexpected", "shape"],
)
def test_weights_that_do_not_fit_the_model_are_refused(saved, edit, message) -> None:
    directory, _ = saved
    state = safetensors.torch.load_file(directory / "model.safetensors")
    edit(state)
    _rewrite(directory, "model.safetensors", safetensors.torch.save(state))
    with pytest.raises(CheckpointError, match=rf"model\.safetensors does not fit.*{message}"):
        load_report_checkpoint(directory)


def test_a_config_of_another_architecture_is_refused(saved) -> None:
    directory, _ = saved
    _edit_json(directory, "model_config.json", d_ff=128)
    with pytest.raises(CheckpointError, match=r"wrong shapes .*DenseReluDense"):
        load_report_checkpoint(directory)


def test_tied_weights_stored_twice_with_different_values_are_refused(saved) -> None:
    directory, _ = saved
    state = safetensors.torch.load_file(directory / "model.safetensors")
    state[TIED[3]] = state[TIED[0]] + 1.0
    _rewrite(directory, "model.safetensors", safetensors.torch.save(state))
    with pytest.raises(CheckpointError, match=r"tied weights .* different values"):
        load_report_checkpoint(directory)


def test_unreadable_training_facts_name_their_file(saved) -> None:
    directory, _ = saved
    _edit_json(directory, "training.json", surprise=1)
    with pytest.raises(CheckpointError, match=r"training\.json cannot be read"):
        load_report_checkpoint(directory)


def test_saving_again_replaces_the_checkpoint_and_leaves_no_temporary_files(
    saved, model, tokenizer
) -> None:
    directory, first = saved
    second = save_report_checkpoint(directory, model, tokenizer, replace(FACTS, steps=121))
    assert second != first
    assert load_report_checkpoint(directory).facts.steps == 121
    assert [p.name for p in directory.parent.iterdir()] == [directory.name]


def test_a_failed_save_leaves_the_old_checkpoint_intact(
    saved, model, tokenizer, monkeypatch
) -> None:
    directory, digest = saved

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(report_checkpoint, "_write_text", broken)
    with pytest.raises(OSError, match="disk full"):
        save_report_checkpoint(directory, model, tokenizer, replace(FACTS, steps=121))
    assert load_report_checkpoint(directory, expected_digest=digest).facts == FACTS
    assert [p.name for p in directory.parent.iterdir()] == [directory.name]


def test_a_directory_that_is_not_a_checkpoint_is_never_replaced(tmp_path, model, tokenizer) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="not a checkpoint: choose an empty or new directory"):
        save_report_checkpoint(tmp_path, model, tokenizer, FACTS)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_saving_refuses_a_wrapped_model_and_a_tokenizer_too_large(
    tmp_path, model, tokenizer
) -> None:
    with pytest.raises(ConfigError, match="unwrap"):
        save_report_checkpoint(tmp_path / "a", torch.nn.Sequential(model), tokenizer, FACTS)
    small = ReportGenerator(replace(SMALL, vocab_size=300))
    with pytest.raises(ConfigError, match="400 tokens but the model only 300"):
        save_report_checkpoint(tmp_path / "b", small, tokenizer, FACTS)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_training_facts_round_trip_through_json() -> None:
    assert TrainingFacts.from_dict(json.loads(json.dumps(FACTS.to_dict()))) == FACTS
    standard = TrainingFacts(modes=["standard"], steps=1, epochs=1, train_examples=4, data={})
    assert standard.modes == ("standard",) and standard.created_at  # stamped when made
    assert TrainingFacts.from_dict(standard.to_dict()) == standard


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epsilon": None}, "must state its guarantee .*epsilon"),
        ({"dp_parameters": ()}, "dp_parameters"),
        ({"adversarial": None}, "describe its attack"),
        ({"modes": ()}, "at least one"),
        ({"modes": "dp"}, "list of names"),
        ({"steps": -1}, "cannot be negative"),
    ],
)
def test_training_facts_that_do_not_add_up_are_refused(changes, message) -> None:
    with pytest.raises(ConfigError, match=message):
        replace(FACTS, **changes)
