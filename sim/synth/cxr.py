"""Chest radiographs: frontal (PA/AP) and lateral views with a localised trace per finding.

Images are painted as a density map (0 = air outside the body, ~0.55 soft tissue, higher for bone
and tubes) and turned into display values in [0, 1] by a per-image exposure. Frontal views follow
the reading convention: image right is the patient's left. In the lateral view the patient faces
image left (anterior left, spine right). `alpha[finding]` is each trace's opacity (0 = absent,
the difficulty's amplitude times a faint or full strength otherwise); geometry comments below give
the canonical frame (u right, v down, both in [-1, 1]).
"""
from __future__ import annotations

import numpy as np

from .canvas import (Alpha, Anatomy, Pose, Style, acquisition_shift, add_noise, band, blob, ellipse, frame, gaussian,
                     jitter, lerp, patches, radius, segment, soft_step, streaks)


def frontal(alpha: Alpha, an: Anatomy, rng: np.random.Generator, style: Style) -> np.ndarray:
    """A PA or AP radiograph, float32 (SIZE, SIZE) in [0, 1]."""
    u, v = frame(Pose.sample(rng, style.variability))
    a = {name: np.float32(value) for name, value in alpha.items()}
    rl = (-an.lung_x, -0.05, an.lung_w, an.lung_h)  # patient's right lung (image left)
    ll = (an.lung_x, -0.04, an.lung_w * 0.95, an.lung_h * 0.98)  # left lung, a little smaller
    lung_r, lung_l = ellipse(u, v, *rl), ellipse(u, v, *ll)
    lungs = np.maximum(lung_r, lung_l)
    d = 0.05 + 0.5 * ellipse(u, v, 0.0, 0.2, an.body, 1.15)  # trunk soft tissue

    # Pneumothorax: the right lung falls away from apex and lateral wall; the gap is air without
    # markings, bounded by a thin bright visceral pleural line.
    collapsed = (rl[0] + 0.08, rl[1] + 0.14, rl[2] - 0.08, rl[3] - 0.14)
    upper = soft_step(0.05 - v)
    ptx = a.get("Pneumothorax", 0) * lung_r * (1 - ellipse(u, v, *collapsed)) * upper
    phases = rng.uniform(0, 2 * np.pi, 2)
    markings = (streaks(u, v, -0.2, -0.05, phases[0]) * lung_r
                + streaks(u, v, 0.2, -0.05, phases[1]) * lung_l) * (1 - ptx)
    d = lerp(d, 0.2, lungs) + 0.08 * markings - 0.12 * ptx
    line = band((radius(u, v, *collapsed) - 1) * collapsed[2], 0.009) * lung_r * upper
    d += 0.25 * a.get("Pneumothorax", 0) * line

    d += 0.11 * _ribs(u, v, an, a.get("Fracture", 0), rng)
    for side in (-1, 1):  # clavicles
        d += 0.14 * segment(u, v, (side * 0.08, -0.74), (side * 0.7, -0.86), 0.03)

    # Enlarged Cardiomediastinum: the superior mediastinum (a midline column) widens by ~0.09.
    med = soft_step(an.mediastinum - np.abs(u)) * soft_step(0.3 - v)
    wide = soft_step(an.mediastinum + 0.09 * rng.uniform(0.85, 1.15) - np.abs(u)) \
        * soft_step(0.2 - v) * soft_step(v + 0.85)
    med = lerp(med, np.maximum(med, wide), a.get("Enlarged Cardiomediastinum", 0))
    d = lerp(d, 0.62, med)
    # Cardiomegaly: the heart shadow (lower midline, bulging to patient left) widens ~40 %.
    heart = ellipse(u, v, 0.08, 0.33, an.heart, 0.21)
    big = ellipse(u, v, 0.12, 0.35, an.heart * rng.uniform(1.35, 1.5), 0.24)
    d = lerp(d, 0.64, lerp(heart, np.maximum(heart, big), a.get("Cardiomegaly", 0)))
    d += 0.12 * soft_step(0.07 - np.abs(u)) * (0.8 + 0.2 * np.cos(40 * v))  # spine
    d -= 0.18 * segment(u, v, (0.0, -1.05), (0.0, -0.35), 0.035)  # tracheal air column
    # Support Devices: an endotracheal tube down the trachea, tip above the carina.
    d += 0.5 * a.get("Support Devices", 0) * segment(u, v, (0.01, -1.05), (0.01, -0.47), 0.014)

    # Pleural Effusion: fluid fills the left costophrenic angle up to a meniscus rising laterally.
    bottom = ll[1] + ll[3]
    top = bottom - 0.27 * rng.uniform(0.85, 1.2) - 0.14 * np.clip((u - ll[0]) / ll[2], -1, 1)
    d = lerp(d, 0.56, a.get("Pleural Effusion", 0) * lung_l * soft_step(v - top))
    # Consolidation: an irregular dense patch in the right lower zone.
    d = lerp(d, 0.5, 0.9 * a.get("Consolidation", 0) * lung_r
             * blob(u, v, (rl[0] - 0.02, 0.22), (0.14, 0.11), rng))
    # Edema: bilateral perihilar (bat-wing) haze.
    haze = gaussian(u, v, -0.22, -0.02, 0.17, 0.22) + gaussian(u, v, 0.22, -0.02, 0.17, 0.22)
    d += 0.17 * a.get("Edema", 0) * haze * lungs
    # Atelectasis: a linear band opacity at each base.
    bands = sum(segment(u, v, (s * (an.lung_x - 0.2), 0.36), (s * (an.lung_x + 0.15), 0.3), 0.022)
                for s in (-1, 1))
    d += 0.24 * a.get("Atelectasis", 0) * bands * lungs
    # Lung Lesion: a dense round nodule in the left upper zone.
    size = 0.085 * rng.uniform(0.9, 1.2)  # ~3 px radius at the 64 px tiny input
    d = lerp(d, 0.72, a.get("Lung Lesion", 0) * ellipse(u, v, an.lung_x + 0.04, -0.33, size, size))
    # Pleural Other: a soft-tissue rim inside the right lateral chest wall, mid zones.
    rim = soft_step(radius(u, v, *rl) - 0.8) * lung_r * soft_step(rl[0] - u) \
        * soft_step(v + 0.45) * soft_step(0.3 - v)
    d = lerp(d, 0.55, a.get("Pleural Other", 0) * rim)
    # Pneumonia: patchy multifocal opacities in both mid zones.
    centres = ((-an.lung_x - 0.02, -0.2), (-an.lung_x + 0.08, 0.08), (an.lung_x, -0.06),
               (an.lung_x - 0.05, 0.22))
    d += 0.2 * a.get("Pneumonia", 0) * lungs * patches(u, v, centres, rng)
    return _expose(d, rng, style)


