"""Synthetic cartoon faces drawn with OpenCV from an expression vector and an identity.

Every face has an expression vector (``EXPRESSION_NAMES``, each about [-1, 1]) drawn
around one of seven prototypes (``CATEGORY_NAMES``), and an identity (face shape,
colours, pose, lighting, noise) shared by the faces of one person. Used by the synthetic
datasets and for calibration images of exported models.
"""
from functools import lru_cache
from typing import NamedTuple

import cv2
import numpy as np

EXPRESSION_NAMES = ("smile", "mouth_open", "brow_raise", "brow_tilt", "eye_open", "nose_wrinkle")
CATEGORY_NAMES = ("neutral", "happy", "sad", "angry", "surprise", "fear", "disgust")
# One row per category, columns as EXPRESSION_NAMES. brow_tilt > 0 lifts the inner ends
# of the brows (sadness, fear), < 0 pulls them down (anger).
PROTOTYPES = np.array(
    [
        [0.00, -0.70, 0.00, 0.00, 0.00, -0.70],  # neutral
        [0.85, 0.05, 0.15, 0.00, -0.45, -0.30],  # happy
        [-0.75, -0.70, -0.15, 0.85, -0.40, -0.70],  # sad
        [-0.40, -0.60, -0.75, -0.85, 0.35, 0.05],  # angry
        [0.00, 0.85, 0.85, 0.00, 0.85, -0.70],  # surprise
        [-0.40, 0.35, 0.50, 0.80, 0.80, -0.60],  # fear
        [-0.45, -0.25, -0.40, -0.30, -0.40, 0.85],  # disgust
    ],
    dtype=np.float32,
)
# Per-dimension std of a face's expression around its prototype.
EXPRESSION_SPREAD = 0.3


class Identity(NamedTuple):
    """What stays fixed across the faces of one person. Lengths in face units (the
    face's half-height is 1), colours RGB 0-255, angles in degrees."""

    face_width: float
    skin_r: float
    skin_g: float
    skin_b: float
    hair_r: float
    hair_g: float
    hair_b: float
    iris_r: float
    iris_g: float
    iris_b: float
    background_r: float
    background_g: float
    background_b: float
    hair_volume: float
    hairline: float
    eye_spacing: float
    mouth_width: float
    brow_thickness: float
    offset_x: float  # of the face centre, as a fraction of the image side
    offset_y: float
    scale: float  # face half-height as a fraction of the image side
    rotation: float
    light_angle: float
    light_strength: float  # brightness changes by ± this across the image
    noise_std: float  # pixel noise, 0-255 scale


_SKIN_DARK, _SKIN_LIGHT = np.array([92, 58, 40]), np.array([250, 222, 198])
_HAIR = np.array([[25, 20, 18], [70, 45, 30], [120, 80, 45], [205, 170, 100], [150, 60, 30], [165, 160, 155]])
_IRIS = np.array([[70, 45, 25], [60, 110, 170], [70, 120, 70], [110, 90, 60]])


def random_identities(rng, n):
    """(n, len(Identity._fields)) float64 array of identities drawn from ``rng``."""
    u = lambda lo, hi: rng.uniform(lo, hi, n)  # noqa: E731
    colours = {
        "skin": _SKIN_DARK + rng.uniform(0, 1, (n, 1)) * (_SKIN_LIGHT - _SKIN_DARK) + rng.normal(0, 6, (n, 3)),
        "hair": _HAIR[rng.integers(0, len(_HAIR), n)] + rng.normal(0, 10, (n, 3)),
        "iris": _IRIS[rng.integers(0, len(_IRIS), n)] + rng.normal(0, 10, (n, 3)),
        "background": rng.uniform(25, 235, (n, 3)),
    }
    fields = {f"{name}_{c}": np.clip(v[:, k], 0, 255) for name, v in colours.items() for k, c in enumerate("rgb")}
    fields.update(
        face_width=u(0.72, 0.88), hair_volume=u(0.0, 1.0), hairline=u(-0.75, -0.6), eye_spacing=u(0.33, 0.40),
        mouth_width=u(0.27, 0.34), brow_thickness=u(0.05, 0.08), offset_x=u(-0.05, 0.05), offset_y=u(-0.04, 0.04),
        scale=u(0.36, 0.42), rotation=u(-12, 12), light_angle=u(0, 360), light_strength=u(0.0, 0.3),
        noise_std=u(1.0, 5.0),
    )
    return np.column_stack([fields[name] for name in Identity._fields])


