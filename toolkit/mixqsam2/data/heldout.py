"""An independent generator of validation data, for accuracy out of the training distribution.

Written apart from :mod:`mixqsam2.data.synth` (whose scenes pico trains on) and sharing none
of its parts: other shape families (glyphs, rectangle-and-disc assemblies, blob regions,
branching "trees" and hands, cut-outs of real pictures), other photos (matplotlib's Grace
Hopper and terrain samples, scikit-image's stereo motorcycle, microaneurysms and logo) and
procedural textures, and other composition: ~40% of objects camouflaged (textured from
another region of the background photo), smooth looping paths (closed Catmull-Rom splines),
a camera that pans and zooms over a larger world (labels go through the same window), thin
poles crossing targets, look-alikes (same shape and texture, retinted, not annotated) that
travel a target's path the other way round, targets that leave and come back, brightness
drift, blur and noise. Every target is visible on frame 0 (at least ``MIN_PIXELS`` pixels and
``MIN_CONTRAST`` against its surroundings). Everything is a pure function of ``(seed, index)`` in a seed space of
its own (:func:`heldout_rng`). Use it to validate, never to train.

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "videos"
>>> write_heldout_video_set(out, num=1, frames=2, seed=0, height=60, width=80)
>>> sorted(p.name for p in (out / "Annotations" / "vid0000").iterdir())
['00000.png', '00001.png']
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from mixqsam2.data.formats import encode_rle, write_label_png
from mixqsam2.errors import UserInputError
from mixqsam2.fileio import atomic_output_dir

HELDOUT_VERSION = 2  # changes when the same seed gives other data (cached sets are named by it)
SEED_SPACES = {"images": 0x4E1D_0001, "videos": 0x4E1D_0002}  # apart from synth's 0x5EED_* and training's lists
PATCH = 128  # object patch size before placement
WORLD = 1.6  # world canvas / frame size: room for the camera to pan
MIN_PIXELS = 64  # a target smaller than this on frame 0 is not a target
# a target must stand out on frame 0: its pixels differ from the ring of pixels around it by at
# least this much (mean absolute RGB difference, 0-255). Camouflage drawn from a smooth part of
# the world could otherwise be pixel-for-pixel the background: invisible, nothing to segment.
MIN_CONTRAST = 12.0
CAMOUFLAGE = 0.4
_FONTS = ("DejaVuSans-Bold.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSansMono-Bold.ttf", "STIXGeneralBol.ttf")
_GLYPHS = "AEFGHKMRSTWXYZ2345679&#%@?$"


def heldout_rng(kind: str, seed: int, index: int) -> np.random.Generator:
    """The random stream of scene ``index`` of a held-out ``kind`` set ("images" or "videos").

    >>> float(heldout_rng("videos", 0, 1).random()) == float(heldout_rng("videos", 0, 1).random())
    True
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SEED_SPACES[kind], index)))


# ---------------------------------------------------------------------------- pictures
@lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    """RGB uint8 pictures the training generator does not use (all shipped with the packages)."""
    try:
        import matplotlib
        import matplotlib.cbook as cbook
        import skimage.data
        from matplotlib.colors import LightSource
    except ImportError:
        raise UserInputError("held-out data needs scikit-image and matplotlib (their sample pictures): "
                             "pip install 'mixqsam2[calib]'") from None

    grace = np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB"))
    left, right, _ = skimage.data.stereo_motorcycle()
    micro = matplotlib.colormaps["copper"](skimage.data.microaneurysms() / 255.0)
    dem = np.load(cbook.get_sample_data("jacksboro_fault_dem.npz", asfileobj=False))["elevation"]
    relief = LightSource(315, 45).shade(dem, cmap=matplotlib.colormaps["gist_earth"], blend_mode="overlay")
    topo = np.load(cbook.get_sample_data("topobathy.npz", asfileobj=False))["topo"]
    topo = matplotlib.colormaps["terrain"]((topo - topo.min()) / np.ptp(topo))
    as_rgb = [(p[..., :3] * 255).astype(np.uint8) for p in (micro, relief, topo)]
    return (grace, left, right, skimage.data.logo()[..., :3], *as_rgb)  # the logo stays 4th (_cutout)


