"""The paper's image mixtures as pure tensor functions: global (eq. 3), region with context decay (eqs. 4-5).

Nothing here draws random numbers: coefficients, partner permutations and masks come from
``pretrain.sampler`` so a test can check every pixel against the equations.

Naming follows the paper: images ``I_1 .. I_n`` are mixed iteratively, ``I_m^k`` is the k-th mixture and the
last image ``I_n`` is mixed only once, so it is the main content. In-batch, ``I_n`` is the sample itself and
``I_1 .. I_{n-1}`` are the batch permuted by ``perms[0] .. perms[n-2]``.
"""

from __future__ import annotations

import torch


def global_mixture(images: list[torch.Tensor], alphas: torch.Tensor) -> torch.Tensor:
    """Eq. 3: ``I_m^1 = a_1 I_1 + b_1 I_2``, ``I_m^k = a_k I_{k+1} + b_k I_m^{k-1}``, ``b_k = 1 - a_k``.

    Args:
        images: ``[I_1, ..., I_n]``, n >= 2, each (N, C, H, W).
        alphas: (n - 1, N) per-sample coefficients ``a_k`` in [0, 1].

    Returns:
        ``I_m^{n-1}``, (N, C, H, W).
    """
    _check(images, alphas.shape[0])
    a = alphas.to(images[0].dtype).view(alphas.shape[0], -1, 1, 1, 1)  # (n-1, N, 1, 1, 1)
    mixed = a[0] * images[0] + (1 - a[0]) * images[1]
    for k in range(1, len(images) - 1):
        mixed = a[k] * images[k + 1] + (1 - a[k]) * mixed
    return mixed


def region_mixture(images: list[torch.Tensor], masks: torch.Tensor, lambda_decay: float) -> torch.Tensor:
    """Eqs. 4-5: ``I_m^1 = M_1 * I_1 + lambda_decay (1 - M_1) * I_2``, then
    ``I_m^k = M_k * I_{k+1} + (1 - M_k) * I_m^{k-1}``; the decay acts on the first iteration only.

    Args:
        images: ``[I_1, ..., I_n]``, n >= 2, each (N, C, H, W).
        masks: (n - 1, N, 1, H, W) binary masks ``M_k`` (CutMix's convention: 0 inside the box).
        lambda_decay: context decay of eq. 4 (1.0 = plain CutMix; the paper's best is 0.2).

    Returns:
        ``I_m^{n-1}``, (N, C, H, W).
    """
    _check(images, masks.shape[0])
    m = masks.to(images[0].dtype)
    mixed = m[0] * images[0] + lambda_decay * (1 - m[0]) * images[1]
    for k in range(1, len(images) - 1):
        mixed = m[k] * images[k + 1] + (1 - m[k]) * mixed
    return mixed


def box_masks(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """CutMix masks from boxes: 0 inside ``[y1, y2) x [x1, x2)``, 1 elsewhere.

    Shape: boxes (..., 4) as (y1, x1, y2, x2) integer pixels -> masks (..., 1, H, W).
    """
    ys = torch.arange(height, device=boxes.device).view(height, 1)
    xs = torch.arange(width, device=boxes.device).view(1, width)
    y1, x1, y2, x2 = (boxes[..., i, None, None] for i in range(4))  # each (..., 1, 1)
    inside = (ys >= y1) & (ys < y2) & (xs >= x1) & (xs < x2)  # (..., H, W)
    return (~inside).unsqueeze(-3).float()


def partner_images(x: torch.Tensor, perms: torch.Tensor) -> list[torch.Tensor]:
    """In-batch mixture sources ``[I_1, ..., I_n] = [x[perms[0]], ..., x[perms[n-2]], x]``.

    Shape: x (N, C, H, W), perms (n - 1, N) -> n tensors (N, C, H, W).
    """
    return [x[p] for p in perms] + [x]


def global_weights(alphas: torch.Tensor) -> torch.Tensor:
    """Share of each source ``I_j`` in eq. 3's result (rows sum to 1), for the Un-Mix soft targets.

    Shape: (n - 1, N) -> (n, N), row j = weight of ``I_{j+1}``.
    """
    n1 = alphas.shape[0]
    weights = torch.zeros(n1 + 1, alphas.shape[1], dtype=alphas.dtype, device=alphas.device)
    remaining = torch.ones_like(alphas[0])  # share of I_m^{k} that survives all later steps
    for k in range(n1 - 1, 0, -1):  # step k (0-based) adds I_{k+2} with a_k
        weights[k + 1] = remaining * alphas[k]
        remaining = remaining * (1 - alphas[k])
    weights[0] = remaining * alphas[0]
    weights[1] = remaining * (1 - alphas[0])
    return weights


def region_weights(masks: torch.Tensor) -> torch.Tensor:
    """Fraction of pixels each source ``I_j`` fills after eqs. 4-5 (decay ignored; rows sum to 1).

    Shape: masks (n - 1, N, 1, H, W) -> (n, N).
    """
    n1 = masks.shape[0]
    m = masks.float().flatten(2)  # (n-1, N, HW)
    weights = []
    visible = torch.ones_like(m[0])  # pixels where I_m^k survives all later steps
    later = []
    for k in range(n1 - 1, 0, -1):
        later.append((visible * m[k]).mean(-1))  # I_{k+2}
        visible = visible * (1 - m[k])
    weights = [(visible * m[0]).mean(-1), (visible * (1 - m[0])).mean(-1)] + later[::-1]
    return torch.stack(weights)


def _check(images: list[torch.Tensor], n_coefs: int) -> None:
    if len(images) < 2:
        raise ValueError(f"a mixture needs n >= 2 images, got {len(images)}")
    if n_coefs != len(images) - 1:
        raise ValueError(f"{len(images)} images need {len(images) - 1} coefficient/mask rows, got {n_coefs}")
