"""Labels for difference-image detections, as DES made them.

Real (label 0) are the detections of transients injected into the science
image; everything else the difference image produced is bogus (label 1).
Each detection also gets the *family* that caused it, found from the
simulator's truth (which pixels carry cosmic rays, defects, trails; where
the stars and galaxies are), in this order of precedence:

``sn_hosted`` / ``sn_hostless`` (real)
    Nearest unmatched injected transient within ``match_radius`` pixels
    (one-to-one, closest pairs first).
``cosmic_ray``, ``bad_column``, ``hot_pixel``, ``satellite_trail``
    The detection's peak lies on (or within 2 pixels, 1 for defects, of)
    such pixels.
``edge``
    Within the kernel half-width of the detector border or of the edge of the
    template's coverage, where the convolution used missing pixels.
``saturation``
    Near saturated pixels (bleed trails, saturated cores).
``variable_star``
    On a star whose brightness changed (bogus under the DES convention,
    where only injected fakes are real; see ``variable_star_label``).
``dipole``
    On a star or galaxy core, with a significant negative lobe next to the
    positive one: misregistration (astrometric error, proper motion).
``star_residual`` / ``galaxy_residual``
    On a star or a galaxy core without a negative lobe: imperfect PSF
    matching or photometric scaling.
``fragment``
    Next to an injected transient but not its matched detection
    (deblending split).
``noise``
    None of the above: a noise peak.
"""

from __future__ import annotations

__all__ = [
    "REAL_FAMILIES",
    "BOGUS_FAMILIES",
    "FAMILIES",
    "TruthContext",
    "label_detections",
    "match_positions",
    "family_counts",
]

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

REAL_FAMILIES = ("sn_hosted", "sn_hostless")
BOGUS_FAMILIES = (
    "cosmic_ray",
    "bad_column",
    "hot_pixel",
    "satellite_trail",
    "edge",
    "saturation",
    "variable_star",
    "dipole",
    "star_residual",
    "galaxy_residual",
    "fragment",
    "noise",
)
FAMILIES = REAL_FAMILIES + BOGUS_FAMILIES
"""Every family name the simulator can produce."""


@dataclass
class TruthContext:
    """What the simulator knows about one difference image (science pixels)."""

    transient_x: np.ndarray
    transient_y: np.ndarray
    transient_mag: np.ndarray
    transient_family: np.ndarray
    cosmic_rays: np.ndarray
    bad_columns: np.ndarray
    hot_pixels: np.ndarray
    satellite: np.ndarray
    edge: np.ndarray
    saturated: np.ndarray
    star_x: np.ndarray
    star_y: np.ndarray
    star_variable: np.ndarray
    star_radius_px: np.ndarray
    """Association radius of each star (grows with brightness: residual
    lobes and wings of bright stars reach further)."""
    galaxy_x: np.ndarray
    galaxy_y: np.ndarray
    galaxy_radius_px: np.ndarray
    significance: np.ndarray
    """Matched-filter significance of the difference (for negative lobes)."""
    fwhm_px: float
    variable_star_label: int = 1


def match_positions(x1, y1, x2, y2, radius: float) -> np.ndarray:
    """One-to-one matching, closest pairs first.

    Returns
    -------
    match : `numpy.ndarray`
        For each point 1, the index of its point 2, or -1.
    """
    match = np.full(len(x1), -1, dtype=np.int64)
    if len(x1) == 0 or len(x2) == 0:
        return match
    tree = cKDTree(np.stack([x2, y2], axis=1))
    pairs = []
    for i, near in enumerate(tree.query_ball_point(np.stack([x1, y1], axis=1), r=radius)):
        for j in near:
            pairs.append((np.hypot(x1[i] - x2[j], y1[i] - y2[j]), i, j))
    taken = set()
    for _, i, j in sorted(pairs):
        if match[i] < 0 and j not in taken:
            match[i] = j
            taken.add(j)
    return match


def _near(points_x, points_y, x, y, radius) -> np.ndarray:
    """For each (x, y), the index of the nearest point within ``radius``
    (array or scalar per point), else -1."""
    out = np.full(len(x), -1, dtype=np.int64)
    if len(points_x) == 0 or len(x) == 0:
        return out
    tree = cKDTree(np.stack([points_x, points_y], axis=1))
    rmax = float(np.max(radius))
    k = min(8, len(points_x))
    dist, idx = tree.query(np.stack([x, y], axis=1), k=k, distance_upper_bound=rmax)
    dist = np.reshape(dist, (len(x), k))
    idx = np.reshape(idx, (len(x), k))
    radius = np.broadcast_to(np.asarray(radius, dtype=float), (len(points_x),))
    for i in range(len(x)):
        for d, j in zip(dist[i], idx[i]):
            if j < len(points_x) and d <= radius[j]:
                out[i] = j
                break
    return out


