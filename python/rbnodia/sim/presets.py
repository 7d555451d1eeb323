"""Survey presets: camera, site and template properties of the simulator.

Each preset describes one survey's single-epoch science exposures and its
deep templates (co-adds).  Numbers are typical published values; where a
value varies across the focal plane or the survey, the preset holds a median
and the simulator draws around it.

Sources of the numbers (rounded):

DES / DECam
    0.263 arcsec pixels, 2048 x 4096 CCDs with two amplifiers, gains near
    4 e-/ADU, read noise about 7 e-, full well ~ 150 ke-.  SN-field shallow
    epochs of 90-175 s; median delivered seeing about 1.0 arcsec (r);
    dark-sky brightness about 22.0 / 21.1 / 20.4 / 19.4 mag/arcsec^2 in
    g / r / i / z.  Templates: co-adds of the best-seeing epochs
    (Kessler et al. 2015).
LSST / LSSTCam
    0.2 arcsec pixels, 4096 x 4096 CCDs with 16 amplifiers, gains near
    1.6 e-/ADU, read noise about 6 e-, full well ~ 100 ke-; 30 s visits;
    system zero points, sky brightness and median seeing from the LSST
    science requirements and SMTN-002 (m5 ~ 24.5 in r).  Templates: co-adds
    of about 20 best-seeing visits.
"""

from __future__ import annotations

__all__ = ["AB_NJY_ZERO_POINT", "PRESETS", "Preset", "get_preset"]

import dataclasses
import datetime
from dataclasses import dataclass

AB_NJY_ZERO_POINT = 31.4
"""AB magnitude of 1 nJy: ``m = 31.4 - 2.5 log10(f / nJy)``."""


