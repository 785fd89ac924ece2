"""The device view pipeline against torchvision's reference augmentation, all on CPU.

Three kinds of check: (1) the random parameters follow torchvision's own samplers (``get_params`` of the
reference transforms, drawn many times with a fixed seed; two-sample Kolmogorov-Smirnov distances and
binomial bounds); (2) with fixed parameters every batched op equals the torchvision.transforms.v2.functional op
on the same float image (tolerance 1e-3 on the 0-255 scale, float32 rounding only) and the crop equals the
uint8 op within one grey level (the reference rounds to uint8, ours stays float); (3) the whole pipeline yields
(N, 3, S, S) float views in [0, 255], from decoded images or from JPEG bytes decoded on the device (forced to
'cpu' here: the same ``decode_jpeg`` call nvjpeg runs on CUDA).
"""

from __future__ import annotations

import math

import pytest
import torch
from torchvision import transforms as T
from torchvision.io import encode_jpeg
from torchvision.transforms.v2 import functional as TF

from mixbench.pretrain.augmentations import AUG_SPECS, blur_kernel_size
from mixbench.pretrain.data import build_view_transform
from mixbench.pretrain.device_views import (
    DeviceViews,
    ViewParams,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    gaussian_blur,
    make_views,
    resized_crops,
    sample_crops,
    sample_params,
)

N_DRAWS = 4000
# two-sample KS distance that equal distributions exceed with probability ~1e-4 (c(alpha) = 2.15) at n = m
KS_BOUND = 2.15 * math.sqrt(2 / N_DRAWS)


def ks_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest gap between the two empirical CDFs."""
    grid = torch.cat([a, b]).double().sort().values
    fa = torch.searchsorted(a.double().sort().values, grid, right=True) / a.numel()
    fb = torch.searchsorted(b.double().sort().values, grid, right=True) / b.numel()
    return float((fa - fb).abs().max())


def binomial_ok(hits: torch.Tensor, p: float) -> bool:
    """Observed rate within 5 standard deviations of p."""
    n = hits.numel()
    return abs(float(hits.float().mean()) - p) <= 5 * math.sqrt(p * (1 - p) / n) + 1e-12


def reference_ops(aug: str, size: int = 224) -> dict[str, object]:
    """The torchvision transforms of the PIL reference pipeline, by type (what the device spec must match)."""
    found: dict[str, object] = {}
    for op in build_view_transform(aug, size).transforms:
        if isinstance(op, T.RandomApply):
            found[f"apply_{type(op.transforms[0]).__name__}"] = op.p
            op = op.transforms[0]
        found[type(op).__name__] = op
    return found


# ------------------------------------------------------------------------------------------- (1) parameters
@pytest.mark.parametrize("aug", ["moco_v1", "moco_v2", "cmc"])
def test_spec_states_the_reference_settings(aug):
    ref, spec = reference_ops(aug), AUG_SPECS[aug]
    crop = ref["RandomResizedCrop"]
    assert tuple(crop.scale) == spec.scale and tuple(crop.ratio) == pytest.approx(spec.ratio)
    assert ref["RandomHorizontalFlip"].p == spec.p_flip
    if "ColorJitter" in ref:
        cj = ref["ColorJitter"]
        assert [1 - cj.brightness[0], 1 - cj.contrast[0], 1 - cj.saturation[0], cj.hue[1]] == pytest.approx(
            list(spec.jitter)
        )
        assert ref.get("apply_ColorJitter", 1.0) == spec.p_jitter
    else:
        assert spec.p_jitter == 0 and "jitter" not in spec.steps
    assert ref["RandomGrayscale"].p == spec.p_gray if "RandomGrayscale" in ref else spec.p_gray == 0
    if "GaussianBlur" in ref:
        blur = ref["GaussianBlur"]
        assert tuple(blur.sigma) == spec.sigma and ref["apply_GaussianBlur"] == spec.p_blur
        assert list(blur.kernel_size) == [blur_kernel_size(224)] * 2
    else:
        assert spec.p_blur == 0
    # the steps run in the reference's order
    names = {"RandomResizedCrop": "crop", "ColorJitter": "jitter", "RandomGrayscale": "gray",
             "GaussianBlur": "blur", "RandomHorizontalFlip": "flip"}  # fmt: skip
    order = []
    for op in build_view_transform(aug, 224).transforms:
        op = op.transforms[0] if isinstance(op, T.RandomApply) else op
        if type(op).__name__ in names:
            order.append(names[type(op).__name__])
    assert tuple(order) == spec.steps


@pytest.mark.parametrize("hw", [(375, 500), (500, 333), (64, 96)])
def test_crop_distribution_matches_torchvision(hw):
    torch.manual_seed(0)
    img = torch.empty(3, *hw)  # get_params only reads the size
    ref = torch.tensor([T.RandomResizedCrop.get_params(img, [0.2, 1.0], [3 / 4, 4 / 3]) for _ in range(N_DRAWS)])
    gen = torch.Generator().manual_seed(1)
    ours = sample_crops(torch.tensor([hw] * N_DRAWS), (0.2, 1.0), (3 / 4, 4 / 3), gen)
    H, W = hw
    for name, f in {
        "area fraction": lambda c: c[:, 2] * c[:, 3] / (H * W),
        "log aspect": lambda c: torch.log(c[:, 3] / c[:, 2]),
        "centre x": lambda c: (c[:, 1] + c[:, 3] / 2) / W,
        "centre y": lambda c: (c[:, 0] + c[:, 2] / 2) / H,
    }.items():
        assert ks_distance(f(ours.double()), f(ref.double())) < KS_BOUND, name
    assert (ours[:, 0] >= 0).all() and (ours[:, 0] + ours[:, 2] <= H).all()
    assert (ours[:, 1] >= 0).all() and (ours[:, 1] + ours[:, 3] <= W).all()


@pytest.mark.parametrize("hw", [(20, 400), (400, 20), (30, 31)])
def test_crop_fallback_is_torchvision_s(hw):
    """Extreme aspect ratios: no attempt fits, torchvision's centre-crop fallback decides (exactly)."""
    gen = torch.Generator().manual_seed(0)
    ours = sample_crops(torch.tensor([hw] * 200), (0.2, 1.0), (3 / 4, 4 / 3), gen)
    torch.manual_seed(0)
    img = torch.empty(3, *hw)
    ref = torch.tensor([T.RandomResizedCrop.get_params(img, [0.2, 1.0], [3 / 4, 4 / 3]) for _ in range(200)])
    if hw == (30, 31):  # small square image: attempts do fit; only the support must agree
        assert ks_distance(ours[:, 2].double() * ours[:, 3], ref[:, 2].double() * ref[:, 3]) < 2.15 * math.sqrt(0.01)
    else:
        assert ours.unique(dim=0).tolist() == ref.unique(dim=0).tolist() and len(ref.unique(dim=0)) == 1


