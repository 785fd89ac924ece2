"""MoCo v1/v2 (He et al. 2019; Chen et al. 2020) as one mmengine model; mixtures come from the preprocessor.

v1 = linear projection head; v2 = ``mlp=True`` (fc.0 / fc.2, as in the official code) plus blur and cosine lr,
which live in the data pipeline and the schedule. State-dict keys: ``encoder_q.*``, ``encoder_k.*``
(torchvision ResNet names, head at ``fc``), ``queue``, ``queue_ptr``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS

from mixbench.base.checkpoint_meta import PretrainMeta
from mixbench.pretrain.backbones import build_backbone, feature_dim, resnet_features
from mixbench.pretrain.contrastive import ContrastiveModel
from mixbench.pretrain.losses import contrastive_logits, softmax_ce, unmix_soft_ce
from mixbench.pretrain.negatives import batch_shuffle, batch_unshuffle, dequeue_and_enqueue
from mixbench.pretrain.preprocessor import source_weights  # importing it also registers MixPreprocessor


def projection_head(in_dim: int, dim: int, mlp: bool) -> nn.Module:
    """MoCo's head: Linear (v1) or Linear-ReLU-Linear (v2, keys ``fc.0`` and ``fc.2``)."""
    if mlp:
        return nn.Sequential(nn.Linear(in_dim, in_dim), nn.ReLU(inplace=True), nn.Linear(in_dim, dim))
    return nn.Linear(in_dim, dim)


@MODELS.register_module()
class MoCo(ContrastiveModel):
    """Momentum Contrast.

    Args:
        arch: torchvision ResNet name of both encoders.
        dim: feature dimension of the projection (128).
        K: queue size, number of negatives (65536 on IN-1K; 16384 on IN-100 in the paper).
        m: momentum of the key encoder update (0.999 IN-1K; 0.99 IN-100).
        T: softmax temperature (0.07 for v1; 0.2 for v2).
        mlp: v2's MLP head.
        shuffle_bn: shuffle the key batch across processes before the key encoder (no-op on one process).
        unmix: add Un-Mix soft-target terms for mixed queries (needs the preprocessor's ``views='query'``
            and exactly one mixture); off by default, as in the paper.
        data_preprocessor: config of the preprocessor (default ``MixPreprocessor`` without mixture).
    """

    def __init__(
        self,
        arch: str = "resnet50",
        dim: int = 128,
        K: int = 65536,
        m: float = 0.999,
        T: float = 0.07,
        mlp: bool = False,
        shuffle_bn: bool = True,
        unmix: bool = False,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type="MixPreprocessor")
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if not 0.0 <= m < 1.0:
            raise ValueError(f"momentum m must be in [0, 1), got {m}")
        if T <= 0 or K < 1 or dim < 1:
            raise ValueError(f"need T > 0, K >= 1, dim >= 1; got T={T}, K={K}, dim={dim}")
        if unmix and getattr(self.data_preprocessor, "views", "query") != "query":
            raise ValueError("unmix=True needs data_preprocessor.views='query' (keys must stay unmixed)")
        self.arch, self.dim, self.K, self.m, self.T = arch, dim, K, m, T
        self.mlp, self.shuffle_bn, self.unmix = mlp, shuffle_bn, unmix

        self.encoder_q = build_backbone(arch, num_classes=dim)
        self.encoder_q.fc = projection_head(feature_dim(arch), dim, mlp)
        self.encoder_k = copy.deepcopy(self.encoder_q)
        for p in self.encoder_k.parameters():
            p.requires_grad = False  # updated by momentum, not by gradient

        self.register_buffer("queue", F.normalize(torch.randn(dim, K), dim=0))  # (dim, K)
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def _momentum_update_key_encoder(self) -> None:
        """theta_k <- m theta_k + (1 - m) theta_q."""
        for p_q, p_k in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            p_k.mul_(self.m).add_(p_q.detach(), alpha=1.0 - self.m)

    @torch.no_grad()
    def _encode_keys(self, im_k: torch.Tensor) -> torch.Tensor:
        """Keys of the momentum encoder, shuffle-BN across processes. Shape: (N, C, H, W) -> (N, dim)."""
        if self.shuffle_bn:
            im_k, idx_unshuffle = batch_shuffle(im_k)
        k = F.normalize(self.encoder_k(im_k), dim=1)
        if self.shuffle_bn:
            k = batch_unshuffle(k, idx_unshuffle)
        return k

    def extract_feat(self, inputs: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        """Backbone features of the query encoder. Shape: (N, 3, H, W) -> (N, feature_dim)."""
        x = self.first_view(inputs)
        return resnet_features(self.encoder_q, x)

    def loss(self, inputs: list[torch.Tensor], data_samples: dict | None = None) -> dict[str, torch.Tensor]:
        """InfoNCE of queries against their keys and the queue. inputs: [im_q, im_k], each (N, 3, H, W)."""
        im_q, im_k = inputs[0], inputs[1]
        q = F.normalize(self.encoder_q(im_q), dim=1)  # queries: NxC
        self._momentum_update_key_encoder()
        k = self._encode_keys(im_k)  # keys: NxC
        negatives = self.queue.clone().detach()  # CxK
        logits = contrastive_logits(q, k, negatives, self.T)  # Nx(1+K)
        plans = (data_samples or {}).get("mix_plans") or []
        if self.unmix and plans:
            loss = self._unmix_loss(q, k, negatives, plans, im_q.shape[-2:])
        else:
            loss = softmax_ce(logits)
        dequeue_and_enqueue(self.queue, self.queue_ptr, k)
        with torch.no_grad():
            acc = (logits.argmax(1) == 0).float().mean() * 100
        return {"loss": loss, "acc_top1": acc}

    def _unmix_loss(self, q, k, negatives, plans, hw) -> torch.Tensor:
        """Un-Mix soft targets: each source image's key is a positive with the share it has in the query."""
        if len(plans) != 1:
            raise ValueError("unmix supports one mixture (global or region), not G+R")
        plan = plans[0]
        w = source_weights(plan, hw[0], hw[1])  # (n, N): coefficient or pixel shares under the plan's semantics
        keys = [k[p] for p in plan.perms] + [k]
        return unmix_soft_ce([contrastive_logits(q, kj, negatives, self.T) for kj in keys], w)

    def mixbench_meta(self) -> PretrainMeta:
        """What the converter, feature extraction and transfer need (stored as ``meta['mixbench']``)."""
        pre = self.data_preprocessor
        return PretrainMeta(
            method="moco", arch=self.arch, width=1.0, feature_dim=feature_dim(self.arch),
            pixel_mean=list(pre.mean_values), pixel_std=list(pre.std_values), color=None, mixture=pre.summary(),
            settings={"dim": self.dim, "K": self.K, "m": self.m, "T": self.T, "mlp": self.mlp},
        )