def _photo_crop(rng, height: int, width: int) -> np.ndarray:
    photo = _photos()[rng.integers(len(_photos()))]
    ph, pw = photo.shape[:2]
    ch = int(min(ph, rng.uniform(0.4, 1.0) * min(ph, pw * height / width)))
    cw = int(min(pw, ch * width / height))
    y, x = rng.integers(0, ph - ch + 1), rng.integers(0, pw - cw + 1)
    shrink = cv2.INTER_AREA if ch >= height else cv2.INTER_CUBIC
    return cv2.resize(photo[y : y + ch, x : x + cw], (width, height), interpolation=shrink)


def _value_noise(rng, height: int, width: int) -> np.ndarray:
    """Multi-scale value noise in [0, 1] (float32)."""
    noise = sum(cv2.resize(rng.random((2**k + 1, 2**k + 1)).astype(np.float32), (width, height),
                           interpolation=cv2.INTER_CUBIC) * 0.6**k for k in range(1, 6))
    return (noise - noise.min()) / max(np.ptp(noise), 1e-6)


def _procedural(rng, height: int, width: int) -> np.ndarray:
    """Value noise through a random palette, plaid stripes, or a noisy gradient (uint8 RGB)."""
    colors = rng.uniform(0, 255, size=(3, 3))
    ys, xs = np.mgrid[:height, :width].astype(np.float32)
    kind = rng.integers(3)
    if kind == 0:
        level = _value_noise(rng, height, width)[..., None]
        rgb = np.where(level < 0.5, colors[0] + (colors[1] - colors[0]) * 2 * level,
                       colors[1] + (colors[2] - colors[1]) * (2 * level - 1))
    elif kind == 1:
        a, b = rng.uniform(0, np.pi, 2)
        p, q = rng.uniform(8, 40, 2)
        s1 = (np.sin((xs * np.cos(a) + ys * np.sin(a)) * 2 * np.pi / p) > 0)[..., None]
        s2 = (np.sin((xs * np.cos(b) + ys * np.sin(b)) * 2 * np.pi / q) > 0.4)[..., None]
        rgb = colors[0] + (colors[1] - colors[0]) * 0.7 * s1 + (colors[2] - colors[0]) * 0.5 * s2
    else:
        a = rng.uniform(0, 2 * np.pi)
        ramp = (xs * np.cos(a) + ys * np.sin(a))[..., None]
        ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1)
        rgb = colors[0] + (colors[1] - colors[0]) * ramp + 40 * (_value_noise(rng, height, width)[..., None] - 0.5)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _texture(rng, height: int, width: int, photo: float) -> np.ndarray:
    """A photo crop (probability ``photo``) or a procedural texture."""
    return _photo_crop(rng, height, width) if rng.random() < photo else _procedural(rng, height, width)


def _tinted(rng, rgb: np.ndarray, spread: float) -> np.ndarray:
    return np.clip(rgb * rng.uniform(1 - spread, 1 + spread, size=3), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------- shapes
def _fit(mask: np.ndarray, texture: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Crop to the mask's box, pad to a square, resize to PATCH: (bool mask, texture or None)."""
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    side = int(max(y1 - y0, x1 - x0) * 1.06) + 2
    py, px = (side - (y1 - y0)) // 2, (side - (x1 - x0)) // 2

    def square(a):
        out = np.zeros((side, side, *a.shape[2:]), a.dtype)
        out[py : py + y1 - y0, px : px + x1 - x0] = a[y0:y1, x0:x1]
        return cv2.resize(out, (PATCH, PATCH), interpolation=cv2.INTER_AREA)

    return square(mask.astype(np.float32)) > 0.5, None if texture is None else square(texture)


def _glyph(rng) -> np.ndarray:
    """A bold letter, digit or symbol."""
    import matplotlib

    font = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / rng.choice(_FONTS)), 150)
    image = Image.new("L", (240, 240))
    ImageDraw.Draw(image).text((30, 10), str(rng.choice(list(_GLYPHS))), fill=255, font=font)
    return np.asarray(image) > 127


