"""Synthetic chest X-rays with anatomy and five findings, so every model has a signal to learn.

No real data set can be downloaded here, yet the federation, the DP trainer and the privacy
audits all need images whose labels a small CNN can learn but not trivially. This module draws
a PA chest film from a handful of anatomical shapes (lungs, heart and mediastinum, ribs,
clavicles, diaphragm domes, soft tissue) and renders findings the way they look on a film:

* cardiomegaly: cardiothoracic ratio above 0.5;
* pleural effusion: a meniscus of fluid at a lung base that blunts the costophrenic angle;
* consolidation: a patchy airspace opacity in one lobe;
* pneumothorax: a lucent rim without lung markings outside a visible visceral pleural line;
* nodule: a small round opacity.

Images are in radiological convention: the patient's right is on the image's left, so the heart
bulges to the image's right.

Every sample is a pure function of ``(seed, index)``: one stream ``default_rng([seed, index])``
whose first numbers decide the labels and the rest the film. A hospital can therefore render
only its own indices, ``labels(idx)`` is cheap because it stops after the label block, and the
labels always agree with what was rendered. Textures and noise are cropped from fixed fields
precomputed once per image size, at offsets drawn from the sample's stream.

Films belong to patients (:func:`assign_patients`): consecutive indices form one patient's
studies, with a skewed number of studies per patient (half the patients have one film, a few
have ten), so patient-level privacy has something to protect. A patient's films are drawn
independently of each other: the generator does not correlate findings within a patient.

The module deliberately does not model projection physics, DICOM or reports; it renders one
float image per sample with numpy only, vectorised over pixels (well under a millisecond at
64 px).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from securemed.errors import DataError

FINDINGS: tuple[str, ...] = (
    "cardiomegaly",
    "pleural_effusion",
    "consolidation",
    "pneumothorax",
    "nodule",
)

MIN_IMAGE_SIZE = 32
MAX_IMAGE_SIZE = 512

# Base prevalences; effusion is likelier with cardiomegaly (heart failure), as on real wards.
# Independent draws then give about 38 % "no finding".
_P_CARDIOMEGALY = 0.20
_P_EFFUSION = 0.12
_P_EFFUSION_GIVEN_CARDIOMEGALY = 0.40
_P_CONSOLIDATION = 0.20
_P_PNEUMOTHORAX = 0.15
_P_NODULE = 0.18

# Label noise grows with difficulty, as report-mined labels do on real data sets (a few per
# cent of NLP-extracted CheXpert/ChestX-ray14 labels disagree with radiologists). It also caps
# macro-AUROC below 1 for any model, which keeps the default task from being trivial.
_MAX_LABEL_FLIP = 0.03

# Studies per patient: P(k) proportional to k^-1.5 for k = 1..10, so about half the patients
# have one film, the mean is about 2.5 films, and one patient in thirty has ten. Real archives
# have longer tails (ChestX-ray14 averages 3.6 films a patient, a few have over a hundred);
# ten keeps small synthetic hospitals from being dominated by one patient.
MAX_STUDIES_PER_PATIENT = 10
_STUDIES_EXPONENT = 1.5
_PATIENT_STREAM = 0x9A71E7  # keeps the patient draws apart from every film's own stream

_TEXTURES = 4  # fields per bank; each film crops a window of one at a random offset
_TEXTURE_SEED = 20_240_917  # fixed: the bank is part of the generator, not of the data set


@dataclass(frozen=True)
class Anatomy:
    """The normal anatomy and exposure of one film, in body units (the image spans [-1, 1]).

    Nothing here depends on the image size, so one case renders at 64, 128 or 224 pixels alike.
    """

    scale: float
    rotation: float  # radians
    shift: tuple[float, float]
    lung_width: float
    lung_height: float
    dome_base: tuple[float, float]  # (patient right = image left, patient left = image right)
    dome_height: float
    ctr_normal: float
    ctr_enlarged: float
    heart_center: float  # v of the cardiac silhouette's centre
    rib_spacing: float
    rib_phase: float
    marking_phase: tuple[float, float]
    texture_pick: tuple[float, ...]  # (bank, row, col) for fine, coarse and noise, as fractions
    contrast: float
    brightness: float
    noise_sigma: float


@dataclass(frozen=True)
class FindingParams:
    """Where and how strongly each finding would be drawn; drawn for every film, used if present.

    Drawing all of them whatever the labels keeps the random stream aligned, so toggling one
    finding on a case changes the image only where that finding is.
    """

    effusion_side: int  # -1 image left (patient right), +1 image right, 0 both
    effusion_level: float
    consolidation_side: int
    consolidation_center: tuple[float, float]  # lung-relative (lateral, down), about [-1, 1]
    consolidation_radius: tuple[float, float]
    consolidation_strength: float
    pneumothorax_side: int
    pneumothorax_collapse: float
    nodule_side: int
    nodule_center: tuple[float, float]
    nodule_radius: float
    nodule_strength: float


@dataclass(frozen=True)
class ChestCase:
    """Everything needed to render one film: the ground truth and the (possibly noisy) label."""

    index: int
    present: tuple[bool, ...]  # what is drawn on the film, in FINDINGS order
    labels: tuple[bool, ...]  # what the "report" says: present with a little label noise
    anatomy: Anatomy
    findings: FindingParams


class SyntheticChestXRays:
    """A deterministic, indexable generator of labelled synthetic chest X-rays.

    Args:
        image_size: side of the square image in pixels (64, 128 or 224 are the tested sizes;
            any size from 32 to 512 works because the anatomy is resolution independent).
        difficulty: in [0, 1]; higher makes findings smaller and fainter, widens the borderline
            range between normal and abnormal, adds noise and a little label noise.
        seed: non-negative integer; together with the index it fixes each sample.

    Example:
        >>> data = SyntheticChestXRays(image_size=64, seed=7)
        >>> data.images(np.arange(4)).shape
        (4, 1, 64, 64)
    """

    def __init__(self, *, image_size: int = 64, difficulty: float = 0.5, seed: int = 0) -> None:
        if isinstance(image_size, bool) or not isinstance(image_size, int | np.integer):
            raise DataError(f"image_size must be an integer, got {image_size!r}")
        if not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
            raise DataError(
                f"image_size must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} pixels "
                f"(64, 128 or 224 are usual), got {image_size}"
            )
        if isinstance(difficulty, bool) or not isinstance(difficulty, int | float | np.number):
            raise DataError(f"difficulty must be a number in [0, 1], got {difficulty!r}")
        if not 0.0 <= float(difficulty) <= 1.0:
            raise DataError(f"difficulty must be in [0, 1], got {difficulty}")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise DataError(f"seed must be a non-negative integer, got {seed!r}")
        self.image_size = int(image_size)
        self.difficulty = float(difficulty)
        self.seed = int(seed)
        self.class_names: tuple[str, ...] = FINDINGS
        self.num_classes: int = len(FINDINGS)

    def __repr__(self) -> str:
        return (
            f"SyntheticChestXRays(image_size={self.image_size}, "
            f"difficulty={self.difficulty}, seed={self.seed})"
        )

    def labels(self, indices: np.ndarray) -> np.ndarray:
        """Return the (N, 5) float32 multi-hot labels of ``indices`` without rendering."""
        idx = _check_indices(indices)
        out = np.zeros((idx.size, self.num_classes), dtype=np.float32)
        for row, i in enumerate(idx.tolist()):
            _, observed = _draw_labels(np.random.default_rng([self.seed, i]), self.difficulty)
            out[row] = observed
        return out

    def images(self, indices: np.ndarray) -> np.ndarray:
        """Return the (N, 1, S, S) float32 images of ``indices``, values in [0, 1]."""
        idx = _check_indices(indices)
        out = np.empty((idx.size, 1, self.image_size, self.image_size), dtype=np.float32)
        for row, i in enumerate(idx.tolist()):
            out[row, 0] = self.render(self.case(i))
        return out

    def case(self, index: int) -> ChestCase:
        """Return the full description of sample ``index``: labels, anatomy, finding geometry."""
        if isinstance(index, bool) or not isinstance(index, int | np.integer) or index < 0:
            raise DataError(f"a sample index must be a non-negative integer, got {index!r}")
        rng = np.random.default_rng([self.seed, int(index)])
        present, observed = _draw_labels(rng, self.difficulty)
        draws = _Draws(rng)
        return ChestCase(
            index=int(index),
            present=tuple(bool(p) for p in present),
            labels=tuple(bool(o) for o in observed),
            anatomy=_draw_anatomy(draws, self.difficulty),
            findings=_draw_findings(draws, self.difficulty),
        )

    def render(self, case: ChestCase) -> np.ndarray:
        """Render ``case`` to an (S, S) float32 image in [0, 1]; findings drawn from ``present``."""
        return _render(case, self.image_size)


def assign_patients(num_samples: int, *, seed: int, first_id: int = 0) -> np.ndarray:
    """Patient id of each of ``num_samples`` consecutive films: a patient's studies are a run.

    Deterministic in ``(seed, first_id)``, and a prefix is stable: asking for more films only
    appends (the last patient of a shorter run may gain studies). Ids are
    ``first_id, first_id + 1, ...`` in order of first film, so splits given different
    ``first_id`` have different patients.

    Returns:
        ``(num_samples,)`` int64 patient ids.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int | np.integer):
        raise DataError(f"num_samples must be an integer, got {num_samples!r}")
    if num_samples < 0 or seed < 0 or first_id < 0:
        raise DataError("num_samples, seed and first_id must be non-negative")
    studies = np.arange(1, MAX_STUDIES_PER_PATIENT + 1, dtype=np.float64)
    weights = studies**-_STUDIES_EXPONENT
    cdf = np.cumsum(weights / weights.sum())
    rng = np.random.default_rng([int(seed), _PATIENT_STREAM, int(first_id)])
    # One uniform per patient; num_samples patients always cover num_samples films.
    counts = np.searchsorted(cdf, rng.random(int(num_samples)), side="right") + 1
    counts = np.minimum(counts, MAX_STUDIES_PER_PATIENT)  # guards the cdf's last float
    ids = np.repeat(np.arange(counts.size, dtype=np.int64), counts)[:num_samples]
    return ids + np.int64(first_id)


