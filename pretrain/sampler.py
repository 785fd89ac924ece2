"""All randomness of the mixtures: per-sample Beta(alpha, alpha) coefficients, per-step batch permutations,
CutMix boxes and which steps each sample takes (probability p).

Semantics (``pretrain.mixing.SEMANTICS``): 'paper_eq' takes all n - 1 steps of a sample together with one draw
of probability p; 'authors' (the released code) draws each step on its own with probability p.

Draws happen on the CPU with one ``numpy.random.Generator`` (reproducible under a seed on every device; numpy
because torch has no seeded Beta sampler) and the small results are moved to the images' device;
``pretrain.mixing`` then applies them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from mixbench.base.dist import draw_seed
from mixbench.pretrain.mixing import SEMANTICS


@dataclass(kw_only=True)
class MixPlan:
    """One mixture step for a batch of N samples mixing n images each.

    Attributes:
        kind: 'global' (eq. 3) or 'region' (eqs. 4-5).
        perms: (n - 1, N) partner indices; source ``I_k`` of sample i is ``x[perms[k-1, i]]``, ``I_n = x[i]``.
        alphas: global only, (n - 1, N) Beta draws weighting each step: eq. 3's ``a_k`` ('paper_eq'), the base's
            share ``lam_k`` ('authors').
        box_lams: region only, (n - 1, N) CutMix's lambda of each box (the box covers 1 - lam of the image).
        boxes: region only, (n - 1, N, 4) (y1, x1, y2, x2) pixel boxes.
        mixed: (N,) bool, which samples are mixed at all (take at least one step); the others pass unchanged.
        lambda_decay: eq. 4's context decay (region only; 1.0 for global).
        semantics: 'paper_eq' (printed equations) or 'authors' (released code), see ``pretrain.mixing``.
        steps: (n - 1, N) bool, which steps each sample takes: for 'paper_eq' all or none (``mixed`` repeated),
            for 'authors' each on its own. None means ``mixed`` repeated.
    """

    kind: str
    perms: torch.Tensor
    mixed: torch.Tensor
    alphas: torch.Tensor | None = None
    box_lams: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    lambda_decay: float = 1.0
    semantics: str = "paper_eq"
    steps: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.semantics not in SEMANTICS:
            raise ValueError(f"semantics must be one of {SEMANTICS}, got {self.semantics!r}")
        if self.steps is None:
            self.steps = self.mixed.unsqueeze(0).expand(self.perms.shape[0], -1).clone()

    def to(self, device: torch.device | str) -> MixPlan:
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        return MixPlan(**{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in moved.items()})


class MixSampler:
    """Draws ``MixPlan`` s.

    Args:
        alpha: Beta(alpha, alpha) parameter of the coefficients (the authors' code: 1.0, i.e. uniform).
        seed: seed of the private generator (None: drawn from torch's global generator, so it follows
            mmengine's ``randomness.seed``).

    >>> plan = MixSampler(seed=0).global_plan(batch_size=8, n=4, p=0.5)
    >>> plan.perms.shape, plan.alphas.shape
    (torch.Size([3, 8]), torch.Size([3, 8]))
    """

    def __init__(self, alpha: float = 1.0, seed: int | None = None) -> None:
        if alpha <= 0:
            raise ValueError(f"Beta parameter alpha must be > 0, got {alpha}")
        self.alpha = alpha
        self.rng = np.random.default_rng(draw_seed(seed))

    def _beta(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.from_numpy(self.rng.beta(self.alpha, self.alpha, size=shape)).float()

    def _uniform(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.from_numpy(self.rng.random(size=shape))

    def _perms(self, n_steps: int, batch_size: int) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.rng.permutation(batch_size) for _ in range(n_steps)])).long()

    def _steps(self, n_steps: int, batch_size: int, p: float, semantics: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(mixed (N,), steps (n - 1, N)): one draw per sample ('paper_eq') or one per step ('authors')."""
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"mixing probability p must be in [0, 1], got {p}")
        if semantics not in SEMANTICS:
            raise ValueError(f"semantics must be one of {SEMANTICS}, got {semantics!r}")
        if semantics == "paper_eq":
            mixed = self._uniform((batch_size,)) < p
            return mixed, mixed.unsqueeze(0).expand(n_steps, -1).clone()
        steps = self._uniform((n_steps, batch_size)) < p
        return steps.any(0), steps

    def global_plan(self, batch_size: int, n: int, p: float, semantics: str = "paper_eq") -> MixPlan:
        """Global plan: n - 1 permutations, n - 1 coefficient rows, the steps taken (``semantics``)."""
        _check_n(n)
        perms, alphas = self._perms(n - 1, batch_size), self._beta((n - 1, batch_size))
        mixed, steps = self._steps(n - 1, batch_size, p, semantics)
        return MixPlan(kind="global", perms=perms, alphas=alphas, mixed=mixed, semantics=semantics, steps=steps)

    def region_plan(
        self,
        batch_size: int,
        n: int,
        p: float,
        height: int,
        width: int,
        lambda_decay: float,
        semantics: str = "paper_eq",
    ) -> MixPlan:
        """Region plan: n - 1 permutations and CutMix boxes of area (1 - lam) H W, lam ~ Beta, the steps taken."""
        _check_n(n)
        if not 0.0 <= lambda_decay <= 1.0:
            raise ValueError(f"lambda_decay must be in [0, 1], got {lambda_decay}")
        lam = self._beta((n - 1, batch_size))
        boxes = self.cutmix_boxes(lam, height, width)
        perms = self._perms(n - 1, batch_size)
        mixed, steps = self._steps(n - 1, batch_size, p, semantics)
        return MixPlan(kind="region", perms=perms, box_lams=lam, boxes=boxes, mixed=mixed, lambda_decay=lambda_decay,
                       semantics=semantics, steps=steps)

    def cutmix_boxes(self, lam: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """CutMix's box: side ratio sqrt(1 - lam), uniform centre, clipped to the image.

        Shape: lam (...) -> boxes (..., 4) as (y1, x1, y2, x2), int64.
        """
        ratio = torch.sqrt(1.0 - lam)
        cut_h = (height * ratio).long()
        cut_w = (width * ratio).long()
        cy = (self._uniform(tuple(lam.shape)) * height).long()
        cx = (self._uniform(tuple(lam.shape)) * width).long()
        y1 = (cy - cut_h // 2).clamp(0, height)
        y2 = (cy + cut_h // 2).clamp(0, height)
        x1 = (cx - cut_w // 2).clamp(0, width)
        x2 = (cx + cut_w // 2).clamp(0, width)
        return torch.stack([y1, x1, y2, x2], dim=-1)

    def state_dict(self) -> dict:
        """Plain data (alpha and the bit generator's state), e.g. for a checkpoint."""
        return {"alpha": self.alpha, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.alpha = float(state["alpha"])
        self.rng.bit_generator.state = state["rng"]


def _check_n(n: int) -> None:
    if n < 2:
        raise ValueError(f"a mixture needs n >= 2 images, got n={n}")
