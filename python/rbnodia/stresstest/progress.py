"""Progress reporting for long stress-test steps: a tqdm bar for people and
a log line at least every `HEARTBEAT_SECONDS` for logs (Prompt Processing and
batch systems read the log, not the bar).
"""

from __future__ import annotations

__all__ = ["HEARTBEAT_SECONDS", "Progress"]

import logging
import time

HEARTBEAT_SECONDS = 20.0
"""Longest interval between two progress log lines while work advances."""


class Progress:
    """A tqdm bar plus periodic log lines.

    Parameters
    ----------
    total : `int`
        Units of work.
    description : `str`
        What is counted (bar label and log text).
    logger : `logging.Logger`
        Where the log lines go.
    enabled : `bool`
        Show the bar (the log lines are always written).
    """

    def __init__(self, total: int, description: str, logger: logging.Logger, enabled: bool = True) -> None:
        from tqdm import tqdm

        self.total = total
        self.description = description
        self.logger = logger
        self.done = 0
        self.start = time.monotonic()
        self.last_log = self.start
        self.bar = tqdm(total=total, desc=description, unit="stamp", disable=not enabled, mininterval=1.0)

    def update(self, count: int) -> None:
        """Record ``count`` more units; log if the last line is old.

        Parameters
        ----------
        count : `int`
            Units done since the last call.
        """
        self.done += count
        self.bar.update(count)
        now = time.monotonic()
        if now - self.last_log >= HEARTBEAT_SECONDS:
            self.last_log = now
            rate = self.done / max(now - self.start, 1e-9)
            self.logger.info(
                "%s: %d of %d (%.0f%%), %.1f per second.",
                self.description,
                self.done,
                self.total,
                100.0 * self.done / max(self.total, 1),
                rate,
            )

    def close(self) -> float:
        """Close the bar.

        Returns
        -------
        seconds : `float`
            Elapsed seconds.
        """
        self.bar.close()
        return time.monotonic() - self.start
