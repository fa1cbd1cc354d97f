"""Constants the tests check, each with its source."""

from fractions import Fraction

# Rock-paper-scissors and matching pennies: unique equilibrium uniform, value 0
# (von Neumann and Morgenstern, Theory of Games and Economic Behavior, 1944).
RPS_VALUE = 0.0

# Battle of the sexes with payoffs 3/2/0 (Luce and Raiffa, Games and Decisions, 1957):
# the mixed equilibrium x = (3/5, 2/5), y = (2/5, 3/5) pays each player 6/5.
BOS_MIXED_ROW = (Fraction(3, 5), Fraction(2, 5))
BOS_MIXED_COLUMN = (Fraction(2, 5), Fraction(3, 5))
BOS_MIXED_PAYOFF = Fraction(6, 5)
BOS_NUM_EQUILIBRIA = 3

# Chicken with Aumann's payoffs 6/2/7/0 (Aumann, J. Math. Econ. 1974; Wikipedia,
# "Correlated equilibrium"): the welfare-maximising correlated equilibrium puts 1/2 on
# (Chicken, Chicken) and 1/4 on each asymmetric profile, paying 5.25 = 21/4 each; the
# symmetric mixed Nash equilibrium plays Chicken with probability 2/3 and pays 14/3.
CHICKEN_BEST_CE = ((Fraction(1, 2), Fraction(1, 4)), (Fraction(1, 4), Fraction(0)))
CHICKEN_BEST_CE_PAYOFF = Fraction(21, 4)
CHICKEN_MIXED_NASH = (Fraction(2, 3), Fraction(1, 3))

# Stag hunt 4/0/3/3 (Skyrms 2004): the mixed equilibrium plays Stag with probability 3/4.
STAG_HUNT_MIXED = (Fraction(3, 4), Fraction(1, 4))

# Uniform play in battle of the sexes: each player's best deviation gains 1/4
# (row: best 3/2 vs 5/4; column: best 3/2 vs 5/4), so NashConv = 1/2.
BOS_UNIFORM_NASH_CONV = Fraction(1, 2)

# Shapley's game (Shapley 1964): fictitious play from a pure start does not converge;
# its empirical NashConv stays far from 0 (it cycles with growing period).
SHAPLEY_FP_MIN_NASH_CONV = 0.1

# NashConv of uniform play, from OpenSpiel's open_spiel/python/algorithms/exploitability_test.py.
KUHN_UNIFORM_NASH_CONV = 11 / 12
LEDUC_UNIFORM_NASH_CONV = 4.747222222222222

# Kuhn poker's game value for player 0 is -1/18 (Kuhn, "A simplified two-person poker",
# Contributions to the Theory of Games I, 1950).
KUHN_VALUE_FRACTION = Fraction(-1, 18)
KUHN_VALUE = float(KUHN_VALUE_FRACTION)

# Sizes of OpenSpiel's game trees (histories include chance and terminal nodes).
KUHN_SIZES = {"num_nodes": 58, "num_terminals": 30, "num_infosets": 12}
LEDUC_SIZES = {"num_nodes": 9457, "num_terminals": 5520, "num_infosets": 936}
