"""Every table and figure of the paper as a named experiment (``zubovnet reproduce``).

    from zubovnet.experiments import EXPERIMENTS, reproduce
    reproduce("table1-cifar10", out="runs", device="cuda")      # train, evaluate, assemble
    reproduce("digits-study", dry_run=True)                      # print the plan only

Modules, one job each (see ``docs/reproduce.md``):

* :mod:`.catalogue` — the experiment catalogue (``Run``, ``Figure``, ``Experiment``);
* :mod:`.planner` — planning and status: what runs, what is done, what is skipped;
* :mod:`.runner` — executing a plan: train, evaluate, tables, figures;
* :mod:`.cli` — ``add_reproduce_arguments(parser)`` / ``run_reproduce(args)``;
* :mod:`.__main__` — ``python -m zubovnet.experiments EXPERIMENT ...`` (the CLI stand-alone).
"""
from .catalogue import EXPERIMENTS, Experiment, Figure, Run, get_experiment, register_experiment
from .cli import add_reproduce_arguments, run_reproduce
from .planner import (default_configs_root, format_plan, missing_methods, plan_experiment,
                      record_status, run_status)
from .runner import assemble_table, reproduce

__all__ = ["EXPERIMENTS", "reproduce", "Experiment", "Figure", "Run", "register_experiment",
           "get_experiment", "plan_experiment", "format_plan", "assemble_table", "run_status",
           "record_status", "missing_methods", "default_configs_root", "add_reproduce_arguments",
           "run_reproduce"]