def _bar(canvas: np.ndarray, p0, p1, thickness: float) -> None:
    """Fill a square-ended bar from ``p0`` to ``p1``."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    normal = np.array([p0[1] - p1[1], p1[0] - p0[0]]) / max(np.hypot(*(p1 - p0)), 1e-6) * thickness / 2
    cv2.fillPoly(canvas, [np.round([p0 + normal, p1 + normal, p1 - normal, p0 - normal]).astype(np.int32)], 1)


def _assembly(rng) -> np.ndarray:
    """A body bar with limbs (bars) and knobs, heads or wheels (discs): tool- or animal-like."""
    canvas = np.zeros((256, 256), np.uint8)
    length, girth, tilt = rng.uniform(60, 130), rng.uniform(20, 50), rng.uniform(0, np.pi)
    axis = np.array([np.cos(tilt), np.sin(tilt)])
    _bar(canvas, 128 - axis * length / 2, 128 + axis * length / 2, girth)
    for _ in range(rng.integers(2, 6)):
        side = rng.choice([-1, 1])
        root = 128 + axis * rng.uniform(-0.5, 0.5) * length + side * np.array([-axis[1], axis[0]]) * girth / 2
        angle = tilt + side * np.pi / 2 + rng.uniform(-0.6, 0.6)
        _bar(canvas, root, root + rng.uniform(20, 60) * np.array([np.cos(angle), np.sin(angle)]), rng.uniform(6, 16))
    for _ in range(rng.integers(1, 4)):
        centre = 128 + axis * rng.choice([-0.5, 0.5]) * length + rng.normal(0, 8, 2)
        cv2.circle(canvas, tuple(int(v) for v in centre), int(rng.uniform(12, 32)), 1, -1)
    return canvas > 0


def _blob_region(rng) -> np.ndarray:
    """The largest connected region of a scikit-image binary-blobs field."""
    import skimage.data

    field = skimage.data.binary_blobs(length=128, blob_size_fraction=rng.uniform(0.12, 0.25),
                                      volume_fraction=rng.uniform(0.3, 0.45), rng=int(rng.integers(2**31)))
    _, regions, stats, _ = cv2.connectedComponentsWithStats(field.astype(np.uint8), connectivity=4)
    return regions == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def _branches(rng) -> np.ndarray:
    """A hand (palm disc, wrist and fanned fingers) or a branching tree of tapering strokes."""
    canvas = np.zeros((256, 256), np.uint8)
    if rng.random() < 0.4:
        palm = np.array([128.0, 150.0])
        cv2.circle(canvas, (128, 150), int(rng.uniform(26, 36)), 1, -1)
        _bar(canvas, palm, palm + (0, 70), rng.uniform(30, 45))
        for angle in -np.pi / 2 + np.linspace(-1.2, 1.0, 5) + rng.normal(0, 0.1, 5):
            _bar(canvas, palm, palm + rng.uniform(55, 85) * np.array([np.cos(angle), np.sin(angle)]), rng.uniform(9, 14))
        return canvas > 0
    depth = int(rng.integers(2, 4))
    stack = [(np.array([128.0, 240.0]), -np.pi / 2, rng.uniform(40, 70), rng.uniform(24, 34), 0)]
    while stack:
        start, angle, length, width, level = stack.pop()
        end = start + length * np.array([np.cos(angle), np.sin(angle)])
        cv2.line(canvas, tuple(int(v) for v in start), tuple(int(v) for v in end), 1, max(int(width), 9))
        if level < depth:
            stack += [(end, angle + turn, length * rng.uniform(0.6, 0.85), width * 0.7, level + 1)
                      for turn in rng.uniform(-0.9, 0.9, rng.integers(2, 4))]
    return canvas > 0


def _cutout(rng) -> tuple[np.ndarray, np.ndarray]:
    """A piece of a real picture with its own pixels: a half of the scikit-image logo (by hue)
    or matplotlib's gift-box icon (by alpha)."""
    import matplotlib.cbook as cbook

    if rng.random() < 0.6:
        logo = _photos()[3]
        hsv = cv2.cvtColor(logo, cv2.COLOR_RGB2HSV)
        hue = (8, 25) if rng.random() < 0.5 else (35, 55)
        mask = (hsv[..., 0] >= hue[0]) & (hsv[..., 0] <= hue[1]) & (hsv[..., 1] > 60)
        mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8)) > 0
        return mask, logo
    icon = np.asarray(Image.open(cbook.get_sample_data("Minduka_Present_Blue_Pack.png", asfileobj=False)).convert("RGBA"))
    return icon[..., 3] > 200, np.ascontiguousarray(icon[..., :3])


def _shape(rng) -> tuple[np.ndarray, np.ndarray | None]:
    """(bool PATCH mask, its own texture or None) of a random held-out family, maybe mirrored."""
    family = rng.integers(5)
    if family == 4:
        mask, texture = _fit(*_cutout(rng))
    else:
        mask, texture = _fit((_glyph, _assembly, _blob_region, _branches)[family](rng))
    if rng.random() < 0.5:
        mask, texture = mask[:, ::-1], None if texture is None else texture[:, ::-1]
    return np.ascontiguousarray(mask), None if texture is None else np.ascontiguousarray(texture)


