"""Find and blank text burned into the pixels of a radiograph.

Modalities and PACS exports often print the patient's name, ID, dates and the institution into
the image itself (``BurnedInAnnotation`` = ``YES``). Removing the DICOM attributes does nothing
about those pixels, and no OCR model can be downloaded here, so this module finds text the
classical way and blanks it:

1. **Thin-stroke contrast.** A white top-hat (image minus its grey opening) keeps structures
   narrower than the opening window: glyph strokes survive, broad anatomy (lungs, heart, ribs,
   soft tissue) does not. A black top-hat does the same for dark text on a bright background.
2. **Threshold.** Strokes of burned-in text are high contrast (annotation is usually drawn at or
   near the maximum value); pixels whose top-hat exceeds an absolute floor and a robust
   multiple of the image's own top-hat spread are candidates.
3. **Glyph-like components.** Connected components are kept if their height is glyph-like
   (a few pixels up to about a tenth of the image), they are not much wider than a few letters
   and they are not solid blobs.
4. **Text lines.** Glyphs are chained into a line when their vertical centres align, their
   heights are similar and the horizontal gap is about a letter or less. Only lines of several
   glyphs count: one isolated bright component is far more often a wire, a clip or a vessel than
   a word.

A region is the padded box around a line; blanking sets it to the background value the caller
gives (the darkest display value of the film). The search covers the whole image, not only the
corners.

What it deliberately does not do, and its limits:

* It reads nothing: it cannot tell a name from a laterality marker, so it blanks any line of
  text it finds (a lost "PORTABLE" label is cheaper than a leaked name).
* Single characters and two-letter markers ("L", "R") are not reported: they rarely carry
  identity, and requiring a line of three glyphs is what keeps the detector quiet on clean
  films (two-glyph lines gave false alarms on 12 of 60 small synthetic films).
  ``sensitive=True`` (used when the header says ``BurnedInAnnotation`` = ``YES``) lowers the
  contrast floor.
* Bold or very large type whose strokes are wider than the opening window (about 2 % of the
  image side, at least 15 pixels), text drawn with little contrast to what lies under it,
  rotated or vertical text, and text that touches bright anatomy of the same width can be
  missed. Text on film that was scanned from paper, with blur and noise, was not tested.
* Thin, high-contrast, regularly spaced foreign bodies (sutures, ECG leads, a row of staples)
  can be taken for text and blanked: a false positive costs some pixels, never identity.

It is a safety net behind the header de-identification, not a guarantee: a site that prints
identity onto its films should turn that off at the modality.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# Stroke contrast (in display units, the image spanning [0, 1]) below which nothing is text.
_MIN_CONTRAST = 0.18
_MIN_CONTRAST_SENSITIVE = 0.14
# Robust floor: this many median absolute deviations of the top-hat above its median.
_SPREAD_FACTOR = 12.0
_WEAK_FRACTION = 0.4  # hysteresis: a stroke's neighbours above this share join it
_MIN_GLYPH_HEIGHT = 4
_MAX_GLYPH_ASPECT = 5.0  # width / height; a few touching letters still pass
_MAX_SOLID_FILL = 0.85  # a filled box this solid and this large is a blob, not a glyph
_MIN_LINE_GLYPHS = 3
# Type is drawn with strokes thin for its height (measured: half-stroke <= 0.14 x height for the
# default PIL font from 10 to 40 px); blobby components are thicker.
_MAX_HALF_STROKE_RATIO = 0.16
_MIN_HALF_STROKE_LIMIT = 2.5


@dataclass(frozen=True)
class TextRegion:
    """A box holding a line of text, in pixel indices; ``bottom`` and ``right`` are exclusive."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def area(self) -> int:
        """Number of pixels inside the box."""
        return (self.bottom - self.top) * (self.right - self.left)


@dataclass(frozen=True)
class _Glyph:
    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def center_y(self) -> float:
        return (self.top + self.bottom) / 2.0


