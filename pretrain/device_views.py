"""Device-side view pipeline: MoCo/CMC augmentations for a whole batch at once, on the preprocessor's device.

The reference pipeline (``pretrain.data.build_view_transform``) decodes and augments every image twice with PIL
in DataLoader workers (~22 ms of CPU per image for MoCo v2 at 224 px). Here the workers only decode
(``torchvision.io.decode_image``) or only read the file (then ``torchvision.io.decode_jpeg`` decodes the batch on
the device: nvjpeg on CUDA), and the views are made in batch on the device, each sample with its own random
parameters drawn exactly as torchvision's transforms draw them, with the settings of
:data:`mixbench.pretrain.augmentations.AUG_SPECS`:

- RandomResizedCrop: up to 10 attempts, then torchvision's centre-crop fallback; crops differ per sample (and
  images may differ in size), so crop + resize is one small call per sample;
- horizontal flip;
- ColorJitter: brightness, contrast, saturation factors uniform in [1 - x, 1 + x], hue uniform in [-h, h], the
  four in a random order per sample (``torch.randperm(4)``), applied with the spec's probability;
- grayscale and Gaussian blur (reflect padding), each with the spec's probability.

Pixel values stay float on the 0-255 scale from the crop on (no rounding between ops, unlike the uint8
reference); every op equals the torchvision.transforms.v2.functional op on float images (tests). The colour ops
are written here because torchvision's functional ops take one scalar factor per call, not one per sample.

>>> views = DeviceViews("moco_v2", size=224, n_views=2)([img0, img1])   # img: (3, H_i, W_i) uint8
>>> [v.shape for v in views]   # float32 in [0, 255]
[torch.Size([2, 3, 224, 224]), torch.Size([2, 3, 224, 224])]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mixbench.base.dist import process_seed
from mixbench.pretrain.augmentations import AUG_SPECS, AugSpec, blur_kernel_size

__all__ = ["DeviceViews", "ViewParams", "make_views", "sample_params"]

# Luma weights of torchvision's rgb_to_grayscale (ITU-R 601-2).
_GRAY = (0.2989, 0.587, 0.114)
JITTER_OPS = ("brightness", "contrast", "saturation", "hue")


@dataclass
class ViewParams:
    """Random parameters of one view for a batch of N images (CPU tensors).

    crops: (N, 4) long, (top, left, height, width) in the source image; flip, jitter, gray, blur: (N,) bool;
    factors: (N, 4) float, brightness, contrast, saturation, hue; order: (N, 4) long, a permutation of
    :data:`JITTER_OPS` indices per sample; sigma: (N,) float.
    """

    crops: torch.Tensor
    flip: torch.Tensor
    jitter: torch.Tensor
    factors: torch.Tensor
    order: torch.Tensor
    gray: torch.Tensor
    blur: torch.Tensor
    sigma: torch.Tensor


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(n, *shape, generator=gen, dtype=torch.float64) * (hi - lo) + lo


def sample_crops(
    sizes: torch.Tensor,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    gen: torch.Generator,
    attempts: int = 10,
) -> torch.Tensor:
    """torchvision's ``RandomResizedCrop.get_params`` for N images at once.

    Shape: sizes (N, 2) long (height, width) -> (N, 4) long (top, left, height, width). Each image takes its
    first of ``attempts`` draws that fits; none fits -> the centre crop with the ratio clamped to ``ratio``.
    """
    n = sizes.shape[0]
    H, W = sizes[:, 0:1].double(), sizes[:, 1:2].double()
    target = H * W * _uniform(n, scale[0], scale[1], gen, attempts)
    aspect = torch.exp(_uniform(n, math.log(ratio[0]), math.log(ratio[1]), gen, attempts))
    w = torch.round(torch.sqrt(target * aspect))  # round half to even, as Python's round in torchvision
    h = torch.round(torch.sqrt(target / aspect))
    fits = (w > 0) & (w <= W) & (h > 0) & (h <= H)
    first = fits.double().argmax(1, keepdim=True)  # index of the first fitting attempt (0 if none fits)
    h, w = h.gather(1, first).squeeze(1), w.gather(1, first).squeeze(1)
    H, W = H.squeeze(1), W.squeeze(1)
    u = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    top = torch.floor(u[:, 0] * (H - h + 1)).clamp(max=H - h)  # randint(0, H - h + 1)
    left = torch.floor(u[:, 1] * (W - w + 1)).clamp(max=W - w)
    # fallback: whole image, cropped to the nearest allowed aspect ratio, centred
    in_ratio = W / H
    fb_w = torch.where(in_ratio > ratio[1], torch.round(H * ratio[1]), W)
    fb_h = torch.where(in_ratio < ratio[0], torch.round(W / ratio[0]), H)
    ok = fits.any(1)
    h, w = torch.where(ok, h, fb_h), torch.where(ok, w, fb_w)
    top = torch.where(ok, top, torch.floor((H - fb_h) / 2))
    left = torch.where(ok, left, torch.floor((W - fb_w) / 2))
    return torch.stack([top, left, h, w], 1).long()


def sample_params(sizes: torch.Tensor, spec: AugSpec, gen: torch.Generator) -> ViewParams:
    """Draw one view's parameters for N images of the given (N, 2) (height, width) sizes."""
    n = sizes.shape[0]
    b, c, s, hue = spec.jitter
    lo = torch.tensor([max(0.0, 1 - b), max(0.0, 1 - c), max(0.0, 1 - s), -hue], dtype=torch.float64)
    hi = torch.tensor([1 + b, 1 + c, 1 + s, hue], dtype=torch.float64)
    factors = lo + (hi - lo) * torch.rand(n, 4, generator=gen, dtype=torch.float64)
    return ViewParams(
        crops=sample_crops(sizes, spec.scale, spec.ratio, gen),
        flip=torch.rand(n, generator=gen) < spec.p_flip,
        jitter=torch.rand(n, generator=gen) < spec.p_jitter,
        factors=factors.float(),
        order=torch.rand(n, 4, generator=gen).argsort(1),  # a uniform random permutation per sample
        gray=torch.rand(n, generator=gen) < spec.p_gray,
        blur=torch.rand(n, generator=gen) < spec.p_blur,
        sigma=_uniform(n, spec.sigma[0], spec.sigma[1], gen).float(),
    )


