"""Draw one synthetic flower: a muted textured background, petals around a centre disk, antialiased.

Each flower is drawn once at twice the largest output size and downsampled with Lanczos to every size, so
edges are smooth at 32, 64 and 128 px alike. The colours are chosen so an attribute classifier can tell them
apart at 32 px: petal colours differ clearly in hue or lightness, the shade jitter of one colour never
reaches another, and the centre disk is at least 30% of the flower's radius.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

# Name -> RGB. Names are what the captions say, so they are the words of the Oxford captions.
PETAL_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 25, 30),
    "orange": (250, 135, 20),
    "yellow": (250, 225, 40),
    "white": (248, 248, 245),
    "pink": (255, 150, 200),
    "purple": (125, 45, 175),
    "blue": (35, 85, 230),
    "green": (120, 215, 60),
}
CENTRE_COLOURS: dict[str, tuple[int, int, int]] = {
    "yellow": (250, 215, 30),
    "orange": (245, 120, 15),
    "brown": (110, 60, 25),
    "black": (25, 22, 20),
    "white": (250, 250, 250),
    "green": (70, 160, 40),
}
PETAL_SHAPES = ("round", "pointed")
PETAL_COUNTS = (3, 4, 5, 6, 7, 8)
# Flower radius as a fraction of half the image side.
FLOWER_SIZES: dict[str, tuple[float, float]] = {
    "small": (0.45, 0.55),
    "medium": (0.62, 0.72),
    "large": (0.80, 0.90),
}
# Dark, low-saturation backgrounds (foliage, soil, stone, dusk) so every petal colour stands out.
BACKGROUNDS = np.array([
    (40, 62, 35), (78, 84, 48), (86, 64, 46), (96, 98, 92), (62, 74, 88), (30, 34, 30), (70, 52, 60),
], dtype=np.float32)

SUPERSAMPLE = 2  # draw at this multiple of the largest size, then downsample


def _shade(rgb, factor: float) -> tuple[int, int, int]:
    """Scale brightness by `factor`, keeping the hue (white gets greyer, not tinted)."""
    return tuple(min(int(c * factor), 255) for c in rgb)


_LOW = 48  # the background is made at this size and upscaled: cheap, and naturally blurred
_GRID_Y, _GRID_X = np.mgrid[0:_LOW, 0:_LOW] / (_LOW - 1) - 0.5


def _background(rng: np.random.Generator, side: int) -> Image.Image:
    """A gradient between two muted colours with soft blotches (leaves, bokeh) and fine noise."""
    low = _LOW
    a, b = BACKGROUNDS[rng.choice(len(BACKGROUNDS), size=2)]
    angle = rng.uniform(0, 2 * np.pi)
    t = np.clip(0.5 + (_GRID_X * np.cos(angle) + _GRID_Y * np.sin(angle)), 0, 1)[..., None]
    img = a * (1 - t) + b * t
    img += rng.normal(0, 6, size=(low, low, 1))  # luminance grain
    canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(rng.integers(2, 6)):
        cx, cy = rng.uniform(0, low, size=2)
        rx, ry = rng.uniform(3, 12, size=2)
        tone = BACKGROUNDS[rng.integers(len(BACKGROUNDS))] * rng.uniform(0.8, 1.2)
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=tuple(np.clip(tone, 0, 255).astype(int)))
    # Smooth upscaling to the output size, then pixel doubling to the drawing size: the supersampling average
    # undoes the doubling, so the background costs a quarter of a smooth upscale to the drawing size.
    smooth = canvas.resize((side // SUPERSAMPLE,) * 2, Image.BILINEAR)
    return smooth.resize((side, side), Image.NEAREST)


def _petal_outline(shape: str, length: float, width: float, samples: int = 24) -> np.ndarray:
    """Polygon of one petal pointing along +x from the origin: [2 * samples, 2] points (x, y)."""
    t = np.linspace(0.0, 1.0, samples)
    if shape == "round":
        # An ellipse from 0.1 to 1.0 of the length: a blunt, rounded tip.
        half = width * np.sqrt(np.clip(1 - ((t - 0.55) / 0.45) ** 2, 0, 1))
    else:
        # Widest a third of the way out, narrowing linearly to a sharp tip.
        half = width * 2.6 * np.sqrt(t) * (1 - t)
    x = t * length
    upper = np.stack([x, half], axis=1)
    lower = np.stack([x[::-1], -half[::-1]], axis=1)
    return np.concatenate([upper, lower])


def draw_flower(rng: np.random.Generator, petal_colour: str, centre_colour: str, petal_count: int,
                petal_shape: str, flower_size: str, sizes: tuple[int, ...]) -> dict[int, np.ndarray]:
    """Render one flower with the given attributes; the rest (pose, shade, background) comes from `rng`.

    Returns {size: uint8 [size, size, 3]} for every requested size.
    """
    side = SUPERSAMPLE * max(sizes)
    image = _background(rng, side)
    draw = ImageDraw.Draw(image)

    half = side / 2
    radius = half * rng.uniform(*FLOWER_SIZES[flower_size])
    slack = max(half - radius * 0.9, 0.0)  # let the flower wander, never far out of frame
    centre = np.array([half, half]) + rng.uniform(-slack, slack, size=2)
    rotation = rng.uniform(0, 2 * np.pi)

    base = PETAL_COLOURS[petal_colour]
    shade = rng.uniform(0.88, 1.05)  # small enough that no colour drifts into another
    width = radius * min(0.42, 1.15 * np.sin(np.pi / petal_count))
    outline = _petal_outline(petal_shape, radius, width)
    inner = _petal_outline(petal_shape, radius * 0.8, width * 0.55)
    for k in range(petal_count):
        angle = rotation + 2 * np.pi * k / petal_count + rng.normal(0, 0.05)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        petal_shade = shade * rng.uniform(0.96, 1.02)
        for polygon, factor in ((outline, 0.78), (outline * 0.97, 1.0), (inner, 1.08)):
            points = polygon @ rot.T + centre
            draw.polygon(points.ravel().tolist(), fill=_shade(base, petal_shade * factor))

    disk = radius * rng.uniform(0.30, 0.38)
    core = CENTRE_COLOURS[centre_colour]
    cx, cy = centre
    draw.ellipse((cx - disk, cy - disk, cx + disk, cy + disk), fill=_shade(core, 0.85))
    draw.ellipse((cx - disk * 0.9, cy - disk * 0.9, cx + disk * 0.9, cy + disk * 0.9),
                 fill=_shade(core, rng.uniform(0.95, 1.02)))
    # Seeds: a few speckles inside the disk, in a slightly darker tone of the same colour.
    speck = max(disk * 0.08, 1.0)
    for _ in range(int(rng.integers(5, 12))):
        r, a = disk * 0.7 * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
        sx, sy = cx + r * np.cos(a), cy + r * np.sin(a)
        draw.ellipse((sx - speck, sy - speck, sx + speck, sy + speck), fill=_shade(core, 0.8))

    # Halve with a box filter (the supersampling average), then Lanczos from the nearest larger result.
    out = {}
    current = image.reduce(SUPERSAMPLE)
    for size in sorted(sizes, reverse=True):
        if current.width != size:
            current = current.resize((size, size), Image.LANCZOS)
        out[size] = np.asarray(current)
    return out


def render_chunk(task: tuple) -> int:
    """Worker: draw images ``start..stop`` into the memory-mapped ``images_<size>.npy`` files being written.

    ``task`` is ``(paths, start, stop, attributes, seed)`` with ``paths`` {size: file} and ``attributes`` one
    (petal_colour, centre_colour, petal_count, petal_shape, flower_size) tuple per image. Each image has its
    own random stream seeded by (seed, index), so the result does not depend on how the work is split.
    """
    paths, start, stop, attributes, seed = task
    sizes = tuple(paths)
    arrays = {size: np.load(path, mmap_mode="r+", allow_pickle=False) for size, path in paths.items()}
    for index, row in zip(range(start, stop), attributes):
        images = draw_flower(np.random.default_rng([seed, index]), *row, sizes=sizes)
        for size in sizes:
            arrays[size][index] = images[size]
    for array in arrays.values():
        array.flush()
    return stop - start
