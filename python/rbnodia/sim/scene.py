"""Static sky scenes (stars and galaxies) and injected transients.

Objects are drawn in a local tangent plane: ``(u, v)`` in arcsec, ``u``
towards east and ``v`` towards north of a reference point (the detector's
nominal centre).  Sizes, ellipticities and host offsets are defined in that
frame, so the same galaxy looks the same on every pixel grid.

Number counts are power laws in magnitude, ``dN/dm = A 10^(s (m - m_ref))``
per deg^2 per mag, with a steeper slope at the bright end:

* stars at high Galactic latitude: ``A = 250`` at r = 20, slope 0.15
  brighter and 0.08 fainter (Bahcall & Soneira-like counts);
* galaxies: ``A = 4e4`` at r = 24, slope 0.33 fainter and 0.45 brighter
  than r = 21 (deep-field counts).

Galaxies are a disk (Sersic n in {0.5, 1, 1.5}) plus, for some, a de
Vaucouleurs bulge; half-light radii shrink with magnitude
(``log10 r_e = log10 0.9" - 0.1 (r - 21)``, 0.2 dex scatter).
"""

from __future__ import annotations

__all__ = [
    "HOST_RELATIVE_MAG",
    "GalaxyCatalog",
    "StarCatalog",
    "TransientCatalog",
    "concatenate_catalogs",
    "draw_galaxies",
    "draw_stars",
    "draw_transients",
    "galaxy_properties",
    "sample_host_offsets",
    "sample_power_law_mags",
    "star_properties",
]

from dataclasses import dataclass, field

import numpy as np
from scipy.special import gammaincinv

from .presets import Preset

DEG2_PER_ARCSEC2 = 1.0 / 3600.0**2
DISK_INDICES = np.array([0.5, 1.0, 1.5])
DISK_INDEX_WEIGHTS = np.array([0.15, 0.7, 0.15])
BULGE_INDEX = 4.0

HOST_RELATIVE_MAG: tuple[float, float] = (2.0, 6.0)
"""Range (drawn uniformly) of a host-relative injection's magnitude minus
its host's total magnitude (`~rbnodia.sim.presets.Preset.host_relative_fraction`).
A type Ia supernova peaks near M_B = -19.3 and fades by 2-3 magnitudes in
the two months after peak; its hosts span roughly M = -18 to -22.  On a
bright host (M = -21 to -22) a supernova is thus 2 to 6 magnitudes fainter
than the galaxy over much of its light curve, the regime where it sits on
the host's core with a flux of a few hundredths to a few thousandths of the
galaxy's.  Injections drawn uniformly between the depth-relative limits
rarely land there, since bright hosts are few."""


@dataclass
class _ColouredCatalog:
    """Sources with tangent-plane positions, r magnitudes and colours: the
    fields and the per-band magnitudes that stars and galaxies share.
    """

    u: np.ndarray
    """Tangent-plane position east, arcsec."""
    v: np.ndarray
    """Tangent-plane position north, arcsec."""
    mag_r: np.ndarray
    """AB magnitude in r (for stars, at the template epoch)."""
    colour: np.ndarray
    """Deviation from the mean colour, scaled per band in `mag`."""

    def __len__(self) -> int:
        return len(self.u)

    def mag(self, band: str, preset: Preset) -> np.ndarray:
        """Compute the magnitudes in a band.

        Parameters
        ----------
        band : `str`
            Band.
        preset : `~rbnodia.sim.presets.Preset`
            Its ``band_offset`` (typical ``m_band - m_r``), which the colour
            deviation scales.

        Returns
        -------
        mag : `numpy.ndarray`
            AB magnitudes.
        """
        offset = preset.band_offset.get(band, 0.0)
        return self.mag_r + offset + self.colour * offset / 0.6


@dataclass
class StarCatalog(_ColouredCatalog):
    """Stars: tangent-plane positions at the template epoch, r magnitudes,
    colours, proper motions and variability.
    """

    pm_u: np.ndarray
    """Proper motion east, mas / yr."""
    pm_v: np.ndarray
    """Proper motion north, mas / yr."""
    variable: np.ndarray
    """Boolean: the star varies."""
    dmag: np.ndarray
    """Science minus template magnitude (non-zero for variable stars)."""


