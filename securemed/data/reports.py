"""Radiology reports paired with the synthetic chest X-rays: Findings and Impression.

Every report describes exactly what is drawn on its film (``ChestCase.present``): which
findings, on which side, how large or severe, read off the geometry the renderer used, so a
model that writes the report must look at the image. Phrasing varies the way real reports do:
several templates and synonyms per finding, different ways of saying a study is normal, and
hedges ("cannot be excluded", "possible") for borderline findings, which a CheXpert-style
labeler reads as uncertain. The wording is drawn from its own random stream per film, so the
same (seed, index) always gives the same report and the image stays the same whatever the text.

Sides: the generator's ``side = -1`` is the image's left, which is the patient's right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from securemed.data.synthetic import FINDINGS, ChestCase, SyntheticChestXRays

_REPORT_STREAM = 0x7E9027  # keeps the wording's draws apart from the film's own stream
# Severity thresholds on the generator's geometry, in body units (the image spans [-1, 1]).
_CM_PER_UNIT = 15.0  # the film's 2 units cover ~30 cm of chest: nodules come out 2-3.3 cm
_EFFUSION_SIZES = ((0.12, "small"), (0.24, "moderate"), (float("inf"), "large"))
_CONSOLIDATION_SIZES = ((0.19, "small"), (0.24, "patchy"), (float("inf"), "extensive"))
_PNEUMOTHORAX_SIZES = ((0.24, "small"), (0.36, "moderate"), (float("inf"), "large"))
_CARDIOMEGALY = ((0.56, "mild"), (0.61, "moderate"), (float("inf"), "marked"))
#: below these the finding is borderline on the film and the report hedges
_HEDGE_BELOW = {
    "pleural_effusion": 0.09,
    "consolidation": 0.17,
    "pneumothorax": 0.19,
    "nodule": 0.08,
}


@dataclass(frozen=True)
class RadiologyReport:
    """The two sections a report model writes, and the findings they describe."""

    findings: str
    impression: str
    labels: tuple[bool, ...]  # in FINDINGS order: what the report says is present

    @property
    def text(self) -> str:
        """The report as one text: what the model is trained to write."""
        return f"FINDINGS: {self.findings} IMPRESSION: {self.impression}"


def _graded(value: float, scale: tuple[tuple[float, str], ...]) -> str:
    return next(word for bound, word in scale if value < bound)


def _side(side: int) -> str:
    return {-1: "right", 1: "left", 0: "bilateral"}[side]


class ReportWriter:
    """Writes the report of any film of a :class:`SyntheticChestXRays` generator."""

    def __init__(self, generator: SyntheticChestXRays) -> None:
        self.generator = generator

    def report(self, index: int) -> RadiologyReport:
        case = self.generator.case(index)
        rng = np.random.default_rng([self.generator.seed, int(index), _REPORT_STREAM])
        return write_report(case, rng)

    def reports(self, indices: Sequence[int] | np.ndarray) -> list[RadiologyReport]:
        return [self.report(int(index)) for index in indices]


def write_report(case: ChestCase, rng: np.random.Generator) -> RadiologyReport:
    """The report of one case; ``rng`` picks the wording only."""
    present = dict(zip(FINDINGS, case.present, strict=True))
    f, a = case.findings, case.anatomy
    pick = _Picker(rng)
    sentences: list[str] = []
    impressions: list[str] = []

    if present["cardiomegaly"]:
        grade = _graded(a.ctr_enlarged, _CARDIOMEGALY)
        sentences.append(
            pick(
                f"The heart is {pick('enlarged', 'increased in size')}, {grade} cardiomegaly.",
                f"There is {grade} enlargement of the cardiac silhouette.",
                f"{grade.capitalize()} cardiomegaly.",
            )
        )
        impressions.append(f"{grade.capitalize()} cardiomegaly.")
    else:
        sentences.append(
            pick(
                "The heart is normal in size.",
                "Heart size is within normal limits.",
                "The cardiomediastinal silhouette is normal.",
                "Normal heart size.",
            )
        )

    if present["pleural_effusion"]:
        size = _graded(f.effusion_level, _EFFUSION_SIZES)
        side = _side(f.effusion_side)
        noun = "pleural effusions" if f.effusion_side == 0 else "pleural effusion"
        phrase = f"{size} {side} {noun}"
        if f.effusion_level < _HEDGE_BELOW["pleural_effusion"]:
            sentences.append(
                pick(
                    f"Blunting of the {side} costophrenic angle; a {phrase} cannot be excluded.",
                    f"Possible {phrase}.",
                )
            )
            impressions.append(f"Possible {phrase}.")
        else:
            sentences.append(
                pick(
                    f"There is a {phrase}.",
                    f"{phrase.capitalize()} is present.",
                    f"A {phrase} blunts the costophrenic angle.",
                )
            )
            impressions.append(f"{phrase.capitalize()}.")
    else:
        sentences.append(
            pick("No pleural effusion.", "There is no pleural effusion.", "No effusion.")
        )

    if present["consolidation"]:
        radius = float(np.mean(f.consolidation_radius))
        extent = _graded(radius, _CONSOLIDATION_SIZES)
        side = _side(f.consolidation_side)
        zone = "lower" if f.consolidation_center[1] > 0 else "upper"
        where = f"the {side} {zone} lung"
        noun = pick("consolidation", "airspace opacity", "airspace consolidation")
        if radius < _HEDGE_BELOW["consolidation"]:
            sentences.append(f"Subtle {noun} in {where}; pneumonia cannot be excluded.")
            impressions.append(f"Possible {side} {zone} lobe consolidation.")
        else:
            sentences.append(
                pick(
                    f"There is {extent} {noun} in {where}.",
                    f"{extent.capitalize()} {noun} is seen in {where}.",
                )
            )
            impressions.append(f"{extent.capitalize()} {side} {zone} lobe consolidation.")
    elif present["pneumothorax"] or present["nodule"]:  # the lungs are not "clear" then
        sentences.append(pick("No focal consolidation.", "No focal airspace opacity."))
    else:
        sentences.append(
            pick(
                "The lungs are clear.",
                "No focal consolidation.",
                "No focal airspace opacity.",
                "Lungs are clear without consolidation.",
            )
        )

    if present["pneumothorax"]:
        size = _graded(f.pneumothorax_collapse, _PNEUMOTHORAX_SIZES)
        side = _side(f.pneumothorax_side)
        if f.pneumothorax_collapse < _HEDGE_BELOW["pneumothorax"]:
            sentences.append(f"A tiny {side} apical pneumothorax cannot be excluded.")
            impressions.append(f"Possible small {side} pneumothorax.")
        else:
            sentences.append(
                pick(
                    f"There is a {size} {side} pneumothorax.",
                    f"{size.capitalize()} {side} pneumothorax with a visible pleural line.",
                )
            )
            impressions.append(f"{size.capitalize()} {side} pneumothorax.")
    else:
        sentences.append(pick("No pneumothorax.", "There is no pneumothorax."))

    if present["nodule"]:
        side = _side(f.nodule_side)
        zone = "lower" if f.nodule_center[1] > 0 else "upper"
        size = f"{2 * f.nodule_radius * _CM_PER_UNIT:.1f} cm"
        if f.nodule_radius < _HEDGE_BELOW["nodule"]:
            sentences.append(f"A possible {size} nodule in the {side} {zone} lung.")
            impressions.append(f"Possible {side} {zone} lung nodule; CT may help.")
        else:
            sentences.append(
                pick(
                    f"There is a {size} nodule in the {side} {zone} lung.",
                    f"A {size} pulmonary nodule projects over the {side} {zone} lung.",
                )
            )
            impressions.append(
                f"{side.capitalize()} {zone} lung nodule; {pick('CT is advised', 'recommend CT')}."
            )

    if not impressions:
        impressions.append(
            pick(
                "No acute cardiopulmonary process.",
                "Normal chest radiograph.",
                "No acute cardiopulmonary abnormality.",
            )
        )
    return RadiologyReport(
        findings=" ".join(sentences),
        impression=" ".join(impressions),
        labels=tuple(case.present),
    )


class _Picker:
    """Chooses one of several phrasings with the report's own generator."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng

    def __call__(self, *options: str) -> str:
        return options[int(self._rng.integers(len(options)))]
