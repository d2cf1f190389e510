"""A procedural street scene in perspective: the photo and its label colour codes, vectorised NumPy.

The camera sits 1 world unit (about 1.5 m) above a flat ground plane and looks down a street towards
a vanishing point on the horizon. A point at lateral offset X, depth Z and elevation z projects to
    x = vanish_x + s * X,    y = horizon + s * (1 - z),    s = focal / Z  (pixels per world unit).
Road and sidewalk share one asphalt texture with no curb line: locally they look the same, and only
their place in the scene (the sidewalk is the strip between the road and the buildings) tells them
apart, so a model needs global context to separate them.

A share of the streets (`pedestrian_share`, 0 unless asked for) can lie in the pedestrianised old town:
pastel houses, no cars, people walking anywhere, and the whole paving labelled sidewalk. The paving looks
exactly like a road; only the rest of the scene (the houses, the missing cars) says which district this is.
Notebook 08 uses it to give the pyramid pooling module's global context something to decide.

Labels are rendered as "colour codes": row indices into `palette.COLOR_TABLE`, so void labels
(ego vehicle, parking) keep their own colours in the label image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from pspnet_lib.data.palette import COLOR_TABLE_IDS, color_index_of

CODE = {name: color_index_of(name) for name in (
    "road", "sidewalk", "building", "pole", "traffic light", "traffic sign", "vegetation", "terrain",
    "sky", "person", "car", "ego vehicle", "parking",
)}  # fmt: skip

ASPHALT_NOISE = 0.10  # relative brightness variation of the shared road / sidewalk texture
FOLIAGE_GREENS = np.array([(0.22, 0.34, 0.12), (0.28, 0.40, 0.16), (0.18, 0.30, 0.14), (0.32, 0.38, 0.18)])
FACADE_COLORS = np.array([
    (0.55, 0.55, 0.55), (0.70, 0.66, 0.58), (0.60, 0.42, 0.34), (0.78, 0.76, 0.72), (0.46, 0.47, 0.50),
    (0.66, 0.58, 0.44),
])  # fmt: skip
OLD_TOWN_COLORS = np.array([
    (0.86, 0.70, 0.36), (0.84, 0.56, 0.52), (0.56, 0.70, 0.84), (0.62, 0.80, 0.64), (0.80, 0.46, 0.32),
    (0.90, 0.84, 0.62),
])  # fmt: skip  (ochre, rose, sky blue, mint, terracotta, cream plaster)
CAR_COLORS = np.array([
    (0.10, 0.10, 0.12), (0.75, 0.75, 0.78), (0.55, 0.08, 0.08), (0.10, 0.18, 0.40), (0.85, 0.85, 0.82),
    (0.35, 0.36, 0.38),
])  # fmt: skip


@dataclass(frozen=True)
class Camera:
    """Pinhole camera 1 unit above the ground, looking along +Z."""

    height: int
    width: int
    horizon: float
    vanish_x: float
    focal: float

    def rows(self) -> np.ndarray:
        """Pixel-centre y coordinates as a (H, 1) column."""
        return np.arange(self.height, dtype=np.float32)[:, None] + 0.5

    def cols(self) -> np.ndarray:
        """Pixel-centre x coordinates as a (1, W) row."""
        return np.arange(self.width, dtype=np.float32)[None, :] + 0.5

    def ground_scale(self) -> np.ndarray:
        """Pixels per world unit of the ground seen by each row, (H, 1); 0 at and above the horizon."""
        return np.maximum(self.rows() - self.horizon, 0.0)


@dataclass(frozen=True)
class Block:
    """A stretch of street frontage: a building (with windows) or a park (a wall of foliage)."""

    start: float
    is_park: bool
    height: float
    color: np.ndarray
    window_spacing: float
    floor_height: float


@dataclass(frozen=True)
class District:
    """What a street's frontage looks like, and whether its paving is a pedestrian zone."""

    facade_colors: np.ndarray
    park_share: float
    front_heights: tuple[float, float]
    back_heights: tuple[float, float]
    block_lengths: tuple[float, float]
    pedestrian_zone: bool


CITY_CENTRE = District(FACADE_COLORS, 0.2, (4.0, 14.0), (10.0, 24.0), (5.0, 16.0), pedestrian_zone=False)
OLD_TOWN = District(OLD_TOWN_COLORS, 0.0, (4.0, 12.0), (8.0, 16.0), (4.0, 10.0), pedestrian_zone=True)


