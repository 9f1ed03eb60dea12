"""Pixel grid, per-image variation and soft-edged shape primitives shared by the painters.

Every image is drawn in a canonical patient frame (u, v) in [-1, 1]^2 (u to the image right, v
down) that its own `Pose` maps onto a precomputed pixel grid, so one geometry describes every
patient while position, size and rotation still vary from image to image. Masks have soft edges
about a pixel wide, which keeps traces smooth under the model's downsampling.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

SIZE = 128
"""Side of every written image, in pixels."""

_CENTRES = ((np.arange(SIZE, dtype=np.float32) + 0.5) / SIZE) * 2.0 - 1.0
GRID_Y, GRID_X = np.meshgrid(_CENTRES, _CENTRES, indexing="ij")
EDGE = np.float32(2.4 / SIZE)  # soft-edge width in frame units (~1.2 px)

Alpha = Mapping[str, float]
"""Opacity of each finding's trace: 0 absent, else the amplitude times a faint or full strength."""


@dataclass(frozen=True)
class Style:
    """How hard the task is: trace contrast, noise and anatomical variability.

    All three are linear in `difficulty`, so the knob is smooth and monotone: raising it fades
    every finding's trace, adds pixel noise and widens the spread of anatomy and pose.
    """

    amplitude: float  # multiplies every trace's contrast
    noise: float  # Gaussian pixel noise, standard deviation in display units [0, 1]
    variability: float  # multiplies the spread of pose, anatomy and exposure
    # Another hospital's acquisition (``m3fed synth --style public``): a flatter, brighter exposure
    # curve, coarser noise and a collimation border, so a public cohort looks unlike the private sites.
    public: bool = False

    @classmethod
    def from_difficulty(cls, difficulty: float) -> Style:
        """Map difficulty in [0, 1] to drawing parameters."""
        if not 0.0 <= difficulty <= 1.0:
            raise ValueError(f"difficulty must be in [0, 1], got {difficulty}")
        return cls(amplitude=1.0 - 0.75 * difficulty, noise=0.01 + 0.09 * difficulty,
                   variability=0.5 + 1.5 * difficulty)


def jitter(rng: np.random.Generator, sd: float) -> float:
    """A zero-mean Gaussian draw clipped at 2.5 sd, so extreme poses never break the anatomy."""
    return float(np.clip(rng.standard_normal(), -2.5, 2.5) * sd)


@dataclass(frozen=True)
class Pose:
    """Where the patient sits in the image: scale, shift and in-plane rotation."""

    scale_x: float
    scale_y: float
    shift_x: float
    shift_y: float
    angle: float  # radians

    @classmethod
    def sample(cls, rng: np.random.Generator, variability: float) -> Pose:
        """A random pose; `variability` widens every spread."""
        size = 1.0 + jitter(rng, 0.04 * variability)
        return cls(scale_x=size + jitter(rng, 0.02 * variability),
                   scale_y=size + jitter(rng, 0.02 * variability),
                   shift_x=jitter(rng, 0.03 * variability), shift_y=jitter(rng, 0.03 * variability),
                   angle=jitter(rng, 0.03 * variability))