def test_jitter_blur_and_probabilities_match_torchvision():
    torch.manual_seed(0)
    cj = T.ColorJitter(0.4, 0.4, 0.4, 0.1)
    draws = [cj.get_params(cj.brightness, cj.contrast, cj.saturation, cj.hue) for _ in range(N_DRAWS)]
    ref_factors = torch.tensor([d[1:] for d in draws])
    ref_first = torch.tensor([int(d[0][0]) for d in draws])
    ref_sigma = torch.tensor([T.GaussianBlur.get_params(0.1, 2.0) for _ in range(N_DRAWS)])
    spec = AUG_SPECS["moco_v2"]
    p = sample_params(torch.tensor([[375, 500]] * N_DRAWS), spec, torch.Generator().manual_seed(1))
    for j, name in enumerate(["brightness", "contrast", "saturation", "hue"]):
        assert ks_distance(p.factors[:, j], ref_factors[:, j]) < KS_BOUND, name
    assert ks_distance(p.sigma, ref_sigma) < KS_BOUND
    # random order: every op first in ~1/4 of draws, as randperm(4) in torchvision; orders are permutations
    assert (p.order.sort(1).values == torch.arange(4)).all()
    for op in range(4):
        assert binomial_ok(p.order[:, 0] == op, 0.25) and binomial_ok(ref_first == op, 0.25)
    assert binomial_ok(p.jitter, 0.8) and binomial_ok(p.gray, 0.2)
    assert binomial_ok(p.blur, 0.5) and binomial_ok(p.flip, 0.5)


# ---------------------------------------------------------------------------------- (2) ops, fixed params
TOL = 1e-3  # on the 0-255 scale (4e-6 of the range): float32 rounding only; measured max 2e-4 (hue)


@pytest.fixture
def images() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 24, 32, generator=gen)
    x[0, :, :4] = 0.5  # grey rows: hue's undefined case
    x[1, :, :2] = 0.0  # black rows
    return x


@pytest.mark.parametrize(
    ("ours", "ref", "factors"),
    [
        (adjust_brightness, TF.adjust_brightness, [0.6, 1.0, 1.3, 1.4]),
        (adjust_contrast, TF.adjust_contrast, [0.6, 1.0, 1.2, 1.4]),
        (adjust_saturation, TF.adjust_saturation, [0.6, 0.0, 1.1, 1.4]),
        (adjust_hue, TF.adjust_hue, [-0.5, -0.1, 0.0, 0.4]),
    ],
    ids=["brightness", "contrast", "saturation", "hue"],
)
def test_color_ops_match_torchvision(images, ours, ref, factors):
    got = ours(images * 255, torch.tensor(factors))
    want = torch.stack([ref(images[i], f) for i, f in enumerate(factors)]) * 255
    assert (got - want).abs().max() < TOL