@dataclass(frozen=True)
class StreetSide:
    """One side of the street, measured outward from the road edge (sign -1 left, +1 right)."""

    sign: int
    road_edge: float
    sidewalk: float
    verge: float
    verge_code: int
    blocks: tuple[Block, ...]
    back_blocks: tuple[Block, ...]

    @property
    def sidewalk_edge(self) -> float:
        """Unsigned lateral distance of the sidewalk's outer edge."""
        return self.road_edge + self.sidewalk

    @property
    def facade(self) -> float:
        """Unsigned lateral distance of the front facade plane."""
        return self.sidewalk_edge + self.verge


@dataclass
class Canvas:
    """The photo being painted (H, W, 3 float in [0, 1]) and its colour codes (H, W)."""

    image: np.ndarray
    codes: np.ndarray
    grain: np.ndarray
    leaf_shade: np.ndarray

    def paint(
        self,
        where: np.ndarray,
        code: int,
        color: np.ndarray,
        texture: float = 0.08,
        shade: np.ndarray | None = None,
    ) -> None:
        """Paint `color` (RGB or per-pixel (H, W, 3)) where `where` is true, times `shade` or a grain."""
        pixels = np.nonzero(where)
        color = np.asarray(color, np.float32)
        picked = color if color.ndim == 1 else np.broadcast_to(color, self.image.shape)[pixels]
        factor = shade[pixels] if shade is not None else 1.0 + texture * self.grain[pixels]
        self.image[pixels] = picked * factor[:, None]
        self.codes[pixels] = code

    def paint_foliage(self, where: np.ndarray, green: np.ndarray) -> None:
        """Paint vegetation: `green` under a strongly varying leafy shade."""
        self.paint(where, CODE["vegetation"], green, shade=self.leaf_shade)


def smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Zero-mean, unit-ish noise that varies smoothly over about `cell` pixels, (H, W) float32."""
    coarse = rng.standard_normal((max(2, int(height / cell) + 2), max(2, int(width / cell) + 2)))
    resized = Image.fromarray(coarse.astype(np.float32), mode="F").resize((width, height), Image.BILINEAR)
    return np.asarray(resized, dtype=np.float32)


def fractal_noise(rng: np.random.Generator, height: int, width: int, cells: tuple[float, ...]) -> np.ndarray:
    """Sum of `smooth_noise` octaves, coarse to fine, each half as strong as the previous."""
    return sum(0.5**i * smooth_noise(rng, height, width, cell) for i, cell in enumerate(cells))


def random_camera(rng: np.random.Generator, height: int, width: int) -> Camera:
    """A camera with a random horizon height and vanishing point."""
    return Camera(
        height=height,
        width=width,
        horizon=height * rng.uniform(0.36, 0.48),
        vanish_x=width * rng.uniform(0.38, 0.62),
        focal=float(width),
    )


def random_blocks(
    rng: np.random.Generator,
    park_share: float,
    height_range: tuple[float, float],
    district: District = CITY_CENTRE,
) -> tuple[Block, ...]:
    """Frontage blocks from depth 0 to beyond the horizon (the last block never ends)."""
    colors, blocks, start = district.facade_colors, [], 0.0
    while start < 120.0:
        blocks.append(Block(
            start=start,
            is_park=bool(rng.random() < park_share),
            height=rng.uniform(*height_range),
            color=colors[rng.integers(len(colors))] * rng.uniform(0.85, 1.15),
            window_spacing=rng.uniform(1.4, 2.4),
            floor_height=rng.uniform(1.7, 2.3),
        ))  # fmt: skip
        start += rng.uniform(*district.block_lengths)
    return tuple(blocks)


def random_side(rng: np.random.Generator, sign: int, district: District = CITY_CENTRE) -> StreetSide:
    """One side of a random street in `district`."""
    has_verge = rng.random() < 0.6
    return StreetSide(
        sign=sign,
        road_edge=rng.uniform(1.4, 2.6),
        sidewalk=rng.uniform(1.0, 2.2),
        verge=rng.uniform(0.6, 1.6) if has_verge else 0.0,
        verge_code=CODE["terrain"] if rng.random() < 0.5 else CODE["parking"],
        blocks=random_blocks(rng, district.park_share, district.front_heights, district),
        back_blocks=random_blocks(rng, 0.0, district.back_heights, district),
    )


def block_lookup(blocks: tuple[Block, ...], depth: np.ndarray) -> np.ndarray:
    """Index of the block covering each depth."""
    starts = np.array([block.start for block in blocks])
    return np.clip(np.searchsorted(starts, depth, side="right") - 1, 0, len(blocks) - 1)


def paint_sky(canvas: Canvas, camera: Camera, rng: np.random.Generator) -> None:
    """Blue or overcast sky, lighter towards the horizon, with soft clouds."""
    zenith = np.array((0.35, 0.55, 0.85)) if rng.random() < 0.5 else np.array((0.70, 0.74, 0.80))
    haze = np.array((0.88, 0.90, 0.93))
    t = np.clip(camera.rows() / max(camera.horizon, 1.0), 0.0, 1.0)[..., None]
    clouds = 0.12 * smooth_noise(rng, camera.height, camera.width, 40.0)[..., None]
    color = (1 - t) * zenith + t * haze + clouds
    canvas.paint(np.ones_like(canvas.codes, bool), CODE["sky"], color, texture=0.0)


def paint_skyline(canvas: Canvas, camera: Camera, rng: np.random.Generator) -> None:
    """Distant buildings at the end of the street, a band of random heights above the horizon."""
    widths = rng.integers(4, 16, size=camera.width)
    block_of_col = np.repeat(np.arange(camera.width), widths)[: camera.width]
    heights = rng.uniform(0.02, 0.12, size=camera.width)[block_of_col] * camera.height
    shades = rng.uniform(0.5, 0.7, size=camera.width)[block_of_col]
    top = camera.horizon - heights[None, :]
    where = (camera.rows() >= top) & (camera.rows() < camera.horizon + 1)
    canvas.paint(where, CODE["building"], np.repeat(shades[None, :, None], 3, -1) * 0.9, texture=0.05)


def paint_ground(
    canvas: Canvas, camera: Camera, sides: tuple[StreetSide, StreetSide], rng: np.random.Generator
) -> None:
    """Road and sidewalks (one shared asphalt texture), then verges of terrain or parking."""
    scale = camera.ground_scale()
    below = (scale > 0) & np.ones((1, camera.width), bool)
    lateral = (camera.cols() - camera.vanish_x) / np.maximum(scale, 1e-3)
    depth = camera.focal / np.maximum(scale, 1e-3) * np.ones((1, camera.width))
    grey = rng.uniform(0.32, 0.48)
    asphalt = np.array((grey, grey, grey * rng.uniform(0.98, 1.06)))
    texture = 1.0 + ASPHALT_NOISE * fractal_noise(rng, camera.height, camera.width, (24.0, 6.0, 2.0))
    canvas.paint(below, CODE["road"], asphalt * texture[..., None], texture=0.0)
    grass = np.array((0.45, 0.55, 0.28)) * rng.uniform(0.85, 1.1)
    paving = np.array((0.62, 0.58, 0.55)) * rng.uniform(0.85, 1.1)
    for side in sides:
        outward = side.sign * lateral
        canvas.codes[below & (outward >= side.road_edge)] = CODE["sidewalk"]
        in_park = np.array([block.is_park for block in side.blocks])[block_lookup(side.blocks, depth)]
        verge = below & (outward >= side.sidewalk_edge)
        grass_here = verge & ((side.verge_code == CODE["terrain"]) | in_park)
        canvas.paint(grass_here, CODE["terrain"], grass, texture=0.25)
        canvas.paint(verge & ~grass_here, side.verge_code, paving, texture=0.15)


def facade_geometry(
    camera: Camera, side: StreetSide, distance: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of a facade plane `distance` out: scale (px/unit), depth, and per-pixel elevation."""
    offset = side.sign * (camera.cols() - camera.vanish_x)
    scale = np.maximum(offset / distance, 0.0)
    depth = camera.focal / np.maximum(scale, 1e-3)
    elevation = 1.0 - (camera.rows() - camera.horizon) / np.maximum(scale, 1e-3)
    return scale, depth, elevation