# --------------------------------------------------------------------------- sampling
#
# One stream per sample, default_rng([seed, index]): its first _LABEL_DRAWS numbers decide the
# labels, everything after them the film. labels() stops after the first block.

_LABEL_DRAWS = 10
_FILM_DRAWS = 48  # at most 46 are used; _Draws raises IndexError if that ever grows


def _check_indices(indices: np.ndarray) -> np.ndarray:
    idx = np.asarray(indices)
    if idx.ndim != 1:
        raise DataError(f"indices must be a 1-D array, got shape {idx.shape}")
    if idx.size and not np.issubdtype(idx.dtype, np.integer):
        raise DataError(f"indices must be integers, got dtype {idx.dtype}")
    if idx.size and idx.min() < 0:
        raise DataError("indices must be non-negative")
    return idx.astype(np.int64, copy=False)


def _draw_labels(rng: np.random.Generator, difficulty: float) -> tuple[np.ndarray, np.ndarray]:
    """Draw (present, observed) from the start of a sample's stream."""
    u = rng.random(_LABEL_DRAWS)
    cardiomegaly = u[0] < _P_CARDIOMEGALY
    p_effusion = _P_EFFUSION_GIVEN_CARDIOMEGALY if cardiomegaly else _P_EFFUSION
    present = np.array(
        [
            cardiomegaly,
            u[1] < p_effusion,
            u[2] < _P_CONSOLIDATION,
            u[3] < _P_PNEUMOTHORAX,
            u[4] < _P_NODULE,
        ]
    )
    flips = u[5:] < _MAX_LABEL_FLIP * difficulty
    return present, present ^ flips