# ---------------------------------------------------------------------------- motion
def _catmull_rom(points: np.ndarray, u: float) -> np.ndarray:
    """The point at ``u`` (one unit per loop) of the closed Catmull-Rom spline through ``points``."""
    k = len(points)
    s = (u % 1.0) * k
    i, f = int(s), s - int(s)
    p0, p1, p2, p3 = (points[(i + j) % k] for j in (-1, 0, 1, 2))
    return 0.5 * (2 * p1 + (p2 - p0) * f + (2 * p0 - 5 * p1 + 4 * p2 - p3) * f**2 + (3 * p1 - p0 - 3 * p2 + p3) * f**3)


@dataclass(frozen=True)
class Camera:
    """A window over the world: centre x, y (world px) and zoom, each a base plus two sinusoids."""

    base: np.ndarray  # [3]
    amp: np.ndarray  # [3, 2]
    freq: np.ndarray  # [3, 2] radians per frame
    phase: np.ndarray  # [3, 2]
    frame: tuple[int, int]  # height, width

    def matrix(self, t: float) -> np.ndarray:
        """2x3 affine from world to frame pixels at time ``t``."""
        cx, cy, zoom = self.base + (self.amp * np.sin(self.freq * t + self.phase)).sum(1)
        height, width = self.frame
        return np.array([[zoom, 0, width / 2 - zoom * cx], [0, zoom, height / 2 - zoom * cy]])


@dataclass(frozen=True)
class HeldoutObject:
    """An object moving along a closed spline in world pixels; label 0 = not annotated."""

    shape: np.ndarray  # bool [PATCH, PATCH]
    texture: np.ndarray  # uint8 [PATCH, PATCH, 3]
    label: int
    path: np.ndarray  # [K, 2] waypoints (x, y); K = 1 stands still
    period: float  # frames per loop
    size: float  # world pixels across
    angle: float
    spin: float  # degrees per frame
    pulse: float  # relative size change
    camouflaged: bool

    def placement(self, t: float) -> np.ndarray:
        """2x3 affine from patch to world pixels at time ``t``."""
        cx, cy = _catmull_rom(self.path, t / self.period)
        scale = self.size / PATCH * (1 + self.pulse * np.sin(0.05 * t))
        matrix = cv2.getRotationMatrix2D((PATCH / 2, PATCH / 2), self.angle + self.spin * t, scale)
        matrix[:, 2] += (cx - PATCH / 2, cy - PATCH / 2)
        return matrix