@lru_cache(maxsize=8)
def _grid(size):
    """x and y in [-1, 1] at each pixel, as contiguous size×size×3 float32 arrays (what
    cv2's arithmetic wants; numpy broadcasting over a channel axis is several times slower)."""
    g = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    gx = np.ascontiguousarray(np.broadcast_to(g[None, :, None], (size, size, 3)))
    return gx, np.ascontiguousarray(gx.transpose(1, 0, 2))


@lru_cache(maxsize=2)
def _noise_field(side):
    return np.random.default_rng(20240229).standard_normal((side, side, 3), dtype=np.float32)


@lru_cache(maxsize=64)  # a few fixed arcs, and the fringe of the latest faces
def _unit_arc(a0, a1, n):
    t = np.linspace(a0, a1, n)
    return np.stack([np.cos(t), np.sin(t)], 1)


@lru_cache(maxsize=None)
def _unit_parabola(n):
    x = np.linspace(-1.0, 1.0, n)
    return np.stack([x, x * x], 1)


# A shape is a polygon made of segments (unit points, sx, sy, ox, oy, shear), each
# placed at x = ox + sx * ux, y = oy + sy * uy + shear * ux; units are ellipse arcs or
# the parabola y = x², x in [-1, 1]. The renderer places all segments of a face with
# one vectorised expression and draws only filled polygons: strokes are thin ribbons,
# outlines a dark shape under a smaller one (anti-aliased thick polylines cost several
# times more).
def _ellipse(cx, cy, ax, ay, n=16):
    return [(_unit_arc(0.0, 2 * np.pi, n), ax, ay, cx, cy, 0.0)]


def _curve(x0, x1, y_ends, y_mid, n=9, shear=0.0):
    """The parabola from (x0, y_ends) through ((x0+x1)/2, y_mid) to (x1, y_ends)."""
    return (_unit_parabola(n), (x1 - x0) / 2, y_ends - y_mid, (x0 + x1) / 2, y_mid, shear)


def _ribbon(x0, x1, y_ends, y_mid, width, n=9, shear=0.0):
    """That parabola as a stroke ``width`` thick (vertically)."""
    h = width / 2
    return [_curve(x0, x1, y_ends - h, y_mid - h, n, shear), _curve(x1, x0, y_ends + h, y_mid + h, n, -shear)]


