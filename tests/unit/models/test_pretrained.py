"""Building the report model from local pretrained folders: BiomedCLIP's layout and T5's."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import open_clip
import pytest
import safetensors.torch
import torch
from open_clip.model import CLIPTextCfg
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import T5Config, T5ForConditionalGeneration

from securemed.data.reports import ReportWriter
from securemed.data.synthetic import SyntheticChestXRays
from securemed.errors import CheckpointError, ConfigError
from securemed.models.pretrained import (
    build_report_model,
    load_open_clip_vision,
    load_t5_tokenizer,
    with_open_clip_vision,
)
from securemed.models.report_checkpoint import (
    TrainingFacts,
    load_report_checkpoint,
    save_report_checkpoint,
)
from securemed.models.report_generator import ReportGenerator, ReportModelConfig
from securemed.text import ReportTokenizer
from securemed.text.tokenizer import EOS_ID

BASE = ReportModelConfig(
    image_size=32, vision_width=8, d_model=32, d_ff=64, encoder_layers=1, decoder_layers=1,
    heads=2, vocab_size=400, max_report_tokens=20,
)  # fmt: skip
IMAGE_SIZE = 160  # timm's test_vit: a 64-wide, 6-block ViT-B/16 look-alike
#: as in BiomedCLIP's open_clip_config.json, with a tiny timm ViT in place of ViT-B/16
OPEN_CLIP_CONFIG = {
    "model_cfg": {
        "embed_dim": 16,
        "vision_cfg": {
            "timm_model_name": "test_vit",
            "timm_model_pretrained": False,
            "timm_pool": "",
            "timm_proj": "linear",
            "image_size": IMAGE_SIZE,
        },
        "text_cfg": {
            "hf_model_name": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
            "hf_tokenizer_name": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
            "hf_proj_type": "mlp",
            "hf_pooler_type": "cls_last_hidden_state_pooler",
            "context_length": 256,
        },
    },
    "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954] * 3},
}


@pytest.fixture(scope="module")
def report_texts() -> list[str]:
    writer = ReportWriter(SyntheticChestXRays(image_size=32, seed=0))
    return [r.text for r in writer.reports(range(300))]


@pytest.fixture(scope="module")
def clip_state() -> dict[str, torch.Tensor]:
    """A real open_clip model's weights (vision tower, text tower, head), BiomedCLIP-shaped."""
    torch.manual_seed(1)
    text = CLIPTextCfg(context_length=8, vocab_size=64, width=16, heads=2, layers=1)
    vision = OPEN_CLIP_CONFIG["model_cfg"]["vision_cfg"]
    clip = open_clip.CustomTextCLIP(embed_dim=16, vision_cfg=vision, text_cfg=text)
    return {name: tensor.detach().clone() for name, tensor in clip.state_dict().items()}


def _write_open_clip_folder(folder: Path, state: dict[str, torch.Tensor], weights: str) -> Path:
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps(OPEN_CLIP_CONFIG))
    if weights == "bin":
        torch.save(state, folder / "open_clip_pytorch_model.bin")
    else:
        safetensors.torch.save_file(state, folder / "open_clip_model.safetensors")
    return folder


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory, clip_state) -> Path:
    return _write_open_clip_folder(
        tmp_path_factory.mktemp("clip") / "biomedclip", clip_state, "bin"
    )


def _t5_style_tokenizer(texts: list[str]) -> Tokenizer:
    """A Unigram tokenizer laid out as T5's tokenizer.json: Metaspace, and a post-processor that
    appends ``</s>``."""
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=300,
        special_tokens=["<pad>", "</s>", "<unk>"],
        unk_token="<unk>",
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", EOS_ID)]
    )
    return tokenizer


