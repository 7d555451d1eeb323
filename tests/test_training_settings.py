"""One source of truth for the training settings: `TrainingConfig` defines
them; the task config and the ``rbnodia train`` options derive from it.
"""

import numpy as np
import pytest

from rbnodia.cli import build_parser
from rbnodia.commands.config_options import config_fields, option_name
from rbnodia.commands.train import config_from_args
from rbnodia.tasks.train import TrainRealBogusConfig
from rbnodia.training import TRAINING_RECIPES, TrainingConfig

FIELDS = config_fields(TrainingConfig)

# A valid value different from the default, per field (the test fails if a field is added without one).
OTHER_VALUES = {
    "architecture": ("improved_nodia_fast", "improved_nodia_fast"),
    "epochs": ("7", 7),
    "batchSize": ("64", 64),
    "optimizer": ("adam", "adam"),
    "learningRate": ("0.003", 0.003),
    "patience": ("4", 4),
    "validationFraction": ("0.25", 0.25),
    "seed": ("9", 9),
    "augment": (None, True),
    "balance": ("weights", "weights"),
    "thresholdMethod": ("fnr:0.05", "fnr:0.05"),
    "scaling": ("shared-span/v1", "shared-span/v1"),
    "stampSize": ("31", 31),
    "name": ("my_model", "my_model"),
    "threads": ("1", 1),
    "evaluateTrain": (None, False),
    "initialWeights": ("nodia_default", "nodia_default"),
    "checkpointDir": ("ckpt", "ckpt"),
    "realFamilies": (["variable_star", "noise"], ["variable_star", "noise"]),
}


def parse_train(*options):
    return build_parser().parse_args(["train", "--data", "d.npz", "--out", "m.rbmodel", *options])


def test_every_field_has_a_test_value():
    assert set(OTHER_VALUES) == set(FIELDS)
    defaults = TrainingConfig()
    for name, (_, value) in OTHER_VALUES.items():
        assert getattr(defaults, name) != value, name


def test_cli_task_and_definition_defaults_agree(capsys):
    definition = TrainingConfig().toDict()
    assert config_from_args(parse_train()).toDict() == definition
    assert TrainRealBogusConfig().training.toDict() == definition
    # The help shows the definition's defaults.
    with pytest.raises(SystemExit):
        parse_train("--help")
    help_text = " ".join(capsys.readouterr().out.split())
    for name, field in FIELDS.items():
        assert option_name(name) in help_text
        assert f"(default: {'unset' if field.default is None else field.default})" in help_text


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_every_field_reachable_from_cli_and_task(name):
    text, value = OTHER_VALUES[name]
    field = FIELDS[name]
    if field.dtype is bool:
        option = option_name(name) if value else "--no-" + option_name(name)[2:]
        args = parse_train(option)
    elif isinstance(text, list):
        args = parse_train(option_name(name), *text)
    else:
        args = parse_train(option_name(name), text)
    assert list(getattr(config_from_args(args), name)) == value if isinstance(value, list) else \
        getattr(config_from_args(args), name) == value
    task_config = TrainRealBogusConfig()
    task_config.loadFromString(f"config.training.{name} = {value!r}")
    assert (list(getattr(task_config.training, name)) if isinstance(value, list)
            else getattr(task_config.training, name)) == value


def test_recipe_then_options():
    config = config_from_args(parse_train("--recipe", "paper_dia", "--epochs", "3", "--arch", "paper_dia"))
    expected = TrainingConfig.from_recipe("paper_dia", epochs=3)
    assert config.toDict() == expected.toDict()
    assert config.patience == TRAINING_RECIPES["paper_dia"]["patience"]


def test_cli_rejects_invalid_values():
    with pytest.raises(ValueError, match="validationFraction"):
        config_from_args(parse_train("--validation-fraction", "1.5"))
    with pytest.raises(ValueError, match="Unknown architecture"):
        config_from_args(parse_train("--arch", "nope"))
    with pytest.raises(SystemExit):
        parse_train("--balance", "oversample")


def test_task_config_checks_layout():
    config = TrainRealBogusConfig()
    config.training.architecture = "paper_dia"
    with pytest.raises(ValueError, match="reads DIA stamps"):
        config.validate()
    config.layout = "DIA"
    config.validate()


def test_real_families_relabel_in_place():
    from rbnodia.core.stampset import BOGUS, REAL, LabelledStamps
    from rbnodia.training import label_families_real

    n = 6
    stamps = LabelledStamps(
        diff=np.zeros((n, 5, 5), np.float32), srch=np.zeros((n, 5, 5), np.float32),
        tmpl=np.zeros((n, 5, 5), np.float32), label=np.array([BOGUS, BOGUS, REAL, BOGUS, BOGUS, REAL]),
        id=np.arange(n), family=np.array(["variable_star", "noise", "sn_hosted", "variable_star", "dipole",
                                          "variable_star"]),
        mag=np.zeros(n, np.float32), snr=np.zeros(n, np.float32),
    )
    assert label_families_real(stamps, ["variable_star"]) == 2
    assert stamps.label.tolist() == [REAL, BOGUS, REAL, REAL, BOGUS, REAL]
    assert label_families_real(stamps, []) == 0