@dataclass
class GalaxyCatalog(_ColouredCatalog):
    """Galaxies as disk + bulge Sersic profiles."""

    disk_hlr: np.ndarray
    """Half-light radius of the disk, arcsec."""
    disk_n: np.ndarray
    """Sersic index of the disk."""
    bulge_hlr: np.ndarray
    """Half-light radius of the de Vaucouleurs bulge, arcsec."""
    bulge_fraction: np.ndarray
    """Bulge-to-total flux ratio."""
    g1: np.ndarray
    """Shear, first component."""
    g2: np.ndarray
    """Shear, second component."""


@dataclass
class TransientCatalog:
    """Point sources added to the science exposure only (label 0)."""

    u: np.ndarray
    """Tangent-plane position east, arcsec."""
    v: np.ndarray
    """Tangent-plane position north, arcsec."""
    mag: np.ndarray
    """AB magnitude in the visit's band."""
    host: np.ndarray
    """Index of the host galaxy, -1 for hostless."""
    family: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype="U16"))
    """``sn_hosted`` or ``sn_hostless``."""

    def __len__(self) -> int:
        return len(self.u)


def sample_power_law_mags(
    rng: np.random.Generator,
    area_deg2: float,
    density: float,
    m_ref: float,
    slope_faint: float,
    slope_bright: float,
    m_break: float,
    m_min: float,
    m_max: float,
) -> np.ndarray:
    """Draw magnitudes from a broken power-law count, Poisson-sampled.

    ``dN/dm = density 10^(slope (m - m_ref))`` per deg^2 per mag, with
    ``slope_faint`` above ``m_break`` and ``slope_bright`` below it
    (continuous at the break).

    Parameters
    ----------
    rng : `numpy.random.Generator`
        Random numbers.
    area_deg2 : `float`
        Sky area, deg^2.
    density : `float`
        Counts per deg^2 per mag at ``m_ref``.
    m_ref : `float`
        Reference magnitude of ``density``.
    slope_faint, slope_bright : `float`
        The slopes ``d log10 N / dm`` fainter and brighter than ``m_break``.
    m_break : `float`
        Magnitude where the slope changes.
    m_min, m_max : `float`
        Brightest and faintest magnitudes drawn.

    Returns
    -------
    mags : `numpy.ndarray`
        The magnitudes, bright segment first, unsorted within a segment.
    """
    mags = []
    at_break = density * 10.0 ** (slope_faint * (m_break - m_ref))
    for lo, hi, slope in (
        (m_min, min(m_break, m_max), slope_bright),
        (max(m_break, m_min), m_max, slope_faint),
    ):
        if hi <= lo:
            continue
        # Integral of at_break 10^(s (m - m_break)) dm over [lo, hi].
        k = slope * np.log(10.0)
        expected = area_deg2 * at_break * (np.exp(k * (hi - m_break)) - np.exp(k * (lo - m_break))) / k
        n = rng.poisson(expected)
        x = rng.uniform(size=n)
        a, b = np.exp(k * lo), np.exp(k * hi)
        mags.append(np.log(a + x * (b - a)) / k)
    return np.concatenate(mags) if mags else np.zeros(0)


def _uniform_positions(rng: np.random.Generator, n: int, half_width: float, half_height: float):
    return rng.uniform(-half_width, half_width, n), rng.uniform(-half_height, half_height, n)


def draw_stars(
    rng: np.random.Generator, preset: Preset, half_width: float, half_height: float
) -> StarCatalog:
    """Draw the stars of a box of sky.

    Parameters
    ----------
    rng : `numpy.random.Generator`
        Random numbers.
    preset : `~rbnodia.sim.presets.Preset`
        Star counts (``star_density``, ``star_mag_range``), proper motions,
        variability.
    half_width, half_height : `float`
        Half-sizes of the box, arcsec.

    Returns
    -------
    stars : `StarCatalog`
        Stars, uniformly placed in the box.
    """
    area = 4 * half_width * half_height * DEG2_PER_ARCSEC2
    m_min, m_max = preset.star_mag_range
    mag = sample_power_law_mags(rng, area, preset.star_density, 20.0, 0.08, 0.15, 20.0, m_min, m_max)
    u, v = _uniform_positions(rng, len(mag), half_width, half_height)
    return star_properties(rng, preset, mag, u, v)