@pytest.fixture(scope="module")
def t5_folder(tmp_path_factory, report_texts) -> Path:
    folder = tmp_path_factory.mktemp("t5") / "t5-tiny"
    tokenizer = _t5_style_tokenizer(report_texts)
    # like t5-base (32100 tokens, 32128 embedding rows), the embedding is padded past the vocab
    config = T5Config(
        vocab_size=tokenizer.get_vocab_size() + 20, d_model=32, d_kv=16, d_ff=64, num_layers=1,
        num_decoder_layers=1, num_heads=2, pad_token_id=0, eos_token_id=1,
        decoder_start_token_id=0,
    )  # fmt: skip
    torch.manual_seed(2)
    T5ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder


def _films(count: int) -> torch.Tensor:
    films = SyntheticChestXRays(image_size=IMAGE_SIZE, seed=0).images(np.arange(count))
    return torch.from_numpy(films)


@pytest.mark.parametrize("weights", ["bin", "safetensors"])
def test_the_vision_tower_gets_the_open_clip_weights(tmp_path, clip_state, weights) -> None:
    folder = _write_open_clip_folder(tmp_path / "biomedclip", clip_state, weights)
    torch.manual_seed(0)
    model, tokenizer = build_report_model(BASE, vision=folder)
    assert tokenizer is None
    assert model.config.image_size == IMAGE_SIZE
    assert model.config.open_clip_vision == OPEN_CLIP_CONFIG["model_cfg"]["vision_cfg"]
    preprocess = OPEN_CLIP_CONFIG["preprocess_cfg"]
    assert list(model.config.image_mean) == preprocess["mean"]
    assert list(model.config.image_std) == preprocess["std"]
    tower = model.vision.state_dict()
    trunk = {name: t for name, t in clip_state.items() if name.startswith("visual.trunk.")}
    assert len(trunk) == len(tower)
    for name, tensor in trunk.items():
        assert torch.equal(tower[name.removeprefix("visual.")], tensor), name


def test_a_fresh_tower_differs_from_the_saved_one(clip_folder, clip_state) -> None:
    """Guards the test above: equal weights there come from loading, not from a shared seed."""
    torch.manual_seed(0)
    tower = ReportGenerator(with_open_clip_vision(BASE, clip_folder)).vision.state_dict()
    assert not torch.equal(tower["trunk.pos_embed"], clip_state["visual.trunk.pos_embed"])


def test_only_the_dropped_pooling_head_is_skipped(clip_folder) -> None:
    model = ReportGenerator(with_open_clip_vision(BASE, clip_folder))
    assert load_open_clip_vision(model, clip_folder) == ("head.proj.weight",)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("visual.trunk.norm.weight"), r"missing visual\.trunk\.norm\.weight"),
        (
            lambda s: s.update({"visual.trunk.extra": torch.zeros(1)}),
            r"unexpected visual\.trunk\.extra",
        ),
        (
            lambda s: s.update({"visual.trunk.cls_token": torch.zeros(1, 1, 8)}),
            r"wrong shapes visual\.trunk\.cls_token \[1, 1, 8\] \(the model needs \[1, 1, 64\]\)",
        ),
    ],
    ids=["missing", "unexpected", "shape"],
)
def test_vision_weights_that_do_not_fit_are_refused(tmp_path, clip_state, edit, message) -> None:
    state = dict(clip_state)
    edit(state)
    folder = _write_open_clip_folder(tmp_path / "biomedclip", state, "safetensors")
    with pytest.raises(
        CheckpointError, match=rf"open_clip_model\.safetensors does not fit.*{message}"
    ):
        build_report_model(BASE, vision=folder)