def label_detections(x: np.ndarray, y: np.ndarray, ctx: TruthContext, match_radius: float = 2.0):
    """Label and classify detections.

    Returns
    -------
    label : `numpy.ndarray`
        int8, 0 real / 1 bogus.
    family : `numpy.ndarray`
        str.
    mag : `numpy.ndarray`
        Injected magnitude of real detections, NaN otherwise.
    matched : `numpy.ndarray`
        Index of the matched transient or -1.
    """
    n = len(x)
    label = np.ones(n, dtype=np.int8)
    family = np.full(n, "noise", dtype="U16")
    mag = np.full(n, np.nan)
    matched = match_positions(x, y, ctx.transient_x, ctx.transient_y, match_radius)
    real = matched >= 0
    label[real] = 0
    family[real] = ctx.transient_family[matched[real]]
    mag[real] = ctx.transient_mag[matched[real]]
    if n == 0:
        return label, family, mag, matched

    height, width = ctx.edge.shape
    ix = np.clip(np.floor(x + 0.5).astype(int), 0, width - 1)
    iy = np.clip(np.floor(y + 0.5).astype(int), 0, height - 1)
    fw = ctx.fwhm_px
    todo = ~real

    def on(mask: np.ndarray, grow: int) -> np.ndarray:
        """Any ``mask`` pixel within ``grow`` pixels (square) of each peak."""
        hit = np.zeros(n, dtype=bool)
        if not mask.any():
            return hit
        for dy in range(-grow, grow + 1):
            for dx in range(-grow, grow + 1):
                hit |= mask[np.clip(iy + dy, 0, height - 1), np.clip(ix + dx, 0, width - 1)]
        return hit

    for name, mask, grow in (
        ("cosmic_ray", ctx.cosmic_rays, 2),
        ("bad_column", ctx.bad_columns, 1),
        ("hot_pixel", ctx.hot_pixels, 1),
        ("satellite_trail", ctx.satellite, 2),
        ("edge", ctx.edge, 1),
        ("saturation", ctx.saturated, int(np.ceil(2 * fw))),
    ):
        hit = todo & on(mask, grow)
        family[hit] = name
        todo &= ~hit

    r_obj = max(1.0 * fw, 2.0)
    star = _near(ctx.star_x, ctx.star_y, x, y, np.maximum(ctx.star_radius_px, r_obj))
    is_variable = np.zeros(n, dtype=bool)
    if len(ctx.star_variable):
        is_variable = ctx.star_variable[np.maximum(star, 0)]
    var = todo & (star >= 0) & is_variable
    family[var] = "variable_star"
    label[var] = ctx.variable_star_label
    todo &= ~var

    # Negative lobe: a -4 sigma (matched-filter) dip within 1.5 FWHM.
    rad = int(np.ceil(1.5 * fw))
    neg = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(todo):
        y0, y1 = max(iy[i] - rad, 0), min(iy[i] + rad + 1, height)
        x0, x1 = max(ix[i] - rad, 0), min(ix[i] + rad + 1, width)
        box = ctx.significance[y0:y1, x0:x1]
        neg[i] = np.isfinite(box).any() and np.nanmin(box) < -4.0

    on_star = todo & (star >= 0)
    family[on_star & neg] = "dipole"
    family[on_star & ~neg] = "star_residual"
    todo &= ~on_star
    gal = _near(ctx.galaxy_x, ctx.galaxy_y, x, y, np.maximum(ctx.galaxy_radius_px, r_obj))
    on_gal = todo & (gal >= 0)
    family[on_gal & neg] = "dipole"
    family[on_gal & ~neg] = "galaxy_residual"
    todo &= ~on_gal
    near_tr = _near(ctx.transient_x, ctx.transient_y, x, y, 3.0 * fw)
    frag = todo & (near_tr >= 0)
    family[frag] = "fragment"
    return label, family, mag, matched


def family_counts(truth) -> dict[str, dict[str, int]]:
    """Counts per family and label.

    Parameters
    ----------
    truth : `astropy.table.Table` or `~rbnodia.core.LabelledStamps` or mapping
        Anything with ``family`` and ``label`` columns.

    Returns
    -------
    counts : `dict`
        ``{family: {"n": total, "real": n_label0, "bogus": n_label1}}``,
        plus a ``"total"`` entry.
    """
    family = np.asarray(
        truth["family"] if not hasattr(truth, "label") or hasattr(truth, "colnames") else truth.family
    )
    label = np.asarray(
        truth["label"] if not hasattr(truth, "label") or hasattr(truth, "colnames") else truth.label
    )
    out: dict[str, dict[str, int]] = {}
    for f in sorted(set(family.tolist())):
        sel = family == f
        out[str(f)] = {
            "n": int(sel.sum()),
            "real": int((label[sel] == 0).sum()),
            "bogus": int((label[sel] == 1).sum()),
        }
    out["total"] = {"n": int(len(label)), "real": int((label == 0).sum()), "bogus": int((label == 1).sum())}
    return out
