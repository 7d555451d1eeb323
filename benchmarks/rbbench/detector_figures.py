"""Figures of sections 2 and 3 (`rbbench.detector`), built from one
worker's measurements of a detector.
"""

from __future__ import annotations

__all__ = ["PACKAGED_NODIA", "PAPER_DIA_CPU_S_PER_DES_CCD", "PAPER_MS_PER_STAMP", "section2_figures",
           "section3_figures"]

from .common import Figure

PAPER_MS_PER_STAMP = 0.30
"""The paper's inference time per stamp, ms."""
PAPER_DIA_CPU_S_PER_DES_CCD = 15.5 * 3600 / 62
"""The paper's ~15.5 CPU hours of difference imaging per 62-CCD DES exposure, per CCD."""
PACKAGED_NODIA = "nodia_default"
"""The model the noDIA pipeline runs by default, timed besides the paper's network."""


def section2_figures(name: str, label: str, source: str, r: dict, command: str) -> list[Figure]:
    """Build section 2's figures for one detector.

    Parameters
    ----------
    name : `str`
        Detector key (``LSST`` or ``DES``), used in the figure ids.
    label : `str`
        Human-readable detector description.
    source : `str`
        Where the images came from (the figures' note).
    r : `dict`
        The worker's measurements.
    command : `str`
        The command that reproduces the figures.

    Returns
    -------
    figures : `list` [`Figure`]
        Task time (saliency off and on, packaged model), its breakdown and
        memory.
    """
    n = r["n"]
    total = r["task_saliency_off"]
    packaged = r["packaged_task_saliency_off"]
    figures = [Figure.time(
        f"2.{name}.task", 2, f"{label}: ClassifyRealBogusTask.run, noDIA, saliency off ({r['backend']})",
        total, "s", baseline=r["naive"], baseline_label="naive per-detection loop",
        reference=PAPER_MS_PER_STAMP * n / 1e3, reference_label="paper 0.30 ms/stamp x n (inference only)",
        note=source + ("; goal <= 1 s" if name == "LSST" else ""), command=command,
    ), Figure.amount(
        f"2.{name}.task_saliency", 2, f"{label}: ClassifyRealBogusTask.run, saliency on",
        r["task_saliency_on"], "s", baseline=total, baseline_label="saliency off", command=command,
    ), Figure.amount(
        f"2.{name}.task_packaged", 2, f"{label}: ClassifyRealBogusTask.run, packaged {PACKAGED_NODIA}, "
        "saliency off", packaged, "s", baseline=total, baseline_label="paper noDIA network, saliency off",
        command=command,
    ), Figure.amount(
        f"2.{name}.task_packaged_saliency", 2, f"{label}: ClassifyRealBogusTask.run, packaged "
        f"{PACKAGED_NODIA}, saliency on", r["packaged_task_saliency_on"], "s", baseline=packaged,
        baseline_label=f"{PACKAGED_NODIA}, saliency off", command=command,
    )]
    for part, what in (("cutouts", "cutouts (cut_stamps, srch+tmpl)"),
                       ("scaling", "scaling + stacking (scale_cutouts)"),
                       ("inference", f"inference (RealBogusModel.predict, {r['backend']})"),
                       ("inference_tf", "inference, TensorFlow backend"),
                       ("saliency", "saliency row sums + segment importances")):
        figures.append(Figure.amount(
            f"2.{name}.{part}", 2, f"{label}: {what}", r[part], "s", baseline=total,
            baseline_label="task total, saliency off", command=command,
        ))
    during = "during the timed runs" if r.get("peak_reset") else "of the whole process"
    figures.append(Figure.amount(
        f"2.{name}.memory", 2, f"{label}: peak RSS {during} (TF/ONNX, images, runs)",
        r["max_rss_mb"], "MiB", baseline=r["images_mb"], baseline_label="science + template arrays",
        note=f"RSS {r['rss_before_mb']:.0f} MiB before the timed runs (libraries, model, images)",
        command=command,
    ))
    figures.append(Figure.amount(
        f"2.{name}.traced", 2, f"{label}: peak memory allocated during one run (tracemalloc)",
        r["traced_peak_mb"], "MiB", baseline=r["images_mb"], baseline_label="science + template arrays",
        command=command,
    ))
    return figures


def section3_figures(name: str, label: str, source: str, r: dict, command: str) -> list[Figure]:
    """Build section 3's figures for one detector.

    Parameters
    ----------
    name, label, source, r, command
        As for `section2_figures`.

    Returns
    -------
    figures : `list` [`Figure`]
        Subtraction wall and CPU time against noDIA classification.
    """
    reference = PAPER_DIA_CPU_S_PER_DES_CCD if name == "DES" else None
    return [Figure.amount(
        f"3.{name}.subtract", 3,
        f"{label}: PSF matching + subtraction (rbnodia.sim.subtract, {r['mode']}), wall",
        r["subtract"], "s", baseline=r["task_saliency_off"],
        baseline_label="noDIA classification of its detections", note=source, command=command,
    ), Figure.amount(
        f"3.{name}.subtract_cpu", 3, f"{label}: PSF matching + subtraction, CPU time",
        r["subtract_cpu"], "CPU s", baseline=r["task_saliency_off_cpu"],
        baseline_label="noDIA classification, CPU time", reference=reference,
        reference_label="paper: DES DIA, 15.5 CPU h / 62 CCDs (all DIA steps)" if reference else "",
        command=command,
    )]