def find_text_regions(image: np.ndarray, *, sensitive: bool = False) -> tuple[TextRegion, ...]:
    """Return boxes around lines of burned-in text in a grayscale display image.

    Args:
        image: ``(H, W)`` array, display values in [0, 1] (bright is white).
        sensitive: lower the contrast floor; meant for films whose header already says text
            was burned in, where a miss costs more than a false alarm.

    Returns:
        Non-overlapping boxes, top to bottom; empty when no text line was found.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2 or min(img.shape) < 8:
        return ()
    window = max(15, round(0.02 * min(img.shape))) | 1  # odd, wider than any thin stroke
    floor = _MIN_CONTRAST_SENSITIVE if sensitive else _MIN_CONTRAST
    max_height = max(24, img.shape[0] // 10)

    regions: list[TextRegion] = []
    passes = (
        # Bright text, the usual annotation: as sensitive as the caller asks.
        (img - ndimage.grey_opening(img, size=(window, window)), floor),
        # Dark text is rare on radiographs, while dark gaps between bright anatomy are common,
        # so this pass always runs with the strict settings.
        (ndimage.grey_closing(img, size=(window, window)) - img, _MIN_CONTRAST),
    )
    for tophat, pass_floor in passes:
        mask = _strokes(tophat, pass_floor)
        for line in _lines(_glyphs(mask, max_height)):
            if len(line) >= _MIN_LINE_GLYPHS:
                regions.append(_box(line, img.shape))
    return _merge(regions)


def blank_regions(
    image: np.ndarray, regions: tuple[TextRegion, ...], *, value: float
) -> np.ndarray:
    """Return a copy of ``image`` with every region set to ``value`` (the background)."""
    out = np.array(image, copy=True)
    for region in regions:
        out[region.top : region.bottom, region.left : region.right] = value
    return out


def _strokes(tophat: np.ndarray, floor: float) -> np.ndarray:
    """Pixels whose thin-structure contrast stands out from the film's own texture.

    Hysteresis kept on a short leash: a pixel above the full threshold is a stroke, and so is a
    pixel above a fraction of it that touches one. Anti-aliased one-pixel strokes (diagonals
    above all) are only partly bright, so a single threshold breaks letters into dust; letting
    weak pixels chain freely would instead weld letters to bright anatomy beside them.
    """
    median = float(np.median(tophat))
    spread = float(np.median(np.abs(tophat - median)))
    threshold = max(floor, median + _SPREAD_FACTOR * spread)
    strong = tophat > threshold
    weak = tophat > _WEAK_FRACTION * threshold
    near_strong = ndimage.binary_dilation(strong, structure=np.ones((3, 3), dtype=bool))
    return np.asarray(strong | (weak & near_strong))


def _glyphs(mask: np.ndarray, max_height: int) -> list[_Glyph]:
    """Connected components whose size and fill look like a letter or a few touching ones."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return []
    index = np.arange(1, count + 1)
    areas = ndimage.sum_labels(mask, labels, index=index)
    # Half the widest stroke: the largest distance from a pixel to the component's edge.
    half_strokes = ndimage.maximum(ndimage.distance_transform_edt(mask), labels, index=index)
    glyphs = []
    for slices, area, half_stroke in zip(
        ndimage.find_objects(labels), areas, half_strokes, strict=True
    ):
        if slices is None:
            continue
        rows, cols = slices
        height = rows.stop - rows.start
        width = cols.stop - cols.start
        if not _MIN_GLYPH_HEIGHT <= height <= max_height:
            continue
        if width > _MAX_GLYPH_ASPECT * height:
            continue
        if height >= 8 and width >= 8 and area > _MAX_SOLID_FILL * height * width:
            continue
        if half_stroke > max(_MIN_HALF_STROKE_LIMIT, _MAX_HALF_STROKE_RATIO * height):
            continue  # strokes this thick for the height are a blob or an edge, not type
        glyphs.append(_Glyph(rows.start, cols.start, rows.stop, cols.stop))
    return glyphs


def _same_line(a: _Glyph, b: _Glyph) -> bool:
    """Whether two glyphs sit side by side on one line of type."""
    tall, short = max(a.height, b.height), min(a.height, b.height)
    if tall > 2.5 * short:
        return False
    if abs(a.center_y - b.center_y) > 0.5 * tall:
        return False
    gap = max(a.left, b.left) - min(a.right, b.right)
    return gap <= 1.2 * tall


def _lines(glyphs: list[_Glyph]) -> list[list[_Glyph]]:
    """Chain glyphs into lines (union-find over neighbouring pairs)."""
    parent = list(range(len(glyphs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    order = sorted(range(len(glyphs)), key=lambda i: glyphs[i].left)
    for pos, i in enumerate(order):
        for j in order[pos + 1 :]:
            if glyphs[j].left - glyphs[i].right > 1.2 * 2.5 * glyphs[i].height:
                break  # sorted by left edge: nothing further right can be a neighbour
            if _same_line(glyphs[i], glyphs[j]):
                parent[root(i)] = root(j)
    groups: dict[int, list[_Glyph]] = {}
    for i, glyph in enumerate(glyphs):
        groups.setdefault(root(i), []).append(glyph)
    return list(groups.values())


def _box(line: list[_Glyph], shape: tuple[int, ...]) -> TextRegion:
    """The line's bounding box, padded to catch dots, accents, descenders and anti-aliasing."""
    height = int(np.median([g.height for g in line]))
    pad = max(2, round(0.35 * height))
    return TextRegion(
        top=max(0, min(g.top for g in line) - pad),
        left=max(0, min(g.left for g in line) - pad),
        bottom=min(shape[0], max(g.bottom for g in line) + pad),
        right=min(shape[1], max(g.right for g in line) + pad),
    )


def _merge(regions: list[TextRegion]) -> tuple[TextRegion, ...]:
    """Merge overlapping boxes (bright and dark passes, or touching lines) until none overlap."""
    boxes = list(regions)
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a.top < b.bottom and b.top < a.bottom and a.left < b.right and b.left < a.right:
                    boxes[i] = TextRegion(
                        min(a.top, b.top),
                        min(a.left, b.left),
                        max(a.bottom, b.bottom),
                        max(a.right, b.right),
                    )
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return tuple(sorted(boxes, key=lambda r: (r.top, r.left)))
