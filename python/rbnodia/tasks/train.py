"""Offline training of a real/bogus network from labelled stamps in the
Butler, writing a versioned model dataset, metrics and plots."""

from __future__ import annotations

__all__ = ["TrainRealBogusConnections", "TrainRealBogusConfig", "TrainRealBogusTask"]

from typing import Any

import numpy as np

import lsst.pex.config as pexConfig
import lsst.pipe.base as pipeBase
import lsst.pipe.base.connectionTypes as cT
from lsst.utils.timer import timeMethod

from ..core.layouts import Layout

_PLOTS = {
    "lossPlot": ("rbnodia_training_loss_plot", "Loss and accuracy per epoch, training and validation."),
    "rocPlot": ("rbnodia_training_roc_plot", "ROC curve on the held-out test stamps."),
    "confusionPlot": ("rbnodia_training_confusion_plot", "Confusion matrix on the held-out test stamps."),
    "scorePlot": ("rbnodia_training_score_plot", "Score histograms per true class on the test stamps."),
}


class TrainRealBogusConnections(pipeBase.PipelineTaskConnections, dimensions=()):
    stamps = cT.Input(
        doc="Labelled stamps of many visits and detectors (all found in the input collections).",
        name="rbnodia_labelled_stamps",
        storageClass="LabelledStamps",
        dimensions=("instrument", "visit", "detector"),
        multiple=True,
    )
    model = cT.Output(
        doc="The trained model; its content hash is the version written in catalogs.  Each training run "
        "writes into its own RUN collection, which is how models are versioned and chosen.",
        name="rbnodia_model",
        storageClass="RealBogusModel",
        dimensions=(),
    )
    metrics = cT.Output(
        doc="Training, validation and test metrics, the chosen threshold, loss history and provenance.",
        name="rbnodia_training_metrics",
        storageClass="StructuredDataDict",
        dimensions=(),
    )
    lossPlot = cT.Output(doc=_PLOTS["lossPlot"][1], name=_PLOTS["lossPlot"][0], storageClass="Plot",
                         dimensions=())
    rocPlot = cT.Output(doc=_PLOTS["rocPlot"][1], name=_PLOTS["rocPlot"][0], storageClass="Plot", dimensions=())
    confusionPlot = cT.Output(doc=_PLOTS["confusionPlot"][1], name=_PLOTS["confusionPlot"][0],
                              storageClass="Plot", dimensions=())
    scorePlot = cT.Output(doc=_PLOTS["scorePlot"][1], name=_PLOTS["scorePlot"][0], storageClass="Plot",
                          dimensions=())


class TrainRealBogusConfig(pipeBase.PipelineTaskConfig, pipelineConnections=TrainRealBogusConnections):
    architecture = pexConfig.Field(
        dtype=str, doc="Registered architecture (`rbnodia info` lists them).", default="paper_nodia"
    )
    layout = pexConfig.ChoiceField(
        dtype=str,
        doc="Stamps the model reads; must be the architecture's layout (a guard against training the wrong "
        "kind of model for a pipeline).",
        default=Layout.NODIA.value,
        allowed={Layout.NODIA.value: "science and template", Layout.DIA.value: "difference, science, template"},
    )
    modelName = pexConfig.Field(dtype=str, doc="Name recorded in the model (catalog version prefix).",
                                default="nodia_trained")
    epochs = pexConfig.RangeField(dtype=int, doc="Maximum epochs (paper: up to 500).", default=100, min=1)
    batchSize = pexConfig.RangeField(dtype=int, doc="Minibatch size (paper: 200).", default=200, min=1)
    optimizer = pexConfig.Field(
        dtype=str,
        doc="Optimizer recipe: paper_sgd (SGD lr 0.01, the paper), sgd_momentum, adam, adam_cosine.",
        default="paper_sgd",
    )
    learningRate = pexConfig.Field(dtype=float, doc="Overrides the recipe's learning rate.", default=None,
                                   optional=True)
    patience = pexConfig.RangeField(dtype=int, doc="Early-stopping patience on val_loss (0: none).",
                                    default=30, min=0)
    validationFraction = pexConfig.RangeField(dtype=float, doc="Fraction of training stamps for validation.",
                                              default=0.2, min=0.0, max=0.9)
    testFraction = pexConfig.RangeField(
        dtype=float, doc="Fraction of the stamps held out (stratified, seeded) for the test metrics and plots.",
        default=0.2, min=0.0, max=0.9,
    )
    seed = pexConfig.RangeField(dtype=int, doc="Seed for splits, shuffling, augmentation and weights.",
                                default=0, min=0)
    augment = pexConfig.Field(dtype=bool, doc="Random flips and 90-degree rotations.", default=False)
    balance = pexConfig.ChoiceField(
        dtype=str, doc="Class balancing.", default="none",
        allowed={"none": "as given", "weights": "inverse-frequency sample weights",
                 "undersample": "drop majority-class stamps"},
    )
    thresholdMethod = pexConfig.Field(
        dtype=str, doc="Threshold choice on the validation split: fixed, max_accuracy, youden, fnr:<x>.",
        default="max_accuracy",
    )

    def validate(self):
        super().validate()
        from ..nn.architectures import get_architecture
        from ..training import TrainingConfig

        try:
            arch = get_architecture(self.architecture)
        except KeyError as err:
            raise pexConfig.FieldValidationError(TrainRealBogusConfig.architecture, self, str(err)) from None
        if arch.layout.value != self.layout:
            raise pexConfig.FieldValidationError(
                TrainRealBogusConfig.layout, self,
                f"architecture {self.architecture} reads {arch.layout.value} stamps, not {self.layout}",
            )
        try:
            self.training_config().validate()
        except ValueError as err:
            raise pexConfig.FieldValidationError(TrainRealBogusConfig.optimizer, self, str(err)) from None

    def training_config(self):
        """The equivalent `rbnodia.training.TrainingConfig`."""
        from ..training import TrainingConfig

        return TrainingConfig(
            architecture=self.architecture, epochs=self.epochs, batch_size=self.batchSize,
            optimizer=self.optimizer, learning_rate=self.learningRate, patience=self.patience,
            validation_fraction=self.validationFraction, seed=self.seed, augment=self.augment,
            balance=self.balance, threshold_method=self.thresholdMethod, name=self.modelName,
        )


