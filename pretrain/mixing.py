"""The paper's image mixtures as pure tensor functions, in the two semantics that exist (``SEMANTICS``).

'paper_eq' (the printed equations): global eq. 3 (:func:`global_mixture`) and region eqs. 4-5
(:func:`region_mixture`). Images ``I_1 .. I_n`` are mixed iteratively, ``I_m^k`` is the k-th mixture, the last
image ``I_n`` is mixed only once, so it is the main content; all n - 1 steps are taken together. With CutMix's
mask (M = 0 inside the box) eq. 4's ``lambda_decay (1 - M_1) I_2`` decays the first pasted box.

'authors' (the authors' released code, which produced Tables 1-5): the sample is the base, each of the n - 1
steps is taken or skipped on its own (``steps``).
Global (:func:`global_mixture_authors`): ``base = lam base + (1 - lam) partner`` per taken step.
Region (:func:`region_mixture_authors`): a taken first step multiplies the whole base by ``lambda_decay`` (the
context, as the paper's text and Fig. 3 say), then every taken step pastes its partner's box at full strength.

Nothing here draws random numbers: coefficients, partner permutations, masks and taken steps come from
``pretrain.sampler`` so a test can check every pixel against the equations. In-batch, ``I_n`` (the base) is the
sample itself and ``I_1 .. I_{n-1}`` (the partners) are the batch permuted by ``perms[0] .. perms[n-2]``.
"""

from __future__ import annotations

import torch

SEMANTICS = ("paper_eq", "authors")


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

    As printed, with CutMix's mask this decays the first pasted box ``(1 - M_1) I_2``, not the context the text
    describes ('paper_eq'; the authors' code is :func:`region_mixture_authors`).

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


def global_mixture_authors(images: list[torch.Tensor], lams: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """The authors' global mixture: for k = 1 .. n - 1, if step k is taken, ``base = lam_k base + (1 - lam_k) I_k``.

    The base starts as the sample ``I_n``, so its share is the product of the taken ``lam_k``.

    Args:
        images: ``[I_1, ..., I_{n-1}, I_n]`` (partners, then the sample), n >= 2, each (N, C, H, W).
        lams: (n - 1, N) coefficients ``lam_k`` in [0, 1] (Beta(alpha, alpha) in the authors' code).
        steps: (n - 1, N) bool, which steps each sample takes (each with probability p on its own).

    Returns:
        (N, C, H, W); a sample that takes no step is returned unchanged.
    """
    _check(images, lams.shape[0])
    lam = lams.to(images[0].dtype).view(lams.shape[0], -1, 1, 1, 1)  # (n-1, N, 1, 1, 1)
    take = steps.view(steps.shape[0], -1, 1, 1, 1)
    base = images[-1]
    for k in range(len(images) - 1):
        base = torch.where(take[k], lam[k] * base + (1 - lam[k]) * images[k], base)
    return base


def region_mixture_authors(
    images: list[torch.Tensor], masks: torch.Tensor, lambda_decay: float, steps: torch.Tensor
) -> torch.Tensor:
    """The authors' region mixture: context decay on the sample, then full-strength boxes of the partners.

    If step 1 is taken the whole base (the sample ``I_n``) is multiplied by ``lambda_decay``; then every taken
    step k pastes ``I_k`` inside its box (``M_k = 0``). A sample that skips step 1 is never decayed; later boxes
    are never decayed, so only base pixels outside every pasted box keep the decay.

    Args:
        images: ``[I_1, ..., I_{n-1}, I_n]`` (partners, then the sample), n >= 2, each (N, C, H, W).
        masks: (n - 1, N, 1, H, W) CutMix masks ``M_k`` (0 inside the box).
        lambda_decay: factor on the context (1.0 = plain CutMix; the paper's best is 0.2).
        steps: (n - 1, N) bool, which steps each sample takes.

    Returns:
        (N, C, H, W).
    """
    _check(images, masks.shape[0])
    m = masks.to(images[0].dtype)
    take = steps.view(steps.shape[0], -1, 1, 1, 1)
    base = torch.where(take[0], lambda_decay * images[-1], images[-1])
    for k in range(len(images) - 1):
        paste = take[k] & (m[k] == 0)  # (N, 1, H, W): inside box k, step k taken
        base = torch.where(paste, images[k], base)
    return base


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


def global_weights_authors(lams: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """Share of each source in :func:`global_mixture_authors`'s result (rows sum to 1).

    Partner k adds ``1 - lam_k`` at its step, which every later taken step scales by its ``lam``; the sample keeps
    the product of all taken ``lam``. Shape: (n - 1, N), (n - 1, N) bool -> (n, N), last row = the sample.
    """
    lam = torch.where(steps, lams, torch.ones_like(lams))  # a skipped step leaves the base as it is
    n1 = lam.shape[0]
    weights = torch.zeros(n1 + 1, lam.shape[1], dtype=lam.dtype, device=lam.device)
    surviving = torch.ones_like(lam[0])  # product of lam over steps after k
    for k in range(n1 - 1, -1, -1):
        weights[k] = surviving * (1 - lam[k])
        surviving = surviving * lam[k]
    weights[n1] = surviving
    return weights


def region_weights_authors(masks: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """Fraction of pixels each source fills after :func:`region_mixture_authors` (decay ignored; rows sum to 1).

    Shape: masks (n - 1, N, 1, H, W), steps (n - 1, N) bool -> (n, N), last row = the sample.
    """
    inside = (masks.float().flatten(2) == 0) & steps.unsqueeze(-1)  # (n-1, N, HW): pasted pixels of step k
    n1 = inside.shape[0]
    visible = torch.ones_like(inside[0])  # pixels not covered by a later taken box
    weights = [None] * (n1 + 1)
    for k in range(n1 - 1, -1, -1):
        weights[k] = (visible & inside[k]).float().mean(-1)
        visible = visible & ~inside[k]
    weights[n1] = visible.float().mean(-1)
    return torch.stack(weights)


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


def _check(images: list[torch.Tensor], n_rows: int) -> None:
    if len(images) < 2:
        raise ValueError(f"a mixture needs n >= 2 images, got {len(images)}")
    if n_rows != len(images) - 1:
        raise ValueError(f"{len(images)} images need {len(images) - 1} coefficient/mask rows, got {n_rows}")
