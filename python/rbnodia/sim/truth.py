"""Labels and families of difference-image detections: the one place that
defines them.

A detection is **real** (label 0) when it is an injected transient, and a
``variable_star`` is real or bogus by the survey's convention
(`~rbnodia.sim.presets.Preset.variable_star_label`: bogus under DES
autoscan, where only injected fakes were real; real for Rubin, whose
reliability separates astrophysical sources from artifacts).  Every other
detection is **bogus** (label 1).  Each detection gets the *family* that
caused it, found from the simulator's truth in this order of precedence:

``sn_hosted`` / ``sn_hostless`` (real)
    Nearest unmatched injected transient within ``match_radius`` pixels
    (one-to-one, closest pairs first).
``sn_blended`` (real)
    Such a detection that the noise-free residual of a nearby star or
    galaxy (measured as below) would explain at least half of: a faint
    transient on a subtraction residual, whose stamp shows mostly the
    residual.  Training shards leave it out
    (`rbnodia.sim.composition.TRAINING_EXCLUDED`): labelled real, it would
    teach a network that residuals on galaxy cores are real.
``cosmic_ray``, ``bad_column``, ``hot_pixel``, ``satellite_trail``
    The detection's peak lies on (or within 2 pixels, 1 for defects, of)
    such pixels: cosmic rays the CR repair missed, defects missing from the
    defect list (repaired pixels carry no signal of their own).
``edge``
    Within the kernel half-width of the detector border or of the edge of the
    template's coverage, where the convolution used missing pixels.
``saturation``
    Near saturated pixels (bleed trails, saturated cores).

Then the noise-free difference of the static sky (`rbnodia.sim.residuals`)
is measured at the detection's peak pixel, about the nearest star or galaxy
(within its association radius, then three times it).  If it accounts for
at least half of the detection's significance, the detection is a
subtraction residual of that source:

``variable_star``
    A star whose brightness changed by more than the local flux-scale error.
``dipole``
    Antisymmetric residual about a star or galaxy: misregistration
    (astrometric error, proper motion, differential chromatic refraction).
``psf_ring``
    Symmetric residual of a star with both signs (positive core and
    negative ring, or the reverse): the kernel matched the wrong PSF shape
    or width.
``star_residual`` / ``galaxy_residual``
    Symmetric, one-signed residual of a star or a galaxy core: a
    flux-scale (calibration) mismatch or an imperfect PSF match.

Otherwise:

``fragment``
    Within 3 FWHM of an injected transient but not its matched detection
    (deblending split).
``correlated_noise``
    A noise excursion that passes the threshold only because the variance
    plane understates the noise of the matched filter (noise correlated by
    resampling or by the matching kernel, or a variance plane that is too
    low): its significance divided by the image's noise factor
    (`rbnodia.sim.measure.noise_factor`) is below the threshold.
``noise``
    A noise excursion above the threshold even for the true noise.
"""

from __future__ import annotations

__all__ = [
    "BOGUS_FAMILIES",
    "CONVENTION_FAMILIES",
    "FAMILIES",
    "FAMILY_GROUPS",
    "REAL_FAMILIES",
    "TruthContext",
    "family_counts",
    "family_group",
    "label_detections",
    "match_positions",
]

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

REAL_FAMILIES = ("sn_hosted", "sn_hostless", "sn_blended")
"""Families that are always real (label 0): injected transients."""
CONVENTION_FAMILIES = ("variable_star",)
"""Families whose label is the survey's convention."""
BOGUS_FAMILIES = (
    "cosmic_ray",
    "bad_column",
    "hot_pixel",
    "satellite_trail",
    "edge",
    "saturation",
    "dipole",
    "psf_ring",
    "star_residual",
    "galaxy_residual",
    "fragment",
    "correlated_noise",
    "noise",
    "search_peak",
)
"""Families that are always bogus (label 1); ``search_peak`` only among the
candidates of the search with no difference image
(`rbnodia.sim.search_stamps`)."""
FAMILIES = REAL_FAMILIES + CONVENTION_FAMILIES + BOGUS_FAMILIES
"""Every family name the simulator can produce."""