def paint_facades(
    canvas: Canvas,
    camera: Camera,
    side: StreetSide,
    blocks: tuple[Block, ...],
    distance: float,
    rng: np.random.Generator,
) -> None:
    """Building fronts with windows (and park foliage) on the vertical plane `distance` from the centre line."""
    scale, depth, elevation = facade_geometry(camera, side, distance)
    index = block_lookup(blocks, depth)
    bumps = 0.12 * smooth_noise(rng, 1, camera.width, 6.0)
    is_park = np.array([b.is_park for b in blocks])[index]
    height = np.array([b.height for b in blocks])[index] * np.where(is_park, 1.0 + bumps, 1.0)
    visible = (scale > 0.05) & (elevation >= 0.0) & (elevation < height)
    lit = 1.0 if side.sign > 0 else 0.8
    colors = np.array([b.color for b in blocks])[index] * lit
    spacing = np.array([b.window_spacing for b in blocks])[index]
    floor = np.array([b.floor_height for b in blocks])[index]
    windows = (
        ((depth / spacing) % 1.0 < 0.55)
        & (scale > 2.0)
        & ((elevation / floor) % 1.0 > 0.35)
        & (elevation > 1.6)
        & (elevation < height - 0.6)
    )
    building = visible & ~is_park
    canvas.paint(building, CODE["building"], colors, texture=0.06)
    canvas.paint(building & windows, CODE["building"], np.array((0.16, 0.20, 0.26)), texture=0.5)
    canvas.paint_foliage(visible & is_park, random_green(rng))


Painter = Callable[[Canvas, Camera], None]


def box_mask(
    camera: Camera, lateral: float, depth: float, half_width: float, bottom: float, top: float
) -> np.ndarray:
    """Pixels covered by an upright rectangle facing the camera (at least one pixel wide)."""
    scale = camera.focal / depth
    x0 = camera.vanish_x + scale * (lateral - half_width)
    x1 = max(camera.vanish_x + scale * (lateral + half_width), x0 + 1.0)
    y0 = camera.horizon + scale * (1.0 - top)
    y1 = camera.horizon + scale * (1.0 - bottom)
    cols, rows = camera.cols(), camera.rows()
    return (cols >= x0) & (cols < x1) & (rows >= y0) & (rows < y1)


def ellipse_mask(
    camera: Camera, lateral: float, depth: float, center: float, radii: tuple[float, float]
) -> np.ndarray:
    """Pixels inside an upright ellipse facing the camera, centred at elevation `center`."""
    scale = camera.focal / depth
    dx = (camera.cols() - camera.vanish_x - scale * lateral) / (scale * radii[0])
    dy = (camera.rows() - camera.horizon - scale * (1.0 - center)) / (scale * radii[1])
    return dx**2 + dy**2 < 1.0


def car_painter(rng: np.random.Generator, lateral: float, depth: float) -> Painter:
    """A car seen from behind: body, rear window, wheels, tail lights."""
    body = CAR_COLORS[rng.integers(len(CAR_COLORS))] * rng.uniform(0.85, 1.1)

    def paint(canvas: Canvas, camera: Camera) -> None:
        """Paint this car."""
        code = CODE["car"]
        canvas.paint(box_mask(camera, lateral, depth, 0.62, 0.22, 0.72), code, body)
        canvas.paint(box_mask(camera, lateral, depth, 0.50, 0.72, 0.98), code, body * 0.9)
        canvas.paint(box_mask(camera, lateral, depth, 0.42, 0.75, 0.94), code, np.array((0.12, 0.14, 0.18)))
        for wheel in (-0.45, 0.45):
            canvas.paint(
                box_mask(camera, lateral + wheel, depth, 0.14, 0.0, 0.24), code, np.array((0.05,) * 3)
            )
        for light in (-0.52, 0.52):
            canvas.paint(
                box_mask(camera, lateral + light, depth, 0.08, 0.52, 0.62), code, np.array((0.8, 0.1, 0.1))
            )

    return paint


def person_painter(rng: np.random.Generator, lateral: float, depth: float) -> Painter:
    """A standing pedestrian: legs, torso, head."""
    trousers, shirt = rng.uniform(0.05, 0.6, size=(2, 3))
    skin = np.array((0.85, 0.65, 0.5)) * rng.uniform(0.5, 1.1)
    size = rng.uniform(0.9, 1.1)

    def paint(canvas: Canvas, camera: Camera) -> None:
        """Paint this person."""
        code = CODE["person"]
        canvas.paint(box_mask(camera, lateral, depth, 0.13 * size, 0.0, 0.55 * size), code, trousers)
        canvas.paint(box_mask(camera, lateral, depth, 0.19 * size, 0.55 * size, 1.02 * size), code, shirt)
        canvas.paint(ellipse_mask(camera, lateral, depth, 1.1 * size, (0.08 * size, 0.1 * size)), code, skin)

    return paint