class _Draws:
    """Hands out numbers from one block of uniforms: one generator call instead of fifty."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._u = rng.random(_FILM_DRAWS).tolist()
        self._next = 0

    def uniform(self, low: float = 0.0, high: float = 1.0) -> float:
        value = self._u[self._next]
        self._next += 1
        return low + (high - low) * value

    def side(self) -> int:
        return -1 if self.uniform() < 0.5 else 1

    def severity(self, difficulty: float) -> float:
        """A severity in (0, 1]; harder data sets reach further down into borderline cases."""
        return self.uniform(0.08 + 0.62 * (1.0 - difficulty), 1.0)


def _draw_anatomy(draw: _Draws, difficulty: float) -> Anatomy:
    # Normal and enlarged hearts come closer to CTR 0.5 on harder data sets: borderline cases.
    margin = 0.015 + 0.10 * (1.0 - difficulty)
    return Anatomy(
        scale=draw.uniform(0.90, 1.04),
        rotation=math.radians(draw.uniform(-4.0, 4.0)),
        shift=(draw.uniform(-0.04, 0.04), draw.uniform(-0.04, 0.04)),
        lung_width=draw.uniform(0.27, 0.32),
        lung_height=draw.uniform(0.56, 0.66),
        dome_base=(draw.uniform(0.52, 0.60), draw.uniform(0.56, 0.64)),
        dome_height=draw.uniform(0.14, 0.22),
        ctr_normal=draw.uniform(0.38, 0.5 - margin),
        ctr_enlarged=draw.uniform(0.5 + margin, 0.66),
        heart_center=draw.uniform(0.33, 0.40),
        rib_spacing=draw.uniform(0.15, 0.18),
        rib_phase=draw.uniform(),
        marking_phase=(draw.uniform(0.0, 2.0 * math.pi), draw.uniform(0.0, 2.0 * math.pi)),
        texture_pick=tuple(draw.uniform() for _ in range(9)),
        contrast=draw.uniform(0.85, 1.15),
        brightness=draw.uniform(-0.06, 0.06),
        noise_sigma=(0.01 + 0.04 * difficulty) * draw.uniform(0.7, 1.3),
    )


def _draw_findings(draw: _Draws, difficulty: float) -> FindingParams:
    effusion_side = 0 if draw.uniform() < 0.25 else draw.side()
    effusion_level = 0.05 + 0.30 * draw.severity(difficulty)
    consolidation_side = draw.side()
    consolidation_center = (draw.uniform(-0.4, 0.5), draw.uniform(-0.5, 0.5))
    size = 0.15 + 0.13 * draw.severity(difficulty)
    consolidation_radius = (size * draw.uniform(0.8, 1.2), size * draw.uniform(0.8, 1.2))
    consolidation_strength = 0.6 + 0.5 * draw.severity(difficulty)
    pneumothorax_side = draw.side()
    pneumothorax_collapse = 0.15 + 0.30 * draw.severity(difficulty)
    nodule_side = draw.side()
    # Lateral two thirds of the lung: a nodule behind the heart is real but barely learnable.
    nodule_center = (draw.uniform(-0.1, 0.65), draw.uniform(-0.6, 0.45))
    nodule_radius = 0.07 + 0.04 * draw.severity(difficulty)  # at most ~3 cm: larger is a mass
    nodule_strength = 0.35 + 0.3 * draw.severity(difficulty)
    return FindingParams(
        effusion_side=effusion_side,
        effusion_level=effusion_level,
        consolidation_side=consolidation_side,
        consolidation_center=consolidation_center,
        consolidation_radius=consolidation_radius,
        consolidation_strength=consolidation_strength,
        pneumothorax_side=pneumothorax_side,
        pneumothorax_collapse=pneumothorax_collapse,
        nodule_side=nodule_side,
        nodule_center=nodule_center,
        nodule_radius=nodule_radius,
        nodule_strength=nodule_strength,
    )


# --------------------------------------------------------------------------- rendering
#
# Coordinates: x runs left to right and y top to bottom of the image, both in [-1, 1]. The
# anatomy lives in a body frame (u, v) that is x, y shifted, rotated and scaled per film. Lungs
# are centred at u = -+_LUNG_OFFSET. Densities are added in the body frame and mapped to grey
# values at the end: bright = attenuating (bone, heart, fluid), dark = air. Everything stays
# float32: at 64 px a film is ~100 array operations, so dtype and call count set the speed.

_LUNG_OFFSET = 0.41
_LUNG_TOP = -0.02  # v of the lung's widest point; the apex is lung_height above it
_HILUM = (0.20, 0.05)  # (|u|, v) of each hilum, where the lung markings radiate from
_EDGE = 0.04  # width of soft edges in body units, about one pixel at 64 px
_BODY = 0.55
_BACKGROUND = 0.04
_AIR = 0.40
_HEART = 0.10
_RIB = 0.07
_MARKINGS = 0.05
_HEART_ELONGATION = 1.3  # long over short axis of the cardiac silhouette
_HEART_COS, _HEART_SIN = math.cos(0.45), math.sin(0.45)  # long axis 26 degrees below horizontal
_F32 = np.float32


@dataclass(frozen=True)
class _Banks:
    """Per-size precomputed fields; each film crops windows of them at its own offsets.

    Computing band-passed noise or an arctan per film would cost more than the whole rest of
    the film; cropping a window of a 2S x 2S field is free and still varies film to film.
    """

    x: np.ndarray  # (S, S) image coordinates
    y: np.ndarray
    fine: np.ndarray  # (T, 2S, 2S) band-passed noise at vessel scale, unit variance
    coarse: np.ndarray  # (T, 2S, 2S) band-passed noise at patch scale
    noise: np.ndarray  # (T, 2S, 2S) white Gaussian noise
    angle: np.ndarray  # (2S, 2S) polar angle around the centre pixel
    radius: np.ndarray  # (2S, 2S) distance to the centre pixel in image units


@lru_cache(maxsize=8)
def _banks(size: int) -> _Banks:
    rng = np.random.default_rng([_TEXTURE_SEED, size])
    n = 2 * size
    lin = ((np.arange(size, dtype=_F32) + 0.5) / size) * 2.0 - 1.0
    # Wavelengths are set in body units so the texture looks the same at every image size.
    freq = np.fft.fftfreq(n) * size
    radius = np.hypot(freq[:, None], freq[None, :])
    textures = []
    for center, width in ((7.0, 3.0), (2.0, 1.2)):
        gain = np.exp(-(((radius - center) / width) ** 2))
        tex = np.fft.ifft2(np.fft.fft2(rng.standard_normal((_TEXTURES, n, n))) * gain).real
        tex -= tex.mean(axis=(1, 2), keepdims=True)
        tex /= tex.std(axis=(1, 2), keepdims=True)
        textures.append(tex.astype(_F32))
    offset = (np.arange(n, dtype=_F32) - size) * (2.0 / size)
    return _Banks(
        x=np.broadcast_to(lin[None, :], (size, size)),
        y=np.broadcast_to(lin[:, None], (size, size)),
        fine=textures[0],
        coarse=textures[1],
        noise=rng.standard_normal((_TEXTURES, n, n), dtype=_F32),
        angle=np.arctan2(offset[:, None], offset[None, :]).astype(_F32),
        radius=np.hypot(offset[:, None], offset[None, :]).astype(_F32),
    )


def _window(bank: np.ndarray, pick: tuple[float, ...], size: int) -> np.ndarray:
    b, r, c = int(pick[0] * bank.shape[0]), int(pick[1] * size), int(pick[2] * size)
    return bank[b, r : r + size, c : c + size]


def _centred(field: np.ndarray, x: float, y: float, size: int) -> np.ndarray:
    """Window of a (2S, 2S) polar field so that its centre falls on image point (x, y)."""
    col = min(max(round((x + 1.0) * size / 2.0 - 0.5), 0), size)
    row = min(max(round((y + 1.0) * size / 2.0 - 0.5), 0), size)
    return field[size - row : 2 * size - row, size - col : 2 * size - col]


def _soft_step(signed: np.ndarray, width: float = _EDGE) -> np.ndarray:
    """0 -> 1 ramp across ``signed`` = 0: an anti-aliased edge, cheaper than a sigmoid."""
    return np.clip(signed * (1.0 / width) + 0.5, 0.0, 1.0)


def _ellipse(
    u: np.ndarray, v: np.ndarray, cx: float, cy: float, rx: float, ry: float
) -> np.ndarray:
    """Soft mask of an ellipse, edge width _EDGE measured along the smaller radius."""
    du, dv = (u - cx) * (1.0 / rx), (v - cy) * (1.0 / ry)
    return _soft_step((1.0 - np.sqrt(du * du + dv * dv)) * min(rx, ry))


def _lung_distance(u: np.ndarray, v: np.ndarray, width: float, height: float) -> np.ndarray:
    """Normalised distance to a lung's outline (1 on it), u measured from the lung's centre.

    Above its widest point a lung is half an ellipse; below, the walls fall almost straight to
    the diaphragm, which is what makes the costophrenic angle sharp on a normal film.
    """
    dv = v - _LUNG_TOP
    dv = dv * np.where(dv < 0.0, _F32(1.0 / height), _F32(1.0 / 1.6))
    du = u * (1.0 / width)
    return np.sqrt(du * du + dv * dv)


def _render(case: ChestCase, size: int) -> np.ndarray:
    a, f = case.anatomy, case.findings
    cardiomegaly, effusion, consolidation, pneumothorax, nodule = case.present
    banks = _banks(size)
    pick = a.texture_pick
    tex_fine = _window(banks.fine, pick[0:3], size)
    tex_coarse = _window(banks.coarse, pick[3:6], size)

    cos, sin = math.cos(a.rotation), math.sin(a.rotation)
    xs, ys = banks.x - a.shift[0], banks.y - a.shift[1]
    u = (xs * cos + ys * sin) * (1.0 / a.scale)
    v = (ys * cos - xs * sin) * (1.0 / a.scale)

    # Soft tissue: the trunk, with the shoulders' slope at the top corners.
    body = _ellipse(u, v, 0.0, 0.30, 1.02, 1.35)
    density = _BACKGROUND + (_BODY - _BACKGROUND) * body

    # Mediastinum, aortic knob and heart. CTR = cardiac width / inner thoracic width. The heart
    # is an ellipse tilted so that its apex points down and to the patient's left.
    thorax_width = 2.0 * (_LUNG_OFFSET + a.lung_width)
    ctr = a.ctr_enlarged if cardiomegaly else a.ctr_normal
    half_width = ctr * thorax_width / 2.0
    minor = half_width / math.sqrt((_HEART_ELONGATION * _HEART_COS) ** 2 + _HEART_SIN**2)
    hu, hv = u - 0.28 * half_width, v - a.heart_center
    along = (hu * _HEART_COS + hv * _HEART_SIN) * (1.0 / (_HEART_ELONGATION * minor))
    across = (hv * _HEART_COS - hu * _HEART_SIN) * (1.0 / minor)
    heart = _soft_step((1.0 - np.sqrt(along * along + across * across)) * minor)
    abs_u = np.abs(u)
    mediastinum = _soft_step(0.10 - abs_u) * _soft_step(np.minimum(0.4 - v, v + 0.95))
    knob = _ellipse(u, v, 0.11, -0.30, 0.07, 0.06)
    cardiac = np.maximum(np.maximum(heart, mediastinum), knob)
    trachea = _soft_step(0.035 - abs_u, 0.02) * _soft_step(-0.32 - v) * body
    density += _HEART * cardiac - 0.12 * trachea

    # Lungs: air lowers density; heart and mediastinum lie in front of the medial lung.
    left = u < 0.0  # image left = patient right
    side = np.where(left, _F32(-1.0), _F32(1.0))
    lung_u = u - side * _LUNG_OFFSET
    lung_dist = _lung_distance(lung_u, v, a.lung_width, a.lung_height)
    t = np.minimum((lung_u * (1.0 / (a.lung_width * 1.15))) ** 2, 1.0)
    base = np.where(left, _F32(a.dome_base[0]), _F32(a.dome_base[1]))
    dome = base - a.dome_height * (1.0 - t)  # highest mid-lung, lowest at the costophrenic angle
    lung_outline = _soft_step((1.0 - lung_dist) * a.lung_width)
    lung = lung_outline * _soft_step(dome - v)
    air = lung * (1.0 - cardiac)

    # Lung markings: vessels radiating from each hilum, fading towards the periphery.
    hila = [
        _hilum_fields(banks, a, -1.0, size),
        _hilum_fields(banks, a, 1.0, size),
    ]
    angle = np.where(left, hila[0][0] + a.marking_phase[0], hila[1][0] + a.marking_phase[1])
    fade = np.where(left, hila[0][1], hila[1][1])
    streaks = np.cos(angle * 18.0 + tex_coarse * 1.5)
    markings = (streaks * 0.6 + tex_fine * 0.7) * fade

    lucency = np.zeros_like(u)
    opacity = np.zeros_like(u)
    if pneumothorax:
        # The lung retracts towards the hilum and base; the rim outside it is air without
        # vessels, bounded by a thin bright visceral pleural line.
        s = f.pneumothorax_side
        keep = 1.0 - f.pneumothorax_collapse
        pu, pv = s * 0.22, 0.45
        collapsed = _lung_distance(
            pu + (u - pu) * (1.0 / keep) - s * _LUNG_OFFSET,
            pv + (v - pv) * (1.0 / keep),
            a.lung_width,
            a.lung_height,
        )
        on_side = air * (side == s)
        rim = on_side * _soft_step((collapsed - 1.0) * (a.lung_width * keep))
        line = np.clip(1.0 - np.abs(collapsed - 1.0) * (a.lung_width / 0.03), 0.0, 1.0)
        markings = markings * (1.0 - rim)
        lucency += 0.25 * rim
        opacity += 0.2 * line * on_side
    if effusion:
        # Fluid layers at the base and climbs the lateral wall: a meniscus concave upwards.
        lateral = np.clip(lung_u * side * (1.0 / a.lung_width) + 1.0, 0.0, 2.0)  # 0 medial
        level = base - f.effusion_level - 0.10 * lateral * lateral
        fluid = _soft_step(v - level, 0.06) * air
        if f.effusion_side:
            fluid *= side == f.effusion_side
        opacity += (0.95 * _AIR) * fluid
    if consolidation:
        s = f.consolidation_side
        ccx = s * (_LUNG_OFFSET + f.consolidation_center[0] * a.lung_width)
        ccy = _LUNG_TOP + f.consolidation_center[1] * a.lung_height
        blob = _ellipse(u, v, ccx, ccy, *f.consolidation_radius)
        patchy = np.clip(0.65 + 0.5 * tex_coarse + 0.25 * tex_fine, 0.0, 1.0)
        opacity += (f.consolidation_strength * _AIR) * blob * patchy * air
    if nodule:
        s = f.nodule_side
        ncx = s * (_LUNG_OFFSET + f.nodule_center[0] * a.lung_width)
        ncy = _LUNG_TOP + f.nodule_center[1] * a.lung_height
        du, dv = u - ncx, v - ncy
        d2 = (du * du + dv * dv) * (1.0 / f.nodule_radius**2)
        opacity += f.nodule_strength * np.exp(-0.5 * d2 * d2)  # flat-topped: a round opacity

    density -= (_AIR + lucency) * air
    density += _MARKINGS * markings * air
    density += opacity

    # Ribs: posterior arcs rising from the spine then falling laterally, seen over the lungs
    # (faintly through the heart); then the clavicles.
    arc = v + 0.25 * abs_u - 0.6 * u * u
    rib = np.cos((arc - a.rib_phase) * (2.0 * math.pi / a.rib_spacing))
    ribs = np.clip(rib * 2.0 - 0.6, 0.0, 1.0) * lung_outline * _soft_step(dome + 0.06 - v)
    ribs *= 1.0 - 0.6 * cardiac
    clavicle = np.exp(-(((v + 0.66 + 0.25 * abs_u - 0.35 * u * u) * (1.0 / 0.035)) ** 2))
    density += _RIB * ribs + 0.08 * clavicle * body

    noise = _window(banks.noise, pick[6:9], size)
    image = (density - 0.3) * a.contrast + (0.3 + a.brightness) + a.noise_sigma * noise
    return np.clip(image, 0.0, 1.0)


def _hilum_fields(banks: _Banks, a: Anatomy, side: float, size: int) -> tuple[np.ndarray, ...]:
    """(polar angle, radial fade) around one hilum, cropped from the precomputed fields.

    The film's rotation only adds a constant to the angle, which the random marking phase
    absorbs; its scale does not change the angle and is applied to the fade's radius.
    """
    cos, sin = math.cos(a.rotation), math.sin(a.rotation)
    hu, hv = side * _HILUM[0], _HILUM[1]
    x = a.shift[0] + a.scale * (cos * hu - sin * hv)
    y = a.shift[1] + a.scale * (sin * hu + cos * hv)
    angle = _centred(banks.angle, x, y, size)
    if side < 0:
        angle = -angle  # mirror the fan so both lungs branch outwards alike
    radius = _centred(banks.radius, x, y, size)
    return angle, np.exp(radius * (-1.6 / a.scale))