@dataclass(frozen=True)
class HeldoutScene:
    """A world (background, objects back to front, poles in front) seen through a moving camera."""

    background: np.ndarray  # uint8 world RGB
    camera: Camera
    objects: list[HeldoutObject]
    poles: list[tuple[np.ndarray, float, np.ndarray]]  # (ends [2, 2] world px, thickness, colour)
    num_targets: int
    drift: np.ndarray  # brightness amplitude, frequency, phase, colour amplitude
    blur: float
    noise: float
    noise_seed: int

    def render(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``t``: (rgb uint8 [H, W, 3], labels uint8 [H, W], 0 background, 1..n targets).

        >>> scene = sample_heldout_scene(heldout_rng("videos", 0, 0), 60, 80)
        >>> [a.shape for a in scene.render(5)]
        [(60, 80, 3), (60, 80)]
        """
        height, width = self.camera.frame
        camera = self.camera.matrix(t)
        rgb = cv2.warpAffine(self.background, camera, (width, height), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT)
        labels = np.zeros((height, width), np.uint8)
        for obj in self.objects:
            matrix = camera @ np.vstack([obj.placement(t), [0, 0, 1]])
            mask = cv2.warpAffine(obj.shape.astype(np.uint8) * 255, matrix, (width, height)) > 127
            texture = cv2.warpAffine(obj.texture, matrix, (width, height), flags=cv2.INTER_LINEAR)
            rgb[mask], labels[mask] = texture[mask], obj.label
        for ends, thickness, colour in self.poles:
            p0, p1 = (np.round(camera[:, :2] @ e + camera[:, 2]).astype(int) for e in ends)
            mask = cv2.line(np.zeros((height, width), np.uint8), tuple(map(int, p0)), tuple(map(int, p1)), 1,
                            max(2, int(thickness * camera[0, 0]))) > 0
            rgb[mask], labels[mask] = colour, 0
        return self._photometric(rgb, t), labels

    def _photometric(self, rgb: np.ndarray, t: int) -> np.ndarray:
        """Brightness and colour drift, blur, sensor noise (a pure function of ``t``)."""
        amp, freq, phase, colour = self.drift
        gain = 1 + amp * np.sin(freq * t + phase) + colour * np.sin(0.7 * freq * t + np.array([0, 2.1, 4.2]))
        out = rgb.astype(np.float32) * gain.astype(np.float32)
        if self.blur > 0.3:
            out = cv2.GaussianBlur(out, (0, 0), self.blur)
        noise = np.random.default_rng(np.random.SeedSequence(self.noise_seed, spawn_key=(int(t),)))
        out += noise.standard_normal(out.shape, np.float32) * self.noise
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------- scenes
def _camera(rng, height: int, width: int, moving: bool) -> Camera:
    world = np.array([width, height]) * WORLD
    zoom = rng.uniform(1.05, 1.25)
    room = (world - np.array([width, height]) / (zoom - 0.1)) / 2  # pan room at the smallest zoom
    amp = np.concatenate([rng.uniform(0, 0.5, (2, 2)) * room[:, None], rng.uniform(0, 0.05, (1, 2))]) * moving
    return Camera(base=np.array([*(world / 2), zoom]), amp=amp, freq=rng.uniform(0.005, 0.04, (3, 2)),
                  phase=rng.uniform(0, 2 * np.pi, (3, 2)), frame=(height, width))


def _object(rng, background: np.ndarray, camera: Camera, label: int, moving: bool, leaves: bool) -> HeldoutObject:
    """An object whose centre starts inside the camera window of frame 0."""
    (height, width), (wh, ww) = camera.frame, background.shape[:2]
    zoom = camera.matrix(0)[0, 0]
    size = rng.uniform(0.15, 0.45) * min(height, width) / zoom
    shape, texture = _shape(rng)
    camouflaged = rng.random() < CAMOUFLAGE
    if camouflaged:  # another region of the background, nearly the same colours
        y, x = rng.integers(0, wh - int(size) + 1), rng.integers(0, ww - int(size) + 1)
        texture = _tinted(rng, cv2.resize(background[y : y + int(size), x : x + int(size)], (PATCH, PATCH)), 0.06)
    elif texture is None:
        texture = _tinted(rng, _texture(rng, PATCH, PATCH, photo=0.6), 0.3)
    centre = np.linalg.solve(camera.matrix(0)[:, :2], np.array([width / 2, height / 2]) - camera.matrix(0)[:, 2])
    half = np.maximum(np.array([width, height]) / zoom / 2 - size * 0.6, 1)
    path = [centre + rng.uniform(-1, 1, 2) * half]
    if moving:
        path += list(rng.uniform(size / 2, np.array([ww, wh]) - size / 2, (int(rng.integers(3, 6)), 2)))
        if leaves:  # one waypoint well outside the world: the target leaves the view and comes back
            side = rng.integers(2)
            path[len(path) // 2][side] = -size if rng.random() < 0.5 else (ww, wh)[side] + size
    path = np.array(path)
    loop = np.hypot(*np.diff(np.vstack([path, path[:1]]), axis=0).T).sum()
    return HeldoutObject(shape, texture, label, path, period=max(loop / rng.uniform(1.5, 4.5), 1.0), size=size,
                         angle=rng.uniform(0, 360), spin=rng.uniform(-0.8, 0.8) * moving,
                         pulse=rng.uniform(0, 0.15) * moving, camouflaged=camouflaged)


def _look_alike(rng, target: HeldoutObject, moving: bool) -> HeldoutObject:
    """The target's shape and texture, retinted, unannotated, on the target's loop the other way round."""
    if moving and len(target.path) > 1:
        path = np.roll(target.path[::-1], int(rng.integers(1, len(target.path))), axis=0)
    else:
        path = target.path + rng.uniform(-1, 1, 2) * target.size * 1.5
    return replace(target, label=0, texture=_tinted(rng, target.texture, 0.15), path=path,
                   angle=rng.uniform(0, 360), camouflaged=False)


def _pole(rng, target: HeldoutObject, world: tuple[int, int]) -> tuple[np.ndarray, float, np.ndarray]:
    """A thin pole through a point of the target's path, mostly upright, spanning the world."""
    through = _catmull_rom(target.path, rng.random()) + rng.normal(0, target.size / 6, 2)
    angle = np.pi / 2 + rng.uniform(-0.5, 0.5) if rng.random() < 0.7 else rng.uniform(0, np.pi)
    reach = 2 * sum(world) * np.array([np.cos(angle), np.sin(angle)])
    return np.array([through - reach, through + reach]), rng.uniform(4, 12), rng.uniform(30, 220, 3).astype(np.uint8)


def _draw_scene(rng, height: int, width: int, moving: bool) -> HeldoutScene:
    world = (round(height * WORLD), round(width * WORLD))
    background = _texture(rng, *world, photo=0.8)
    camera = _camera(rng, height, width, moving)
    num = int(rng.integers(1, 4) if moving else rng.integers(2, 6))
    leaver = int(rng.integers(num)) if moving and rng.random() < 0.6 else -1
    targets = [_object(rng, background, camera, i + 1, moving, leaves=i == leaver) for i in range(num)]
    extras = [_look_alike(rng, targets[int(rng.integers(num))], moving)] if rng.random() < 0.7 else []
    if rng.random() < 0.5:  # an unannotated object of another shape
        extras.append(_object(rng, background, camera, 0, moving, leaves=False))
    objects = [(targets + extras)[i] for i in rng.permutation(len(targets) + len(extras))]
    poles = [_pole(rng, targets[int(rng.integers(num))], world) for _ in range(rng.choice([0, 1, 1, 2]))]
    drift = np.array([rng.uniform(0.03, 0.12) * moving, rng.uniform(0.01, 0.04), rng.uniform(0, 2 * np.pi),
                      rng.uniform(0, 0.04) * moving])
    return HeldoutScene(background, camera, objects, poles, num, drift, blur=rng.uniform(0, 0.9),
                        noise=rng.uniform(1, 4), noise_seed=int(rng.integers(2**63)))


def sample_heldout_scene(rng: np.random.Generator, height: int = 240, width: int = 320,
                         moving: bool = True) -> HeldoutScene:
    """A held-out scene whose targets all show >= MIN_PIXELS pixels on frame 0 (redrawn until they do).

    >>> scene = sample_heldout_scene(heldout_rng("images", 0, 0), 60, 80, moving=False)
    >>> scene.num_targets >= 2
    True
    """
    while True:
        scene = _draw_scene(rng, height, width, moving)
        rgb, labels = scene.render(0)
        counts = np.bincount(labels.ravel(), minlength=scene.num_targets + 1)
        if (counts[1 : scene.num_targets + 1] >= MIN_PIXELS).all() and all(
                target_contrast(rgb, labels, label) >= MIN_CONTRAST for label in range(1, scene.num_targets + 1)):
            return scene


def target_contrast(rgb: np.ndarray, labels: np.ndarray, label: int, ring: int = 5) -> float:
    """Mean absolute RGB difference between target ``label``'s pixels and the ``ring``-pixel
    band around it (every other pixel there, whatever it shows).

    >>> rgb = np.zeros((20, 20, 3), np.uint8); labels = np.zeros((20, 20), np.uint8)
    >>> rgb[5:15, 5:15], labels[5:15, 5:15] = 90, 1
    >>> target_contrast(rgb, labels, 1)
    90.0
    """
    mask = labels == label
    around = cv2.dilate(mask.astype(np.uint8), np.ones((2 * ring + 1,) * 2, np.uint8)) > 0
    band = around & ~mask
    if not band.any():
        return float("inf")
    return float(np.abs(rgb[mask].mean(0) - rgb[band].mean(0)).mean())


def heldout_video(seed: int, index: int, frames: int, height: int = 240,
                  width: int = 320) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Video ``index`` of held-out seed ``seed``: (RGB frames, label maps). To stream a long
    video instead, render ``sample_heldout_scene(heldout_rng("videos", seed, index), ...)``.

    >>> frames, labels = heldout_video(seed=0, index=0, frames=2, height=60, width=80)
    >>> frames[0].shape, labels[0].dtype, np.unique(labels[0])[:2].tolist()
    ((60, 80, 3), dtype('uint8'), [0, 1])
    """
    scene = sample_heldout_scene(heldout_rng("videos", seed, index), height, width)
    rendered = [scene.render(t) for t in range(frames)]
    return [rgb for rgb, _ in rendered], [labels for _, labels in rendered]


def heldout_image(seed: int, index: int, height: int = 240, width: int = 320) -> tuple[np.ndarray, np.ndarray]:
    """Image ``index`` of held-out seed ``seed``: a still scene of 2-5 targets, (rgb, labels).

    >>> rgb, labels = heldout_image(0, 0, 60, 80)
    >>> bool((heldout_image(0, 0, 60, 80)[0] == rgb).all())
    True
    """
    return sample_heldout_scene(heldout_rng("images", seed, index), height, width, moving=False).render(0)


# ---------------------------------------------------------------------------- sets
def write_heldout_image_set(out: str | Path, num: int, seed: int, height: int = 240, width: int = 320,
                            overwrite: bool = False) -> None:
    """COCO-format set: ``out/images/*.jpg`` + ``out/annotations.json`` (RLE masks, boxes; instances
    under MIN_PIXELS skipped). A non-empty ``out`` is refused unless ``overwrite``.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "images"
    >>> write_heldout_image_set(out, num=1, seed=0, height=60, width=80)
    >>> sorted(p.name for p in out.iterdir())  # and the listing of what was written
    ['.mixqsam2-outputs.json', 'annotations.json', 'images']
    """
    images, annotations = [], []
    with atomic_output_dir(out, overwrite, kind="image set") as tmp:
        (tmp / "images").mkdir()
        for index in tqdm(range(num), desc="held-out images", unit="img"):
            rgb, labels = heldout_image(seed, index, height, width)
            name = f"{index:06d}.jpg"
            Image.fromarray(rgb).save(tmp / "images" / name, quality=95)
            images.append({"id": index, "file_name": name, "height": height, "width": width})
            for label in range(1, int(labels.max()) + 1):
                mask = labels == label
                if mask.sum() < MIN_PIXELS:
                    continue
                ys, xs = np.nonzero(mask)
                bbox = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
                annotations.append({"id": len(annotations) + 1, "image_id": index, "category_id": 1, "iscrowd": 0,
                                    "segmentation": encode_rle(mask), "area": int(mask.sum()), "bbox": bbox})
        coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "object"}]}
        (tmp / "annotations.json").write_text(json.dumps(coco))


def write_heldout_video_set(out: str | Path, num: int, frames: int, seed: int, height: int = 240, width: int = 320,
                            overwrite: bool = False) -> None:
    """DAVIS layout: ``out/JPEGImages/<vid>/00000.jpg`` + ``out/Annotations/<vid>/00000.png``
    (palette PNGs, ids 1..n), rendered one frame at a time. A non-empty ``out`` is refused
    unless ``overwrite``."""
    with atomic_output_dir(out, overwrite, kind="video set") as tmp:
        for index in tqdm(range(num), desc="held-out videos", unit="video"):
            scene = sample_heldout_scene(heldout_rng("videos", seed, index), height, width)
            name = f"vid{index:04d}"
            (tmp / "JPEGImages" / name).mkdir(parents=True)
            (tmp / "Annotations" / name).mkdir(parents=True)
            for t in range(frames):
                rgb, labels = scene.render(t)
                Image.fromarray(rgb).save(tmp / "JPEGImages" / name / f"{t:05d}.jpg", quality=95)
                write_label_png(tmp / "Annotations" / name / f"{t:05d}.png", labels)


def cached_heldout_set(cache: str | Path, kind: str, **spec) -> Path:
    """A held-out ``kind`` set ("images": ``num, seed``; "videos": ``num, frames, seed``) in
    ``cache``, made once and reused; its folder name holds the spec and the version.

    >>> import tempfile
    >>> cached_heldout_set(tempfile.mkdtemp(), "videos", num=1, frames=2, seed=5, height=60, width=80).name
    'heldout-videos-num1-frames2-seed5-height60-width80-v2'
    """
    if kind not in SEED_SPACES:
        raise UserInputError(f"unknown held-out set kind {kind!r} (images or videos)")
    path = Path(cache) / "-".join(["heldout", kind, *(f"{k}{v}" for k, v in spec.items()), f"v{HELDOUT_VERSION}"])
    if not path.is_dir():
        try:
            (write_heldout_image_set if kind == "images" else write_heldout_video_set)(path, **spec)
        except UserInputError:
            if not path.is_dir():  # not another process that made the same set meanwhile
                raise
    return path