def pole_painter(rng: np.random.Generator, lateral: float, depth: float) -> Painter:
    """A grey pole carrying a traffic sign or a traffic light."""
    height = rng.uniform(2.6, 3.6)
    has_light = rng.random() < 0.35
    sign_color = np.array(
        [(0.1, 0.25, 0.7), (0.85, 0.1, 0.1), (0.9, 0.9, 0.9), (0.95, 0.8, 0.1)][rng.integers(4)]
    )
    lamp_height = height - 0.2 - 0.25 * rng.integers(3)

    def paint(canvas: Canvas, camera: Camera) -> None:
        """Paint this pole and what it carries."""
        canvas.paint(
            box_mask(camera, lateral, depth, 0.05, 0.0, height), CODE["pole"], np.array((0.5, 0.5, 0.52))
        )
        if has_light:
            housing = box_mask(camera, lateral, depth, 0.16, height - 0.9, height)
            canvas.paint(housing, CODE["traffic light"], np.array((0.08, 0.08, 0.08)))
            lamp = ellipse_mask(camera, lateral, depth, lamp_height, (0.09, 0.09))
            canvas.paint(lamp & housing, CODE["traffic light"], np.array((0.2, 0.9, 0.3)))
        else:
            canvas.paint(
                box_mask(camera, lateral, depth, 0.3, height - 0.6, height), CODE["traffic sign"], sign_color
            )

    return paint


def tree_painter(rng: np.random.Generator, lateral: float, depth: float) -> Painter:
    """A street tree: trunk and a bumpy crown (both vegetation, as in Cityscapes)."""
    radius = rng.uniform(1.0, 2.0)
    center = rng.uniform(2.8, 4.2)
    lumps = rng.uniform(-0.2, 0.2, size=3)
    green = random_green(rng)

    def paint(canvas: Canvas, camera: Camera) -> None:
        """Paint this tree."""
        code = CODE["vegetation"]
        canvas.paint(box_mask(camera, lateral, depth, 0.1, 0.0, center), code, np.array((0.3, 0.22, 0.15)))
        crown = ellipse_mask(camera, lateral, depth, center, (radius, radius * 0.85))
        for i, lump in enumerate(lumps):
            crown |= ellipse_mask(
                camera, lateral + (i - 1) * radius * 0.6, depth, center + lump, (radius * 0.6,) * 2
            )
        canvas.paint_foliage(crown, green)

    return paint


def random_green(rng: np.random.Generator) -> np.ndarray:
    """A foliage green with some brightness variation."""
    return FOLIAGE_GREENS[rng.integers(len(FOLIAGE_GREENS))] * rng.uniform(0.85, 1.15)


def random_objects(
    rng: np.random.Generator, sides: tuple[StreetSide, StreetSide], pedestrian_zone: bool = False
) -> list[tuple[float, Painter]]:
    """Cars on the road (people instead in a pedestrian zone), people on the sidewalks, poles and trees, with depths."""
    left, right = sides
    objects: list[tuple[float, Painter]] = []
    if pedestrian_zone:
        for _ in range(rng.integers(3, 9)):
            lateral = rng.uniform(-left.sidewalk_edge + 0.3, right.sidewalk_edge - 0.3)
            depth = rng.uniform(3.0, 40.0)
            objects.append((depth, person_painter(rng, lateral, depth)))
    for _ in range(0 if pedestrian_zone else rng.integers(2, 6)):
        lateral, depth = rng.uniform(-left.road_edge + 0.7, right.road_edge - 0.7), rng.uniform(5.0, 50.0)
        objects.append((depth, car_painter(rng, lateral, depth)))
    for side in sides:
        if not pedestrian_zone and rng.random() < 0.5:
            for depth in np.cumsum(rng.uniform(3.5, 8.0, size=rng.integers(1, 6))):
                objects.append((depth, car_painter(rng, side.sign * (side.road_edge - 0.7), depth)))
        for _ in range(rng.integers(0, 4)):
            depth = rng.uniform(3.0, 40.0)
            objects.append(
                (
                    depth,
                    person_painter(
                        rng, side.sign * (side.road_edge + rng.uniform(0.3, side.sidewalk)), depth
                    ),
                )
            )
        for depth in np.cumsum(rng.uniform(6.0, 30.0, size=3)):
            objects.append((depth, pole_painter(rng, side.sign * (side.road_edge + 0.25), depth)))
        if rng.random() < 0.6:
            for depth in np.cumsum(rng.uniform(4.0, 14.0, size=5)):
                objects.append((depth, tree_painter(rng, side.sign * (side.sidewalk_edge - 0.1), depth)))
    return objects


