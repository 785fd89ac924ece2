"""Contrastive losses: InfoNCE / Softmax-CE (eq. 1), NCE (eq. 2) and the optional Un-Mix soft-target terms.

All take logits already arranged as ``[positive, negatives...]`` along dim 1, so MoCo (queue) and CMC (memory
bank) share them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def contrastive_logits(q: torch.Tensor, k: torch.Tensor, negatives: torch.Tensor, T: float) -> torch.Tensor:
    """Similarities of each query with its positive key and K negatives, divided by T.

    Shape: q (N, dim), k (N, dim), negatives (dim, K) -> (N, 1 + K), column 0 the positive.
    """
    l_pos = torch.einsum("nc,nc->n", q, k).unsqueeze(-1)  # positive logits: Nx1
    l_neg = torch.einsum("nc,ck->nk", q, negatives)  # negative logits: NxK
    return torch.cat([l_pos, l_neg], dim=1) / T


def softmax_ce(logits: torch.Tensor) -> torch.Tensor:
    """Eq. 1 (InfoNCE / CMC's "Softmax-CE"): mean over N of ``-log softmax(logits)[:, 0]``.

    Shape: (N, 1 + K) -> scalar.
    """
    labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, labels)


def nce_loss(logits: torch.Tensor, Z: float, n_data: int, eps: float = 1e-7) -> torch.Tensor:
    """Eq. 2, noise-contrastive estimation [17] as trained by CMC.

    The paper writes eq. 2 as a positive term plus one term per negative; NCE makes each a binary decision
    "data or noise" with ``h(x) = P_d(x) / (P_d(x) + K P_n)``, ``P_d = exp(logit) / Z`` and uniform noise
    ``P_n = 1 / n_data``: ``L = -log h(pos) - sum_neg log(1 - h(neg))``, averaged over N.

    Args:
        logits: (N, 1 + K) similarities / T, column 0 the positive.
        Z: partition-function estimate (CMC fixes it from the first batch: ``mean(exp(logits)) * n_data``).
        n_data: dataset size (the noise distribution is uniform over it).
    """
    K = logits.shape[1] - 1
    p_d = torch.exp(logits) / Z
    k_pn = K / n_data
    log_h_pos = torch.log(p_d[:, 0] / (p_d[:, 0] + k_pn + eps))
    log_1m_h_neg = torch.log(k_pn / (p_d[:, 1:] + k_pn + eps))
    return -(log_h_pos + log_1m_h_neg.sum(1)).mean()


def estimate_Z(logits: torch.Tensor, n_data: int) -> float:
    """CMC's one-off estimate of NCE's normalising constant: ``mean(exp(logits)) * n_data``."""
    return float(torch.exp(logits.detach()).mean()) * n_data


def unmix_soft_ce(logits_per_source: list[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    """Un-Mix soft targets ``sum_j w_j CE(q_mix, k_j)``; two images: ``lam CE(q, k) + (1 - lam) CE(q, k')``.

    Args:
        logits_per_source: for each source image j, (N, 1 + K) logits whose positive is source j's key.
        weights: (n_sources, N) per-sample share of each source in the mixed query (rows sum to 1).
    """
    if len(logits_per_source) != weights.shape[0]:
        raise ValueError(f"{len(logits_per_source)} logit sets for {weights.shape[0]} weight rows")
    total = logits_per_source[0].new_zeros(())
    for logits, w in zip(logits_per_source, weights):
        labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        total = total + (w * F.cross_entropy(logits, labels, reduction="none")).mean()
    return total
