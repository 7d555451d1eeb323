"""Untrained models saved as real model files, and the classify task that
reads one, for the tests.
"""

from pathlib import Path


def save_untrained_model(folder: Path, architecture: str, name: str, seed: int = 0, **metadata) -> Path:
    """Write ``folder/<name>.rbmodel``: ``architecture`` with the weights Keras
    draws after ``keras.utils.set_random_seed(seed)``; return its path.
    ``metadata``: other arguments of `RealBogusModel.from_architecture`.
    """
    import keras

    from rbnodia.nn import RealBogusModel

    keras.utils.set_random_seed(seed)
    path = folder / f"{name}.rbmodel"
    RealBogusModel.from_architecture(architecture, name=name, **metadata).save(path)
    return path


def make_classify_task(model_file, **overrides):
    """Return a validated `ClassifyRealBogusTask` reading ``model_file``, its
    other config fields set from ``overrides``.
    """
    from rbnodia.tasks.classify import ClassifyRealBogusConfig, ClassifyRealBogusTask

    config = ClassifyRealBogusConfig()
    config.modelName = str(model_file)
    for key, value in overrides.items():
        setattr(config, key, value)
    config.validate()
    return ClassifyRealBogusTask(config=config)
