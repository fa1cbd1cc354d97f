"""Equilibrium computation on the games of ``games``: regret dynamics, LPs, interior point,
Lemke-Howson, Nash-SGD, pygambit, exploitability. ``solvers.registry.solve`` runs any of them by name."""