def star_properties(
    rng: np.random.Generator, preset: Preset, mag: np.ndarray, u: np.ndarray, v: np.ndarray
) -> StarCatalog:
    """Draw proper motions, variability and colours of stars.

    Parameters
    ----------
    rng : `numpy.random.Generator`
        Random numbers.
    preset : `~rbnodia.sim.presets.Preset`
        Proper-motion and variability fractions and amplitudes.
    mag : `numpy.ndarray`
        AB magnitudes in r.
    u, v : `numpy.ndarray`
        Tangent-plane positions, arcsec.

    Returns
    -------
    stars : `StarCatalog`
        The stars.
    """
    n = len(mag)
    moving = rng.uniform(size=n) < preset.proper_motion_fraction
    pm = rng.normal(0.0, preset.proper_motion_mas_per_yr, (2, n)) * moving
    variable = rng.uniform(size=n) < preset.variable_star_fraction
    dmag = np.where(variable, rng.normal(0.0, preset.variable_star_amplitude, n), 0.0)
    colour = rng.normal(0.0, 0.3, n)
    return StarCatalog(
        u=u, v=v, mag_r=mag, colour=colour, pm_u=pm[0], pm_v=pm[1], variable=variable, dmag=dmag
    )


def draw_galaxies(
    rng: np.random.Generator, preset: Preset, half_width: float, half_height: float, mag_limit: float
) -> GalaxyCatalog:
    """Draw the galaxies of a box of sky.

    Parameters
    ----------
    rng : `numpy.random.Generator`
        Random numbers.
    preset : `~rbnodia.sim.presets.Preset`
        Galaxy counts (``galaxy_density``, ``galaxy_slope``,
        ``galaxy_mag_bright``).
    half_width, half_height : `float`
        Half-sizes of the box, arcsec.
    mag_limit : `float`
        Faintest r magnitude drawn.

    Returns
    -------
    galaxies : `GalaxyCatalog`
        Galaxies, uniformly placed in the box.
    """
    area = 4 * half_width * half_height * DEG2_PER_ARCSEC2
    mag = sample_power_law_mags(
        rng,
        area,
        preset.galaxy_density,
        24.0,
        preset.galaxy_slope,
        0.45,
        21.0,
        preset.galaxy_mag_bright,
        mag_limit,
    )
    u, v = _uniform_positions(rng, len(mag), half_width, half_height)
    return galaxy_properties(rng, mag, u, v)


def galaxy_properties(
    rng: np.random.Generator, mag: np.ndarray, u: np.ndarray, v: np.ndarray
) -> GalaxyCatalog:
    """Draw sizes, profiles, shapes and colours of galaxies.

    Parameters
    ----------
    rng : `numpy.random.Generator`
        Random numbers.
    mag : `numpy.ndarray`
        AB magnitudes in r.
    u, v : `numpy.ndarray`
        Tangent-plane positions, arcsec.

    Returns
    -------
    galaxies : `GalaxyCatalog`
        The galaxies.
    """
    n = len(mag)
    disk_hlr = np.clip(0.9 * 10.0 ** (-0.1 * (mag - 21.0) + rng.normal(0.0, 0.2, n)), 0.08, 8.0)
    disk_n = rng.choice(DISK_INDICES, size=n, p=DISK_INDEX_WEIGHTS)
    kind = rng.uniform(size=n)
    bulge_fraction = np.where(
        kind < 0.6, 0.0, np.where(kind < 0.85, rng.beta(2.0, 3.0, n), rng.uniform(0.7, 1.0, n))
    )
    bulge_hlr = disk_hlr * rng.uniform(0.2, 0.6, n)
    gmag = np.clip(rng.rayleigh(0.2, n), 0.0, 0.7) * (1.0 - 0.5 * bulge_fraction)
    beta = rng.uniform(0.0, np.pi, n)
    colour = rng.normal(0.0, 0.3, n)
    return GalaxyCatalog(
        u=u,
        v=v,
        mag_r=mag,
        colour=colour,
        disk_hlr=disk_hlr,
        disk_n=disk_n,
        bulge_hlr=bulge_hlr,
        bulge_fraction=bulge_fraction,
        g1=gmag * np.cos(2 * beta),
        g2=gmag * np.sin(2 * beta),
    )