def frame(pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """Canonical coordinates (u, v) of every pixel under `pose`."""
    x = GRID_X - np.float32(pose.shift_x)
    y = GRID_Y - np.float32(pose.shift_y)
    c, s = np.float32(np.cos(pose.angle)), np.float32(np.sin(pose.angle))
    return (c * x + s * y) / np.float32(pose.scale_x), (c * y - s * x) / np.float32(pose.scale_y)


def soft_step(x: np.ndarray, edge: float = EDGE) -> np.ndarray:
    """A Heaviside step (0 below zero, 1 above) smoothed over `edge`."""
    return np.clip(0.5 + x / np.float32(edge), 0.0, 1.0)


def radius(u: np.ndarray, v: np.ndarray, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    """Normalised elliptic radius: 1 on the ellipse's outline."""
    return np.sqrt(((u - np.float32(cx)) / np.float32(ax)) ** 2
                   + ((v - np.float32(cy)) / np.float32(ay)) ** 2)


def ellipse(u: np.ndarray, v: np.ndarray, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    """Soft mask of a filled ellipse with semi-axes (ax, ay)."""
    return soft_step((1.0 - radius(u, v, cx, cy, ax, ay)) * np.float32(min(ax, ay)))


def gaussian(u: np.ndarray, v: np.ndarray, cx: float, cy: float, sx: float,
             sy: float) -> np.ndarray:
    """An unnormalised Gaussian blob, 1 at its centre."""
    return np.exp(-0.5 * (((u - np.float32(cx)) / np.float32(sx)) ** 2
                          + ((v - np.float32(cy)) / np.float32(sy)) ** 2))


def band(distance: np.ndarray, half_width: float) -> np.ndarray:
    """Soft mask of the points within `half_width` of a curve, given their distance to it."""
    return soft_step(np.float32(half_width) - np.abs(distance))


def segment(u: np.ndarray, v: np.ndarray, p0: tuple[float, float], p1: tuple[float, float],
            half_width: float) -> np.ndarray:
    """Soft mask of a straight stroke from p0 to p1 (tubes, linear opacities, clavicles)."""
    x0, y0 = p0
    dx, dy = p1[0] - x0, p1[1] - y0
    t = np.clip(((u - x0) * dx + (v - y0) * dy) / np.float32(dx * dx + dy * dy), 0.0, 1.0)
    return band(np.hypot(u - x0 - t * dx, v - y0 - t * dy), half_width)


def streaks(u: np.ndarray, v: np.ndarray, hx: float, hy: float, phase: float) -> np.ndarray:
    """Vessel-like markings radiating from a hilum at (hx, hy), fading towards the periphery."""
    du, dv = u - np.float32(hx), v - np.float32(hy)
    r = np.sqrt(du * du + dv * dv)
    spokes = (0.5 + 0.5 * np.cos(np.float32(15.0) * np.arctan2(dv, du) + 6.0 * r + phase)) ** 6
    return spokes * np.exp(-r / np.float32(0.55))


def lerp(base: np.ndarray, target: float | np.ndarray, alpha: np.ndarray | float) -> np.ndarray:
    """Blend `base` towards `target` by `alpha` (how an opaque structure covers what is behind)."""
    return base + alpha * (target - base)


def acquisition_shift(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The public cohort's look: contrast 0.7, brightness +0.15, gamma 0.8, a dark collimation border
    of 3-6 % of the frame on each side, and noise in 2x2 blocks (another detector's grain)."""
    out = np.clip(0.7 * image + 0.15, 0.0, 1.0) ** np.float32(0.8)
    h, w = out.shape
    top, bottom, left, right = (int(rng.uniform(0.03, 0.06) * n) for n in (h, h, w, w))
    border = np.ones_like(out, dtype=bool)
    border[top:h - bottom, left:w - right] = False
    out[border] = 0.05
    grain = np.repeat(np.repeat(rng.standard_normal(((h + 1) // 2, (w + 1) // 2), dtype=np.float32), 2, 0), 2, 1)
    return np.clip(out + 0.02 * grain[:h, :w], 0.0, 1.0).astype(np.float32)


def add_noise(image: np.ndarray, rng: np.random.Generator, sd: float) -> np.ndarray:
    """Add Gaussian noise of standard deviation `sd`."""
    return image + np.float32(sd) * rng.standard_normal(image.shape, dtype=np.float32)


def blob(u: np.ndarray, v: np.ndarray, centre: tuple[float, float], axes: tuple[float, float],
          rng: np.random.Generator) -> np.ndarray:
    """An ill-defined patch: an ellipse with a wavy, blurred outline."""
    sev = rng.uniform(0.85, 1.2)
    r = radius(u, v, centre[0], centre[1], axes[0] * sev, axes[1] * sev)
    wobble = 0.12 * np.cos(5 * np.arctan2(v - centre[1], u - centre[0]) + rng.uniform(0, 6.3))
    return soft_step((1 + wobble - r) * 0.1, 0.03)


def patches(u: np.ndarray, v: np.ndarray, centres: tuple[tuple[float, float], ...],
             rng: np.random.Generator) -> np.ndarray:
    """Several small fuzzy opacities around jittered centres."""
    return sum(gaussian(u, v, x + jitter(rng, 0.03), y + jitter(rng, 0.03), 0.06, 0.06)
               for x, y in centres)


@dataclass(frozen=True)
class Anatomy:
    """One patient's build, shared by all their images so that follow-up studies look alike."""

    body: float  # half-width of the trunk
    lung_x: float  # distance of each lung's centre from the midline
    lung_w: float  # lung half-width
    lung_h: float  # lung half-height
    heart: float  # half-width of the heart shadow (normal size)
    mediastinum: float  # half-width of the superior mediastinum (normal size)

    @classmethod
    def sample(cls, rng: np.random.Generator, variability: float) -> Anatomy:
        """A random build; `variability` widens every spread."""
        return cls(body=0.88 + jitter(rng, 0.03 * variability),
                   lung_x=0.42 + jitter(rng, 0.012 * variability),
                   lung_w=0.28 + jitter(rng, 0.012 * variability),
                   lung_h=0.60 + jitter(rng, 0.025 * variability),
                   heart=0.25 + jitter(rng, 0.012 * variability),
                   mediastinum=0.11 + jitter(rng, 0.008 * variability))