def lateral(alpha: Alpha, an: Anatomy, rng: np.random.Generator, style: Style) -> np.ndarray:
    """A lateral radiograph (anterior to image left), float32 (SIZE, SIZE) in [0, 1]."""
    u, v = frame(Pose.sample(rng, style.variability))
    a = {name: np.float32(value) for name, value in alpha.items()}
    lung_p = (0.05, -0.05, 0.5 + an.lung_w - 0.28, an.lung_h)  # both lungs superimposed
    lung = ellipse(u, v, *lung_p)
    d = 0.05 + 0.5 * ellipse(u, v, 0.0, 0.2, 0.8, 1.15)
    collapsed = (lung_p[0], lung_p[1] + 0.14, lung_p[2] - 0.04, lung_p[3] - 0.14)
    upper = soft_step(-0.3 - v)
    ptx = a.get("Pneumothorax", 0) * lung * (1 - ellipse(u, v, *collapsed)) * upper  # apical gap
    d = lerp(d, 0.22, lung) + 0.08 * streaks(u, v, 0.05, -0.05, rng.uniform(0, 6.3)) * lung \
        * (1 - ptx) - 0.12 * ptx
    d += 0.25 * a.get("Pneumothorax", 0) * lung * upper \
        * band((radius(u, v, *collapsed) - 1) * collapsed[3], 0.009)
    d += 0.11 * _lateral_ribs(u, v, a.get("Fracture", 0), rng)
    # Enlarged Cardiomediastinum: the retrosternal clear space fills in.
    d = lerp(d, 0.58, a.get("Enlarged Cardiomediastinum", 0)
             * ellipse(u, v, -0.42, -0.35, 0.2 * rng.uniform(0.85, 1.15), 0.28) * lung)
    # Cardiomegaly: the heart (anterior, lower) grows backwards towards the spine.
    heart = ellipse(u, v, -0.25, 0.33, an.heart * 1.2, 0.24)
    big = ellipse(u, v, -0.18, 0.34, an.heart * 1.2 * rng.uniform(1.35, 1.5), 0.27)
    d = lerp(d, 0.62, lerp(heart, np.maximum(heart, big), a.get("Cardiomegaly", 0)))
    d += 0.2 * soft_step(0.09 - np.abs(u - 0.67)) * (0.75 + 0.25 * np.cos(30 * v))  # spine
    d += 0.12 * segment(u, v, (-0.72, -0.55), (-0.78, 0.3), 0.025)  # sternum
    trachea = ((-0.05, -1.05), (0.08, -0.3))
    d -= 0.18 * segment(u, v, *trachea, 0.035)
    d += 0.5 * a.get("Support Devices", 0) * segment(u, v, trachea[0], (0.06, -0.42), 0.014)
    # Pleural Effusion: blunting of the posterior costophrenic sulcus (fluid rises posteriorly).
    top = lung_p[1] + lung_p[3] - 0.12 - 0.32 * rng.uniform(0.85, 1.2) \
        * np.clip((u - lung_p[0]) / lung_p[2], 0, 1)
    d = lerp(d, 0.56, a.get("Pleural Effusion", 0) * lung * soft_step(v - top) * soft_step(u))
    d = lerp(d, 0.5, 0.9 * a.get("Consolidation", 0) * lung
             * blob(u, v, (0.25, 0.26), (0.15, 0.11), rng))  # lower lobe patch
    d += 0.17 * a.get("Edema", 0) * lung * gaussian(u, v, 0.02, -0.05, 0.22, 0.25)  # hilar haze
    d += 0.24 * a.get("Atelectasis", 0) * lung * segment(u, v, (-0.05, 0.41), (0.4, 0.36), 0.022)
    size = 0.085 * rng.uniform(0.9, 1.2)  # ~3 px radius at the 64 px tiny input
    d = lerp(d, 0.72, a.get("Lung Lesion", 0) * ellipse(u, v, 0.12, -0.4, size, size))  # nodule
    rim = soft_step(radius(u, v, *lung_p) - 0.84) * lung * soft_step(u - 0.3) \
        * soft_step(v + 0.4) * soft_step(0.3 - v)  # posterior pleural thickening
    d = lerp(d, 0.55, a.get("Pleural Other", 0) * rim)
    d += 0.2 * a.get("Pneumonia", 0) * lung * patches(
        u, v, ((-0.1, -0.2), (0.25, -0.05), (0.0, 0.15), (0.3, 0.2)), rng)
    return _expose(d, rng, style)


