"""CMC (Tian et al. 2019) with YCbCr views, as one mmengine model; mixtures come from the preprocessor.

The preprocessor converts RGB to YCbCr with ``mixbench.base.color.rgb_to_ycbcr`` and normalises with CMC's YCbCr
statistics (so the region decay fades context to the mean). The Y channel ("L view") feeds ``encoder_l``, and
CbCr ("ab view") feeds ``encoder_ab``: two half-width ResNet-50 (torchvision key names, every channel halved).
Each view is contrasted with the other view's memory bank: the positive is the bank entry of the same image, K
negatives are bank entries drawn uniformly from the dataset, as in CMC's ``NCEAverage``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.registry import MODELS

from mixbench.base.checkpoint_meta import PretrainMeta
from mixbench.base.color import color_meta
from mixbench.pretrain import preprocessor as _preprocessor  # noqa: F401  (registers MixPreprocessor)
from mixbench.pretrain.backbones import build_backbone, feature_dim, resnet_features
from mixbench.pretrain.contrastive import ContrastiveModel
from mixbench.pretrain.losses import estimate_Z, nce_loss, softmax_ce
from mixbench.pretrain.negatives import init_memory_bank, sample_negatives, update_memory_bank

LOSSES = ("softmax", "nce")


def split_views(ycbcr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CMC's two views of a (normalised) YCbCr batch. Shape: (N, 3, H, W) -> (N, 1, H, W), (N, 2, H, W)."""
    return ycbcr[:, :1], ycbcr[:, 1:]


@MODELS.register_module()
class CMC(ContrastiveModel):
    """Contrastive Multiview Coding, L vs. ab.

    Args:
        n_data: dataset size (rows of each memory bank); ``pretrain.train`` fills it from the dataset.
        arch: 'resnet50' in the paper; ``width`` 0.5 = "ResNet50-half".
        dim: projection dimension (128).
        K: negatives per sample (16384 in the paper on IN-100).
        T: temperature (0.07).
        memory_momentum: bank update ``bank = m bank + (1 - m) f`` (CMC: 0.5).
        loss: 'softmax' (Softmax-CE, the paper's) or 'nce' (eq. 2).
    """

    def __init__(
        self,
        n_data: int,
        arch: str = "resnet50",
        width: float = 0.5,
        dim: int = 128,
        K: int = 16384,
        T: float = 0.07,
        memory_momentum: float = 0.5,
        loss: str = "softmax",
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type="MixPreprocessor", color_space="ycbcr")
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if getattr(self.data_preprocessor, "color_space", None) != "ycbcr":
            raise ValueError("CMC needs data_preprocessor.color_space='ycbcr' (it splits Y from CbCr)")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if not isinstance(n_data, int) or n_data < 2:
            raise ValueError(f"n_data must be the dataset size (int >= 2), got {n_data!r}")
        self.arch, self.width, self.dim, self.K, self.T = arch, width, dim, K, T
        self.n_data, self.memory_momentum, self.loss_type = n_data, memory_momentum, loss

        self.encoder_l = build_backbone(arch, width=width, in_channels=1, num_classes=dim)
        self.encoder_ab = build_backbone(arch, width=width, in_channels=2, num_classes=dim)
        self.register_buffer("memory_l", init_memory_bank(n_data, dim))  # (n_data, dim)
        self.register_buffer("memory_ab", init_memory_bank(n_data, dim))
        # NCE's normalising constants, estimated once from the first batch (CMC); < 0 = not yet set.
        self.register_buffer("Z_l", torch.tensor(-1.0))
        self.register_buffer("Z_ab", torch.tensor(-1.0))

    def extract_feat(self, inputs: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        """Both halves concatenated (linear eval). Shape: (N, 3, H, W) YCbCr -> (N, 2 * feature_dim)."""
        x = self.first_view(inputs)
        lum, ab = split_views(x)
        return torch.cat([resnet_features(self.encoder_l, lum), resnet_features(self.encoder_ab, ab)], dim=1)

    def _bank_logits(self, feat: torch.Tensor, bank: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Logits of each feature against the other view's bank: column 0 its own entry, then K negatives.

        Shape: feat (N, dim), bank (n_data, dim), idx (N, 1 + K) -> (N, 1 + K).
        """
        weight = bank[idx].detach()  # (N, 1+K, dim)
        return torch.bmm(weight, feat.unsqueeze(2)).squeeze(2) / self.T

    def _view_loss(self, logits: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
        if self.loss_type == "softmax":
            return softmax_ce(logits)
        if float(Z) < 0:
            Z.fill_(estimate_Z(logits, self.n_data))
        return nce_loss(logits, float(Z), self.n_data)

    def loss(self, inputs: list[torch.Tensor], data_samples: dict) -> dict[str, torch.Tensor]:
        """Cross-view contrast; ``data_samples['labels']['idx']`` holds each sample's dataset index."""
        x = inputs[0]  # (N, 3, H, W) normalised YCbCr (one crop; both views come from it)
        y = data_samples["labels"]["idx"].to(x.device).long()  # (N,)
        lum, ab = split_views(x)
        feat_l = F.normalize(self.encoder_l(lum), dim=1)  # NxC
        feat_ab = F.normalize(self.encoder_ab(ab), dim=1)  # NxC
        idx = sample_negatives(self.n_data, x.shape[0], self.K, x.device)  # NxK
        idx = torch.cat([y.unsqueeze(1), idx], dim=1)  # Nx(1+K), column 0 = positive
        out_l = self._bank_logits(feat_l, self.memory_ab, idx)  # L against ab memory
        out_ab = self._bank_logits(feat_ab, self.memory_l, idx)  # ab against L memory
        loss_l = self._view_loss(out_l, self.Z_l)
        loss_ab = self._view_loss(out_ab, self.Z_ab)
        update_memory_bank(self.memory_l, y, feat_l, self.memory_momentum)
        update_memory_bank(self.memory_ab, y, feat_ab, self.memory_momentum)
        return {"loss_l": loss_l, "loss_ab": loss_ab}

    def mixbench_meta(self) -> PretrainMeta:
        """What the converter, feature extraction and transfer need (stored as ``meta['mixbench']``)."""
        pre = self.data_preprocessor
        return PretrainMeta(
            method="cmc", arch=self.arch, width=self.width, feature_dim=2 * feature_dim(self.arch, self.width),
            pixel_mean=list(pre.mean_values), pixel_std=list(pre.std_values), color=color_meta(),
            mixture=pre.summary(), settings={"dim": self.dim, "K": self.K, "T": self.T, "loss": self.loss_type},
        )