def test_an_open_clip_folder_without_weights_or_config_is_refused(tmp_path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(ConfigError, match=r"open_clip_config\.json is missing"):
        build_report_model(BASE, vision=folder)
    (folder / "open_clip_config.json").write_text(json.dumps(OPEN_CLIP_CONFIG))
    with pytest.raises(CheckpointError, match=r"holds neither open_clip_model\.safetensors nor"):
        build_report_model(BASE, vision=folder)


def test_timm_is_never_asked_to_download_the_tower(tmp_path, clip_state) -> None:
    config = json.loads(json.dumps(OPEN_CLIP_CONFIG))
    config["model_cfg"]["vision_cfg"]["timm_model_pretrained"] = True
    folder = _write_open_clip_folder(tmp_path / "biomedclip", clip_state, "safetensors")
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    model, _ = build_report_model(BASE, vision=folder)  # HF_HUB_OFFLINE: a download would fail
    assert model.config.open_clip_vision["timm_model_pretrained"] is False


def test_t5_weights_config_and_tokenizer_come_from_the_folder(t5_folder) -> None:
    model, tokenizer = build_report_model(BASE, text=t5_folder)
    saved = T5ForConditionalGeneration.from_pretrained(t5_folder, local_files_only=True)
    assert model.config.vocab_size == saved.config.vocab_size == model.config.t5["vocab_size"]
    for name, tensor in saved.state_dict().items():
        assert torch.equal(model.text.state_dict()[name], tensor), name
    assert isinstance(tokenizer, ReportTokenizer)
    assert tokenizer.vocab_size < model.config.vocab_size  # padded embedding, as in t5-base
    out = model.eval().generate(torch.rand(2, 1, 32, 32), max_new_tokens=6)
    assert out.shape[0] == 2 and out.shape[1] <= 6
    assert all(isinstance(tokenizer.decode(row.tolist()), str) for row in out)


def test_a_t5_tokenizer_ends_each_report_with_one_end_token(t5_folder, report_texts) -> None:
    tokenizer = load_t5_tokenizer(t5_folder)
    text = report_texts[0]
    ids = tokenizer.encode(text)
    assert ids[-1] == EOS_ID and ids.count(EOS_ID) == 1
    assert len(tokenizer.encode(text, max_length=5)) == 5
    assert tokenizer.decode(ids).split() == text.split()


def test_a_t5_folder_with_other_special_ids_or_a_second_tokenizer_is_refused(
    tmp_path, t5_folder, report_texts
) -> None:
    other = ReportTokenizer.train(report_texts, vocab_size=400)
    with pytest.raises(ConfigError, match="not both"):
        build_report_model(BASE, text=t5_folder, tokenizer=other)
    folder = tmp_path / "t5"
    folder.mkdir()
    config = json.loads((t5_folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "decoder_start_token_id": 1}))
    with pytest.raises(ConfigError, match="decoder_start_token_id=1"):
        build_report_model(BASE, text=folder)
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    with pytest.raises(ConfigError, match="'bert' model, not T5"):
        build_report_model(BASE, text=folder)


def test_a_t5_folder_without_weights_or_tokenizer_is_refused(tmp_path, t5_folder) -> None:
    folder = tmp_path / "t5"
    folder.mkdir()
    (folder / "config.json").write_text((t5_folder / "config.json").read_text())
    with pytest.raises(CheckpointError, match=r"tokenizer\.json is missing"):
        build_report_model(BASE, text=folder)
    (folder / "tokenizer.json").write_text((t5_folder / "tokenizer.json").read_text())
    with pytest.raises(CheckpointError, match="holds no T5 weights"):
        build_report_model(BASE, text=folder)


def test_a_tokenizer_larger_than_the_vocabulary_is_refused(report_texts) -> None:
    tokenizer = ReportTokenizer.train(report_texts, vocab_size=400)
    with pytest.raises(ConfigError, match="raise vocab_size"):
        build_report_model(replace(BASE, vocab_size=300), tokenizer=tokenizer)


def test_a_pretrained_model_survives_the_checkpoint_round_trip(
    tmp_path, clip_folder, t5_folder
) -> None:
    model, tokenizer = build_report_model(BASE, vision=clip_folder, text=t5_folder)
    assert tokenizer is not None
    facts = TrainingFacts(modes=("standard",), steps=0, epochs=0, train_examples=0, data={})
    digest = save_report_checkpoint(tmp_path / "checkpoint", model, tokenizer, facts)
    loaded = load_report_checkpoint(tmp_path / "checkpoint", expected_digest=digest)
    assert loaded.config == model.config
    films = _films(2)
    assert torch.equal(
        loaded.model.generate(films, max_new_tokens=6),
        model.eval().generate(films, max_new_tokens=6),
    )
