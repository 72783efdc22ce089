"""Figures of the paper from trained models, training logs and evaluation records (PNG).

=================================  =========================================================
function                           figure
=================================  =========================================================
:func:`plot_tsne`                  Fig. 3 — t-SNE of ``h(T)``: clean, FGSM, Gaussian noise
:func:`plot_training_dynamics`     Fig. 5 — loss terms, ``W_y`` and mean ``W_{k≠y}`` per epoch
:func:`plot_accuracy_vs_eps`       accuracy under each attack vs ε (from records)
:func:`plot_accuracy_vs_severity`  accuracy under each corruption vs severity (from records)
:func:`plot_basins`                Fig. 1(b) — PRoAs ``W_i = ρ``, trajectories, true basins
:func:`plot_loss_weight_sweep`     Fig. 4 — metrics per loss-weight configuration
:func:`plot_alignment`             ``AR`` vs horizon, per shell of ``W_y``, per class (records)
=================================  =========================================================

Command line: ``zubovnet figures {tsne,dynamics,curves,basins,loss-weights,alignment} INPUT...
--out DIR`` (:func:`add_figures_arguments` / :func:`run_figures`).  Figures are drawn with
matplotlib's Agg canvas without ``pyplot`` (no display needed).

Besides the figures, :func:`mean_lyapunov_derivative` (:mod:`.lyapunov_rate`): Table V's mean
``dW_y/dt`` along test trajectories.
"""
from .alignment_figure import alignment_profile, plot_alignment
from .basins import BasinMap, basin_map, flow, plot_basins
from .cli import add_figures_arguments, run_figures
from .curves import (accuracy_vs_eps, accuracy_vs_severity, merge_records, plot_accuracy_vs_eps,
                     plot_accuracy_vs_severity)
from .dynamics import DYNAMICS_PANELS, plot_training_dynamics, read_metrics
from .loss_weights import category_scores, normalise_to_max, plot_loss_weight_sweep
from .lyapunov_rate import mean_lyapunov_derivative
from .tsne import (CONDITIONS, feature_summary, final_features, perturb, plot_tsne,
                   sample_per_class, tsne_embedding)

__all__ = ["plot_tsne", "sample_per_class", "final_features", "perturb", "tsne_embedding",
           "feature_summary", "CONDITIONS", "plot_training_dynamics", "read_metrics",
           "DYNAMICS_PANELS", "plot_accuracy_vs_eps", "plot_accuracy_vs_severity",
           "accuracy_vs_eps", "accuracy_vs_severity", "merge_records", "plot_basins",
           "basin_map", "flow", "BasinMap", "plot_loss_weight_sweep", "category_scores",
           "normalise_to_max", "mean_lyapunov_derivative", "plot_alignment", "alignment_profile", "add_figures_arguments", "run_figures"]
