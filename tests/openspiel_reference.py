"""OpenSpiel's own NashConv of a normal-form profile, as an independent reference."""

from __future__ import annotations

import numpy as np
import pyspiel
from open_spiel.python import policy as policy_lib
from open_spiel.python.algorithms import exploitability


def openspiel_nash_conv(game, strategies) -> float:
    """``open_spiel.python.algorithms.exploitability.nash_conv`` of ``strategies`` in ``game``.

    The game is rebuilt in OpenSpiel (``create_tensor_game``) and made turn-based, so every
    player has one information state; its policy row is the player's strategy.
    """
    payoffs = game.payoffs.detach().cpu().numpy()
    utilities = [payoffs[i] for i in range(game.num_players)]
    spiel_game = pyspiel.create_tensor_game(utilities)
    turn_based = pyspiel.convert_to_turn_based(spiel_game)
    policy = policy_lib.TabularPolicy(turn_based)
    for player, strategy in enumerate(strategies):
        (state,) = policy.states_per_player[player]
        row = np.zeros(policy.action_probability_array.shape[1])
        row[: len(strategy)] = np.asarray(strategy.cpu(), dtype=np.float64)
        policy.action_probability_array[policy.state_lookup[state]] = row
    return float(exploitability.nash_conv(turn_based, policy))
