"""The chest X-ray report model: an open_clip vision tower projected into a T5 encoder-decoder.

The vision tower turns a film into a grid of feature vectors (open_clip's
``forward_intermediates``, which every tower it builds has: ResNet, ViT, timm); their mean and
the grid cells, projected to T5's width, enter T5's encoder as its input embeddings, so the
decoder attends to regions of the film the way it would attend to words.

Defaults train on two CPU cores: open_clip's ModifiedResNet (the CLIP RN50 design) at width 16
with one block per stage, and a 2+2-layer T5 at width 128. A convolutional tower is the default
because it forms image features within a few hundred steps on 64 px films, where a ViT trained
from scratch still wrote the same report for every film after two epochs (measured). Batch norm
is replaced by group norm, so the same architecture trains with and without DP-SGD (per-sample
gradients are undefined under batch norm) and a DP run can start from a standard checkpoint.

A *finding head* on the pooled features predicts the five findings. Training adds its loss to
the report loss (the labels are read from each training report by the labeler, so real data
needs nothing extra); it is what makes the tower learn to see early, and it gives DeepFool a
classifier margin to attack.

Bigger towers come from configs too: ``open_clip_vision`` takes an open_clip vision config as
found in ``open_clip_config.json`` (BiomedCLIP's timm ViT-B/16, for instance) and ``t5`` a full
T5 config (``t5-base``'s), which :mod:`securemed.models.pretrained` fills from local folders.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from open_clip.model import CLIPVisionCfg, _build_vision_tower
from open_clip.modified_resnet import Bottleneck
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration

from securemed.data.synthetic import FINDINGS
from securemed.errors import ConfigError
from securemed.models.factory import group_norm, no_inplace_relu
from securemed.text.tokenizer import EOS_ID, PAD_ID


@dataclass(frozen=True)
class ReportModelConfig:
    """Sizes of both halves; the defaults make a ~1.5M-parameter model for 64 px films."""

    image_size: int = 64
    vision: Literal["resnet", "vit"] = "resnet"
    #: ResNet: stem width (features come out 32 times wider); ViT: token width
    vision_width: int = 16
    #: ResNet: blocks in each of the four stages; ViT: one number, the depth
    vision_layers: tuple[int, ...] = (1, 1, 1, 1)
    patch_size: int = 8  # ViT only
    vision_head_width: int = 32  # ViT only
    d_model: int = 128
    d_ff: int = 256
    encoder_layers: int = 2
    decoder_layers: int = 2
    heads: int = 4
    vocab_size: int = 1000
    max_report_tokens: int = 96
    num_findings: int = len(FINDINGS)
    #: an open_clip vision config (``open_clip_config.json``'s ``vision_cfg``); overrides the above
    open_clip_vision: dict[str, Any] | None = field(default=None)
    #: a full T5 config (``config.json`` of a T5 folder); overrides the T5 sizes above
    t5: dict[str, Any] | None = field(default=None)
    #: per-channel normalisation a pretrained tower expects (its ``preprocess_cfg``); none
    #: for towers trained here, which see films in [0, 1]
    image_mean: tuple[float, float, float] | None = None
    image_std: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.vision not in ("resnet", "vit"):
            raise ConfigError(f"vision must be 'resnet' or 'vit', got {self.vision!r}")
        object.__setattr__(self, "vision_layers", tuple(int(n) for n in self.vision_layers))
        if (self.image_mean is None) != (self.image_std is None):
            raise ConfigError("image_mean and image_std come together (a tower's preprocess_cfg)")
        for name in ("image_mean", "image_std"):
            value = getattr(self, name)
            if value is not None:
                if len(value) != 3 or (name == "image_std" and min(value) <= 0):
                    raise ConfigError(f"{name} takes three per-channel values (std above 0)")
                object.__setattr__(self, name, tuple(float(v) for v in value))
        if self.open_clip_vision is None:
            self._check_tower()
        if self.d_model % self.heads:
            raise ConfigError("d_model must divide evenly into attention heads")
        if self.vocab_size < 3:
            raise ConfigError("the vocabulary must hold at least the three special tokens")

    def _check_tower(self) -> None:
        if self.vision == "resnet":
            if len(self.vision_layers) != 4 or self.image_size % 32:
                raise ConfigError(
                    "a ResNet tower needs four stage depths and an image_size that is a "
                    f"multiple of 32, got {list(self.vision_layers)} and {self.image_size}"
                )
            return
        if len(self.vision_layers) != 1:
            raise ConfigError("a ViT tower takes one depth in vision_layers, e.g. [4]")
        if self.image_size % self.patch_size:
            raise ConfigError(
                f"image_size {self.image_size} must be a multiple of patch_size {self.patch_size}"
            )
        if self.vision_width % self.vision_head_width:
            raise ConfigError("vision_width must divide evenly into attention heads")

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["vision_layers"] = list(self.vision_layers)
        for name in ("image_mean", "image_std"):
            if values[name] is not None:
                values[name] = list(values[name])
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ReportModelConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown report model settings: {', '.join(unknown)}")
        return cls(**values)

    def t5_config(self) -> T5Config:
        if self.t5 is not None:
            config = T5Config.from_dict(self.t5)
            if config.vocab_size != self.vocab_size:
                raise ConfigError(
                    f"the T5 config has {config.vocab_size} tokens, the model "
                    f"{self.vocab_size}: they must match the tokenizer"
                )
            return config
        return T5Config(  # type: ignore[call-arg]  # T5Config takes PretrainedConfig's kwargs
            vocab_size=self.vocab_size,
            d_model=self.d_model,
            d_kv=self.d_model // self.heads,
            d_ff=self.d_ff,
            num_layers=self.encoder_layers,
            num_decoder_layers=self.decoder_layers,
            num_heads=self.heads,
            pad_token_id=PAD_ID,
            eos_token_id=EOS_ID,
            decoder_start_token_id=PAD_ID,
        )

    def vision_config(self) -> CLIPVisionCfg:
        if self.open_clip_vision is not None:
            return CLIPVisionCfg(**self.open_clip_vision)
        if self.vision == "resnet":
            return CLIPVisionCfg(
                layers=self.vision_layers, width=self.vision_width, image_size=self.image_size
            )
        return CLIPVisionCfg(
            layers=self.vision_layers[0],
            width=self.vision_width,
            head_width=self.vision_head_width,
            patch_size=self.patch_size,
            image_size=self.image_size,
        )


class ReportGenerator(nn.Module):
    """Images (B, 1 or 3, S, S) in [0, 1] -> report token ids, and finding logits."""

    def __init__(self, config: ReportModelConfig) -> None:
        super().__init__()
        self.config = config
        self.vision = _build_vision_tower(
            embed_dim=config.d_model, vision_cfg=config.vision_config()
        )
        _drop_pooling_head(self.vision)
        _replace_batch_norm(self.vision)
        _out_of_place(self.vision)
        width = self._feature_width()
        self.projection = nn.Linear(width, config.t5_config().d_model)
        self.finding_head = nn.Linear(width, config.num_findings)
        self.text = T5ForConditionalGeneration(config.t5_config())

    @torch.no_grad()
    def _feature_width(self) -> int:
        probe = torch.zeros(1, 3, self.config.image_size, self.config.image_size)
        training = self.vision.training
        self.vision.eval()
        width = int(self._grid(probe).shape[-1])
        self.vision.train(training)
        return width

    def _grid(self, images: torch.Tensor) -> torch.Tensor:
        """(B, cells, C): the tower's last feature map, cell by cell."""
        out = self.vision.forward_intermediates(
            images, indices=1, intermediates_only=True, normalize_intermediates=True
        )
        grid = out["image_intermediates"][-1]
        return grid.flatten(2).transpose(1, 2)

    def features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pooled features (B, C) and the encoder inputs (B, 1 + cells, d_model)."""
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"images must be (B, 1 or 3, S, S), got {list(images.shape)}")
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        if self.config.image_mean is not None and self.config.image_std is not None:
            mean = images.new_tensor(self.config.image_mean).view(1, 3, 1, 1)
            std = images.new_tensor(self.config.image_std).view(1, 3, 1, 1)
            images = (images - mean) / std
        grid = self._grid(images)
        pooled = grid.mean(dim=1)
        return pooled, self.projection(torch.cat([pooled.unsqueeze(1), grid], dim=1))

    def finding_logits(self, images: torch.Tensor) -> torch.Tensor:
        """(B, num_findings) logits of the finding head."""
        return self.finding_head(self.features(images)[0])

    def forward(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        findings: torch.Tensor | None = None,
        *,
        finding_weight: float = 1.0,
    ) -> torch.Tensor:
        """Mean loss of the reports ``labels`` (B, T), padded with ``PAD_ID``: what is trained
        (through ``forward`` so DDP and Opacus see the whole computation)."""
        return self.per_example_loss(images, labels, findings, finding_weight=finding_weight).mean()

    def per_example_loss(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        findings: torch.Tensor | None = None,
        *,
        finding_weight: float = 1.0,
    ) -> torch.Tensor:
        """(B,) mean token loss per report, plus the finding head's loss when ``findings`` given.

        Per example, because DP clipping and the attacks work example by example.
        """
        pooled, embeddings = self.features(images)
        targets = labels.masked_fill(labels == PAD_ID, -100)
        logits = self.text(inputs_embeds=embeddings, labels=targets).logits
        token_loss = nn.functional.cross_entropy(
            logits.transpose(1, 2), targets, ignore_index=-100, reduction="none"
        )
        counts = (targets != -100).sum(dim=1).clamp_min(1)
        loss = token_loss.sum(dim=1) / counts
        if findings is not None:
            head = nn.functional.binary_cross_entropy_with_logits(
                self.finding_head(pooled), findings.to(pooled.dtype), reduction="none"
            )
            loss = loss + finding_weight * head.mean(dim=1)
        return loss

    @torch.no_grad()
    def generate(
        self, images: torch.Tensor, *, num_beams: int = 1, max_new_tokens: int | None = None
    ) -> torch.Tensor:
        """Token ids of the generated reports: greedy (``num_beams=1``) or beam search."""
        return self.generate_scored(
            images, num_beams=num_beams, max_new_tokens=max_new_tokens
        ).token_ids

    @torch.no_grad()
    def generate_scored(
        self, images: torch.Tensor, *, num_beams: int = 1, max_new_tokens: int | None = None
    ) -> ScoredReports:
        """Generated token ids with the log-probability the model gave each chosen token.

        The scores are what a serving validator needs to tell a confident report from one the
        model was unsure of; they come from the same decoding pass, at no extra forward.
        """
        if num_beams < 1:
            raise ValueError(f"num_beams must be at least 1, got {num_beams}")
        # transformers types generate()'s result as a union that includes a bare tensor
        output: Any = self.text.generate(  # type: ignore[misc]  # transformers' mixin typing
            inputs_embeds=self.features(images)[1],
            num_beams=num_beams,
            do_sample=False,
            max_new_tokens=max_new_tokens or self.config.max_report_tokens,
            output_scores=True,
            return_dict_in_generate=True,
        )
        # greedy scores are raw logits (normalised here); beam scores are log-probabilities
        logprobs = self.text.compute_transition_scores(  # type: ignore[misc]  # mixin typing
            output.sequences,
            output.scores,
            getattr(output, "beam_indices", None),
            normalize_logits=num_beams == 1,
        )
        token_ids = output.sequences[:, 1:].contiguous()  # drop the decoder start token
        return ScoredReports(token_ids, logprobs, _up_to_eos(token_ids))


@dataclass(frozen=True)
class ScoredReports:
    """Generated reports as token ids (B, T), each chosen token's log-probability (B, T), and
    which positions belong to the report (up to and including its EOS; padding after it not)."""

    token_ids: torch.Tensor
    token_logprobs: torch.Tensor
    mask: torch.Tensor

    def mean_logprob(self) -> torch.Tensor:
        """(B,) mean log-probability per generated token: the model's confidence in a report."""
        counts = self.mask.sum(dim=1).clamp(min=1)
        return (self.token_logprobs * self.mask).sum(dim=1) / counts

    def min_prob(self) -> torch.Tensor:
        """(B,) probability of each report's least likely token: one doubtful word shows here."""
        masked = self.token_logprobs.masked_fill(~self.mask, 0.0)
        return masked.min(dim=1).values.exp()


