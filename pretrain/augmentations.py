"""The view augmentations of MoCo v1, MoCo v2 and CMC as data: the one statement of their recipes.

``pretrain.data.build_view_transform`` builds torchvision transforms from these specs (the PIL reference in
DataLoader workers), ``pretrain.device_views`` draws the same parameters for a whole batch on the device.

Sources: MoCo v1 (He et al. 2020), MoCo v2 (Chen et al. 2020, blur after SimCLR) and CMC (Tian et al. 2020,
YCbCr views: colour is not jittered).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AUG_SPECS", "AugSpec", "blur_kernel_size"]


@dataclass(frozen=True)
class AugSpec:
    """One named augmentation: its steps in order and their settings.

    ``steps`` lists 'crop', 'jitter', 'gray', 'blur', 'flip' in the order the recipe applies them (flip commutes
    with the others; it stays where the authors' code has it).
    """

    steps: tuple[str, ...]
    scale: tuple[float, float] = (0.2, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    jitter: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # brightness, contrast, saturation, hue
    p_jitter: float = 0.0
    p_gray: float = 0.0
    sigma: tuple[float, float] = (0.1, 2.0)
    p_blur: float = 0.0
    p_flip: float = 0.5


AUG_SPECS: dict[str, AugSpec] = {
    "moco_v1": AugSpec(("crop", "gray", "jitter", "flip"), jitter=(0.4, 0.4, 0.4, 0.4), p_jitter=1.0, p_gray=0.2),
    "moco_v2": AugSpec(
        ("crop", "jitter", "gray", "blur", "flip"), jitter=(0.4, 0.4, 0.4, 0.1), p_jitter=0.8, p_gray=0.2, p_blur=0.5
    ),
    "cmc": AugSpec(("crop", "flip")),
}


def blur_kernel_size(size: int) -> int:
    """Gaussian blur kernel side for a view of side ``size``: ~10% of it, odd, at least 3 (MoCo v2 / SimCLR)."""
    return max(3, int(0.1 * size) // 2 * 2 + 1)
