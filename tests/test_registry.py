"""The registries (datasets, models, objectives) are complete once their package is imported,
whichever module a program imports first, and the pre-registry helpers still work."""
import subprocess
import sys
import warnings

import pytest

DATASETS = {"cifar10", "cifar100", "digits", "fashion_mnist", "mnist", "svhn", "synthetic2d",
            "synthetic2d_spirals", "tiny_imagenet"}
MODELS = {"feedforward", "fxts", "lipschitz_cnn", "lyanet", "neural_ode", "projnode", "resnet18", "sodef",
          "zubovnet"}
OBJECTIVES = {"adversarial", "ce", "fxts", "lipschitz_margin", "lyanet", "sodef", "zubov"}

_CHECK = """
import zubovnet.data.vision                    # a dataset module before its registry's package
import zubovnet.training.baseline_objectives   # an objective module before zubovnet.training
import zubovnet.models.baselines.sodef
from zubovnet.data.registry import _BUILDERS, dataset_names
from zubovnet.models.registry import _MODELS
from zubovnet.training.objectives import _OBJECTIVES
print(sorted(_BUILDERS) == dataset_names(), ",".join(dataset_names()), ",".join(sorted(_MODELS)),
      ",".join(sorted(_OBJECTIVES)))
"""


def test_registries_are_complete_when_registering_modules_are_imported_first():
    # a fresh interpreter: a registering module imported before its registry must neither fail
    # (import circle) nor leave a registry half filled
    out = subprocess.run([sys.executable, "-c", _CHECK], check=True, capture_output=True,
                         text=True).stdout.split()
    assert out[0] == "True"
    assert set(out[1].split(",")) == DATASETS
    assert set(out[2].split(",")) == MODELS
    assert set(out[3].split(",")) == OBJECTIVES


def test_public_names_of_the_registries():
    from zubovnet.data import dataset_names
    from zubovnet.models import available_models
    from zubovnet.training import available_objectives
    assert dataset_names() == sorted(DATASETS)
    assert available_models() == sorted(MODELS)
    assert available_objectives() == sorted(OBJECTIVES)


def test_model_output_lives_in_its_own_module():
    import zubovnet.models as models
    from zubovnet.models.baselines import lyanet, neural_ode, sodef
    from zubovnet.models.output import ModelOutput
    assert models.ModelOutput is ModelOutput
    for mod in (lyanet, neural_ode, sodef, models.zubovnet):
        assert mod.ModelOutput is ModelOutput
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import torch
        out = ModelOutput(trajectory=torch.zeros(3, 2, 4), logits=torch.zeros(2, 5))
    assert out.h0.shape == out.hT.shape == (2, 4) and out.energy is None
