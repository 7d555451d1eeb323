"""Composition of training shards: how many real stamps, and how many
bogus stamps of each cause (`~rbnodia.sim.truth.FAMILY_GROUPS`), and the
assembly of shards from a stream of patches.

A shard's quotas are filled in patch order, so its content depends only on
the patches' seeds.  Bogus groups that a stream under-produces would stall
a shard; once the stream has offered `OVERFLOW_FACTOR` times the bogus
quota, the missing stamps are taken from the surplus of the other groups
(in patch order) and the borrowing is recorded in the shard's metadata.
"""

from __future__ import annotations

__all__ = [
    "BOGUS_COMPOSITION",
    "OVERFLOW_FACTOR",
    "TRAINING_EXCLUDED",
    "ShardAssembler",
    "bogus_quotas",
    "shard_quotas",
]

import numpy as np

from ..core.stampset import BOGUS, REAL, LabelledStamps
from .truth import FAMILY_GROUPS, family_group

BOGUS_COMPOSITION: dict[str, float] = {
    "noise": 0.20,
    "galaxy_residual": 0.15,
    "star_residual": 0.15,
    "dipole": 0.15,
    "artifact": 0.30,
    "variable_star": 0.03,
    "fragment": 0.02,
}
"""Default share of each family group in the bogus class: the populations
real surveys are dominated by (noise excursions at the threshold, residuals
of galaxy cores and stars, dipoles) next to instrumental artifacts.
A composition may also name ``other`` (any bogus family not in a listed
group).  Groups that cannot be bogus under a
preset's convention (``variable_star`` when variable stars are real) are
dropped and the rest renormalised."""

TRAINING_EXCLUDED = ("sn_blended",)
"""Families never taken into a shard: their stamps' appearance contradicts
their label (`rbnodia.sim.truth`)."""

OVERFLOW_FACTOR = 3.0
"""Stall limit: bogus offered / bogus quota before deficits are filled from
the surplus."""


def shard_quotas(n: int, shard_size: int, real_fraction: float) -> list[tuple[int, int]]:
    """Split a set into shards and each shard into real and bogus stamps.

    Parameters
    ----------
    n : `int`
        Stamps in the set.
    shard_size : `int`
        Stamps per shard (the last shard takes the rest).
    real_fraction : `float`
        Fraction of real stamps, rounded at each shard's cumulative end, so
        the totals match ``n * real_fraction`` to within one stamp.

    Returns
    -------
    quotas : `list` [`tuple` [`int`, `int`]]
        ``(n_real, n_bogus)`` per shard.
    """
    quotas = []
    done = 0
    real_done = 0
    while done < n:
        size = min(shard_size, n - done)
        real_to = int(round((done + size) * real_fraction))
        quotas.append((real_to - real_done, size - (real_to - real_done)))
        done += size
        real_done = real_to
    return quotas


def bogus_quotas(
    n_bogus: int, composition: dict[str, float] | None, variable_star_label: int
) -> dict[str, int]:
    """Split a shard's bogus stamps over family groups.

    Parameters
    ----------
    n_bogus : `int`
        Bogus stamps in the shard.
    composition : `dict` [`str`, `float`] or `None`
        Share of each group (`BOGUS_COMPOSITION`; normalised here), or
        `None` for a single ``any`` group.
    variable_star_label : `int`
        The preset's label of variable stars; when real, the
        ``variable_star`` group is dropped.

    Returns
    -------
    quotas : `dict` [`str`, `int`]
        Stamps per group, adding up to ``n_bogus`` (largest remainders).

    Raises
    ------
    ValueError
        Raised if a group is unknown or no share is positive.
    """
    if composition is None:
        return {"any": n_bogus}
    shares = {g: float(s) for g, s in composition.items() if s > 0}
    if variable_star_label == REAL:
        shares.pop("variable_star", None)
    unknown = set(shares) - set(FAMILY_GROUPS) - {"other"}
    if unknown:
        raise ValueError(
            f"Unknown family groups {sorted(unknown)}; known: {sorted(FAMILY_GROUPS)} and 'other'."
        )
    total = sum(shares.values())
    if total <= 0:
        raise ValueError("The bogus composition needs a positive share.")
    exact = {g: n_bogus * s / total for g, s in shares.items()}
    quotas = {g: int(np.floor(v)) for g, v in exact.items()}
    rest = n_bogus - sum(quotas.values())
    for g in sorted(exact, key=lambda g: (quotas[g] - exact[g], g))[:rest]:
        quotas[g] += 1
    return quotas