def _face_shapes(expression, idt):
    """The drawing, back to front: a list of (RGB colour, polygons) in face units
    (origin at the face centre, y down, the face's half-height 1)."""
    smile, mouth_open, brow_raise, brow_tilt, eye_open, wrinkle = (float(v) for v in np.clip(expression, -1.5, 1.5))
    skin = (idt.skin_r, idt.skin_g, idt.skin_b)
    hair = (idt.hair_r, idt.hair_g, idt.hair_b)
    line = tuple(0.45 * c for c in skin)
    # Brows darker than the skin whatever the hair, so they show on every face.
    brow_colour = tuple(min(0.75 * h, 0.4 * c) for h, c in zip(hair, skin))
    fw, vol = idt.face_width, idt.hair_volume
    ex, ey = idt.eye_spacing, -0.12
    # Hair over the forehead: the part of the face above the hairline.
    a = float(np.arcsin(min(max(-idt.hairline, 0.0), 1.0)))
    fringe = [(_unit_arc(np.pi + a, 2 * np.pi - a, 12), fw + 0.016, 1.016, 0.0, 0.0, 0.0)]
    ops = [
        (hair, [[(_unit_arc(np.pi, 2 * np.pi, 20), fw + 0.1 + 0.1 * vol, 1.08 + 0.12 * vol, 0.0, -0.05, 0.0)]]),
        (line, [_ellipse(side * fw * 0.97, -0.02, 0.145, 0.225) for side in (-1, 1)]),
        (skin, [_ellipse(side * fw * 0.97, -0.02, 0.12, 0.2) for side in (-1, 1)]),
        (line, [_ellipse(0.0, 0.0, fw + 0.015, 1.015, 40)]),
        (skin, [_ellipse(0.0, 0.0, fw - 0.015, 0.985, 40)]),
        (hair, [fringe]),
    ]

    # Eyes: lids open with eye_open; the iris is clipped to the opening.
    hu = 0.04 + 0.085 * (eye_open + 1)
    hl = 0.5 * hu + 0.02
    r = min(0.075, (hu + hl) / 2)
    yc = ey + (hl - hu) / 2
    eyes = [-ex, ex]
    ops += [
        ((242, 240, 235), [[_curve(x - 0.15, x + 0.15, ey, ey - hu), _curve(x + 0.15, x - 0.15, ey, ey + hl)]
                           for x in eyes]),
        ((idt.iris_r, idt.iris_g, idt.iris_b), [_ellipse(x, yc, 0.075, r) for x in eyes]),
        ((10, 10, 10), [_ellipse(x, yc, 0.035, min(0.035, r), 10) for x in eyes]),
        ((30, 22, 20), [_ribbon(x - 0.16, x + 0.16, ey, ey - hu, 0.045) for x in eyes]),
        (line, [_ribbon(x - 0.15, x + 0.15, ey, ey + hl, 0.02) for x in eyes]),
    ]
    # Brows: raised together by brow_raise; brow_tilt lifts the inner ends.
    base = -0.40 - 0.15 * brow_raise
    y_in, y_out = base - 0.15 * brow_tilt, base + 0.05 * brow_tilt
    mid = (y_in + y_out) / 2
    brows = [_ribbon(s * ex - s * 0.17, s * ex + s * 0.2, mid, mid - 0.05, idt.brow_thickness, 7, (y_out - y_in) / 2)
             for s in (-1, 1)]
    ops.append((brow_colour, brows))

    # Nose; a wrinkle pulls the nostrils up and creases the bridge.
    w = (wrinkle + 1) / 2
    ny = 0.27 - 0.06 * w
    nose = [_ribbon(-0.1, 0.1, ny - 0.03, ny + 0.03, 0.03, 7)]
    nose += [_ellipse(s * 0.055, ny, 0.03, 0.018, 8) for s in (-1, 1)]
    for k in range(3):
        half = 0.12 * w * (1 - 0.2 * k)
        if half > 0.01:
            nose.append(_ribbon(-half, half, 0.025 + 0.055 * k, 0.055 * k, 0.03, 5))
    ops.append((line, nose))

    # Mouth: corners up with smile, lips apart with mouth_open, upper lip raised by a wrinkle.
    o = (mouth_open + 1) / 2
    mw = idt.mouth_width * (1 + 0.12 * smile)
    cy = 0.56
    corner = cy - 0.2 * smile
    upper_mid = cy - 0.05 * o - 0.06 * w
    lower_mid = cy + 0.02 + 0.28 * o + 0.04 * max(smile, 0.0)
    ops.append(((70, 20, 25), [[_curve(-mw, mw, corner, upper_mid), _curve(mw, -mw, corner, lower_mid)]]))
    if o > 0.15:
        teeth = upper_mid + min(0.06, 0.3 * o)
        ops.append(((238, 236, 228), [[_curve(-mw, mw, corner, upper_mid), _curve(mw, -mw, corner, teeth)]]))
    lip = (0.85 * skin[0] + 40, 0.5 * skin[1], 0.5 * skin[2])
    ops.append((lip, [_ribbon(-mw, mw, corner, upper_mid, 0.05), _ribbon(-mw, mw, corner, lower_mid, 0.05)]))
    return ops


