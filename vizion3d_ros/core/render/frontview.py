"""A synthetic camera image of a coloured point cloud, for segmenting clouds that come without a photo.

Each pixel shows the colour of the nearest point that covers it. Sparse clouds get a footprint per
point (the same automatic splat radius the lifting z-buffer uses, so image and lifting see the same
surface), and small holes left between footprints are filled from their surroundings, so the
segmenter sees surfaces rather than dots.
"""
from __future__ import annotations

import numpy as np

from ..camera.pinhole import PinholeIntrinsics, project_gl
from ..lifting.zbuffer import auto_splat_radius, point_spacing_px, zbuffer

#: Empty regions up to this many pixels (16 x 16) are holes in a surface and get filled; larger ones are
#: background. Randomly thinned clouds leave holes of a hundred pixels and more between footprints.
MAX_HOLE_AREA = 256
#: Cracks up to about twice this wide (pixels) between covered pixels are filled too.
CRACK_RADIUS = 2


def render_front_view(points_gl: np.ndarray, colors: np.ndarray, cam: PinholeIntrinsics,
                      splat_radius: int | None = None, fill_holes: bool = True,
                      background: tuple[int, int, int] = (0, 0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """Render ``(N, 3)`` OpenGL-space points with ``(N, 3)`` uint8 colours through ``cam``.

    Returns ``(image_rgb, depth)``: ``(H, W, 3)`` uint8 and ``(H, W)`` float32 metres along the viewing
    axis, ``inf`` where no point (footprint) lands. The nearest point wins every pixel; each point covers
    a disc of ``splat_radius`` pixels (None = from the cloud's density, 0 for one-point-per-pixel
    clouds). With ``fill_holes``, small empty regions (at most :data:`MAX_HOLE_AREA` pixels) and thin
    cracks between covered pixels take the colour of the nearest covered pixel (their depth stays
    ``inf``: nothing was measured there); larger empty regions keep ``background``.
    """
    colors = np.asarray(colors)
    if colors.ndim != 2 or colors.shape[1] != 3 or len(colors) != len(points_gl):
        raise ValueError(f'colors must be (N, 3) for {len(points_gl)} points, got shape {colors.shape}')
    colors = colors.astype(np.uint8, copy=False)
    h, w = cam.height, cam.width
    proj = project_gl(points_gl, cam)
    pix = proj.pixels
    z = zbuffer(pix, proj.depth, h, w).reshape(-1)
    # the winning point of each pixel: one whose depth equals the pixel's minimum
    winner = np.full(h * w, -1, np.int64)
    wins = proj.depth == z[pix]
    winner[pix[wins]] = proj.indices[wins]
    hit = winner >= 0
    image = np.empty((h * w, 3), np.uint8)
    image[:] = np.asarray(background, np.uint8)
    image[hit] = colors[winner[hit]]
    r = auto_splat_radius(_spacing_px(z.reshape(h, w))) if splat_radius is None else int(splat_radius)
    if r > 0:
        z, source = _splat_nearest(z, h, w, r)
        covered = source >= 0
        image[covered] = image[source[covered]]
    image = image.reshape(h, w, 3)
    depth = z.reshape(h, w).astype(np.float32, copy=False)
    if fill_holes:
        _fill_small_holes(image, np.isfinite(depth))
    return image, depth


def _spacing_px(z: np.ndarray) -> float:
    """Point spacing (pixels) of a z-buffer, not fooled by empty space around the objects.

    :func:`~.zbuffer.point_spacing_px` spreads the points over their bounding box, so a dense cloud of
    objects with nothing behind them looks sparse and would be fattened by footprints. Measuring the
    fill only near the points (within half that spacing) tells the two apart.
    """
    import cv2

    spacing = point_spacing_px(z)
    if auto_splat_radius(spacing) == 0:
        return spacing
    hit = np.isfinite(z).astype(np.uint8)
    r = int(np.ceil(spacing / 2.0))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    near = np.count_nonzero(cv2.dilate(hit, disc))
    return min(spacing, float(1.0 / np.sqrt(max(np.count_nonzero(hit) / max(near, 1), 1e-6))))


def _splat_nearest(z: np.ndarray, h: int, w: int, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Min filter of a flat z-buffer that also says which pixel each minimum came from.

    Depth and source pixel are packed into one float64 key (the float32 depth's bit pattern, which
    orders like the depth for positive values, above the pixel index), so one OpenCV erosion finds
    the nearest footprint and its owner at once. Returns the splatted depth and, per pixel, the
    source pixel (-1 where nothing covers it).
    """
    import cv2

    bits = max(1, int(h * w - 1).bit_length())
    drop = max(0, 31 + bits - 53)  # very large images: coarser depth order, still nearest-first
    hit = np.isfinite(z)
    depth_bits = z.astype(np.float32).view(np.uint32).astype(np.int64) >> drop
    key = np.full(h * w, np.inf)
    key[hit] = ((depth_bits[hit] << bits) | np.flatnonzero(hit)).astype(np.float64)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    low = cv2.erode(key.reshape(h, w), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=np.inf).reshape(-1)
    covered = np.isfinite(low)
    source = np.full(h * w, -1, np.int64)
    source[covered] = low[covered].astype(np.int64) & ((1 << bits) - 1)
    out = np.full(h * w, np.inf, np.float32)
    out[covered] = z[source[covered]]
    return out, source


def _fill_small_holes(image: np.ndarray, covered: np.ndarray) -> None:
    """Paint holes with the colour of their nearest covered pixel (in place).

    Holes are empty regions of at most :data:`MAX_HOLE_AREA` pixels, and the cracks a morphological
    closing (disc of radius :data:`CRACK_RADIUS`) bridges: a cloud drawn slightly magnified leaves
    one-pixel lines between its rows and columns that join into one large empty region.
    """
    import cv2

    empty = (~covered).astype(np.uint8)
    if not empty.any() or not covered.any():
        return
    n, comp, stats, _ = cv2.connectedComponentsWithStats(empty, connectivity=4, ltype=cv2.CV_32S)
    small = stats[:, cv2.CC_STAT_AREA] <= MAX_HOLE_AREA
    small[0] = False  # label 0 is the covered pixels
    hole = small[comp]
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * CRACK_RADIUS + 1, 2 * CRACK_RADIUS + 1))
    closed = cv2.morphologyEx(covered.astype(np.uint8), cv2.MORPH_CLOSE, disc, borderType=cv2.BORDER_REPLICATE)
    hole |= closed.astype(bool) & ~covered
    if not hole.any():
        return
    _, nearest = cv2.distanceTransformWithLabels(empty, cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL)
    # every covered pixel has a label of its own; map labels back to pixels
    lut = np.zeros(int(nearest.max()) + 1, np.int64)
    lut[nearest[covered]] = np.flatnonzero(covered.reshape(-1))
    image[hole] = image.reshape(-1, 3)[lut[nearest[hole]]]
