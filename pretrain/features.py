"""Frozen feature extractors: the input of linear eval, kNN and the flatness analysis.

A :class:`FeatureExtractor` takes RGB on the 0-255 scale and normalises it itself with the statistics its
encoder was trained with, so callers never have to know the method. Built here from a live model
(:func:`model_extractor`, the kNN monitor) or as the random-init baseline (:func:`random_extractor`); checkpoint
files are read by the converter (``mixbench.evaluate.load_feature_extractor``), which knows every layout.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn as nn

from mixbench.base import color
from mixbench.pretrain.backbones import build_backbone

__all__ = ["FeatureExtractor", "model_extractor", "random_extractor"]


class FeatureExtractor(nn.Module):
    """Frozen encoder(s) mapping RGB (0-255) to pooled features; always in eval mode, no gradients.

    Args:
        encoders: one backbone (MoCo, torchvision, random) or two (CMC: L then ab), ``fc = Identity``.
        pixel_mean, pixel_std: per-channel statistics (0-255) of the encoder input: RGB for one encoder,
            YCbCr for CMC (the input is converted with ``mixbench.base.color.rgb_to_ycbcr`` first).
        views: for CMC, the YCbCr channels each encoder sees (``[[0], [1, 2]]``); ``None`` for RGB models.
        info: plain-data description (method, arch, source file, ...) carried into reports.

    Shape: (N, 3, H, W) RGB in [0, 255] -> (N, feature_dim).
    """

    def __init__(
        self,
        encoders: list[nn.Module],
        pixel_mean: list[float],
        pixel_std: list[float],
        views: list[list[int]] | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if views is not None and len(views) != len(encoders):
            raise ValueError(f"{len(encoders)} encoders but {len(views)} views")
        self.encoders = nn.ModuleList(encoders)
        self.views = views
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(1, 3, 1, 1))
        self.info = dict(info or {})
        self.feature_dim = sum(int(e.feature_dim) for e in encoders)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FeatureExtractor:
        # Frozen means frozen: BN running statistics must not move when a wrapper calls .train().
        return super().train(False)

    @torch.no_grad()
    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        x = rgb.float()
        if self.views is not None:
            x = color.rgb_to_ycbcr(x)
        x = (x - self.pixel_mean) / self.pixel_std
        if self.views is None:
            return self.encoders[0](x)
        return torch.cat([enc(x[:, v]) for enc, v in zip(self.encoders, self.views)], dim=1)


def random_extractor(arch: str, seed: int = 0) -> FeatureExtractor:
    """torchvision's random init of ``arch`` (seeded), ImageNet pixel statistics: the random-init baseline."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        enc = build_backbone(arch)
    enc.fc = nn.Identity()
    return FeatureExtractor(
        [enc], list(color.IMAGENET_MEAN), list(color.IMAGENET_STD),
        info={"source": f"random:{arch}", "method": "random", "arch": arch},
    )


def model_extractor(model: nn.Module) -> FeatureExtractor:
    """Frozen copy of a live MoCo / CMC model's transferable encoder(s), e.g. for the kNN monitor.

    MoCo: ``encoder_q`` without its head; CMC: ``encoder_l`` fed Y and ``encoder_ab`` fed CbCr, concatenated
    (2 x 1024 = 2048 for the half-width ResNet-50s). The copy leaves the training model untouched (its mode,
    gradients and BN statistics). Files go through ``mixbench.evaluate.load_feature_extractor`` instead.
    """
    meta = model.mixbench_meta() if hasattr(model, "mixbench_meta") else None
    info = {"source": type(model).__name__, "method": meta and meta.method, "arch": meta and meta.arch}

    def frozen(enc: nn.Module) -> nn.Module:
        enc = copy.deepcopy(enc)
        enc.fc = nn.Identity()
        return enc

    if hasattr(model, "encoder_l") and hasattr(model, "encoder_ab"):
        col = (meta and meta.color) or color.color_meta()
        views = col.get("views", color.color_meta()["views"])
        return FeatureExtractor(
            [frozen(model.encoder_l), frozen(model.encoder_ab)],
            [float(v) for v in col.get("mean", color.YCBCR_MEAN)],
            [float(v) for v in col.get("std", color.YCBCR_STD)],
            views=[list(views["l"]), list(views["ab"])],
            info=info,
        )
    if hasattr(model, "encoder_q"):
        return FeatureExtractor(
            [frozen(model.encoder_q)],
            [float(v) for v in (meta and meta.pixel_mean) or color.IMAGENET_MEAN],
            [float(v) for v in (meta and meta.pixel_std) or color.IMAGENET_STD],
            info=info,
        )
    raise TypeError(f"{type(model).__name__}: neither MoCo (encoder_q) nor CMC (encoder_l, encoder_ab)")