def render_face(expression, identity, size, rng=None):
    """A ``size``×``size``×3 uint8 RGB face.

    ``expression``: vector ordered as EXPRESSION_NAMES; ``identity``: an Identity or a
    row of ``random_identities``; ``rng``: numpy Generator (or seed) for the pixel
    noise, None for none. Small faces are drawn at twice the size and shrunk
    (INTER_AREA), so features stay visible at 64 px.
    """
    idt = identity if isinstance(identity, Identity) else Identity(*(float(v) for v in identity))
    ops = _face_shapes(expression, idt)
    segments = [seg for _, polys in ops for poly in polys for seg in poly]
    lengths = [len(seg[0]) for seg in segments]
    unit = np.concatenate([seg[0] for seg in segments])
    sx, sy, ox, oy, shear = np.repeat(np.array([seg[1:] for seg in segments]), lengths, axis=0).T
    x = ox + sx * unit[:, 0]
    y = oy + sy * unit[:, 1] + shear * unit[:, 0]

    # Face units → pixels (rotate, scale, translate), with 4 fractional bits for
    # sub-pixel anti-aliased drawing.
    canvas = size * 2 if size < 128 else size
    th = np.deg2rad(idt.rotation)
    k = idt.scale * canvas * 16
    cx, cy = (0.5 + idt.offset_x) * canvas * 16, (0.53 + idt.offset_y) * canvas * 16
    px = np.round(np.stack([cx + k * (np.cos(th) * x - np.sin(th) * y), cy + k * (np.sin(th) * x + np.cos(th) * y)], 1))
    px = px.astype(np.int32)

    img = np.empty((canvas, canvas, 3), np.uint8)
    # (cv2 fills a 3-channel image far faster than numpy broadcasts a colour into it.)
    cv2.rectangle(img, (0, 0), (canvas, canvas), (idt.background_r, idt.background_g, idt.background_b), -1)
    start = 0
    for colour, polys in ops:
        contours = []
        for poly in polys:
            n = sum(len(seg[0]) for seg in poly)
            contours.append(px[start:start + n])
            start += n
        cv2.fillPoly(img, contours, colour, cv2.LINE_AA, 4)

    if canvas != size:
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    # Light from one side: brightness scaled by 1 ± light_strength across the image.
    gx, gy = _grid(size)
    la = np.deg2rad(idt.light_angle)
    light = cv2.addWeighted(gx, idt.light_strength * np.cos(la), gy, idt.light_strength * np.sin(la), 1.0)
    out = cv2.multiply(img, light, dtype=cv2.CV_32F)
    if rng is not None and idt.noise_std > 0:
        # A window at a random place of a fixed field of Gaussian noise: drawing fresh
        # normals would cost more than the whole drawing.
        field = _noise_field(max(512, 2 * size))
        y0, x0 = np.random.default_rng(rng).integers(0, len(field) - size, 2)
        out = cv2.scaleAdd(field[y0:y0 + size, x0:x0 + size], idt.noise_std, out)
    return np.clip(out, 0, 255, out=out).astype(np.uint8)



def sample_expressions(rng, n):
    """(n, K) float32 expressions, each its prototype plus Gaussian spread, and their
    categories (nearest prototype)."""
    proto = rng.integers(0, len(PROTOTYPES), n)
    expr = PROTOTYPES[proto] + rng.normal(0, EXPRESSION_SPREAD, (n, PROTOTYPES.shape[1]))
    expr = np.clip(expr, -1, 1).astype(np.float32)
    d = ((expr[:, None, :] - PROTOTYPES[None]) ** 2).sum(-1)
    return expr, d.argmin(1).astype(np.int64)