class ShardAssembler:
    """Collect stamps from patches (in order) until a shard's quotas are met.

    Parameters
    ----------
    n_real : `int`
        Real stamps wanted.
    bogus : `dict` [`str`, `int`]
        Bogus stamps wanted per group (`bogus_quotas`).
    """

    def __init__(self, n_real: int, bogus: dict[str, int]):
        self.quota = {"real": n_real, **{f"bogus:{g}": q for g, q in bogus.items()}}
        self.parts: dict[str, list[LabelledStamps]] = {k: [] for k in self.quota}
        self.count = dict.fromkeys(self.quota, 0)
        self.surplus: list[LabelledStamps] = []
        self.bogus_offered = 0
        self.excluded = 0
        """Stamps offered of the `TRAINING_EXCLUDED` families."""
        self.n_bogus = sum(bogus.values())
        self.n_patches = 0

    def _key(self, stamps: LabelledStamps) -> np.ndarray:
        if "bogus:any" in self.quota:
            keys = np.where(stamps.label == REAL, "real", "bogus:any")
        else:
            keys = np.where(stamps.label == REAL, "real", np.char.add("bogus:", family_group(stamps.family)))
            listed = np.isin(keys, list(self.quota))
            keys = np.where(listed | (stamps.label == REAL), keys, "bogus:other")
        return np.where(np.isin(stamps.family, TRAINING_EXCLUDED), "excluded", keys)

    def add(self, stamps: LabelledStamps) -> None:
        """Offer the stamps of one patch.

        Parameters
        ----------
        stamps : `~rbnodia.core.stampset.LabelledStamps`
            The patch's stamps, in order; those within a quota are taken,
            the other bogus ones are kept as surplus.
        """
        self.n_patches += 1
        if not len(stamps):
            return
        keys = self._key(stamps)
        self.excluded += int(np.sum(keys == "excluded"))
        self.bogus_offered += int(np.sum(stamps.label == BOGUS))
        taken = np.zeros(len(stamps), dtype=bool)
        for key in self.quota:
            rows = np.flatnonzero(keys == key)
            take = min(len(rows), self.quota[key] - self.count[key])
            if take > 0:
                self.parts[key].append(stamps.subset(rows[:take]))
                self.count[key] += take
                taken[rows[:take]] = True
        room = self.n_bogus - sum(len(s) for s in self.surplus)
        rest = np.flatnonzero(~taken & (stamps.label == BOGUS))[: max(room, 0)]
        if len(rest):
            self.surplus.append(stamps.subset(rest))

    def missing(self) -> dict[str, int]:
        """Count the stamps still wanted.

        Returns
        -------
        missing : `dict` [`str`, `int`]
            Per key (``real``, ``bogus:<group>``) with a deficit.
        """
        return {k: self.quota[k] - self.count[k] for k in self.quota if self.count[k] < self.quota[k]}

    def ready(self) -> bool:
        """Tell whether the shard can be made.

        Returns
        -------
        ready : `bool`
            True when the quotas are met, or when the stream has stalled
            (`OVERFLOW_FACTOR`) and the surplus covers the bogus deficit.
        """
        missing = self.missing()
        if not missing:
            return True
        if "real" in missing or self.bogus_offered < OVERFLOW_FACTOR * self.n_bogus:
            return False
        return sum(len(s) for s in self.surplus) >= sum(missing.values())

    def shard(self, rng: np.random.Generator) -> tuple[LabelledStamps, dict[str, int]]:
        """Assemble the shard (call when `ready`).

        Parameters
        ----------
        rng : `numpy.random.Generator`
            Shuffles the rows.

        Returns
        -------
        shard : `~rbnodia.core.stampset.LabelledStamps`
            The shuffled shard.
        borrowed : `dict` [`str`, `int`]
            Stamps taken from the surplus in place of each key's deficit.
        """
        borrowed = self.missing()
        parts = [p for key in self.quota for p in self.parts[key]]
        need = sum(borrowed.values())
        if need:
            surplus = LabelledStamps.concatenate(self.surplus)
            parts.append(surplus.subset(slice(0, need)))
        shard = LabelledStamps.concatenate(parts)
        return shard.subset(rng.permutation(len(shard))), borrowed