FAMILY_GROUPS: dict[str, tuple[str, ...]] = {
    "transient": REAL_FAMILIES,
    "variable_star": ("variable_star",),
    "noise": ("noise", "correlated_noise"),
    "galaxy_residual": ("galaxy_residual",),
    "star_residual": ("star_residual", "psf_ring"),
    "dipole": ("dipole",),
    "artifact": ("cosmic_ray", "bad_column", "hot_pixel", "satellite_trail", "saturation", "edge"),
    "fragment": ("fragment",),
    "search_peak": ("search_peak",),
}
"""Families grouped by cause (for training-set composition and summaries)."""

RESIDUAL_SHARE = 0.5
"""A detection is a residual of a source when the noise-free residual's
significance is at least this fraction of the detection's."""


def family_group(family) -> np.ndarray:
    """Group families by cause.

    Parameters
    ----------
    family : `str` or array-like of `str`
        Family names.

    Returns
    -------
    groups : `numpy.ndarray`
        The `FAMILY_GROUPS` key of each family (``"other"`` if unknown).
    """
    of = {f: g for g, members in FAMILY_GROUPS.items() for f in members}
    return np.array([of.get(str(f), "other") for f in np.atleast_1d(family)], dtype="U16")


@dataclass
class TruthContext:
    """What the simulator knows about one difference image (science pixels)."""

    transient_x: np.ndarray
    """Injection positions, pixels."""
    transient_y: np.ndarray
    """Injection positions, pixels."""
    transient_mag: np.ndarray
    """Injected magnitudes."""
    transient_family: np.ndarray
    """Family of each injection."""
    cosmic_rays: np.ndarray
    """Boolean map of unrepaired cosmic-ray pixels."""
    bad_columns: np.ndarray
    """Boolean map of bad columns not in the defect list."""
    hot_pixels: np.ndarray
    """Boolean map of hot pixels not in the defect list."""
    satellite: np.ndarray
    """Boolean map of satellite-trail pixels."""
    edge: np.ndarray
    """Boolean map of pixels whose convolution reached missing data."""
    saturated: np.ndarray
    """Boolean map of saturated science or template pixels."""
    star_x: np.ndarray
    """Positions of the visible stars, pixels."""
    star_y: np.ndarray
    """Positions of the visible stars, pixels."""
    star_variable: np.ndarray
    """Boolean: the star varies."""
    star_mag: np.ndarray
    """Magnitude of each star at the science epoch."""
    star_flux_change: np.ndarray
    """Fractional flux change of each star between template and science."""
    star_scale_error: np.ndarray
    """Template flux-scale error at each star."""
    star_radius_px: np.ndarray
    """Association radius of each star (grows with brightness: residual
    lobes and wings of bright stars reach further)."""
    galaxy_x: np.ndarray
    """Positions of the visible galaxies, pixels."""
    galaxy_y: np.ndarray
    """Positions of the visible galaxies, pixels."""
    galaxy_radius_px: np.ndarray
    """Association radius of each galaxy (grows with size and
    brightness)."""
    peak: np.ndarray
    """Peak matched-filter significance of each detection."""
    peak_x: np.ndarray
    """Pixel of each detection's peak (x)."""
    peak_y: np.ndarray
    """Pixel of each detection's peak (y)."""
    residual: Any
    """A `~rbnodia.sim.residuals.ResidualProbe` of the image."""
    noise_factor: float
    """True noise of the significance map over what the variance plane says."""
    threshold: float
    """Detection threshold, sigma."""
    fwhm_px: float
    """FWHM of the difference image's PSF, pixels."""
    variable_star_label: int = 1
    """Label of variable stars under the preset's convention."""


def match_positions(x1, y1, x2, y2, radius: float) -> np.ndarray:
    """Match two sets of positions one to one, closest pairs first.

    Parameters
    ----------
    x1, y1 : `numpy.ndarray`
        First positions.
    x2, y2 : `numpy.ndarray`
        Second positions.
    radius : `float`
        Largest separation of a pair.

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
    (array or scalar per point), else -1.
    """
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


