"""Helpers shared by the training tests: a quick training configuration and
running the ``rbnodia`` command line.
"""

from rbnodia.training import TrainingConfig


def quick_config(**fields) -> TrainingConfig:
    """Return a `TrainingConfig` for the small ``improved_nodia_fast`` network
    (it has batch normalisation and dropout) trained with Adam, which learns
    the easy stamps (`easy_stamps`) in a few epochs; ``fields`` set the other
    fields (and may replace these two).
    """
    return TrainingConfig(**{"architecture": "improved_nodia_fast", "optimizer": "adam", **fields})


def run_cli(capsys, argv: list[str]) -> str:
    """Run ``rbnodia`` with ``argv``, check that it exits with 0 and return what
    it printed to standard output (``capsys``: pytest's fixture).
    """
    from rbnodia.cli import main

    code = main(argv)
    assert code == 0, f"rbnodia {' '.join(argv)} exited with {code}"
    return capsys.readouterr().out