def test_blur_matches_torchvision(images):
    sigma = [0.1, 0.7, 1.3, 2.0]
    got = gaussian_blur(images * 255, torch.tensor(sigma), 7)
    want = torch.stack([TF.gaussian_blur(images[i], [7, 7], [s, s]) for i, s in enumerate(sigma)]) * 255
    assert (got - want).abs().max() < TOL


def test_resized_crop_matches_torchvision():
    gen = torch.Generator().manual_seed(0)
    imgs = [torch.randint(0, 256, (3, 75, 100), dtype=torch.uint8, generator=gen),
            torch.randint(0, 256, (3, 90, 60), dtype=torch.uint8, generator=gen)]  # fmt: skip
    crops = torch.tensor([[5, 10, 60, 80], [0, 0, 90, 60]])
    got = resized_crops(imgs, crops, 32)
    for img, (t, left, h, w), g in zip(imgs, crops.tolist(), got):
        want = TF.resized_crop(img.float(), t, left, h, w, [32, 32], antialias=True)
        assert (g - want).abs().max() < TOL
        want8 = TF.resized_crop(img, t, left, h, w, [32, 32], antialias=True)  # uint8 kernel, rounded
        assert (g - want8.float()).abs().max() <= 1.0


def test_whole_view_matches_composed_torchvision_ops():
    """Fixed parameters through moco_v2's steps (per-sample op orders) equal the v2.functional ops composed."""
    gen = torch.Generator().manual_seed(0)
    imgs = [torch.randint(0, 256, (3, 40 + 5 * i, 48), dtype=torch.uint8, generator=gen) for i in range(4)]
    spec, size = AUG_SPECS["moco_v2"], 16
    params = ViewParams(
        crops=torch.tensor([[0, 0, 30, 40], [3, 4, 20, 20], [10, 2, 40, 44], [0, 8, 55, 40]]),
        flip=torch.tensor([True, False, True, False]),
        jitter=torch.tensor([True, True, False, True]),
        factors=torch.tensor([[0.7, 1.3, 0.8, 0.05], [1.2, 0.6, 1.4, -0.1], [1, 1, 1, 0], [0.9, 1.1, 0.6, 0.02]]),
        order=torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0], [1, 0, 3, 2], [2, 3, 0, 1]]),
        gray=torch.tensor([False, True, False, True]),
        blur=torch.tensor([True, False, True, True]),
        sigma=torch.tensor([0.5, 1.0, 1.5, 2.0]),
    )
    got = make_views(imgs, params, spec, size)
    fns = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    k = blur_kernel_size(size)
    for i, img in enumerate(imgs):
        t, left, h, w = params.crops[i].tolist()
        x = TF.resized_crop(img.float() / 255, t, left, h, w, [size, size], antialias=True)
        if params.jitter[i]:
            for op in params.order[i].tolist():
                x = fns[op](x, float(params.factors[i, op]))
        if params.gray[i]:
            x = TF.rgb_to_grayscale(x, num_output_channels=3)
        if params.blur[i]:
            x = TF.gaussian_blur(x, [k, k], [float(params.sigma[i])] * 2)
        if params.flip[i]:
            x = TF.horizontal_flip(x)
        assert (got[i] - x * 255).abs().max() < 1e-3, i


# ------------------------------------------------------------------------------------- (3) the pipeline
def _jpegs(n: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """n images of different sizes and their JPEG bytes."""
    gen = torch.Generator().manual_seed(0)
    imgs = [torch.randint(0, 256, (3, 40 + 7 * i, 60 - 3 * i), dtype=torch.uint8, generator=gen) for i in range(n)]
    return imgs, [encode_jpeg(im, quality=95) for im in imgs]


@pytest.mark.parametrize("aug", sorted(AUG_SPECS))
def test_pipeline_output_shape_dtype_range(aug):
    imgs, _ = _jpegs(5)
    views = DeviceViews(aug, size=32, n_views=2, seed=0)(imgs)
    assert len(views) == 2
    for v in views:
        assert v.shape == (5, 3, 32, 32) and v.dtype == torch.float32
        assert v.min() >= 0 and v.max() <= 255 and v.std() > 0
    assert not torch.equal(views[0], views[1])  # two views draw their own parameters


def test_jpeg_bytes_decode_on_the_device_like_decoded_images():
    """'read' mode (bytes -> decode_jpeg on the device, forced to CPU) gives the views of 'decode' mode."""
    from torchvision.io import decode_jpeg

    _, jpegs = _jpegs(4)
    decoded = [decode_jpeg(b) for b in jpegs]
    from_bytes = DeviceViews("moco_v2", size=24, seed=3)(jpegs, device="cpu")
    from_decoded = DeviceViews("moco_v2", size=24, seed=3)(decoded, device="cpu")
    for a, b in zip(from_bytes, from_decoded):
        assert torch.equal(a, b)


def test_channels_last_and_bad_arguments():
    imgs, _ = _jpegs(2)
    v = DeviceViews("cmc", size=16, n_views=1, channels_last=True, seed=0)(imgs)[0]
    assert v.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match="center"):
        DeviceViews("center")
    with pytest.raises(ValueError, match="n_views"):
        DeviceViews("moco_v2", n_views=0)


