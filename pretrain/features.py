"""Frozen feature extractors from pretraining checkpoints: input of linear eval, kNN and flatness.

One spec string names what to evaluate, so the random baseline runs under exactly the same protocol:

* a mixbench pretraining checkpoint (mmengine Runner file, contract 2):
  MoCo -> ``encoder_q`` without its head (2048-d for ResNet-50, 512 for ResNet-18);
  CMC -> ``encoder_l`` fed Y and ``encoder_ab`` fed CbCr (``pretrain.color``), concatenated (2 x 1024 = 2048);
* the official MoCo layout (``module.encoder_q.*``), a torchvision ResNet ``state_dict`` (``fc`` optional)
  or a converted mmdet file (``convert``'s ``{'state_dict', 'meta': {'mixbench_convert': ...}}``);
* ``random:<arch>`` (e.g. ``random:resnet50``): torchvision's random init, seeded, ImageNet pixel statistics.

Every extractor takes RGB on the 0-255 scale and normalises it itself with the statistics the encoder was
trained with (read from ``meta['mixbench']``), so callers never have to know the method.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from pretrain import color
from pretrain.backbones import ARCHS, build_backbone

__all__ = ["FeatureExtractor", "build_extractor", "infer_resnet", "load_feature_extractor"]

_STAGE_KEY = re.compile(r"^layer(\d)\.(\d+)\.")


class FeatureExtractor(nn.Module):
    """Frozen encoder(s) mapping RGB (0-255) to pooled features; always in eval mode, no gradients.

    Args:
        encoders: one backbone (MoCo, torchvision, random) or two (CMC: L then ab), ``fc = Identity``.
        pixel_mean, pixel_std: per-channel statistics (0-255) of the encoder input: RGB for one encoder,
            YCbCr for CMC (the input is converted with ``pretrain.color.rgb_to_ycbcr`` first).
        views: for CMC, the YCbCr channels each encoder sees (``[[0], [1, 2]]``); ``None`` for RGB models.
        info: plain-data description (method, arch, source file, ...) carried into reports.

    Shape: (N, 3, H, W) RGB in [0, 255] -> (N, feature_dim).
    """

    def __init__(
        self,
        encoders: list[nn.Module],
        pixel_mean: list[float],
        pixel_std: list[float],
        views: list[list[int]] | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if views is not None and len(views) != len(encoders):
            raise ValueError(f"{len(encoders)} encoders but {len(views)} views")
        self.encoders = nn.ModuleList(encoders)
        self.views = views
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(1, 3, 1, 1))
        self.info = dict(info or {})
        self.feature_dim = sum(int(e.feature_dim) for e in encoders)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FeatureExtractor:
        # Frozen means frozen: BN running statistics must not move when a wrapper calls .train().
        return super().train(False)

    @torch.no_grad()
    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        x = rgb.float()
        if self.views is not None:
            x = color.rgb_to_ycbcr(x)
        x = (x - self.pixel_mean) / self.pixel_std
        if self.views is None:
            return self.encoders[0](x)
        return torch.cat([enc(x[:, v]) for enc, v in zip(self.encoders, self.views)], dim=1)


def infer_resnet(state_dict: dict[str, torch.Tensor], prefix: str = "") -> tuple[str, float, int]:
    """Read (arch, width, in_channels) of a torchvision-keyed ResNet from its tensors alone.

    Block type from ``layer1.0.conv3`` (Bottleneck) vs none (BasicBlock), depth from the blocks per stage,
    width from the stem's 64 output channels, input channels from ``conv1``.
    """
    conv1 = state_dict.get(prefix + "conv1.weight")
    if conv1 is None or conv1.dim() != 4:
        raise ValueError(f"no '{prefix}conv1.weight' 4-d tensor: not a torchvision ResNet")
    blocks = [0, 0, 0, 0]
    for key in state_dict:
        m = _STAGE_KEY.match(key[len(prefix) :]) if key.startswith(prefix) else None
        if m:
            stage, idx = int(m.group(1)) - 1, int(m.group(2))
            blocks[stage] = max(blocks[stage], idx + 1)
    bottleneck = prefix + "layer1.0.conv3.weight" in state_dict
    for arch, (block, layers) in ARCHS.items():
        if layers == blocks and (block.expansion == 4) == bottleneck:
            return arch, conv1.shape[0] / 64.0, int(conv1.shape[1])
    raise ValueError(
        f"ResNet with blocks per stage {blocks} (bottleneck={bottleneck}) matches none of {list(ARCHS)}"
    )


def _load_encoder(
    state_dict: dict[str, torch.Tensor], prefix: str, meta_arch: str | None, source: str
) -> nn.Module:
    """Build the backbone the tensors under ``prefix`` describe and load them strictly (``fc`` dropped)."""
    arch, width, in_channels = infer_resnet(state_dict, prefix)
    if meta_arch is not None and meta_arch != arch:
        raise ValueError(f"{source}: meta says arch {meta_arch!r} but the '{prefix}' tensors are a {arch}")
    enc = build_backbone(arch, width=width, in_channels=in_channels)
    enc.fc = nn.Identity()
    tensors = {
        k[len(prefix) :]: v
        for k, v in state_dict.items()
        if k.startswith(prefix) and not k[len(prefix) :].startswith("fc.")
    }
    # load_state_dict(strict=True) would name the keys but not the file; check ourselves so the error does.
    expected = enc.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    bad_shape = [k for k in expected if k in tensors and tensors[k].shape != expected[k].shape]
    if missing or unexpected or bad_shape:
        raise ValueError(
            f"{source}: '{prefix}' tensors do not fit a {arch} (width {width}): missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, misshaped {bad_shape[:5]}"
        )
    enc.load_state_dict(tensors, strict=True)
    return enc


def _stats(meta: dict[str, Any], key: str, default: tuple[float, ...]) -> list[float]:
    value = meta.get(key)
    return [float(v) for v in (value if value is not None else default)]


def build_extractor(
    state_dict: dict[str, torch.Tensor], meta: dict[str, Any] | None = None, source: str = "<state_dict>"
) -> FeatureExtractor:
    """Feature extractor from a model ``state_dict`` and its ``meta['mixbench']`` (may be empty).

    Usable on a live model too (a kNN hook passes ``model.state_dict()``). The layout is read from the keys:
    ``encoder_q.`` (MoCo), ``encoder_l.`` + ``encoder_ab.`` (CMC), ``module.encoder_q.`` (official MoCo),
    otherwise a torchvision ResNet (``conv1.weight`` at the top level, optional ``backbone.`` prefix).
    """
    meta = dict(meta or {})
    arch = meta.get("arch")
    keys = state_dict.keys()
    info = {
        "source": source,
        "arch": arch,
        "config_name": meta.get("config_name"),
        "mixture": meta.get("mixture"),
    }
    if any(k.startswith("encoder_l.") for k in keys) and any(k.startswith("encoder_ab.") for k in keys):
        col = meta.get("color") or color.color_meta()
        ref = color.color_meta()
        # rgb_to_ycbcr is the one definition of the transform; refuse a checkpoint trained with another one.
        if col.get("matrix") != ref["matrix"] or col.get("offset") != ref["offset"]:
            raise ValueError(f"{source}: CMC colour transform in meta differs from pretrain.color's YCbCr")
        views = col.get("views", ref["views"])
        encoders = [_load_encoder(state_dict, f"encoder_{v}.", arch, source) for v in ("l", "ab")]
        for enc, name in zip(encoders, ("l", "ab")):
            if enc.conv1.in_channels != len(views[name]):
                raise ValueError(
                    f"{source}: encoder_{name} takes {enc.conv1.in_channels} channels, "
                    f"colour meta gives it {views[name]}"
                )
        info.update(method="cmc", arch=arch or infer_resnet(state_dict, "encoder_l.")[0])
        return FeatureExtractor(
            encoders,
            _stats(col, "mean", color.YCBCR_MEAN),
            _stats(col, "std", color.YCBCR_STD),
            views=[list(views["l"]), list(views["ab"])],
            info=info,
        )
    for prefix, method in (
        ("encoder_q.", "moco"),
        ("module.encoder_q.", "moco"),
        ("backbone.", "torchvision"),
        ("", "torchvision"),
    ):
        if prefix + "conv1.weight" in state_dict:
            enc = _load_encoder(state_dict, prefix, arch, source)
            info.update(method=meta.get("method", method), arch=arch or infer_resnet(state_dict, prefix)[0])
            return FeatureExtractor(
                [enc],
                _stats(meta, "pixel_mean", color.IMAGENET_MEAN),
                _stats(meta, "pixel_std", color.IMAGENET_STD),
                info=info,
            )
    sample = sorted(keys)[:5]
    raise ValueError(
        f"{source}: unknown checkpoint layout (keys start {sample}); expected a mixbench MoCo "
        "(encoder_q.*) or CMC (encoder_l.* + encoder_ab.*) checkpoint, an official MoCo file "
        "(module.encoder_q.*), or a torchvision ResNet state_dict (conv1.weight, layer1.0..., fc optional)"
    )


def load_feature_extractor(spec: str | Path, seed: int = 0) -> FeatureExtractor:
    """Load ``spec`` (a checkpoint path or ``random:<arch>``) as a frozen :class:`FeatureExtractor`.

    Checkpoints are read only through :func:`convert.safe_load.safe_torch_load` (``weights_only=True``).
    """
    spec = str(spec)
    if spec.startswith("random:"):
        arch = spec.split(":", 1)[1]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            enc = build_backbone(arch)
        enc.fc = nn.Identity()
        return FeatureExtractor(
            [enc],
            list(color.IMAGENET_MEAN),
            list(color.IMAGENET_STD),
            info={"source": spec, "method": "random", "arch": arch},
        )
    from convert.safe_load import safe_torch_load

    ckpt = safe_torch_load(spec)
    if not isinstance(ckpt, dict):
        raise ValueError(f"{spec}: expected a dict checkpoint, got {type(ckpt).__name__}")
    meta: dict[str, Any] = {}
    state_dict = ckpt
    for key in ("state_dict", "model"):
        if isinstance(ckpt.get(key), dict):
            state_dict = ckpt[key]
            break
    ckpt_meta = ckpt.get("meta") if isinstance(ckpt.get("meta"), dict) else {}
    if isinstance(ckpt_meta.get("mixbench"), dict):
        meta = ckpt_meta["mixbench"]
    elif isinstance(ckpt_meta.get("mixbench_convert"), dict):
        conv = ckpt_meta["mixbench_convert"]
        meta = {
            "arch": conv.get("arch"),
            "pixel_mean": conv.get("pixel_mean"),
            "pixel_std": conv.get("pixel_std"),
            "method": "converted",
        }
    state_dict = {k: v for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    return build_extractor(state_dict, meta, source=spec)