class TrainRealBogusTask(pipeBase.PipelineTask):
    """Train a real/bogus network on labelled stamps from many detectors.

    The stamps of all input datasets are pooled; ``testFraction`` of them
    (stratified by label, seeded) is held out for the test metrics and plots,
    and ``validationFraction`` of the rest drives early stopping and the
    threshold choice.  The model is written with its metadata (architecture,
    layout, threshold and method, training summary, metrics, library
    versions, content hash).
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
            ``model``, ``metrics`` and the four plots.

        Raises
        ------
        ValueError
            If there are no stamps, or only one class.
        """
        from ..core.metrics import confusion_matrix
        from ..core.stampset import LabelledStamps
        from ..plots.training import plot_confusion_matrix, plot_history, plot_roc, plot_score_histograms
        from ..training import evaluate_model, finalize_model, jsonable, train_model

        parts = [s for s in stamps if len(s)]
        if not parts:
            raise ValueError("No labelled stamps in the inputs.")
        pooled = LabelledStamps.concatenate(parts)
        if len(np.unique(pooled.label)) < 2:
            raise ValueError("Training needs both real (0) and bogus (1) stamps; the inputs have one class.")
        train, test = self._split(pooled)
        self.log.info("Training %s on %d stamps (%d real) from %d datasets; %d held out for testing.",
                      self.config.architecture, len(train), int((train.label == 0).sum()), len(parts), len(test))
        result = train_model(train, self.config.training_config(), log=self.log)
        test_metrics, test_scores = evaluate_model(result.model, test, return_scores=True) if len(test) else ({}, None)
        model = finalize_model(result, test_metrics, test_summary=test.summary() if len(test) else None,
                               name=self.config.modelName, extra={"n_input_datasets": len(parts)})
        self.log.info("Trained %s in %d epochs (%.0f s): test accuracy %.4f, ROC AUC %.4f, threshold %.3f (%s).",
                      model.version, result.epochs_run, result.train_seconds,
                      test_metrics.get("accuracy", np.nan), test_metrics.get("roc_auc", np.nan),
                      model.threshold, model.metadata.threshold_method)
        metrics = jsonable({
            "model": model.version,
            "architecture": self.config.architecture,
            "layout": self.config.layout,
            "threshold": model.threshold,
            "threshold_method": model.metadata.threshold_method,
            "train": result.train_metrics,
            "validation": result.validation_metrics,
            "test": test_metrics,
            "history": result.history,
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "train_seconds": result.train_seconds,
            "cpu_seconds": result.cpu_seconds,
            "data": {"train": train.summary(), "test": test.summary() if len(test) else {},
                     "n_input_datasets": len(parts)},
            "config": self.config.training_config().to_dict(),
        })
        eval_labels, eval_scores, which = (
            (test.label, test_scores, "test") if test_scores is not None
            else (result.validation_labels, result.validation_scores, "validation")
        )
        title = f"{model.version} ({which})"
        plots = {
            "lossPlot": plot_history(result.history, best_epoch=result.best_epoch, title=model.version),
            "rocPlot": plot_roc({model.version: (eval_labels, eval_scores)},
                                operating_points={model.version: model.threshold}, title=title),
            "confusionPlot": plot_confusion_matrix(confusion_matrix(eval_labels, eval_scores, model.threshold),
                                                   title=title),
            "scorePlot": plot_score_histograms(eval_labels, eval_scores, threshold=model.threshold, title=title),
        }
        return pipeBase.Struct(model=model, metrics=metrics, **plots)

    def _split(self, stamps):
        """Stratified, seeded hold-out of ``testFraction`` of the stamps."""
        if self.config.testFraction == 0:
            return stamps, stamps.subset(np.zeros(len(stamps), dtype=bool))
        rng = np.random.default_rng(self.config.seed + 7919)
        test = np.zeros(len(stamps), dtype=bool)
        for label in (0, 1):
            members = np.flatnonzero(stamps.label == label)
            n_test = int(round(self.config.testFraction * len(members)))
            test[rng.choice(members, size=n_test, replace=False)] = True
        return stamps.subset(~test), stamps.subset(test)
