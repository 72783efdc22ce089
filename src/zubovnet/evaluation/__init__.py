"""Robustness evaluation: the paper protocol (Tables I–III) and the rigorous protocol.

    from zubovnet.evaluation import evaluate, write_record, render_table
    record = evaluate(model, test_set, "all", n=1000, surrogate=neural_ode)
    write_record(record, "eval_all.json")
    print(render_table([record], "table2"))

Any classifier works: the evaluator needs only ``model(x) -> logits`` for images ``x`` of
shape ``(B, C, H, W)`` in [0, 1].  See ``docs/evaluation.md``.
"""
from .attacks import (ATTACKS, PAPER_EPS, PAPER_STEPS, WHITE_BOX_ATTACKS, Attack,
                      EvaluationModeError, MarginPGD, PerturbationError, assert_eval_mode,
                      check_perturbation, make_attack)
from .records import load_records, verdict, write_record
from .rigorous import RigorousSettings, run_rigorous
from .checks import CHECKS
from .suites import SUITES, EvalSettings, evaluate
from .tables import LAYOUTS, format_summary, render_table

__all__ = ["evaluate", "EvalSettings", "RigorousSettings", "SUITES", "run_rigorous",
           "make_attack", "Attack", "MarginPGD", "ATTACKS", "WHITE_BOX_ATTACKS", "PAPER_EPS",
           "PAPER_STEPS", "check_perturbation", "assert_eval_mode", "PerturbationError",
           "EvaluationModeError", "write_record", "load_records", "verdict", "render_table",
           "format_summary", "LAYOUTS", "CHECKS"]
