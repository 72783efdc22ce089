"""Models: plain ``nn.Module``s and the registry :func:`build_model`."""
from .lyapunov import LyapunovHead, logits_from_energy, make_equilibria, smooth_relu
from .ode import Dynamics, ODEBlock, StepSizeUnderflowError, ode_blocks, solver_override
from .output import ModelOutput
from .registry import available_models, build_model, register_model
from .zubovnet import ZubovNet
from . import builders, baselines  # noqa: F401,E402  (register the models; builders first)

__all__ = ["build_model", "register_model", "available_models", "ZubovNet", "ModelOutput",
           "LyapunovHead", "ODEBlock", "Dynamics", "StepSizeUnderflowError", "solver_override",
           "ode_blocks", "make_equilibria", "smooth_relu", "logits_from_energy"]
