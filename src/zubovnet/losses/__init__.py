"""Losses of Zubov-Net (paper §III-B and eq. (12)), one small function each, formula in the docstring."""
from .classification import auxiliary_loss, classification_loss
from .zubov import (consistency_loss, directional_derivative, inside_loss, lipschitz_penalty,
                    separation_loss, trajectory_target_loss, zubov_phi, zubov_residual,
                    zubov_target)

__all__ = ["classification_loss", "auxiliary_loss", "directional_derivative", "zubov_phi",
           "zubov_residual", "consistency_loss", "separation_loss", "zubov_target",
           "trajectory_target_loss", "inside_loss", "lipschitz_penalty"]
