"""The chest X-ray report model: an open_clip vision tower projected into a T5 encoder-decoder.

The vision transformer turns a film into patch tokens; a linear projection maps them to T5's
width and they enter T5's encoder as its input embeddings, so the decoder attends to the image
the way it would attend to a sentence. Both parts are built from configs (nothing is
downloaded): by default a small ViT and a small T5 that train on two CPU cores; the same class
takes bigger configs (a BiomedCLIP-sized ViT, ``t5-base``) when weights are loaded from a local
path by the checkpoint code.

The vision tower is built with open_clip's own builder (``_build_vision_tower``, the function
its ``CLIP`` class uses), pinned with open_clip_torch 3.3.0, so no text tower is made for
nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from open_clip.model import CLIPVisionCfg, _build_vision_tower
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration

from securemed.errors import ConfigError
from securemed.text.tokenizer import EOS_ID, PAD_ID


@dataclass(frozen=True)
class ReportModelConfig:
    """Sizes of both halves; the defaults make a ~1M-parameter model for 64 px films."""

    image_size: int = 64
    patch_size: int = 8
    vision_width: int = 128
    vision_layers: int = 4
    vision_head_width: int = 32
    d_model: int = 128
    d_ff: int = 256
    encoder_layers: int = 2
    decoder_layers: int = 2
    heads: int = 4
    vocab_size: int = 1000
    max_report_tokens: int = 96

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ConfigError(
                f"image_size {self.image_size} must be a multiple of patch_size {self.patch_size}"
            )
        if self.vision_width % self.vision_head_width or self.d_model % self.heads:
            raise ConfigError("widths must divide evenly into attention heads")
        if self.vocab_size < 3:
            raise ConfigError("the vocabulary must hold at least the three special tokens")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ReportGenerator(nn.Module):
    """Images (B, 1 or 3, S, S) in [0, 1] -> report token ids."""

    def __init__(self, config: ReportModelConfig) -> None:
        super().__init__()
        self.config = config
        self.vision = _build_vision_tower(
            embed_dim=config.vision_width,
            vision_cfg=CLIPVisionCfg(
                layers=config.vision_layers,
                width=config.vision_width,
                head_width=config.vision_head_width,
                patch_size=config.patch_size,
                image_size=config.image_size,
                output_tokens=True,
            ),
        )
        self.projection = nn.Linear(config.vision_width, config.d_model)
        self.text = T5ForConditionalGeneration(
            T5Config(  # type: ignore[call-arg]  # T5Config takes PretrainedConfig's kwargs
                vocab_size=config.vocab_size,
                d_model=config.d_model,
                d_kv=config.d_model // config.heads,
                d_ff=config.d_ff,
                num_layers=config.encoder_layers,
                num_decoder_layers=config.decoder_layers,
                num_heads=config.heads,
                pad_token_id=PAD_ID,
                eos_token_id=EOS_ID,
                decoder_start_token_id=PAD_ID,
            )
        )

    def image_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """(B, patches + 1, d_model): the pooled token and the patch tokens, projected."""
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"images must be (B, 1 or 3, S, S), got {list(images.shape)}")
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        pooled, tokens = self.vision(images)
        return self.projection(torch.cat([pooled.unsqueeze(1), tokens], dim=1))

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean token cross-entropy of the reports ``labels`` (B, T), padded with ``PAD_ID``."""
        return self.per_example_loss(images, labels).mean()

    def per_example_loss(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(B,) mean token loss per report: what DP clipping and the attacks work on."""
        targets = labels.masked_fill(labels == PAD_ID, -100)
        logits = self.text(inputs_embeds=self.image_embeddings(images), labels=targets).logits
        token_loss = nn.functional.cross_entropy(
            logits.transpose(1, 2), targets, ignore_index=-100, reduction="none"
        )
        counts = (targets != -100).sum(dim=1).clamp_min(1)
        return token_loss.sum(dim=1) / counts

    @torch.no_grad()
    def generate(
        self, images: torch.Tensor, *, num_beams: int = 1, max_new_tokens: int | None = None
    ) -> torch.Tensor:
        """Token ids of the generated reports: greedy (``num_beams=1``) or beam search."""
        if num_beams < 1:
            raise ValueError(f"num_beams must be at least 1, got {num_beams}")
        output = self.text.generate(  # type: ignore[misc]  # transformers' mixin typing
            inputs_embeds=self.image_embeddings(images),
            num_beams=num_beams,
            do_sample=False,
            max_new_tokens=max_new_tokens or self.config.max_report_tokens,
        )
        return output[:, 1:]  # drop the decoder start token
