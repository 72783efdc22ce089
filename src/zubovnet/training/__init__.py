"""Training: the loop, objectives, checkpoints."""
from .checkpoint import load_checkpoint, save_checkpoint
from .objectives import available_objectives, build_objective, register_objective
from . import baseline_objectives, adversarial  # noqa: F401,E402  (register their objectives)
from .trainer import TrainResult, accuracy, train

__all__ = ["train", "TrainResult", "accuracy", "build_objective", "register_objective",
           "available_objectives", "save_checkpoint", "load_checkpoint"]