@dataclass(frozen=True)
class Preset:
    """Everything survey-specific the simulator needs.

    All magnitudes are AB.  Zero points are the magnitude that gives
    1 electron per second.  Rates are per detector and per exposure unless
    stated otherwise.  Any field can be overridden per call through the
    ``**options`` of `~rbnodia.sim.simulate_detector`.
    """

    name: str
    """Preset name (``des``, ``lsst``)."""
    instrument: str
    """Butler instrument name of the simulated camera."""
    pixel_scale: float
    """Arcsec per pixel."""
    shape: tuple[int, int]
    """Simulated ``(height, width)`` in pixels (``image_size``)."""
    native_shape: tuple[int, int]
    """The real detector's ``(height, width)``; per-detector rates (defects)
    refer to it and are scaled by area to ``shape``."""
    amp_grid: tuple[int, int]
    """Amplifiers as ``(rows, columns)`` of equal segments."""
    gain: float
    """Median e-/ADU; each amplifier varies by ``gain_scatter``."""
    gain_scatter: float
    """Fractional rms of the amplifier gains about ``gain``."""
    read_noise: float
    """Electrons rms per pixel."""
    full_well: float
    """Electrons; pixels above it saturate (and bleed along columns)."""
    exposure_time: float
    """Seconds."""
    bands: tuple[str, ...]
    """Bands a visit is drawn from."""
    zero_point: dict[str, float]
    """Magnitude giving 1 e-/s, per band."""
    sky_brightness: dict[str, float]
    """Dark-sky brightness, mag / arcsec^2, per band."""
    sky_scatter: float
    """The rms (mag) of the per-exposure sky brightness (moon, airmass);
    the sky is only ever brighter than ``sky_brightness``."""
    seeing_median: float
    """Median science FWHM in arcsec at the reference band (r)."""
    seeing_sigma: float
    """Log-normal scatter (natural log) of the science FWHM."""
    seeing_min: float
    """Floor of the drawn science FWHM in arcsec (before scaling to the
    band)."""
    psf_model: str
    """``kolmogorov`` (atmosphere convolved with a Gaussian optics term) or
    ``moffat``.  Both presets use Kolmogorov."""
    moffat_beta: float
    """Moffat index, when ``psf_model`` is ``moffat``."""
    optics_fwhm: float
    """Arcsec; Gaussian optical term added to a Kolmogorov PSF."""
    psf_ellipticity: float
    """The rms of each PSF ellipticity component (g1, g2)."""
    brighter_fatter: float
    """Fractional PSF FWHM increase of a star whose peak reaches the full well
    (charge repulsion in thick CCDs); faint stars are unaffected."""
    psf_fwhm_gradient: float
    """Fractional FWHM change from detector centre to corner."""
    psf_fwhm_curvature: float
    """Quadratic (centre to corner) FWHM variation across a detector."""
    template_n_coadd: int
    """Number of epochs in the template co-add (noise / sqrt(n))."""
    template_seeing_factor: float
    """Template FWHM over the median science FWHM (best-seeing co-add)."""
    template_seeing_sigma: float
    """Log-normal scatter (natural log) of the template FWHM."""
    max_rotation_deg: float
    """Largest rotation, either way, of a science grid relative to the
    template's (degrees)."""
    dither_arcsec: float
    """Largest pointing offset of a visit from the nominal field centre."""
    astrometric_error_arcsec: float
    """The rms of each coordinate of the relative WCS error (shift part)."""
    astrometric_gradient_arcsec: float
    """The rms of the smooth (linear + quadratic) WCS error across a detector."""
    dcr_arcsec_per_mag: dict[str, float]
    """Differential chromatic refraction: shift (arcsec) per magnitude of
    colour difference per unit ``tan(zenith distance)``, per band."""
    template_airmass: float
    """Effective airmass of the template co-add."""
    background_error: float
    """The rms of the residual background after sky subtraction, as a fraction of
    the sky noise per pixel (applied as a smooth gradient)."""
    photometric_error: float
    """The rms fractional calibration error of the template relative to science
    (one number per template; the kernel's photometric scaling removes it)."""
    flux_scale_error: float
    """The rms of the template's flux-scale error relative to the science as a
    smooth random field over the sky (calibration, illumination and
    transparency errors).  The fitted kernel removes its mean (and its
    gradient on full detectors); the rest leaves residuals of stars and
    galaxy cores."""
    flux_scale_length_arcsec: float
    """Correlation length of that field."""
    psf_shape_variation: float
    """The rms amplitude of a quadratic variation of each science PSF ellipticity
    component across a detector (focus and astigmatism patterns), which a
    first-order spatial kernel cannot follow."""
    kernel_width_error: float
    """The rms fractional FWHM error of the PSF that a synthetic-star kernel
    (``kernel_candidates="psf"``) matches the template to: the local
    mismatch of a whole-detector kernel solution at a source."""
    kernel_shape_error: float
    """The rms of each ellipticity component of that mismatch."""
    variance_underestimate: float
    """Fraction of the science noise variance missing from its variance
    plane (the detection threshold is then lower than it says)."""
    template_noise_correlation: float
    """Gaussian sigma (template pixels) correlating the co-add's noise (the
    resampling of its input epochs); its variance plane stays per-pixel, as
    co-add variance planes do."""
    detection_filter_factor: float
    """FWHM of the Gaussian detection filter over that of the difference
    image's PSF: 1 is the matched filter of the LSST pipelines; a fixed
    filter, as Source Extractor's in the DES pipeline, is broader or
    narrower than the PSF of a given visit, and lets noise excursions of
    other shapes through."""
    convolve_science: bool
    """Convolve the science image instead of the template when the science
    is sharper (the automatic direction of hotpants and ip_diffim), which
    correlates the difference's noise.  Without it the science seeing is
    floored at 1.05 x the template's."""
    variable_star_label: int
    """Label of variable-star detections: 1 (bogus) under the DES autoscan
    convention (only injected fakes are real), 0 (real) for Rubin's
    reliability (astrophysical sources versus artifacts)."""
    field_center: tuple[float, float]
    """(ra, dec) degrees of the nominal pointing."""
    focal_plane_columns: int
    """Detectors per row when placing detectors on a simple focal-plane grid."""
    detector_gap_px: int
    """Pixels between neighbouring detectors on that grid."""
    epoch_start: datetime.datetime
    """Start of the science visits (UTC); visits fall in the 180 days after
    it."""
    template_epoch: datetime.datetime
    """Epoch of the template co-add (UTC): star positions before proper
    motion."""
    # Scene
    star_density: float
    """Stars per deg^2 per mag at the reference magnitude (r = 20)."""
    star_slope: float
    """Not used by the simulator: the star counts have the fixed slopes
    (d log10 N / dm) 0.15 brighter than r = 20 and 0.08 fainter."""
    star_mag_range: tuple[float, float]
    """Brightest and faintest star, r magnitude."""
    galaxy_density: float
    """Galaxies per deg^2 per mag at r = 24."""
    galaxy_slope: float
    """d log10 N / dm of the galaxy counts fainter than r = 21 (0.45
    brighter)."""
    galaxy_mag_bright: float
    """Brightest galaxy, r magnitude."""
    galaxy_depth_beyond_template: float
    """Galaxies are drawn down to the template 5-sigma depth plus this."""
    band_offset: dict[str, float]
    """Typical galaxy / star colour m_band - m_r."""
    proper_motion_fraction: float
    """Fraction of stars with a measurable proper motion."""
    proper_motion_mas_per_yr: float
    """The rms proper motion of those stars."""
    # Transients (real, label 0)
    transient_density: float
    """Injected transients per megapixel in repository mode (1 / Mpix gives
    ~8 per DECam CCD: more than the live supernovae of a field, few enough
    that bogus detections are the majority; training patches set their own
    number)."""
    min_transients: int
    """At least this many injections per detector-visit (sub-images
    included), so that every simulated detector has real detections to
    learn from and to score."""
    hostless_fraction: float
    """Fraction of injections placed away from any host galaxy."""
    host_weight_power: float
    """Hosts are chosen with weight ``flux^host_weight_power`` among the
    galaxies brighter than the template depth."""
    host_relative_fraction: float
    """Fraction of hosted injections whose magnitude is drawn relative to
    their host's (`rbnodia.sim.scene.HOST_RELATIVE_MAG`) instead of
    uniformly between the limits below."""
    transient_mag_bright: float
    """How much brighter than the 5-sigma limit the brightest injections are."""
    transient_mag_faint: float
    """How much fainter than the 5-sigma limit the faintest injections are."""
    variable_star_fraction: float
    """Fraction of stars that vary."""
    variable_star_amplitude: float
    """The rms magnitude change of variable stars between template and science."""
    # Artifacts (bogus, label 1)
    cosmic_ray_rate: float
    """Cosmic rays per cm^2 per second (site + dewar)."""
    pixel_size_um: float
    """Pixel size, micron (with ``cosmic_ray_rate``, cosmic rays per
    exposure)."""
    cosmic_ray_track_px: float
    """Mean track length in pixels (thick sensors give longer tracks)."""
    cosmic_ray_repair_fraction: float
    """Fraction of cosmic rays found, masked CR and interpolated by ISR."""
    bad_columns: float
    """Mean number of bad (hot or dead) column segments per detector."""
    hot_pixels: float
    """Mean number of hot pixels per detector."""
    defect_mask_fraction: float
    """Fraction of defects known to the defect list (masked BAD, interpolated)."""
    satellite_probability: float
    """Probability that a satellite trail crosses the detector."""
    template_edge_probability: float
    """Probability that a template co-add boundary crosses the detector."""

    def with_options(self, **options) -> Preset:
        """Copy the preset with fields replaced.

        Parameters
        ----------
        **options
            New field values; ``image_size`` is an alias of ``shape``
            (`None` keeps the shape).

        Returns
        -------
        preset : `Preset`
            The copy.

        Raises
        ------
        TypeError
            Raised if an option is not a field.
        """
        if "image_size" in options:
            size = options.pop("image_size")
            if size is not None:
                options["shape"] = (int(size[0]), int(size[1]))
        unknown = set(options) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"Unknown simulator option(s) {sorted(unknown)}.")
        return dataclasses.replace(self, **options)

    @property
    def physical_filters(self) -> dict[str, str]:
        """Band of each physical filter name (``<band>_sim``)."""
        return {f"{band}_sim": band for band in self.bands}

    def nJy_per_electron(self, band: str, exposure_time: float | None = None) -> float:
        """Compute the calibration: nJy per detected electron.

        Parameters
        ----------
        band : `str`
            Band.
        exposure_time : `float`, optional
            Seconds (default: the preset's).

        Returns
        -------
        calibration : `float`
            Flux (nJy) of a source that gives one electron in
            ``exposure_time``.
        """
        t = self.exposure_time if exposure_time is None else exposure_time
        return 10.0 ** (0.4 * (AB_NJY_ZERO_POINT - self.zero_point[band])) / t

    def sky_electrons(self, band: str, sky_mag: float | None = None) -> float:
        """Compute the sky level in electrons per pixel per exposure.

        Parameters
        ----------
        band : `str`
            Band.
        sky_mag : `float`, optional
            Sky brightness, mag / arcsec^2 (default: the dark sky of the
            band).

        Returns
        -------
        electrons : `float`
            Sky electrons per pixel in one exposure.
        """
        mu = self.sky_brightness[band] if sky_mag is None else sky_mag
        return self.exposure_time * 10.0 ** (-0.4 * (mu - self.zero_point[band])) * self.pixel_scale**2