def _ribs(u: np.ndarray, v: np.ndarray, an: Anatomy, fracture: float,
          rng: np.random.Generator) -> np.ndarray:
    """Posterior rib arches over both lungs; a fracture breaks the 4th left one, laterally."""
    out = np.zeros_like(u)
    for side in (-1, 1):
        cx = side * an.lung_x
        reach = soft_step(an.lung_w * 1.15 - np.abs(u - cx)) * soft_step(np.abs(u) - 0.08)
        arch = 0.2 * ((u - cx) / an.lung_w) ** 2
        for k in range(6):
            dist = v - (-0.6 + 0.2 * k) - arch
            rib = band(dist, 0.025)
            if side == 1 and k == 3 and fracture > 0:
                fx = cx + 0.35 * an.lung_w  # fracture site; the lateral fragment drops ~0.07
                broken = rib * soft_step(fx - 0.045 - u) \
                    + band(dist - 0.07 * rng.uniform(0.85, 1.15), 0.025) * soft_step(u - fx - 0.045)
                rib = lerp(rib, broken, fracture)
            out = np.maximum(out, rib * reach)
    return out


def _lateral_ribs(u: np.ndarray, v: np.ndarray, fracture: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Oblique posterior rib segments; a fracture breaks the 4th with a step-off."""
    out = np.zeros_like(u)
    reach = soft_step(u - 0.15) * soft_step(0.62 - u)
    for k in range(6):
        dist = v - (-0.62 + 0.2 * k) + 0.35 * (u - 0.6)
        rib = band(dist, 0.025)
        if k == 3 and fracture > 0:
            broken = rib * soft_step(0.355 - u) \
                + band(dist - 0.07 * rng.uniform(0.85, 1.15), 0.025) * soft_step(u - 0.445)
            rib = lerp(rib, broken, fracture)
        out = np.maximum(out, rib * reach)
    return out


def _expose(density: np.ndarray, rng: np.random.Generator, style: Style) -> np.ndarray:
    """Density to display values: per-image contrast, brightness and gamma, then noise."""
    contrast = 1.0 + jitter(rng, 0.08 * style.variability)
    gamma = float(np.exp(jitter(rng, 0.1 * style.variability)))
    img = contrast * ((density - 0.05) / 0.8 - 0.5) + 0.5 + jitter(rng, 0.04 * style.variability)
    img = np.clip(img, 0.0, 1.0) ** np.float32(gamma)
    img = np.clip(add_noise(img, rng, style.noise), 0.0, 1.0).astype(np.float32)
    return acquisition_shift(img, rng) if style.public else img
