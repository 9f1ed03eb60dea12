"""Axial chest CT slices in Hounsfield units, with the same findings' traces as the radiographs.

Display convention: image left is the patient's right, anterior is up. Values are HU (air -1000,
lung ~-820, fat -100, soft tissue ~40, bone ~700) so the DICOM writer stores them directly; JPEGs
use a fixed wide window (`WINDOW`). `z` in [0, 1] is the slice level, apex (0) to base (1): lungs
grow towards the base and the heart appears from z ~0.2 down (slices are drawn at z >= 0.3).
"""
from __future__ import annotations

import numpy as np

from .canvas import (Alpha, Anatomy, Pose, Style, add_noise, band, blob, ellipse, frame,
                     gaussian, lerp, patches, radius, segment, soft_step, streaks)

WINDOW = (-200.0, 1800.0)
"""(centre, width) in HU used to turn slices into display values: lung dark, bone white."""


def axial(alpha: Alpha, an: Anatomy, rng: np.random.Generator, style: Style,
          z: float) -> np.ndarray:
    """One axial slice at level `z`, float32 (SIZE, SIZE) in HU."""
    u, v = frame(Pose.sample(rng, style.variability))
    a = {name: np.float32(value) for name, value in alpha.items()}
    grow = 0.75 + 0.3 * z  # lungs are small at the apex
    rl = (-an.lung_x, 0.0, an.lung_w * 1.1 * grow, 0.48 * grow)  # patient's right (image left)
    ll = (an.lung_x, 0.0, an.lung_w * 1.05 * grow, 0.47 * grow)
    lung_r, lung_l = ellipse(u, v, *rl), ellipse(u, v, *ll)
    lungs = np.maximum(lung_r, lung_l)
    body = ellipse(u, v, 0.0, 0.05, an.body, 0.68)
    hu = lerp(np.full_like(u, -1000.0), -100.0, body)  # subcutaneous fat
    hu = lerp(hu, 40.0, ellipse(u, v, 0.0, 0.05, an.body - 0.07, 0.61))  # muscle and wall
    hu += 660 * _ribs(u, v, rl, ll, a.get("Fracture", 0), rng)

    # Pneumothorax: anterior (non-dependent) air between the right chest wall and lung, without
    # vessels, edged by the visceral pleural line.
    collapsed = (rl[0] + 0.07, rl[1] + 0.14, rl[2] - 0.07, rl[3] - 0.14)
    front = soft_step(-0.05 - v)
    ptx = a.get("Pneumothorax", 0) * lung_r * (1 - ellipse(u, v, *collapsed)) * front
    phases = rng.uniform(0, 2 * np.pi, 2)
    vessels = (streaks(u, v, -0.2, 0.0, phases[0]) * lung_r
               + streaks(u, v, 0.2, 0.0, phases[1]) * lung_l) * (1 - ptx)
    hu = lerp(hu, -820.0, lungs) + 350 * vessels - 180 * ptx
    hu += 500 * a.get("Pneumothorax", 0) * lung_r * front \
        * band((radius(u, v, *collapsed) - 1) * collapsed[2], 0.008)

    # Enlarged Cardiomediastinum: anterior mediastinal soft tissue widens.
    med = ellipse(u, v, 0.0, -0.2, an.mediastinum * 1.3, 0.3)
    wide = ellipse(u, v, 0.0, -0.2, (an.mediastinum + 0.1) * 1.3 * rng.uniform(0.85, 1.15), 0.33)
    hu = lerp(hu, -80.0, med)  # mediastinal fat
    hu = lerp(hu, 45.0, a.get("Enlarged Cardiomediastinum", 0) * wide)
    hu = lerp(hu, 45.0, ellipse(u, v, 0.08, -0.28, 0.08, 0.08))  # aorta
    # Cardiomegaly: the heart (anterior, left of midline, below mid-chest) grows ~40 %.
    heart = ellipse(u, v, 0.1, -0.1, an.heart * 1.1, 0.22)
    big = ellipse(u, v, 0.14, -0.08, an.heart * 1.1 * rng.uniform(1.35, 1.5), 0.27)
    hu = lerp(hu, 50.0, soft_step(z - 0.2, 0.1)
              * lerp(heart, np.maximum(heart, big), a.get("Cardiomegaly", 0)))
    hu = lerp(hu, 700.0, ellipse(u, v, 0.0, 0.5, 0.12, 0.11))  # vertebral body
    hu = lerp(hu, 700.0, segment(u, v, (-0.12, 0.7), (0.12, 0.7), 0.03))  # posterior arch
    hu = lerp(hu, 10.0, ellipse(u, v, 0.0, 0.64, 0.05, 0.04))  # spinal canal
    hu = lerp(hu, 600.0, ellipse(u, v, 0.0, -0.6, 0.09, 0.03))  # sternum
    trachea = (0.0, 0.05 + 0.1 * z)
    hu = lerp(hu, -1000.0, ellipse(u, v, *trachea, 0.075, 0.065))
    # Support Devices: the endotracheal tube's radio-opaque wall, a bright ring in the trachea.
    ring = band((radius(u, v, *trachea, 0.05, 0.045) - 1) * 0.05, 0.013)
    hu = lerp(hu, 600.0, a.get("Support Devices", 0) * ring)

    # Pleural Effusion: dependent (posterior) fluid crescent in the left hemithorax.
    level = ll[1] + ll[3] - 0.24 * rng.uniform(0.85, 1.2) - 0.1 * np.abs((u - ll[0]) / ll[2])
    hu = lerp(hu, 10.0, a.get("Pleural Effusion", 0) * lung_l * soft_step(v - level))
    hu = lerp(hu, 20.0, 0.95 * a.get("Consolidation", 0) * lung_r
              * blob(u, v, (rl[0] - 0.02, 0.2), (0.15, 0.13), rng))  # right lower lobe
    haze = gaussian(u, v, -0.24, 0.0, 0.14, 0.2) + gaussian(u, v, 0.24, 0.0, 0.14, 0.2)
    hu += 380 * a.get("Edema", 0) * haze * lungs  # perihilar ground glass
    bands = sum(segment(u, v, (s * (an.lung_x - 0.15), 0.33), (s * (an.lung_x + 0.15), 0.3), 0.022)
                for s in (-1, 1))
    hu += 700 * a.get("Atelectasis", 0) * bands * lungs  # dependent subsegmental bands
    size = 0.085 * rng.uniform(0.9, 1.2)  # ~3 px radius at the 64 px tiny input
    nodule = ellipse(u, v, an.lung_x + 0.04, -0.2, size, size)
    hu = lerp(hu, 30.0, a.get("Lung Lesion", 0) * nodule)  # left upper lobe, anterior
    rim = soft_step(radius(u, v, *rl) - 0.82) * lung_r * soft_step(rl[0] - u) \
        * soft_step(v + 0.3) * soft_step(0.3 - v)
    hu = lerp(hu, 40.0, a.get("Pleural Other", 0) * rim)  # right lateral pleural thickening
    centres = ((-an.lung_x - 0.05, -0.15), (-an.lung_x + 0.08, 0.1), (an.lung_x, -0.05),
               (an.lung_x - 0.05, 0.2))
    hu += 450 * a.get("Pneumonia", 0) * lungs * patches(u, v, centres, rng)  # multifocal
    noise_hu = style.noise * WINDOW[1]  # same display-space noise as the radiographs
    return np.clip(add_noise(hu, rng, noise_hu), -1024.0, 3000.0).astype(np.float32)