def paint_ego_vehicle(canvas: Canvas, camera: Camera, rng: np.random.Generator) -> None:
    """The bonnet of the recording car along the bottom edge (void, like in Cityscapes)."""
    offset = (camera.cols() - camera.width / 2) / camera.width
    top = camera.height * (1.0 - rng.uniform(0.08, 0.16)) + 0.12 * camera.height * offset**2
    where = camera.rows() >= top
    shine = np.clip(1.0 - 2.0 * np.abs(offset), 0, 1)[..., None] * 0.15
    canvas.paint(
        where & np.ones_like(canvas.codes, bool), CODE["ego vehicle"], np.array((0.12, 0.13, 0.15)) + shine
    )


def apply_lighting(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Global exposure and tint, a soft vignette and sensor noise; returns uint8."""
    height, width = image.shape[:2]
    gain = rng.uniform(0.75, 1.15) * rng.uniform(0.93, 1.07, size=3)
    ys, xs = np.mgrid[-1 : 1 : height * 1j, -1 : 1 : width * 1j]
    vignette = 1.0 - 0.18 * (xs**2 + ys**2) / 2
    noise = 0.015 * rng.standard_normal(image.shape, dtype=np.float32)
    noisy = image * (gain * vignette[..., None]).astype(np.float32) + noise
    return (np.clip(noisy, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def check_pedestrian_share(pedestrian_share: float) -> float:
    """`pedestrian_share` as a float, or a ValueError naming it unless it is a number in [0, 1]."""
    if isinstance(pedestrian_share, bool) or not isinstance(pedestrian_share, int | float):
        raise ValueError(f"pedestrian_share must be a number in [0, 1], got {pedestrian_share!r}")
    if not 0.0 <= pedestrian_share <= 1.0:
        raise ValueError(f"pedestrian_share must be in [0, 1] (a share of the streets), got {pedestrian_share}")
    return float(pedestrian_share)


def random_district(rng: np.random.Generator, pedestrian_share: float) -> District:
    """The old town with probability `pedestrian_share`, else the city centre (no random draw when it is 0)."""
    if check_pedestrian_share(pedestrian_share) > 0 and rng.random() < pedestrian_share:
        return OLD_TOWN
    return CITY_CENTRE


def render_street(
    rng: np.random.Generator, height: int = 256, width: int = 256, pedestrian_share: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Render one random street scene: (photo uint8 (H, W, 3), colour codes uint8 (H, W)).

    With probability `pedestrian_share` the street is an old-town pedestrian zone (see the module docstring).
    """
    district = random_district(rng, pedestrian_share)
    camera = random_camera(rng, height, width)
    canvas = Canvas(
        image=np.zeros((height, width, 3), np.float32),
        codes=np.zeros((height, width), np.uint8),
        grain=smooth_noise(rng, height, width, 3.0),
        leaf_shade=np.clip(1.0 + 0.35 * fractal_noise(rng, height, width, (10.0, 3.0, 1.5)), 0.3, 1.8),
    )
    sides = (random_side(rng, -1, district), random_side(rng, +1, district))
    paint_sky(canvas, camera, rng)
    paint_skyline(canvas, camera, rng)
    paint_ground(canvas, camera, sides, rng)
    if district.pedestrian_zone:  # the same paving, all of it for pedestrians
        canvas.codes[canvas.codes == CODE["road"]] = CODE["sidewalk"]
    for side in sides:
        paint_facades(canvas, camera, side, side.back_blocks, side.facade + rng.uniform(4.0, 8.0), rng)
        paint_facades(canvas, camera, side, side.blocks, side.facade, rng)
    objects = random_objects(rng, sides, district.pedestrian_zone)
    for _, painter in sorted(objects, key=lambda item: -item[0]):
        painter(canvas, camera)
    paint_ego_vehicle(canvas, camera, rng)
    return apply_lighting(canvas.image, rng), canvas.codes


def codes_to_ids(codes: np.ndarray) -> np.ndarray:
    """Colour codes -> train ids (void colours -> 255)."""
    return COLOR_TABLE_IDS[codes]