_DES = Preset(
    name="des",
    instrument="SimDECam",
    pixel_scale=0.263,
    shape=(4096, 2048),
    native_shape=(4096, 2048),
    amp_grid=(1, 2),
    gain=4.0,
    gain_scatter=0.08,
    read_noise=7.0,
    full_well=150_000.0,
    exposure_time=90.0,
    bands=("g", "r", "i", "z"),
    zero_point={"g": 26.45, "r": 26.60, "i": 26.40, "z": 26.05},
    sky_brightness={"g": 22.0, "r": 21.1, "i": 20.4, "z": 19.4},
    sky_scatter=0.3,
    seeing_median=1.0,
    seeing_sigma=0.2,
    seeing_min=0.7,
    psf_model="kolmogorov",
    moffat_beta=3.0,
    optics_fwhm=0.5,
    psf_ellipticity=0.03,
    brighter_fatter=0.02,
    psf_fwhm_gradient=0.04,
    psf_fwhm_curvature=0.02,
    template_n_coadd=10,
    template_seeing_factor=0.85,
    template_seeing_sigma=0.05,
    max_rotation_deg=0.5,
    dither_arcsec=20.0,
    astrometric_error_arcsec=0.03,
    astrometric_gradient_arcsec=0.02,
    dcr_arcsec_per_mag={"u": 0.25, "g": 0.1, "r": 0.03, "i": 0.015, "z": 0.01, "y": 0.007},
    template_airmass=1.1,
    background_error=0.02,
    photometric_error=0.01,
    flux_scale_error=0.02,
    flux_scale_length_arcsec=120.0,
    psf_shape_variation=0.01,
    kernel_width_error=0.01,
    kernel_shape_error=0.005,
    variance_underestimate=0.1,
    template_noise_correlation=0.7,
    detection_filter_factor=1.0,
    convolve_science=False,
    variable_star_label=1,
    field_center=(52.648, -28.100),  # DES SN field C3
    focal_plane_columns=12,
    detector_gap_px=150,
    epoch_start=datetime.datetime(2013, 8, 31, 3, 0, tzinfo=datetime.UTC),
    template_epoch=datetime.datetime(2014, 12, 1, 3, 0, tzinfo=datetime.UTC),
    star_density=250.0,
    star_slope=0.12,
    star_mag_range=(14.0, 26.0),
    galaxy_density=40_000.0,
    galaxy_slope=0.33,
    galaxy_mag_bright=16.0,
    galaxy_depth_beyond_template=0.5,
    band_offset={"u": 1.5, "g": 0.6, "r": 0.0, "i": -0.35, "z": -0.5, "y": -0.6},
    proper_motion_fraction=0.3,
    proper_motion_mas_per_yr=15.0,
    transient_density=1.0,
    min_transients=2,
    hostless_fraction=0.15,
    host_weight_power=0.5,
    host_relative_fraction=0.0,
    transient_mag_bright=4.0,
    transient_mag_faint=0.7,
    variable_star_fraction=0.02,
    variable_star_amplitude=0.3,
    cosmic_ray_rate=0.025,
    pixel_size_um=15.0,
    cosmic_ray_track_px=6.0,
    cosmic_ray_repair_fraction=0.9,
    bad_columns=2.0,
    hot_pixels=30.0,
    defect_mask_fraction=0.8,
    satellite_probability=0.05,
    template_edge_probability=0.1,
)

