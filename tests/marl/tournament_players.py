"""Players for the tournament tests: ones that crash, hang, cheat, or kill their process."""

from __future__ import annotations

import os
import time

import torch

from games.policy import policy_factory
from scenarios.tag import pursuit_policy


def crashing_policy(game, observations):
    raise RuntimeError("this player always crashes")


def hanging_policy(game, observations):
    time.sleep(600)


def illegal_policy(game, observations):
    """Action 7 in a Discrete(5) space for every agent, in every copy."""
    return {agent: torch.full((game.num_envs,), 7, dtype=torch.int64) for agent in game.possible_agents}


def crashing_matrix_player(game, seat):
    raise ValueError("no strategy today")


def hanging_tree_player(game):
    time.sleep(600)


@policy_factory
def slow_pursuit(delay: float = 0.02):
    """Pursuit play that takes ``delay`` seconds per move (to interrupt a tournament mid-way)."""
    policy = pursuit_policy()

    def play(game, observations):
        time.sleep(delay)
        return policy(game, observations)

    return play


@policy_factory
def dies_once(marker: str):
    """Pursuit play whose first call in the whole test kills its process (a lost Ray worker)."""
    policy = pursuit_policy()

    def play(game, observations):
        if not os.path.exists(marker):
            with open(marker, "w") as handle:
                handle.write("died\n")
            os._exit(1)
        return policy(game, observations)

    return play
