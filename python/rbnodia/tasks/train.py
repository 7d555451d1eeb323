"""Offline training of a real/bogus network from labelled stamps in the
Butler, writing a versioned model dataset, metrics and plots.
"""

from __future__ import annotations

__all__ = ["TrainRealBogusConfig", "TrainRealBogusConnections", "TrainRealBogusTask"]

from typing import Any, override

import numpy as np

import lsst.pex.config as pexConfig
import lsst.pipe.base as pipeBase
import lsst.pipe.base.connectionTypes as cT
from lsst.utils.timer import timeMethod

from ..core.layouts import Layout
from ..training.settings import TrainingConfig
from .connection_types import DETECTOR_DIMENSIONS, model_dataset, plot_output

_PLOTS = {
    "lossPlot": ("rbnodia_training_loss_plot", "Loss and accuracy per epoch, training and validation."),
    "rocPlot": ("rbnodia_training_roc_plot", "ROC curve on the held-out test stamps."),
    "confusionPlot": ("rbnodia_training_confusion_plot", "Confusion matrix on the held-out test stamps."),
    "scorePlot": ("rbnodia_training_score_plot", "Score histograms per true class on the test stamps."),
    "familyPlot": ("rbnodia_training_family_plot", "Fraction of each family called real, test stamps."),
    "snrPlot": ("rbnodia_training_snr_plot", "ROC AUC per detection S/N bin, test stamps."),
}


class TrainRealBogusConnections(pipeBase.PipelineTaskConnections, dimensions=()):
    """Connections of `TrainRealBogusTask`: every labelled-stamp dataset of
    the input collections in, the model, its metrics and plots out.
    """

    stamps = cT.Input(
        doc="Labelled stamps of many visits and detectors (all found in the input collections).",
        name="rbnodia_labelled_stamps",
        storageClass="LabelledStamps",
        dimensions=DETECTOR_DIMENSIONS,
        multiple=True,
    )
    model = model_dataset(
        cT.Output,
        doc="The trained model; its content hash is the version written in catalogs.  Each training run "
        "writes into its own RUN collection, which is how models are versioned and chosen.",
    )
    metrics = cT.Output(
        doc="Training, validation and test metrics, the chosen threshold, loss history and provenance.",
        name="rbnodia_training_metrics",
        storageClass="StructuredDataDict",
        dimensions=(),
    )
    lossPlot = plot_output(name=_PLOTS["lossPlot"][0], doc=_PLOTS["lossPlot"][1])
    rocPlot = plot_output(name=_PLOTS["rocPlot"][0], doc=_PLOTS["rocPlot"][1])
    confusionPlot = plot_output(name=_PLOTS["confusionPlot"][0], doc=_PLOTS["confusionPlot"][1])
    scorePlot = plot_output(name=_PLOTS["scorePlot"][0], doc=_PLOTS["scorePlot"][1])
    familyPlot = plot_output(name=_PLOTS["familyPlot"][0], doc=_PLOTS["familyPlot"][1])
    snrPlot = plot_output(name=_PLOTS["snrPlot"][0], doc=_PLOTS["snrPlot"][1])


class TrainRealBogusConfig(pipeBase.PipelineTaskConfig, pipelineConnections=TrainRealBogusConnections):
    """Configuration of `TrainRealBogusTask`."""

    training = pexConfig.ConfigField(
        dtype=TrainingConfig,
        doc="Training settings (rbnodia.training.TrainingConfig, the same as the options of `rbnodia "
        "train`), e.g. -c trainRealBogus:training.epochs=40.",
    )
    layout = pexConfig.ChoiceField(
        dtype=str,
        doc="Stamps the model reads; must be the architecture's layout (a guard against training the wrong "
        "kind of model for a pipeline).",
        default=Layout.NODIA.value,
        allowed={Layout.NODIA.value: "science and template",
                 Layout.DIA.value: "difference, science, template"},
        optional=False,
    )
    testFraction = pexConfig.RangeField(
        dtype=float,
        doc="Fraction of the stamps held out (stratified, seeded) for the test metrics and plots.",
        default=0.2, min=0.0, max=1.0, inclusiveMax=False,
    )

    @override
    def validate(self):
        super().validate()
        from ..nn.architectures import get_architecture

        arch = get_architecture(self.training.architecture)
        if arch.layout.value != self.layout:
            raise pexConfig.FieldValidationError(
                TrainRealBogusConfig.layout, self,
                f"architecture {self.training.architecture} reads {arch.layout.value} stamps, "
                f"not {self.layout}",
            )