_LSST = dataclasses.replace(
    _DES,
    name="lsst",
    instrument="SimLSSTCam",
    pixel_scale=0.2,
    shape=(4096, 4096),
    native_shape=(4096, 4096),
    amp_grid=(2, 8),
    gain=1.6,
    gain_scatter=0.05,
    read_noise=6.0,
    full_well=100_000.0,
    exposure_time=30.0,
    bands=("u", "g", "r", "i", "z", "y"),
    zero_point={"u": 26.2, "g": 28.4, "r": 28.2, "i": 27.9, "z": 27.5, "y": 26.7},
    sky_brightness={"u": 22.9, "g": 22.3, "r": 21.2, "i": 20.5, "z": 19.6, "y": 18.6},
    sky_scatter=0.3,
    seeing_median=0.8,
    seeing_sigma=0.25,
    seeing_min=0.5,
    psf_model="kolmogorov",
    optics_fwhm=0.35,
    psf_ellipticity=0.02,
    psf_fwhm_gradient=0.03,
    template_n_coadd=20,
    template_seeing_factor=0.85,
    max_rotation_deg=15.0,
    dither_arcsec=20.0,
    astrometric_error_arcsec=0.02,
    astrometric_gradient_arcsec=0.015,
    field_center=(53.125, -28.100),  # ECDFS deep drilling field
    focal_plane_columns=15,
    detector_gap_px=100,
    epoch_start=datetime.datetime(2026, 1, 5, 2, 0, tzinfo=datetime.UTC),
    template_epoch=datetime.datetime(2025, 11, 20, 2, 0, tzinfo=datetime.UTC),
    pixel_size_um=10.0,
    cosmic_ray_track_px=4.0,
    cosmic_ray_rate=0.025,
    flux_scale_error=0.01,
    variance_underestimate=0.03,
    variable_star_label=0,
)

PRESETS: dict[str, Preset] = {"des": _DES, "lsst": _LSST}
"""Built-in presets by name."""


def get_preset(preset: str | Preset, **options) -> Preset:
    """Look up a preset by name (or pass one through) and apply overrides.

    Parameters
    ----------
    preset : `str` or `Preset`
        ``"des"``, ``"lsst"`` or a `Preset`.
    **options
        Field overrides, see `Preset.with_options`.

    Returns
    -------
    preset : `Preset`
        The preset, with the overrides applied.

    Raises
    ------
    ValueError
        Raised if the preset name is unknown.
    """
    if isinstance(preset, str):
        try:
            preset = PRESETS[preset.lower()]
        except KeyError:
            raise ValueError(f"Unknown preset {preset!r}; known: {sorted(PRESETS)}.") from None
    return preset.with_options(**options) if options else preset