def display(hu: np.ndarray) -> np.ndarray:
    """HU to display values in [0, 1] through `WINDOW`."""
    centre, width = WINDOW
    return np.clip((hu - (centre - width / 2)) / width, 0.0, 1.0).astype(np.float32)


def _ribs(u: np.ndarray, v: np.ndarray, rl: tuple[float, ...], ll: tuple[float, ...],
          fracture: float, rng: np.random.Generator) -> np.ndarray:
    """Rib cross-sections hugging each lung; a fracture breaks the left lateral one.

    Ribs are short arcs of a ring just outside each lung, one every ~40 degrees. The left lateral
    rib (image right, level with the lung's centre) is drawn whole on every slice, so a fracture
    shows as a gap with the posterior fragment stepped inwards.
    """
    out = np.zeros_like(u)
    for cx, cy, ax, ay in (rl, ll):
        shell = band((radius(u, v, cx, cy, ax, ay) - 1.15) * ax, 0.022)
        angle = np.arctan2((v - cy) / ay, (u - cx) / ax)
        out = np.maximum(out, shell * soft_step(np.cos(9 * angle) - 0.3, 0.3))
    cx, cy, ax, ay = ll
    r = radius(u, v, cx, cy, ax, ay)
    span = band(v - cy, 0.16) * soft_step(u - cx)  # where the left lateral rib runs
    whole = band((r - 1.15) * ax, 0.022) * span
    anterior = whole * soft_step(cy - 0.03 - v)
    posterior = band((r - 1.15) * ax + 0.035 * rng.uniform(0.8, 1.2), 0.022) * span \
        * soft_step(v - cy - 0.03)
    return np.maximum(out * (1 - span), lerp(whole, anterior + posterior, fracture))