# ------------------------------------------------------------------------------ ops, (n, 3, S, S) float 0-255
def _per_sample(f: torch.Tensor) -> torch.Tensor:
    return f.view(-1, 1, 1, 1)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma, (n, 3, H, W) -> (n, 1, H, W)."""
    return x[:, 0:1] * _GRAY[0] + x[:, 1:2] * _GRAY[1] + x[:, 2:3] * _GRAY[2]


def _blend(x: torch.Tensor, other: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    f = _per_sample(f)
    return (x * f + other * (1 - f)).clamp_(0, 255)


def adjust_brightness(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return (x * _per_sample(f)).clamp_(0, 255)


def adjust_contrast(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return _blend(x, grayscale(x).mean((1, 2, 3), keepdim=True), f)


def adjust_saturation(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return _blend(x, grayscale(x), f)


def adjust_hue(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue of each sample by its factor f in [-0.5, 0.5] (of a full turn)."""
    rgb = x / 255
    r, g, b = rgb.unbind(1)
    maxc, minc = rgb.amax(1), rgb.amin(1)
    delta = maxc - minc
    gray = delta == 0
    d = torch.where(gray, torch.ones_like(delta), delta)
    # sector by the largest channel, r first then g (torchvision's and PIL's precedence)
    h = torch.where(maxc == r, (g - b) / d, torch.where(maxc == g, (b - r) / d + 2, (r - g) / d + 4))
    h = torch.where(gray, torch.zeros_like(h), h)
    h = (h / 6 + _per_sample(f).squeeze(1)).remainder(1.0)
    s = torch.where(maxc == 0, torch.zeros_like(delta), delta / torch.where(maxc == 0, torch.ones_like(maxc), maxc))
    # HSV -> RGB in closed form: channel n (R 5, G 3, B 1): v - v s clamp(min(k, 4 - k), 0, 1), k = (n + 6h) mod 6
    n = torch.tensor([5.0, 3.0, 1.0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    k = (n + 6 * h.unsqueeze(1)).remainder(6)
    out = maxc.unsqueeze(1) * (1 - s.unsqueeze(1) * torch.minimum(k, 4 - k).clamp(0, 1))
    return (out * 255).clamp_(0, 255)


_JITTER_FNS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def color_jitter(x: torch.Tensor, factors: torch.Tensor, order: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """ColorJitter with per-sample factors (N, 4) and op order (N, 4); samples with ``apply`` False unchanged.

    Each of the 4 stages runs each op once on the samples that take it at that stage, so the work is 4 ops x N.
    """
    x = x.clone()
    for stage in range(4):
        for op, fn in enumerate(_JITTER_FNS):
            idx = torch.nonzero(apply & (order[:, stage] == op)).squeeze(1)
            if idx.numel():
                x[idx] = fn(x[idx], factors[idx, op])
    return x


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Per-sample Gaussian blur, separable, reflect padding (torchvision's gaussian_blur). sigma: (n,)."""
    n, c, h, w = x.shape
    half = (kernel_size - 1) / 2
    t = torch.linspace(-half, half, kernel_size, device=x.device, dtype=x.dtype)
    k = torch.softmax(-0.5 * (t.view(1, -1) / sigma.view(-1, 1)) ** 2, dim=1)  # (n, ks), normalised exp
    k = k.repeat_interleave(c, 0)  # one kernel per (sample, channel) group
    pad = kernel_size // 2
    y = F.pad(x.reshape(1, n * c, h, w), (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(y, k.view(n * c, 1, 1, kernel_size), groups=n * c)
    y = F.conv2d(y, k.view(n * c, 1, kernel_size, 1), groups=n * c)
    return y.view(n, c, h, w)


def resized_crops(images: Sequence[torch.Tensor], crops: torch.Tensor, size: int) -> torch.Tensor:
    """Crop each (3, H_i, W_i) image and resize it to (size, size), bilinear with antialias (torchvision's
    tensor resize). Images differ in size, so this is one interpolate per sample. Returns (N, 3, S, S) float."""
    out = []
    for img, (top, left, h, w) in zip(images, crops.tolist()):
        crop = img[None, :, top : top + h, left : left + w].float()
        out.append(F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True))
    return torch.cat(out)


def make_views(images: Sequence[torch.Tensor], params: ViewParams, spec: AugSpec, size: int) -> torch.Tensor:
    """One view of every image by ``spec``'s steps. Shape: N x (3, H_i, W_i) uint8 -> (N, 3, S, S) float [0, 255]."""
    device = images[0].device
    p = {k: v.to(device) for k, v in vars(params).items() if k != "crops"}
    x = resized_crops(images, params.crops, size)
    for step in spec.steps[1:]:
        if step == "jitter":
            x = color_jitter(x, p["factors"], p["order"], p["jitter"])
        elif step == "gray":
            x = torch.where(_per_sample(p["gray"]), grayscale(x).expand_as(x), x)
        elif step == "blur":
            idx = torch.nonzero(p["blur"]).squeeze(1)
            if idx.numel():
                x[idx] = gaussian_blur(x[idx], p["sigma"][idx], blur_kernel_size(size))
        elif step == "flip":
            x = torch.where(_per_sample(p["flip"]), x.flip(-1), x)
        else:
            raise ValueError(f"unknown step {step!r}")
    return x.clamp_(0, 255)


class DeviceViews:
    """Decode (if given file bytes) and augment a batch on its device: ``n_views`` views per image.

    Args:
        aug: 'moco_v1', 'moco_v2' or 'cmc' (:data:`AUG_SPECS`, the settings ``pretrain.data`` builds from too).
        size: view side S (224 on ImageNet).
        n_views: 2 for MoCo (query, key), 1 for CMC.
        channels_last: return views in channels_last memory format (faster convolutions on GPU).
        seed: seed of the parameter generator, offset by the process rank (None: drawn from torch's global
            generator, so it follows mmengine's ``randomness.seed``).

    Call: a list of N images, each (3, H_i, W_i) uint8 decoded, or (L_i,) uint8 JPEG file bytes (decoded here
    with ``torchvision.io.decode_jpeg`` on ``device``: nvjpeg on CUDA); or an (N, 3, H, W) uint8 batch.
    Returns ``n_views`` tensors (N, 3, S, S) float32 in [0, 255] on ``device``.
    """

    def __init__(
        self, aug: str = "moco_v2", size: int = 224, n_views: int = 2, channels_last: bool = False,
        seed: int | None = None,
    ) -> None:
        if aug not in AUG_SPECS:
            raise ValueError(f"device views support {sorted(AUG_SPECS)}, got {aug!r} (use the PIL path for it)")
        if size < 8 or n_views < 1:
            raise ValueError(f"need size >= 8 and n_views >= 1, got size={size}, n_views={n_views}")
        self.aug, self.spec, self.size, self.n_views = aug, AUG_SPECS[aug], int(size), int(n_views)
        self.channels_last = channels_last
        self.gen = torch.Generator().manual_seed(process_seed(seed))

    @staticmethod
    def decode(images: Sequence[torch.Tensor] | torch.Tensor, device: torch.device | str) -> list[torch.Tensor]:
        """N images as (3, H_i, W_i) uint8 on ``device``; 1-D byte tensors are JPEG files decoded there.

        A 'read' batch may mix both: the workers decode CMYK/YCCK JPEGs themselves (``pretrain.data``).
        """
        from torchvision.io import ImageReadMode, decode_jpeg

        if isinstance(images, torch.Tensor):
            return list(images.to(device).unbind(0))
        out = [img if img.dim() == 1 else img.to(device, non_blocking=True) for img in images]
        files = [i for i, img in enumerate(images) if img.dim() == 1]  # file bytes from 'read' workers
        if files:
            decoded = decode_jpeg([images[i].cpu() for i in files], mode=ImageReadMode.RGB, device=device)
            for i, img in zip(files, decoded):
                out[i] = img
        return out

    def __call__(self, images: Sequence[torch.Tensor] | torch.Tensor, device: torch.device | str | None = None):
        if device is None:
            device = images.device if isinstance(images, torch.Tensor) else images[0].device
        decoded = self.decode(images, device)
        sizes = torch.tensor([img.shape[-2:] for img in decoded], dtype=torch.long)
        views = []
        # mmengine's AmpOptimWrapper runs the preprocessor under autocast: the views are data, keep them float32
        # (bf16 would run the blur's convolution at ~3 significant digits)
        with torch.autocast(torch.device(device).type, enabled=False):
            for _ in range(self.n_views):
                v = make_views(decoded, sample_params(sizes, self.spec, self.gen), self.spec, self.size)
                views.append(v.contiguous(memory_format=torch.channels_last) if self.channels_last else v)
        return views