# ------------------------------------------------------------------------ (4) data set modes + preprocessor
def test_worker_stages_decode_and_read(synthetic_root, tmp_path):
    import numpy as np
    from PIL import Image
    from torchvision.io import decode_jpeg

    from mixbench.pretrain.data import ImageFolderViews, image_list_collate

    root = synthetic_root["imagenet"] / "train"
    decoded = ImageFolderViews(str(root), aug=None, worker_stage="decode")
    raw = ImageFolderViews(str(root), aug=None, worker_stage="read")
    item, raw_item = decoded[3], raw[3]
    with Image.open(decoded.samples[3][0]) as im:
        pil = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)
    img = item["inputs"]
    assert img.dtype == torch.uint8 and img.shape == pil.shape
    assert (img.int() - pil.int()).abs().max() <= 2  # two libjpeg builds; IDCT rounding may differ by a level
    assert raw_item["inputs"].dim() == 1 and torch.equal(decode_jpeg(raw_item["inputs"]), img)
    batch = image_list_collate([decoded[i] for i in range(3)])
    assert len(batch["inputs"]) == 3 and batch["data_samples"]["idx"].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="aug=None"):
        ImageFolderViews(str(root), aug="moco_v2", worker_stage="decode")
    with pytest.raises(ValueError, match="worker_stage"):
        ImageFolderViews(str(root), aug=None, worker_stage="gpu")
    png_root = tmp_path / "train" / "n0"
    png_root.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(png_root / "a.png")
    with pytest.raises(ValueError, match=r"a\.png: not a JPEG"):
        ImageFolderViews(str(tmp_path / "train"), aug=None, worker_stage="read")[0]
    (png_root / "b.jpg").write_bytes(b"\xff\xd8 not really")
    with pytest.raises(ValueError, match=r"b\.jpg: unreadable image"):
        ImageFolderViews(str(tmp_path / "train"), aug=None, worker_stage="decode")[1]


def test_moco_step_with_device_views(synthetic_root):
    """A MoCo v2 + G+R train_step on a decoded-image batch: views made before normalising and mixing."""
    from mmengine.optim import OptimWrapper

    from mixbench.pretrain.data import ImageFolderViews, image_list_collate
    from mixbench.pretrain.moco import MoCo

    ds = ImageFolderViews(str(synthetic_root["imagenet"] / "train"), aug=None, worker_stage="read")
    batch = image_list_collate([ds[i] for i in range(4)])
    pre = dict(type="MixPreprocessor", global_mix=dict(n=2, p=1.0), region_mix=dict(n=2, p=1.0, lambda_decay=0.2),
               device_views=dict(aug="moco_v2", size=32, n_views=2), seed=0)  # fmt: skip
    model = MoCo(arch="resnet18", K=8, T=0.2, mlp=True, data_preprocessor=pre)
    out = model.data_preprocessor(batch, True)
    assert [tuple(v.shape) for v in out["inputs"]] == [(4, 3, 32, 32)] * 2
    assert [p.kind for p in out["data_samples"]["mix_plans"]] == ["global", "region"]
    # normalised: the ImageNet statistics map [0, 255] to about [-2.2, 2.7]
    assert -2.2 <= float(out["inputs"][0].min()) and float(out["inputs"][0].max()) <= 2.7
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    losses = model.train_step(batch, optim)
    assert torch.isfinite(losses["loss"])


def test_views_stay_float32_under_bf16_autocast():
    """AmpOptimWrapper runs the preprocessor under autocast; the blur's conv2d must not drop to bf16."""
    imgs, _ = _jpegs(3)
    plain = DeviceViews("moco_v2", size=24, seed=5)(imgs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = DeviceViews("moco_v2", size=24, seed=5)(imgs)
    for a, b in zip(plain, auto):
        assert b.dtype == torch.float32 and torch.equal(a, b)