class TrainRealBogusTask(pipeBase.PipelineTask):
    """Train a real/bogus network on labelled stamps from many detectors.

    The stamps of all input datasets are pooled; ``testFraction`` of them
    (stratified by label, seeded) is held out for the test metrics and plots,
    and ``training.validationFraction`` of the rest drives early stopping and
    the threshold choice.  With ``training.checkpointDir`` set, training
    checkpoints after every epoch and a rerun of the quantum resumes it.  The
    model is written with its metadata (architecture, layout, threshold and
    method, training summary, metrics with per-family and per-S/N-bin
    breakdowns, library versions, content hash).
    """

    ConfigClass = TrainRealBogusConfig
    _DefaultName = "trainRealBogus"

    @timeMethod
    def run(self, stamps: list[Any]):
        """Train, evaluate and plot.

        Parameters
        ----------
        stamps : `list` [`rbnodia.core.LabelledStamps`]
            Labelled stamps of each input dataset.

        Returns
        -------
        result : `lsst.pipe.base.Struct`
            ``model``, ``metrics`` and the plots (``lossPlot``, ``rocPlot``,
            ``confusionPlot``, ``scorePlot``, ``familyPlot``, ``snrPlot``).

        Raises
        ------
        ValueError
            If there are no stamps, or only one class.
        """
        from ..core.stampset import LabelledStamps
        from ..training import evaluate_model, finalize_model, label_families_real, train_model

        parts = [s for s in stamps if len(s)]
        if not parts:
            raise ValueError("No labelled stamps in the inputs.")
        pooled = LabelledStamps.concatenate(parts)
        if self.config.training.realFamilies:
            changed = label_families_real(pooled, self.config.training.realFamilies)
            self.log.info("Labelled %d stamps of %s real (realFamilies).", changed,
                          list(self.config.training.realFamilies))
        if len(np.unique(pooled.label)) < 2:
            raise ValueError("Training needs both real (0) and bogus (1) stamps; the inputs have one class.")
        train, test = self._split(pooled)
        config = self.config.training
        self.log.info("Training %s on %d stamps (%d real) from %d datasets; %d held out for testing.",
                      config.architecture, len(train), int((train.label == 0).sum()), len(parts), len(test))
        result = train_model(train, config, log=self.log)
        if not result.finished:  # only a session limit stops early, and the task sets none
            raise RuntimeError("Training did not finish.")
        test_metrics, test_scores = ({}, None)
        if len(test):
            test_metrics, test_scores = evaluate_model(result.model, test, return_scores=True)
        model = finalize_model(result, test_metrics, test_summary=test.summary() if len(test) else None,
                               extra={"n_input_datasets": len(parts)})
        self.log.info("Trained %s in %d epochs (%.0f s): test accuracy %.4f, ROC AUC %.4f, threshold %.3f "
                      "(%s).",
                      model.version, result.epochs_run, result.train_seconds,
                      test_metrics.get("accuracy", np.nan), test_metrics.get("roc_auc", np.nan),
                      model.threshold, model.metadata.threshold_method)
        metrics = self._metrics(model, result, test_metrics, train, test, len(parts))
        if test_scores is not None:
            evaluation = (test.label, test_scores, test_metrics, "test")
        else:
            evaluation = (result.validation_labels, result.validation_scores, result.validation_metrics,
                          "validation")
        return pipeBase.Struct(model=model, metrics=metrics, **self._plots(model, result, *evaluation))

    def _metrics(self, model, result, test_metrics, train, test, n_parts) -> dict[str, Any]:
        from ..training import jsonable

        return jsonable({
            "model": model.version,
            "architecture": self.config.training.architecture,
            "layout": self.config.layout,
            "threshold": model.threshold,
            "threshold_method": model.metadata.threshold_method,
            "train": result.train_metrics,
            "validation": result.validation_metrics,
            "test": test_metrics,
            "history": result.history,
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "stopped_early": result.stopped_early,
            "sessions": result.sessions,
            "train_seconds": result.train_seconds,
            "cpu_seconds": result.cpu_seconds,
            "data": {"train": train.summary(), "test": test.summary() if len(test) else {},
                     "n_input_datasets": n_parts},
            "config": self.config.training.toDict(),
        })

    @staticmethod
    def _plots(model, result, labels, scores, metrics, which) -> dict[str, Any]:
        from ..core.metrics import confusion_matrix
        from ..plots.families import plot_auc_vs_snr, plot_family_fractions
        from ..plots.training import plot_confusion_matrix, plot_history, plot_roc, plot_score_histograms

        name, threshold = model.version, model.threshold
        title = f"{name} ({which})"
        return {
            "lossPlot": plot_history(result.history, best_epoch=result.best_epoch, title=name),
            "rocPlot": plot_roc({name: (labels, scores)}, operating_points={name: threshold}, title=title),
            "confusionPlot": plot_confusion_matrix(confusion_matrix(labels, scores, threshold), title=title),
            "scorePlot": plot_score_histograms(labels, scores, threshold=threshold, title=title),
            "familyPlot": plot_family_fractions({name: metrics.get("by_family", {})},
                                                title=f"{title}: fraction called real"),
            "snrPlot": plot_auc_vs_snr({name: metrics.get("auc_by_snr", {})},
                                       title=f"{title}: ROC AUC per S/N bin"),
        }

    def _split(self, stamps):
        """Stratified, seeded hold-out of ``testFraction`` of the stamps."""
        if self.config.testFraction == 0:
            return stamps, stamps.subset(np.zeros(len(stamps), dtype=bool))
        rng = np.random.default_rng(self.config.training.seed + 7919)
        test = np.zeros(len(stamps), dtype=bool)
        for label in (0, 1):
            members = np.flatnonzero(stamps.label == label)
            n_test = int(round(self.config.testFraction * len(members)))
            test[rng.choice(members, size=n_test, replace=False)] = True
        return stamps.subset(~test), stamps.subset(test)
