"""Fold CMC's two half-width ResNets (L view, CbCr view) into ONE standard RGB ResNet, exactly.

CMC feeds ``x = D_s^-1 (M rgb + o - mu)`` (``M``, ``o``: RGB->YCbCr; ``mu``, ``s``: CMC's YCbCr mean/std) with
channel 0 (Y) to the L half and channels 1-2 (CbCr) to the ab half. The folded network is fed
``z = D_t^-1 (rgb - m)``, the usual per-channel RGB normalisation. Substituting ``rgb = D_t z + m``:

    x = A z + D_s^-1 (M m + o - mu),     A = D_s^-1 M D_t   (3x3, rows YCbCr, columns RGB)

With ``m = M^-1 (mu - o)`` -- CMC's YCbCr mean mapped back to RGB -- the constant vanishes, so ``x = A z`` is
linear and a zero of ``z`` is a zero of ``x``. That is what makes conv1's zero padding exact at the borders: a
constant would have to go into bn1's running mean, which is right in the interior but wrong wherever the 7x7
window overlaps the padding. So the folded model needs its own pixel mean ``m`` (written to the output meta);
``t`` can be any positive std because ``D_t`` is folded into conv1 -- we use ImageNet's, so the folded network
sees inputs on the usual scale.

Every other conv/bn/downsample is placed block-diagonally (L half first, then ab), so each residual add,
ReLU and pooling acts on the two halves independently, and the pooled feature is ``concat(f_L, f_ab)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from mixbench.base.checkpoint_meta import PretrainMeta
from mixbench.convert.errors import ConversionError

__all__ = ["color_from_meta", "fold_cmc", "fold_pixel_mean"]


def color_from_meta(pretrain_meta: PretrainMeta | None) -> tuple[dict, str]:
    """The colour transform recorded in the checkpoint (``meta['mixbench']['color']``) or ours; and a note."""
    color = pretrain_meta.color if pretrain_meta is not None else None
    if color:
        if color.get("space") != "ycbcr":
            raise ConversionError(
                f"CMC fold: colour space {color.get('space')!r} is not the linear YCbCr transform"
            )
        return dict(color), "colour transform from the checkpoint's meta['mixbench']['color']"
    from mixbench.base.color import color_meta

    return color_meta(), (
        "checkpoint has no meta['mixbench']['color']: ASSUMED mixbench.base.color's YCbCr transform and CMC "
        "normalisation (the fold is exact only if that is what the model was trained with)"
    )


def _f64(x: Sequence) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def fold_pixel_mean(color: Mapping) -> list[float]:
    """RGB pixel mean (0-255) of the folded model: ``M^-1 (mu - o)``, CMC's YCbCr mean mapped back to RGB."""
    m = torch.linalg.solve(_f64(color["matrix"]), _f64(color["mean"]) - _f64(color["offset"]))
    return [float(v) for v in m]


def _fold_conv1(
    w_l: torch.Tensor, w_ab: torch.Tensor, color: Mapping, pixel_std: Sequence[float]
) -> torch.Tensor:
    """conv1 of the L half (O_l, |L|, k, k) and ab half (O_ab, |ab|, k, k) -> (O_l + O_ab, 3, k, k)."""
    views = color.get("views", {"l": [0], "ab": [1, 2]})
    l_idx, ab_idx = list(views["l"]), list(views["ab"])
    if w_l.shape[1] != len(l_idx) or w_ab.shape[1] != len(ab_idx):
        raise ConversionError(
            f"CMC fold: conv1 input channels {w_l.shape[1]} (L) / {w_ab.shape[1]} (ab) do not match the "
            f"colour views {l_idx} / {ab_idx}"
        )
    o_l, o_ab, k = w_l.shape[0], w_ab.shape[0], w_l.shape[2:]
    w_ycc = torch.zeros(o_l + o_ab, 3, *k, dtype=torch.float64)  # conv over normalised YCbCr channels
    w_ycc[:o_l, l_idx] = w_l.double()
    w_ycc[o_l:, ab_idx] = w_ab.double()
    a = torch.diag(1.0 / _f64(color["std"])) @ _f64(color["matrix"]) @ torch.diag(_f64(pixel_std))
    return torch.einsum("ojhw,jc->ochw", w_ycc, a).to(w_l.dtype)


def _block_diag(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Conv weights (Oa, Ia, k, k), (Ob, Ib, k, k) -> (Oa + Ob, Ia + Ib, k, k) block diagonal."""
    out = a.new_zeros(a.shape[0] + b.shape[0], a.shape[1] + b.shape[1], *a.shape[2:])
    out[: a.shape[0], : a.shape[1]] = a
    out[a.shape[0] :, a.shape[1] :] = b
    return out


def fold_cmc(
    halves: Mapping[str, torch.Tensor], color: Mapping, pixel_std: Sequence[float]
) -> dict[str, torch.Tensor]:
    """``{'l.<key>': ..., 'ab.<key>': ...}`` (torchvision keys, no fc) -> one RGB ResNet state_dict.

    Args:
        halves: both halves' backbone tensors, prefixed ``l.`` and ``ab.`` (``keymaps.CMC_RULES``' output).
        color: ``mixbench.base.color.color_meta()``-style dict (matrix, offset, mean, std, views).
        pixel_std: RGB std (0-255) the folded model will be normalised with (folded into conv1).

    Returns:
        torchvision ResNet keys; conv (O, I, k, k) -> block diagonal; BN vectors concatenated (L first);
        ``num_batches_tracked`` the larger of the two (only used by BN momentum=None, never in eval).
    """
    l_keys = {k[2:] for k in halves if k.startswith("l.")}
    ab_keys = {k[3:] for k in halves if k.startswith("ab.")}
    if l_keys != ab_keys:
        raise ConversionError(
            f"CMC fold: the halves differ in keys (only L: {sorted(l_keys - ab_keys)[:5]}, "
            f"only ab: {sorted(ab_keys - l_keys)[:5]})"
        )
    folded: dict[str, torch.Tensor] = {}
    for key in sorted(l_keys):
        a, b = halves[f"l.{key}"], halves[f"ab.{key}"]
        if key == "conv1.weight":
            folded[key] = _fold_conv1(a, b, color, pixel_std)
        elif a.ndim == 4:
            folded[key] = _block_diag(a, b)
        elif a.ndim == 1:
            folded[key] = torch.cat([a, b])
        elif a.ndim == 0:
            folded[key] = torch.maximum(a, b)
        else:
            raise ConversionError(f"CMC fold: unexpected tensor {key} of shape {tuple(a.shape)}")
    return folded
