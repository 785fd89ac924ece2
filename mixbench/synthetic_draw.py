"""Drawing the synthetic images: what each class looks like and how a scene is composed (numpy + PIL only).

What makes the data learnable: every class has its own shape (ellipse, rectangle, triangle, star, cross, L),
hue and texture (stripes / checks / dots at a class-specific angle and period), with jitter in hue, size, aspect
and rotation. Detection images hold 1-4 objects at varied scales, later objects partly occluding earlier ones,
over textured noisy backgrounds with plain-coloured clutter; small objects are flagged (VOC's difficult=1).

Objects are amodal, as in VOC: a polygon describes the whole object (clipped to the image) even where a later
object covers part of it; box overlap is capped at 45% of the smaller box so no object vanishes.

Determinism: every image draws from its own numpy generator (:func:`image_rng`); JPEGs are written with fixed
quality, 4:4:4 subsampling and no metadata. ``mixbench.synthetic`` writes the data sets from these pictures.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["PRESETS", "Preset", "SceneObject", "draw_imagenet", "draw_scene", "image_rng", "polygon_area",
           "save_jpeg"]

# JPEG settings fixed for byte-identical output (4:4:4 keeps the thin texture stripes in colour).
_JPEG_KW: dict[str, Any] = {"format": "JPEG", "quality": 90, "subsampling": 0, "optimize": False}

SHAPES: tuple[str, ...] = ("ellipse", "rectangle", "triangle", "star", "cross", "ell")
TEXTURES: tuple[str, ...] = ("stripes", "checks", "dots")


@dataclass(frozen=True)
class Preset:
    """Sizes of one synthetic data set. Detection image sizes are drawn per image in [min, max]."""

    imagenet_classes: int
    imagenet_train: int  # images per class
    imagenet_val: int
    imagenet_size: tuple[int, int]  # (min, max) side in pixels, drawn per image and side
    voc07_trainval: int
    voc07_test: int
    voc12_trainval: int
    coco_train: int
    coco_val: int
    det_width: tuple[int, int]
    det_height: tuple[int, int]
    obj_size: tuple[int, int]  # longer side of a normal object, pixels
    small_size: tuple[int, int]  # longer side of a small ('difficult' in VOC) object
    small_prob: float  # chance that an object is small


PRESETS: dict[str, Preset] = {
    # For tests: a few dozen images, generated in well under 3 s.
    "tiny": Preset(
        imagenet_classes=4, imagenet_train=8, imagenet_val=4, imagenet_size=(64, 64),
        voc07_trainval=8, voc07_test=6, voc12_trainval=6, coco_train=8, coco_val=6,
        det_width=(112, 128), det_height=(84, 96), obj_size=(28, 60), small_size=(12, 18), small_prob=0.12,
    ),
    # For the CPU demo: detectors trained ~1 minute at ~256x192 must reach a clearly non-zero AP.
    "demo": Preset(
        imagenet_classes=10, imagenet_train=60, imagenet_val=20, imagenet_size=(64, 96),
        voc07_trainval=100, voc07_test=50, voc12_trainval=100, coco_train=160, coco_val=50,
        det_width=(208, 256), det_height=(156, 192), obj_size=(36, 110), small_size=(16, 24), small_prob=0.08,
    ),
    # For the pretraining data benchmark (``mixbench bench pretrain --data``): full-size JPEGs, each side drawn in
    # 375-500 px as in ImageNet (typically 500x375), so decoding and cropping cost what they cost on ImageNet.
    # Detection trees are token-sized (the layout stays complete).
    "bench": Preset(
        imagenet_classes=4, imagenet_train=64, imagenet_val=4, imagenet_size=(375, 500),
        voc07_trainval=2, voc07_test=2, voc12_trainval=2, coco_train=2, coco_val=2,
        det_width=(208, 256), det_height=(156, 192), obj_size=(36, 110), small_size=(16, 24), small_prob=0.08,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Appearance:
    """How one class looks: shape, hue in [0, 1), two-tone texture with its period (px) and angle (rad)."""

    shape: str
    hue: float
    texture: str
    period: float
    angle: float


def class_appearance(index: int, n_classes: int) -> Appearance:
    """Appearance of class ``index`` of ``n_classes``: hues evenly spread, shapes and textures cycled."""
    return Appearance(
        shape=SHAPES[index % len(SHAPES)],
        hue=(index / n_classes + 0.03) % 1.0,
        texture=TEXTURES[index % len(TEXTURES)],
        period=5.0 + 1.5 * (index % 4),
        angle=math.pi * (index % 4) / 4,
    )


# -------------------------------------------------------------------------------------------- geometry
def _unit_shape(shape: str) -> np.ndarray:
    """Polygon of ``shape`` inside the square [-1, 1]^2 (vertices (V, 2), x right, y down)."""
    if shape == "ellipse":
        t = np.linspace(0.0, 2 * math.pi, 24, endpoint=False)
        return np.stack([np.cos(t), np.sin(t)], axis=1)
    if shape == "rectangle":
        return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=float)
    if shape == "triangle":
        return np.array([[0, -1], [1, 1], [-1, 1]], dtype=float)
    if shape == "star":
        t = -math.pi / 2 + np.arange(10) * math.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    if shape == "cross":
        a = 0.35
        return np.array(
            [[-a, -1], [a, -1], [a, -a], [1, -a], [1, a], [a, a], [a, 1], [-a, 1], [-a, a], [-1, a], [-1, -a],
             [-a, -a]], dtype=float)  # fmt: skip
    if shape == "ell":
        return np.array([[-1, -1], [-0.2, -1], [-0.2, 0.3], [1, 0.3], [1, 1], [-1, 1]], dtype=float)
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def _clip_polygon(poly: np.ndarray, width: float, height: float) -> np.ndarray:
    """Clip a polygon (V, 2) to the image rectangle [0, width] x [0, height].

    Sutherland-Hodgman against the four edges: hand-written because only numpy/PIL may be used here and PIL
    does not clip polygons. Returns (V', 2), possibly empty.
    """
    pts = [tuple(p) for p in poly]
    edges = ((0, 0.0, 1), (0, width, -1), (1, 0.0, 1), (1, height, -1))  # (axis, bound, inside direction)
    for axis, bound, sign in edges:
        if not pts:
            break
        out = []
        for i, cur in enumerate(pts):
            prev = pts[i - 1]
            cur_in = sign * (cur[axis] - bound) >= 0
            prev_in = sign * (prev[axis] - bound) >= 0
            if cur_in != prev_in:
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                out.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
            if cur_in:
                out.append(cur)
        pts = out
    return np.array(pts, dtype=float).reshape(-1, 2)


def polygon_area(poly: np.ndarray) -> float:
    """Shoelace area of a simple polygon (V, 2)."""
    x, y = poly[:, 0], poly[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


# --------------------------------------------------------------------------------------------- drawing
def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32)


def _background(rng: np.random.Generator, width: int, height: int, clutter: int) -> np.ndarray:
    """Textured noisy background (H, W, 3) float32 in [0, 1]: low-frequency colour field, grey stripes, grain,
    and ``clutter`` plain blobs of random colour (untextured, so they are distractors, not objects)."""
    low = rng.uniform(0.25, 0.75, size=(rng.integers(3, 6), rng.integers(3, 6), 3))
    low = 0.6 * low + 0.4 * low.mean(axis=2, keepdims=True)  # mostly desaturated: object hues stand out
    field = Image.fromarray((low * 255).astype(np.uint8)).resize((width, height), Image.BILINEAR)
    img = np.asarray(field, dtype=np.float32) / 255.0
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    theta, period = rng.uniform(0, math.pi), rng.uniform(8, 24)
    img += 0.06 * np.sin(2 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta)) / period)[..., None]
    draw_img = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
    draw = ImageDraw.Draw(draw_img)
    for _ in range(clutter):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(3, max(4.0, 0.12 * min(width, height)))
        colour = tuple(
            int(c * 255) for c in _hsv(rng.uniform(), rng.uniform(0.2, 0.7), rng.uniform(0.3, 0.9))
        )
        box = [cx - r, cy - r * rng.uniform(0.5, 1.5), cx + r, cy + r * rng.uniform(0.5, 1.5)]
        (draw.ellipse if rng.uniform() < 0.5 else draw.rectangle)(box, fill=colour)
    img = np.asarray(draw_img, dtype=np.float32) / 255.0
    return img + rng.normal(0.0, 0.05, size=img.shape).astype(np.float32)


def _texture(app: Appearance, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """The class's two-tone texture on an (h, w) patch -> (h, w, 3) float32; jitters hue/period/phase."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = app.period * rng.uniform(0.85, 1.15)
    angle = app.angle + rng.uniform(-0.2, 0.2)
    u = xx * math.cos(angle) + yy * math.sin(angle) + rng.uniform(0, period)
    v = -xx * math.sin(angle) + yy * math.cos(angle) + rng.uniform(0, period)
    if app.texture == "stripes":
        pattern = np.sin(2 * math.pi * u / period) > 0
    elif app.texture == "checks":
        pattern = (np.floor(u / period) + np.floor(v / period)) % 2 == 0
    elif app.texture == "dots":
        pattern = np.sin(2 * math.pi * u / period) * np.sin(2 * math.pi * v / period) > 0.35
    else:
        raise ValueError(f"unknown texture {app.texture!r}; expected one of {TEXTURES}")
    hue = app.hue + rng.uniform(-0.025, 0.025)
    light = _hsv(hue, rng.uniform(0.7, 0.95), rng.uniform(0.85, 1.0))
    dark = _hsv(hue, rng.uniform(0.75, 1.0), rng.uniform(0.35, 0.5))
    return np.where(pattern[..., None], light, dark)


def _object_polygon(
    app: Appearance, rng: np.random.Generator, cx: float, cy: float, w: float, h: float
) -> np.ndarray:
    """The class shape scaled to half-extents (w/2, h/2), rotated by a small jitter, centred at (cx, cy)."""
    poly = _unit_shape(app.shape) * np.array([w / 2, h / 2])
    a = rng.uniform(-0.2, 0.2)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return poly @ rot.T + np.array([cx, cy])


def _paint(img: np.ndarray, poly: np.ndarray, app: Appearance, rng: np.random.Generator) -> None:
    """Fill ``poly`` on ``img`` (H, W, 3, in place) with the class texture (crop-local, so it is fast)."""
    height, width = img.shape[:2]
    x0, y0 = max(0, math.floor(poly[:, 0].min())), max(0, math.floor(poly[:, 1].min()))
    x1, y1 = min(width, math.ceil(poly[:, 0].max())), min(height, math.ceil(poly[:, 1].max()))
    if x1 <= x0 or y1 <= y0:
        return
    mask_img = Image.new("L", (x1 - x0, y1 - y0), 0)
    ImageDraw.Draw(mask_img).polygon([(float(x - x0), float(y - y0)) for x, y in poly], fill=1)
    mask = np.asarray(mask_img, dtype=bool)
    patch = img[y0:y1, x0:x1]
    patch[mask] = _texture(app, rng, y1 - y0, x1 - x0)[mask]


def save_jpeg(img: np.ndarray, rng: np.random.Generator, path: Path) -> None:
    """Add fine grain from ``rng`` and write ``img`` (H, W, 3 float in [0, 1]) as a byte-reproducible JPEG."""
    grain = rng.normal(0.0, 0.02, size=img.shape).astype(np.float32)
    Image.fromarray((np.clip(img + grain, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)).save(path, **_JPEG_KW)


# ---------------------------------------------------------------------------------------------- scenes
@dataclass
class SceneObject:
    """One object of a detection scene; ``polygon`` is clipped to the image, in pixel coordinates (x, y)."""

    label: int  # index into the data set's used classes
    polygon: np.ndarray  # (V, 2)
    small: bool
    truncated: bool


def draw_scene(
    rng: np.random.Generator, preset: Preset, n_classes: int
) -> tuple[np.ndarray, list[SceneObject]]:
    """A detection image (H, W, 3) float32 with 1-4 non-vanishing objects."""
    width = int(rng.integers(preset.det_width[0], preset.det_width[1] + 1))
    height = int(rng.integers(preset.det_height[0], preset.det_height[1] + 1))
    img = _background(rng, width, height, clutter=int(rng.integers(2, 5)))
    apps = [class_appearance(i, n_classes) for i in range(n_classes)]
    boxes: list[tuple[float, float, float, float]] = []
    objects: list[SceneObject] = []
    for k in range(int(rng.integers(1, 5))):
        for _attempt in range(30):
            label = int(rng.integers(n_classes))
            small = bool(k > 0 and rng.uniform() < preset.small_prob)
            lo, hi = preset.small_size if small else preset.obj_size
            side = rng.uniform(lo, min(hi, 0.9 * min(width, height)))
            aspect = math.exp(rng.uniform(-0.3, 0.3))
            w, h = side * min(1.0, aspect), side * min(1.0, 1 / aspect)
            # 15% of normal objects may leave the frame partly (truncated), the rest stay inside; the first
            # object always stays inside, so it is always placed and no image is empty.
            leaves_frame = rng.uniform() < 0.15
            margin = 0.2 if (k > 0 and not small and leaves_frame) else 0.5
            cx = rng.uniform(margin * w, width - margin * w)
            cy = rng.uniform(margin * h, height - margin * h)
            full = _object_polygon(apps[label], rng, cx, cy, w, h)
            poly = _clip_polygon(full, width, height)
            if len(poly) < 3 or polygon_area(poly) < 0.6 * polygon_area(full):
                continue
            box = (poly[:, 0].min(), poly[:, 1].min(), poly[:, 0].max(), poly[:, 1].max())
            if all(_overlap_of_smaller(box, b) < 0.45 for b in boxes):
                truncated = bool(polygon_area(poly) < 0.999 * polygon_area(full))
                boxes.append(box)
                objects.append(SceneObject(label, poly, small, truncated))
                break
    for obj in objects:  # painted in order: later objects occlude earlier ones
        _paint(img, obj.polygon, apps[obj.label], rng)
    return img, objects


def _overlap_of_smaller(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection area over the smaller box's area, boxes (x0, y0, x1, y1)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / max(smaller, 1e-9)


def draw_imagenet(rng: np.random.Generator, preset: Preset, label: int, n_classes: int) -> np.ndarray:
    """A classification image (H, W, 3): 1-2 objects of class ``label`` plus, half the time, a smaller
    distractor of another class, over heavy clutter and noise (so a probe must learn, not threshold)."""
    lo, hi = preset.imagenet_size
    width, height = int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))
    img = _background(rng, width, height, clutter=int(rng.integers(3, 7)))
    side_max = min(width, height)
    draws: list[tuple[int, float]] = [(label, rng.uniform(0.35, 0.8)) for _ in range(int(rng.integers(1, 3)))]
    if n_classes > 1 and rng.uniform() < 0.5:
        other = int((label + rng.integers(1, n_classes)) % n_classes)
        draws.insert(int(rng.integers(0, len(draws) + 1)), (other, rng.uniform(0.2, 0.35)))
    for cls, frac in draws:
        app = class_appearance(cls, n_classes)
        side = frac * side_max
        aspect = math.exp(rng.uniform(-0.3, 0.3))
        w, h = side * min(1.0, aspect), side * min(1.0, 1 / aspect)
        cx, cy = rng.uniform(0.3 * w, width - 0.3 * w), rng.uniform(0.3 * h, height - 0.3 * h)
        _paint(img, _object_polygon(app, rng, cx, cy, w, h), app, rng)
    img += rng.normal(0.0, 0.06, size=img.shape).astype(np.float32)  # heavy noise on top of everything
    return img


def image_rng(seed: int, *keys: int) -> np.random.Generator:
    """Per-image generator: independent of generation order, so any subset regenerates identically."""
    return np.random.default_rng([seed, *keys])

