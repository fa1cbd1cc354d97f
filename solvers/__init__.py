"""Equilibrium computation on the games of ``games``: regret dynamics, LPs, interior point,
Lemke-Howson, Nash-SGD, pygambit, exploitability. ``solvers.registry.solve`` runs any of them by name."""

DEFAULT_ITERATIONS = 1000
"""The iteration budget of iterative solvers when none is given (here, so that the command line's
help reads it without importing torch)."""