def concatenate_catalogs(a, b):
    """Join two catalogues of the same type.

    Parameters
    ----------
    a, b : `StarCatalog`, `GalaxyCatalog` or `TransientCatalog`
        The catalogues, ``a`` first.

    Returns
    -------
    joined : `StarCatalog`, `GalaxyCatalog` or `TransientCatalog`
        A catalogue of their type.
    """
    import dataclasses

    return type(a)(
        **{f.name: np.concatenate([getattr(a, f.name), getattr(b, f.name)]) for f in dataclasses.fields(a)}
    )


def _sersic_radii(rng: np.random.Generator, n_index: np.ndarray, hlr: np.ndarray) -> np.ndarray:
    """Draw radii from the light distribution of Sersic profiles: the light
    enclosed within ``r`` is ``P(2n, b_n (r / r_e)^(1/n))`` (regularised
    incomplete gamma function), so ``r = r_e (G / b_n)^n`` with
    ``G ~ Gamma(2n)``.
    """
    b_n = gammaincinv(2.0 * n_index, 0.5)
    g = rng.gamma(2.0 * n_index)
    return hlr * (g / b_n) ** n_index


def sample_host_offsets(rng: np.random.Generator, galaxies: GalaxyCatalog, hosts: np.ndarray):
    """Draw offsets of transients from their hosts, following each host's
    light.

    Each transient picks the bulge or the disk in proportion to its flux,
    draws a radius from its Sersic light profile (at most 5 half-light
    radii) and a uniform angle, then is sheared like the host.

    Parameters
    ----------
    rng : `numpy.random.Generator`
        Random numbers.
    galaxies : `GalaxyCatalog`
        The galaxies.
    hosts : `numpy.ndarray`
        Row of each transient's host in ``galaxies``.

    Returns
    -------
    du, dv : `numpy.ndarray`
        Offsets in the tangent plane, arcsec.
    """
    m = len(hosts)
    in_bulge = rng.uniform(size=m) < galaxies.bulge_fraction[hosts]
    n_index = np.where(in_bulge, BULGE_INDEX, galaxies.disk_n[hosts])
    hlr = np.where(in_bulge, galaxies.bulge_hlr[hosts], galaxies.disk_hlr[hosts])
    r = np.minimum(_sersic_radii(rng, n_index, hlr), 5.0 * hlr)
    phi = rng.uniform(0.0, 2 * np.pi, m)
    x, y = r * np.cos(phi), r * np.sin(phi)
    g1, g2 = (
        galaxies.g1[hosts] * np.where(in_bulge, 0.6, 1.0),
        galaxies.g2[hosts] * np.where(in_bulge, 0.6, 1.0),
    )
    norm = 1.0 / np.sqrt(np.maximum(1.0 - g1**2 - g2**2, 1e-6))
    du = norm * ((1 + g1) * x + g2 * y)
    dv = norm * (g2 * x + (1 - g1) * y)
    return du, dv


def _host_relative(
    rng: np.random.Generator,
    preset: Preset,
    host: np.ndarray,
    candidates: np.ndarray,
    weight: np.ndarray,
    candidate_mag: np.ndarray,
    m5: float,
) -> np.ndarray:
    """Choose the hosted injections whose magnitude follows their host's,
    and move them to hosts bright enough for that (in place in ``host``).

    Parameters
    ----------
    rng : `numpy.random.Generator`
        Random numbers; none are drawn when ``host_relative_fraction`` is 0,
        so that presets without it keep their random stream.
    preset : `~rbnodia.sim.presets.Preset`
        Gives ``host_relative_fraction``.
    host : `numpy.ndarray`
        Host of each hosted injection (rows of the galaxy catalog); the
        chosen ones are redrawn.
    candidates : `numpy.ndarray`
        Rows of the candidate hosts.
    weight : `numpy.ndarray`
        Their selection weights.
    candidate_mag : `numpy.ndarray`
        Their magnitudes in the visit's band.
    m5 : `float`
        The 5-sigma depth of the difference image.

    Returns
    -------
    relative : `numpy.ndarray`
        Boolean, per hosted injection.
    """
    relative = np.zeros(len(host), dtype=bool)
    if preset.host_relative_fraction <= 0:
        return relative
    # Hosts on which the median host-relative draw is still above the faint limit.
    bright = candidate_mag < m5 + preset.transient_mag_faint - 0.5 * sum(HOST_RELATIVE_MAG)
    relative = (rng.uniform(size=len(host)) < preset.host_relative_fraction) & bright.any()
    if not relative.any():
        return relative
    w = weight[bright]
    host[relative] = rng.choice(candidates[bright], size=int(relative.sum()), p=w / w.sum())
    return relative


