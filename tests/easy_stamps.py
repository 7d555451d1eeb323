"""Small, easy labelled stamp sets for the training tests."""

import numpy as np

from rbnodia.core.stampset import LabelledStamps


def easy_stamps(n: int, seed: int, size: int = 51) -> LabelledStamps:
    """Reals: a point source in srch that is absent from tmpl; bogus: the
    same source in both (PSFs differ a little, as without PSF matching).
    """
    rng = np.random.default_rng(seed)
    label = np.arange(n) % 2
    rng.shuffle(label)
    yy, xx = np.mgrid[:size, :size]
    c = size // 2
    sigma_s = rng.uniform(1.4, 2.0, n)[:, None, None]
    sigma_t = rng.uniform(1.1, 1.7, n)[:, None, None]
    flux = rng.uniform(150, 500, n)[:, None, None]
    r2 = ((xx - c) ** 2 + (yy - c) ** 2)[None]
    star_s = flux * np.exp(-r2 / (2 * sigma_s**2)) / (2 * np.pi * sigma_s**2)
    star_t = flux * np.exp(-r2 / (2 * sigma_t**2)) / (2 * np.pi * sigma_t**2)
    srch = 100 + star_s + rng.normal(0, 1, (n, size, size))
    tmpl = 300 + np.where(label[:, None, None] == 1, star_t, 0) + rng.normal(0, 0.5, (n, size, size))
    return LabelledStamps(
        diff=srch - 100 - (tmpl - 300),
        srch=srch,
        tmpl=tmpl,
        label=label,
        id=np.arange(n) + 1000 * seed,
        family=np.where(label == 0, "easy_real", "easy_static"),
        mag=np.full(n, np.nan),
        snr=np.full(n, np.nan),
        meta={"simulator": "tests.easy_stamps", "seed": seed},
    )