def _mask_families(x, y, ctx: TruthContext, family: np.ndarray, todo: np.ndarray) -> None:
    """Families read from pixel maps (cosmic rays ... saturation)."""
    n = len(x)
    height, width = ctx.edge.shape
    ix = np.clip(np.floor(x + 0.5).astype(int), 0, width - 1)
    iy = np.clip(np.floor(y + 0.5).astype(int), 0, height - 1)

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
        ("saturation", ctx.saturated, int(np.ceil(2 * ctx.fwhm_px))),
    ):
        hit = todo & on(mask, grow)
        family[hit] = name
        todo &= ~hit


def _residual_family(i, x, y, ctx: TruthContext, candidates) -> tuple[str, int] | None:
    """Find the residual family of detection ``i`` (and the variable star's
    index, or -1), or None if no source's noise-free residual explains it.
    """
    for kind, index in candidates:
        j = index[i]
        if j < 0:
            continue
        cx, cy = (ctx.star_x[j], ctx.star_y[j]) if kind == "star" else (ctx.galaxy_x[j], ctx.galaxy_y[j])
        res = ctx.residual.measure(ctx.peak_x[i], ctx.peak_y[i], cx, cy)
        if res.significance < RESIDUAL_SHARE * ctx.peak[i]:
            continue
        if kind == "galaxy":
            return ("dipole" if res.odd > res.even else "galaxy_residual"), -1
        if ctx.star_variable[j] and abs(ctx.star_flux_change[j]) > abs(ctx.star_scale_error[j]):
            return "variable_star", j
        if res.odd > res.even:
            return "dipole", -1
        return ("psf_ring" if res.ring else "star_residual"), -1
    return None


def label_detections(x: np.ndarray, y: np.ndarray, ctx: TruthContext, match_radius: float = 2.0):
    """Label and classify detections (see the module docstring).

    Parameters
    ----------
    x, y : `numpy.ndarray`
        Detection positions (barycentres), pixels.
    ctx : `TruthContext`
        What the simulator knows about the difference image.
    match_radius : `float`, optional
        Largest distance, pixels, of a detection from the injection it
        detects.

    Returns
    -------
    label : `numpy.ndarray`
        Int8, 0 real / 1 bogus.
    family : `numpy.ndarray`
        Family names (`FAMILIES`).
    mag : `numpy.ndarray`
        Injected magnitude of transients, science-epoch magnitude of
        variable stars, NaN otherwise.
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
    todo = ~real
    _mask_families(x, y, ctx, family, todo)

    r_obj = max(1.0 * ctx.fwhm_px, 2.0)
    star_r = np.maximum(ctx.star_radius_px, r_obj)
    gal_r = np.maximum(ctx.galaxy_radius_px, r_obj)
    candidates = [
        ("star", _near(ctx.star_x, ctx.star_y, x, y, star_r)),
        ("galaxy", _near(ctx.galaxy_x, ctx.galaxy_y, x, y, gal_r)),
        ("star", _near(ctx.star_x, ctx.star_y, x, y, 3 * star_r)),
        ("galaxy", _near(ctx.galaxy_x, ctx.galaxy_y, x, y, 3 * gal_r)),
    ]
    for i in np.flatnonzero(real):
        if _residual_family(i, x, y, ctx, candidates[:2]) is not None:
            family[i] = "sn_blended"
    for i in np.flatnonzero(todo):
        found = _residual_family(i, x, y, ctx, candidates)
        if found is not None:
            family[i] = found[0]
            if found[1] >= 0:
                label[i] = ctx.variable_star_label
                mag[i] = ctx.star_mag[found[1]]
            todo[i] = False
    near_tr = _near(ctx.transient_x, ctx.transient_y, x, y, 3.0 * ctx.fwhm_px)
    frag = todo & (near_tr >= 0)
    family[frag] = "fragment"
    todo &= ~frag
    below = todo & (ctx.peak / max(ctx.noise_factor, 1e-6) < ctx.threshold)
    family[below] = "correlated_noise"
    return label, family, mag, matched


def family_counts(truth) -> dict[str, dict[str, int]]:
    """Count detections or stamps per family and label.

    Parameters
    ----------
    truth : `astropy.table.Table` or `~rbnodia.core.stampset.LabelledStamps` or mapping
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
    out["total"] = {"n": len(label), "real": int((label == 0).sum()), "bogus": int((label == 1).sum())}
    return out
