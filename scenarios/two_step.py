"""``two_step``: the two-step cooperative game of Rashid et al. (2018), batched.

"QMIX: Monotonic Value Function Factorisation for Deep Multi-Agent Reinforcement
Learning" (ICML 2018, section 6.1 and Figure 3). Two agents share every reward:

1. In state 1 agent 0's action picks the next state: action 0 leads to 2A, action 1 to
   2B. Agent 1's action has no effect, and the reward is 0.
2. In state 2A every joint action pays ``payoff_a`` (7). In state 2B the joint action
   ``(a_0, a_1)`` pays ``payoff_b[2 a_0 + a_1]``: (0, 1, 1, 8). The episode then ends.

The optimal return is 8 (go to 2B, then both play action 1). Learners that average a
partner's past exploratory actions into their own value see 2B as worth about
(0 + 1 + 1 + 8) / 4 = 2.5 < 7 and settle for 2A: independent learners and VDN do so in
the paper. A centralized critic values 2B by the partners' current joint play.

Both agents observe the one-hot state ``(1, 2A, 2B)``; the observation after the game
ends is all zeros. Actions are ``Discrete(2)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from games.markov import ConfigError, MarkovGame, require_float

START, STATE_A, STATE_B, ENDED = 0, 1, 2, 3


@dataclass(frozen=True)
class TwoStepConfig:
    payoff_a: float = 7.0
    """Reward of every joint action in state 2A."""
    payoff_b: tuple[float, float, float, float] = (0.0, 1.0, 1.0, 8.0)
    """Rewards of the joint actions (0,0), (0,1), (1,0), (1,1) in state 2B."""

    def __post_init__(self) -> None:
        require_float("payoff_a", self.payoff_a)
        if not isinstance(self.payoff_b, (tuple, list)) or len(self.payoff_b) != 4:
            raise ConfigError(f"payoff_b must be 4 numbers, for (0,0), (0,1), (1,0), (1,1); got {self.payoff_b!r}")
        for index, value in enumerate(self.payoff_b):
            require_float(f"payoff_b[{index}]", value)
        object.__setattr__(self, "payoff_b", tuple(float(value) for value in self.payoff_b))


class TwoStep(MarkovGame):
    """``B`` copies of the two-step game; see the module docstring."""

    config_class = TwoStepConfig
    metadata = {"name": "two_step", "render_modes": []}

    def __init__(self, config: TwoStepConfig, **game: object) -> None:
        agents = ["agent_0", "agent_1"]
        super().__init__(
            agents, dict.fromkeys(agents, 3), dict.fromkeys(agents, 2), continuous=False, max_steps=2, **game
        )
        self.config = config
        self.state_index = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        self._payoffs = torch.tensor(
            [config.payoff_a] * 4 + list(config.payoff_b), dtype=self.dtype, device=self.device
        ).view(2, 4)  # row 0: state 2A, row 1: state 2B; column 2 a_0 + a_1
        self._reward = torch.zeros(self.num_envs, dtype=self.dtype, device=self.device)

    def _reset_copies(self, mask: torch.Tensor) -> None:
        self.state_index.masked_fill_(mask, START)

    def _advance(self, actions: torch.Tensor) -> None:
        """``actions`` is ``(B, 2)``: the two agents' action indices."""
        at_start = self.state_index == START
        second = (self.state_index - STATE_A).clamp(0, 1)
        joint = 2 * actions[:, 0] + actions[:, 1]
        paid = self._payoffs[second, joint]
        self._reward = torch.where(at_start, torch.zeros_like(paid), paid)
        self.state_index = torch.where(at_start, STATE_A + actions[:, 0], torch.full_like(joint, ENDED))

    def _rewards(self) -> torch.Tensor:
        return self._reward.expand(2, -1)

    def _terminated(self) -> torch.Tensor:
        return self.state_index == ENDED

    def _observations(self) -> dict[str, torch.Tensor]:
        one_hot = torch.nn.functional.one_hot(self.state_index, 4)[:, :3].to(self.dtype)
        return {agent: one_hot for agent in self.possible_agents}