def _up_to_eos(token_ids: torch.Tensor) -> torch.Tensor:
    """True at every position up to and including the first EOS of each row."""
    is_eos = token_ids == EOS_ID
    after_eos = (is_eos.cumsum(dim=1) - is_eos.int()) > 0
    return ~after_eos


def _drop_pooling_head(tower: nn.Module) -> None:
    """Remove the tower's pooling/projection head: features come from the grid, the head
    would hold parameters that never get a gradient (which DDP and Opacus both refuse)."""
    if getattr(tower, "attnpool", None) is not None:  # open_clip ModifiedResNet
        setattr(tower, "attnpool", None)  # noqa: B010  # an attribute nn.Module's typing lacks
    if isinstance(getattr(tower, "proj", None), nn.Parameter):  # open_clip VisionTransformer
        setattr(tower, "proj", None)  # noqa: B010
    if isinstance(getattr(tower, "head", None), nn.Module):  # open_clip TimmModel
        tower.head = nn.Identity()


class _OutOfPlaceBottleneck(Bottleneck):
    """open_clip's Bottleneck with the residual sum out of place (``+`` instead of ``+=``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.avgpool(self.act2(self.bn2(self.conv2(out))))
        identity = x if self.downsample is None else self.downsample(x)
        return self.act3(self.bn3(self.conv3(out)) + identity)


def _out_of_place(tower: nn.Module) -> None:
    """No in-place ops on layer outputs: Opacus's backward hooks refuse them."""
    no_inplace_relu(tower)
    for block in tower.modules():
        if type(block) is Bottleneck:
            block.__class__ = _OutOfPlaceBottleneck


def _replace_batch_norm(module: nn.Module) -> None:
    """Group norm for every batch norm: per-example gradients exist, batches don't mix."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, group_norm(child.num_features, max_groups=8))
        else:
            _replace_batch_norm(child)