def draw_transients(
    rng: np.random.Generator,
    preset: Preset,
    galaxies: GalaxyCatalog,
    n: int,
    m5: float,
    inside: callable,
    band: str,
    host_mag_limit: float,
    box: tuple[float, float],
) -> TransientCatalog:
    """Draw the injected point sources.

    A fraction ``1 - hostless_fraction`` lands on host galaxies (chosen with
    weight ``flux^host_weight_power`` among galaxies brighter than
    ``host_mag_limit`` inside the detector), the rest anywhere; magnitudes
    are uniform between ``m5 - transient_mag_bright`` and
    ``m5 + transient_mag_faint``, except for a fraction
    ``host_relative_fraction`` of the hosted ones, whose magnitude is their
    host's plus `HOST_RELATIVE_MAG` (no fainter than the faint limit).

    Parameters
    ----------
    rng : `numpy.random.Generator`
        Random numbers.
    preset : `~rbnodia.sim.presets.Preset`
        Host and magnitude settings.
    galaxies : `GalaxyCatalog`
        Candidate hosts.
    n : `int`
        Number of injections.
    m5 : `float`
        The 5-sigma depth the magnitudes refer to.
    inside : callable
        ``inside(u, v)`` says which tangent-plane positions fall on the
        detector (away from its edges).
    band : `str`
        The visit's band (host magnitudes).
    host_mag_limit : `float`
        Faintest host magnitude in ``band``.
    box : `tuple` [`float`, `float`]
        ``(half_width, half_height)`` in arcsec of a box that contains the
        detector.

    Returns
    -------
    transients : `TransientCatalog`
        The injections, hosted ones first (a hosted transient that falls
        off the detector is replaced by a hostless one).
    """
    gal_mag = galaxies.mag(band, preset) if len(galaxies) else np.zeros(0)
    candidates = (
        np.flatnonzero((gal_mag < host_mag_limit) & inside(galaxies.u, galaxies.v)) if len(galaxies) else []
    )
    n_hosted = rng.binomial(n, 1.0 - preset.hostless_fraction) if len(candidates) else 0
    u = np.empty(0)
    v = np.empty(0)
    host = np.empty(0, dtype=np.int64)
    relative = np.zeros(0, dtype=bool)
    if n_hosted:
        weight = 10.0 ** (-0.4 * preset.host_weight_power * gal_mag[candidates])
        host = rng.choice(candidates, size=n_hosted, p=weight / weight.sum())
        relative = _host_relative(rng, preset, host, candidates, weight, gal_mag[candidates], m5)
        du, dv = sample_host_offsets(rng, galaxies, host)
        u = galaxies.u[host] + du
        v = galaxies.v[host] + dv
        keep = inside(u, v)
        u, v, host, relative = u[keep], v[keep], host[keep], relative[keep]
    n_free = n - len(u)
    if n_free > 0:
        # Rejection-sample uniform positions on the detector.
        fu, fv = [], []
        while sum(map(len, fu)) < n_free:
            tu = rng.uniform(-box[0], box[0], 4 * n_free)
            tv = rng.uniform(-box[1], box[1], 4 * n_free)
            ok = inside(tu, tv)
            fu.append(tu[ok])
            fv.append(tv[ok])
        u = np.concatenate([u, np.concatenate(fu)[:n_free]])
        v = np.concatenate([v, np.concatenate(fv)[:n_free]])
        host = np.concatenate([host, np.full(n_free, -1)])
    mag = rng.uniform(m5 - preset.transient_mag_bright, m5 + preset.transient_mag_faint, len(u))
    if relative.any():
        delta = rng.uniform(*HOST_RELATIVE_MAG, relative.sum())
        index = np.flatnonzero(relative)
        mag[index] = np.minimum(gal_mag[host[index]] + delta, m5 + preset.transient_mag_faint)
    family = np.where(host >= 0, "sn_hosted", "sn_hostless")
    return TransientCatalog(u=u, v=v, mag=mag, host=host.astype(np.int64), family=family)
