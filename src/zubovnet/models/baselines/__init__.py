"""Baselines of the paper (§IV-A; ``docs/baselines.md``), each registered in
:func:`zubovnet.models.build_model`.

=============  ==========================================================  =====================
registry name  model                                                        default objective
=============  ==========================================================  =====================
feedforward    extractor + linear head (``extractor: cnn``: the plain CNN)  ``ce``
resnet18       ResNet-18 extractor + linear head (forces ``resnet18``)      ``ce``
neural_ode     Neural ODE, tanh MLP field, linear head                      ``ce``
projnode       Proj-NODE (Kolter & Manek 2019)                              ``ce``
sodef          SODEF (Kang et al. 2021)                                     ``sodef``
lyanet         LyaNet (Rodriguez et al. 2022)                               ``lyanet``
fxts           FxTS-Net (Luo et al. 2025)                                   ``fxts``
lipschitz_cnn  1-Lipschitz CNN + AOL head (Lipschitz-margin training)      ``lipschitz_margin``
=============  ==========================================================  =====================
"""
from ...config import Config
from ..extractors import build_extractor
from ..registry import register_model
from . import fxts, lipschitz_cnn, lyanet, neural_ode, projnode, sodef  # noqa: F401
from .neural_ode import FeedForward


@register_model("resnet18")
def build_resnet18(cfg: Config) -> FeedForward:
    """ResNet-18 (CIFAR stem) + linear head, no ODE: :class:`FeedForward` with the extractor
    forced to ``resnet18``.  ``cfg.model.extractor`` is set to ``resnet18`` in place, so the
    configuration saved with a checkpoint says what was built."""
    cfg.model.extractor = "resnet18"
    m = cfg.model
    return FeedForward(build_extractor(m), m.num_classes, m.state_dim)
