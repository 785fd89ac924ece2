"""The mixing step as an mmengine data preprocessor: normalise, then mix in-batch on the device.

Every model gets the mixtures the same way and no extra image is decoded: the partners of sample i are other
samples of the same batch, picked by a fresh random permutation at each mixture step. The plans (partners,
coefficients, boxes, which samples were mixed) are returned with the data so the Un-Mix loss can use them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from mmengine.model import BaseDataPreprocessor
from mmengine.registry import MODELS

from mixbench.base.color import IMAGENET_MEAN, IMAGENET_STD, YCBCR_MEAN, YCBCR_STD, rgb_to_ycbcr
from mixbench.base.dist import process_seed
from mixbench.pretrain.device_views import DeviceViews
from mixbench.pretrain.mixing import (
    SEMANTICS,
    box_masks,
    global_mixture,
    global_mixture_authors,
    global_weights,
    global_weights_authors,
    partner_images,
    region_mixture,
    region_mixture_authors,
    region_weights,
    region_weights_authors,
)
from mixbench.pretrain.sampler import MixPlan, MixSampler

VIEW_MODES = ("both", "query")
COLOR_SPACES = ("rgb", "ycbcr")


@MODELS.register_module()
class MixPreprocessor(BaseDataPreprocessor):
    """Normalise two-view batches and apply the global and/or region mixture.

    Args:
        mean, std: per-channel statistics on the 0-255 scale (RGB, or YCbCr when ``color_space='ycbcr'``);
            default ImageNet RGB, or CMC's YCbCr statistics for ``color_space='ycbcr'``.
        color_space: 'rgb' (MoCo) or 'ycbcr' (CMC: ``mixbench.base.color.rgb_to_ycbcr`` before normalising).
        global_mix: None or ``dict(n=4, p=0.5, semantics='authors')``: the global mixture of n images (n - 1
            steps). ``semantics`` (default 'paper_eq'): 'paper_eq' = eq. 3 as printed, all steps together with
            probability p; 'authors' = the released code, each step on its own with probability p, the sample
            as the base (``pretrain.mixing``).
        region_mix: None or ``dict(n=5, p=0.5, lambda_decay=0.2, semantics='authors')``: the region mixture;
            'paper_eq' = eqs. 4-5 as printed (the first pasted box decayed), 'authors' = the context decayed.
            With both set (G+R, Table 5) the global mixture runs first and the region mixture then mixes the
            result.
        views: 'both' mixes query and key with the same partners/coefficients/boxes (the authors' code);
            'query' mixes only the first view (Un-Mix style).
        alpha: Beta(alpha, alpha) of the coefficients (1.0 in the authors' code).
        seed: seed of the mixture sampler, offset by the process rank (None: drawn from torch's global
            generator, so it follows mmengine's ``randomness.seed``).
        device_views: None (views come augmented from the workers), or ``dict(aug='moco_v2', size=224,
            n_views=2, channels_last=False)``: ``pretrain.device_views.DeviceViews`` decodes/augments a list of
            images (dataset ``worker_stage='decode'|'read'``) on this preprocessor's device before normalising.

    Input ``data['inputs']``: a list of views, each (N, C, H, W) uint8 or float in [0, 255] (or a single
    tensor, which is only normalised). Output: ``dict(inputs=[views...], data_samples=dict(labels=...,
    mix_plans=[MixPlan, ...]))``; mixing happens only when ``training`` is True.
    """

    def __init__(
        self,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        color_space: str = "rgb",
        global_mix: dict | None = None,
        region_mix: dict | None = None,
        views: str = "both",
        alpha: float = 1.0,
        seed: int | None = None,
        non_blocking: bool = False,
        device_views: dict | None = None,
    ) -> None:
        super().__init__(non_blocking)
        if color_space not in COLOR_SPACES:
            raise ValueError(f"color_space must be one of {COLOR_SPACES}, got {color_space!r}")
        if views not in VIEW_MODES:
            raise ValueError(f"views must be one of {VIEW_MODES}, got {views!r}")
        if mean is None:
            mean = IMAGENET_MEAN if color_space == "rgb" else YCBCR_MEAN
        if std is None:
            std = IMAGENET_STD if color_space == "rgb" else YCBCR_STD
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values each, got {list(mean)} and {list(std)}")
        self.mean_values = [float(v) for v in mean]  # exact numbers for checkpoint metadata
        self.std_values = [float(v) for v in std]
        self.color_space = color_space
        self.views = views
        self.global_mix = self._check_mix("global_mix", global_mix, {"n", "p"})
        self.region_mix = self._check_mix("region_mix", region_mix, {"n", "p", "lambda_decay"})
        self.sampler = MixSampler(alpha=alpha, seed=process_seed(seed))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), False)
        # views made on the device from decoded images (None: the workers made them)
        self.device_views = None if device_views is None else DeviceViews(**device_views)

    @staticmethod
    def _check_mix(name: str, cfg: dict | None, keys: set[str]) -> dict | None:
        if cfg is None:
            return None
        cfg = dict(cfg)
        cfg.setdefault("semantics", "paper_eq")  # the printed equations unless a config names the authors' code
        if set(cfg) != keys | {"semantics"}:
            raise ValueError(
                f"{name} needs the keys {sorted(keys)} (and optionally 'semantics'), got {sorted(cfg)}"
            )
        if int(cfg["n"]) < 2:
            raise ValueError(f"{name}.n must be >= 2, got {cfg['n']}")
        if cfg["semantics"] not in SEMANTICS:
            raise ValueError(f"{name}.semantics must be one of {SEMANTICS}, got {cfg['semantics']!r}")
        return cfg

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 255] -> normalised float; YCbCr conversion first for CMC."""
        x = x.float()
        if self.color_space == "ycbcr":
            x = rgb_to_ycbcr(x)
        return (x - self.mean) / self.std

    def draw_plans(self, batch_size: int, height: int, width: int) -> list[MixPlan]:
        """The mixture steps for one batch, in the order they are applied (global, then region)."""
        plans = []
        if self.global_mix is not None:
            g = self.global_mix
            plans.append(self.sampler.global_plan(batch_size, int(g["n"]), float(g["p"]), g["semantics"]))
        if self.region_mix is not None:
            r = self.region_mix
            plans.append(
                self.sampler.region_plan(
                    batch_size, int(r["n"]), float(r["p"]), height, width, float(r["lambda_decay"]), r["semantics"]
                )
            )
        return plans

    @staticmethod
    def apply_plan(x: torch.Tensor, plan: MixPlan) -> torch.Tensor:
        """Mix a normalised batch by one plan; samples with ``plan.mixed`` False are returned unchanged.

        Shape: (N, C, H, W) -> (N, C, H, W).
        """
        return apply_plan(x, plan)

    def make_device_views(self, data: dict) -> dict:
        """N images (list from ``image_list_collate``) -> ``device_views.n_views`` views on this device.

        Runs before ``cast_data``: JPEG bytes must reach ``decode_jpeg`` on the CPU, even when nvjpeg decodes.
        """
        views = self.device_views(data["inputs"], device=self.mean.device)
        return {**data, "inputs": views}

    def forward(self, data: dict, training: bool = False) -> dict:
        if self.device_views is not None:
            data = self.make_device_views(data)
        data = self.cast_data(data)
        inputs = data["inputs"]
        samples = data.get("data_samples")
        if isinstance(inputs, torch.Tensor):
            return {"inputs": self.normalize(inputs), "data_samples": samples}
        views = [self.normalize(v) for v in inputs]
        plans: list[MixPlan] = []
        if training:
            n, _, h, w = views[0].shape
            plans = [p.to(views[0].device) for p in self.draw_plans(n, h, w)]
            mixed_views = range(len(views)) if self.views == "both" else [0]
            for i in mixed_views:
                for plan in plans:
                    views[i] = self.apply_plan(views[i], plan)
        return {"inputs": views, "data_samples": {"labels": samples, "mix_plans": plans}}

    def summary(self) -> dict:
        """The mixture settings as plain data (checkpoint metadata)."""
        return {
            "global": None if self.global_mix is None else dict(self.global_mix),
            "region": None if self.region_mix is None else dict(self.region_mix),
            "views": self.views,
            "alpha": self.sampler.alpha,
            "in_batch": True,
        }


def apply_plan(x: torch.Tensor, plan: MixPlan) -> torch.Tensor:
    """Mix a normalised batch by one plan under its semantics; samples with ``plan.mixed`` False are unchanged.

    Shape: (N, C, H, W) -> (N, C, H, W).
    """
    images = partner_images(x, plan.perms)
    authors = plan.semantics == "authors"
    if plan.kind == "global" and authors:
        out = global_mixture_authors(images, plan.alphas, plan.steps)
    elif plan.kind == "global":
        out = global_mixture(images, plan.alphas)
    else:
        masks = box_masks(plan.boxes, x.shape[-2], x.shape[-1])  # (n-1, N, 1, H, W)
        if authors:
            out = region_mixture_authors(images, masks, plan.lambda_decay, plan.steps)
        else:
            out = region_mixture(images, masks, plan.lambda_decay)
    return torch.where(plan.mixed.view(-1, 1, 1, 1), out, x)


def source_weights(plan: MixPlan, height: int, width: int) -> torch.Tensor:
    """Share of each source ``[x[perms[0]], ..., x[perms[n-2]], x]`` in the mixed sample (Un-Mix soft targets).

    Global: the coefficient shares; region: the pixel shares (decay ignored). Unmixed samples put all weight on
    themselves. Shape: -> (n, N), columns sum to 1, last row = the sample itself.
    """
    if plan.kind == "global":
        if plan.semantics == "authors":
            w = global_weights_authors(plan.alphas, plan.steps)
        else:
            w = global_weights(plan.alphas)
    else:
        masks = box_masks(plan.boxes, height, width)
        w = region_weights_authors(masks, plan.steps) if plan.semantics == "authors" else region_weights(masks)
    own = torch.zeros_like(w)
    own[-1] = 1.0
    return torch.where(plan.mixed.view(1, -1), w, own)
