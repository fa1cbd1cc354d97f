"""MADDPG and independent DDPG on batched Markov games.

Lowe, Wu, Tamar, Harb, Abbeel and Mordatch, "Multi-Agent Actor-Critic for Mixed
Cooperative-Competitive Environments" (NeurIPS 2017), with the defaults of its reference
code (github.com/openai/maddpg). Each agent ``i`` has a decentralized actor ``mu_i(o_i)``
and a critic ``Q_i``. One update, for every agent at once, on a batch from the replay
buffer:

1. Target actions ``a'_j = mu'_j(o'_j)`` of every agent from the target actors (a
   Gumbel-softmax sample for discrete actions, as in openai/maddpg).
2. Critic regression: ``y_i = r_i + gamma (1 - terminated_i) Q'_i(x', a'_1..a'_N)``,
   minimize ``(Q_i(x, a_1..a_N) - y_i)^2``.
3. Actor ascent: ``a_i = mu_i(o_i)`` (a straight-through Gumbel-softmax sample for
   discrete actions), the other agents' actions from the buffer; minimize
   ``-Q_i(x, a_1..a_i..a_N) + 1e-3 mean(logits^2)``.
4. Polyak averaging of every target network: ``theta' <- (1 - tau) theta' + tau theta``.

With ``centralized_critic=True`` (MADDPG) ``x`` is every agent's observation and ``Q_i``
sees every agent's action. With ``centralized_critic=False`` (independent DDPG) ``Q_i``
sees only ``o_i`` and ``a_i``: the same trainer, one flag.

Critic inputs put the agent's own observation and action first, then the other agents'
in game order: ``[o_i, a_i, o_others, a_others]``. One critic can then serve every agent
of a role when ``share_parameters=True``.

Rows of a batch that record who acted (``Batch.controllers``, NeuPL's pairings in
``marl.neupl_markov``) train only the agents the learner played: each agent's losses are
means over the rows where it learned, and in rows where an agent played uniformly at random
its next action in step 1 is a uniform random one, as its policy would have acted.

Policy ensembles (section 4.3 of the paper): with ``ensemble_size=K`` every agent has K
actors and critics; each copy of the game draws one member per agent per episode, and
each member learns from the transitions it generated (the paper's per-member buffers,
kept here as one buffer that records the member of every agent in every row).

NOTE on departures from openai/maddpg, all for batched games:
    - many copies fill the buffer per step, so updates are scheduled by transitions
      (``transitions_per_update``, openai's 100) rather than by single-env steps;
    - environments receive the exact sampled action and critics see one-hot actions;
      openai/maddpg passes the relaxed Gumbel-softmax vector to both (see ``marl.gumbel``);
    - continuous actions are ``sigmoid``-squashed to the action box with Gaussian
      exploration noise (openai/maddpg's MPE tasks were discrete only).

Shapes (``G`` agents in a group of equal spaces, ``K`` ensemble members, ``M`` batch):
actor input ``(G, K, M, obs)``, actor output ``(G, K, M, actions)``, critic input
``(G, K, M, critic_in)``, critic output ``(G, K, M, 1)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from games.markov import agent_role
from marl.errors import TrainingError
from marl.gumbel import gumbel_softmax
from marl.networks import StackedMLP
from marl.replay import Batch


@dataclass(frozen=True)
class MADDPGConfig:
    """Settings of a MADDPG run. Defaults follow the paper's reference code (openai/maddpg)."""

    env_steps: int = 1_500_000
    """Transitions to collect in all, summed over copies (openai: 60,000 episodes of 25 steps)."""
    num_envs: int = 64
    """B, copies of the game stepped together; each step adds B transitions."""
    seed: int = 0
    """Seeds the game's streams, the initial weights, exploration and replay sampling."""
    centralized_critic: bool = True
    """MADDPG (True), or independent DDPG whose critics see only their own agent (False)."""
    share_parameters: bool = False
    """One actor and one critic per role (agents named alike, e.g. adversary_0, adversary_1)."""
    ensemble_size: int = 1
    """K, sub-policies per agent (the paper's policy ensembles); 1 turns them off."""
    actor_lr: float = 1e-2
    """Adam step size of the actors."""
    critic_lr: float = 1e-2
    """Adam step size of the critics."""
    gamma: float = 0.95
    """Discount factor."""
    tau: float = 0.01
    """Polyak rate of the target networks."""
    batch_size: int = 1024
    """Transitions per update."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer widths of actors and critics."""
    grad_clip: float = 0.5
    """Gradient norm limit per network and variable."""
    buffer_size: int = 1_000_000
    """Replay capacity in transitions."""
    learning_starts: int = 25_600
    """Transitions collected before the first update (openai: batch size x episode length)."""
    transitions_per_update: int = 100
    """One update of every agent per this many transitions collected (openai: 100)."""
    actor_regularization: float = 1e-3
    """Weight of the mean squared actor output (logits) in the actor loss (openai: 1e-3)."""
    gumbel_temperature: float = 1.0
    """Temperature of the Gumbel-softmax relaxation."""
    exploration_noise: float = 0.1
    """Continuous actions: Gaussian noise std, as a fraction of the action range."""
    checkpoint_every: int = 1_000_000
    """Write a checkpoint after about this many transitions (at the next episode boundary)."""
    checkpoint_minutes: float = 5.0
    """Also write one after this many minutes of training (at the next episode boundary), so a
    ``kill -9`` loses at most a few minutes; 0 turns the clock off."""
    log_every: int = 10_000
    """Log training statistics after about this many transitions."""
    eval_episodes: int = 100
    """Episodes of the final evaluation."""
    eval_every: int = 50_000
    """Evaluate the greedy policy after about this many transitions (at the next log), the learning
    curve's evaluation points, when the caller gives an evaluation (``gamelab train`` does); 0 never."""

    def __post_init__(self) -> None:
        positive = ("env_steps", "num_envs", "ensemble_size", "batch_size", "buffer_size",
                    "transitions_per_update", "checkpoint_every", "log_every", "eval_episodes")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TrainingError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TrainingError(f"seed must be an integer, got {self.seed!r}")
        for name in ("learning_starts", "eval_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise TrainingError(f"{name} must be an integer >= 0, got {value!r}")
        for name in ("centralized_critic", "share_parameters"):
            if not isinstance(getattr(self, name), bool):
                raise TrainingError(f"{name} must be true or false, got {getattr(self, name)!r}")
        bounded = {"gamma": (0.0, 1.0), "tau": (0.0, 1.0)}
        for name in ("actor_lr", "critic_lr", "gamma", "tau", "grad_clip", "actor_regularization",
                     "gumbel_temperature", "exploration_noise", "checkpoint_minutes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
                raise TrainingError(f"{name} must be a number, got {value!r}")
            low, high = bounded.get(name, (0.0, float("inf")))
            if not low <= value <= high or value == float("inf"):
                raise TrainingError(f"{name} must be in [{low}, {high}], got {value}")
        if self.actor_lr <= 0 or self.critic_lr <= 0 or self.gumbel_temperature <= 0 or self.grad_clip <= 0:
            raise TrainingError("actor_lr, critic_lr, gumbel_temperature and grad_clip must be > 0")
        hidden = tuple(self.hidden_sizes) if isinstance(self.hidden_sizes, (list, tuple)) else None
        if not hidden or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in hidden):
            raise TrainingError(f"hidden_sizes must be a non-empty list of positive integers, got {self.hidden_sizes!r}")
        object.__setattr__(self, "hidden_sizes", hidden)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> MADDPGConfig:
        """A config from ``{field: value}``, naming any unknown field."""
        fields = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise TrainingError(f"MADDPG has no setting {unknown[0]!r}; its settings are {', '.join(sorted(fields))}")
        return cls(**values)


@dataclass(frozen=True)
class GameSpec:
    """What a trainer needs to know of a game's agents and spaces (kept in checkpoints)."""

    agents: tuple[str, ...]
    observation_sizes: tuple[int, ...]
    action_sizes: tuple[int, ...]
    continuous: bool
    action_low: float
    action_high: float

    @classmethod
    def of(cls, game: Any) -> GameSpec:
        """Reads the spaces of a ``MarkovGame``; raises ``TrainingError`` for spaces MADDPG cannot use."""
        from gymnasium import spaces

        observation_sizes, action_sizes, kinds, bounds = [], [], set(), set()
        for agent in game.possible_agents:
            seen = game.observation_space(agent)
            if not isinstance(seen, spaces.Box) or len(seen.shape) != 1:
                raise TrainingError(f"observation space of agent {agent!r} is {seen}; MADDPG needs a flat Box")
            observation_sizes.append(int(seen.shape[0]))
            acted = game.action_space(agent)
            if isinstance(acted, spaces.Discrete):
                if int(acted.start) != 0:
                    raise TrainingError(f"action space of agent {agent!r} is {acted}; Discrete spaces must start at 0")
                kinds.add("discrete")
                action_sizes.append(int(acted.n))
            elif isinstance(acted, spaces.Box) and len(acted.shape) == 1:
                low, high = float(acted.low.min()), float(acted.high.max())
                if not (torch.isfinite(torch.tensor([low, high])).all() and high > low):
                    raise TrainingError(f"action space of agent {agent!r} is {acted}; MADDPG needs finite bounds")
                kinds.add("continuous")
                bounds.add((low, high))
                action_sizes.append(int(acted.shape[0]))
            else:
                raise TrainingError(
                    f"action space of agent {agent!r} is {acted}; MADDPG supports Discrete and 1-D Box actions"
                )
        if len(kinds) > 1 or len(bounds) > 1:
            raise TrainingError("MADDPG needs every agent to have the same kind of action space (and the same bounds)")
        low, high = bounds.pop() if bounds else (0.0, 1.0)
        return cls(tuple(game.possible_agents), tuple(observation_sizes), tuple(action_sizes),
                   kinds == {"continuous"}, low, high)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def num_agents(self) -> int:
        return len(self.agents)

    def role(self, index: int) -> str:
        """An agent's role: its name without a trailing number (``adversary_2`` -> ``adversary``)."""
        return agent_role(self.agents[index])


class AgentGroup:
    """Agents with the same role and spaces, whose networks are stacked together.

    Attributes:
        indices: ``(G,)`` positions of the group's agents in the game's agent order.
        observation_columns: ``(G, obs)`` columns of each agent's observation in the joint vector.
        action_columns: ``(G, actions)`` columns of each agent's action in the joint action vector.
        critic_columns: ``(G, critic_in)`` columns of ``[joint obs, joint actions]`` that make
            each agent's critic input ``[o_i, a_i, o_others, a_others]`` (or ``[o_i, a_i]``).
    """

    def __init__(self, spec: GameSpec, indices: list[int], centralized: bool, device: torch.device) -> None:
        obs_start = [sum(spec.observation_sizes[:i]) for i in range(spec.num_agents)]
        act_start = [sum(spec.action_sizes[:i]) for i in range(spec.num_agents)]
        joint_obs = sum(spec.observation_sizes)

        def obs_cols(i: int) -> list[int]:
            return list(range(obs_start[i], obs_start[i] + spec.observation_sizes[i]))

        def act_cols(i: int, offset: int = 0) -> list[int]:
            return list(range(offset + act_start[i], offset + act_start[i] + spec.action_sizes[i]))

        critic = []
        for i in indices:
            columns = obs_cols(i) + act_cols(i, joint_obs)
            if centralized:
                others = [j for j in range(spec.num_agents) if j != i]
                columns += [c for j in others for c in obs_cols(j)] + [c for j in others for c in act_cols(j, joint_obs)]
            critic.append(columns)
        self.indices = torch.tensor(indices, device=device)
        self.observation_columns = torch.tensor([obs_cols(i) for i in indices], device=device)
        self.action_columns = torch.tensor([act_cols(i) for i in indices], device=device)
        self.critic_columns = torch.tensor(critic, device=device)
        self.size = len(indices)
        self.observation_size = spec.observation_sizes[indices[0]]
        self.action_size = spec.action_sizes[indices[0]]
        self.critic_size = len(critic[0])


def _select(outputs: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
    """``(G, K, M, w)`` outputs and ``(G, M)`` member indices -> ``(G, M, w)``."""
    if outputs.shape[1] == 1:
        return outputs[:, 0]
    index = members[:, None, :, None].expand(-1, 1, -1, outputs.shape[-1])
    return outputs.gather(1, index).squeeze(1)


class MADDPG:
    """The learner: actors, critics, their targets and optimizers (see the module docstring).

    Args:
        spec: the game's agents and spaces.
        config: the settings.
        device: where the networks live.
    """

    def __init__(self, spec: GameSpec, config: MADDPGConfig, device: torch.device | str = "cpu") -> None:
        self.spec = spec
        self.config = config
        self.device = torch.device(device)
        self.members = config.ensemble_size
        initial = torch.Generator().manual_seed(config.seed)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed + 1)
        keys: dict[tuple, list[int]] = {}
        for index in range(spec.num_agents):
            key = (spec.role(index), spec.observation_sizes[index], spec.action_sizes[index])
            keys.setdefault(key, []).append(index)
        self.groups = [AgentGroup(spec, indices, config.centralized_critic, self.device) for indices in keys.values()]
        self.actors = torch.nn.ModuleList()
        self.critics = torch.nn.ModuleList()
        hidden = list(config.hidden_sizes)
        for group in self.groups:
            sets = 1 if config.share_parameters else group.size
            build = {"generator": initial, "device": self.device}
            self.actors.append(StackedMLP(sets, self.members, [group.observation_size, *hidden, group.action_size], **build))
            self.critics.append(StackedMLP(sets, self.members, [group.critic_size, *hidden, 1], **build))
        self.target_actors = _copy(self.actors)
        self.target_critics = _copy(self.critics)
        self.actor_optimizer = torch.optim.Adam(self.actors.parameters(), lr=config.actor_lr)
        self.critic_optimizer = torch.optim.Adam(self.critics.parameters(), lr=config.critic_lr)
        self._action_sizes = torch.tensor(spec.action_sizes, device=self.device)
        self.joint_observation_size = sum(spec.observation_sizes)
        self.joint_action_size = sum(spec.action_sizes)
        self.updates = 0

    # ----------------------------------------------------------------------------------
    # Acting

    def _actor_outputs(self, actors: torch.nn.ModuleList, observations: torch.Tensor, members: torch.Tensor) -> list:
        """Each group's ``(G, M, actions)`` raw outputs for ``(M, joint_obs)`` observations."""
        outputs = []
        for group, actor in zip(self.groups, actors):
            inputs = observations[:, group.observation_columns].transpose(0, 1)  # (G, M, obs)
            raw = actor(inputs.unsqueeze(1).expand(-1, self.members, -1, -1))
            outputs.append(_select(raw, members[:, group.indices].T))
        return outputs

    def _to_actions(self, raw: torch.Tensor, explore: bool, straight_through: bool = False) -> torch.Tensor:
        """Raw actor outputs ``(G, M, n)`` -> action vectors: one-hot samples or box values."""
        if not self.spec.continuous:
            if explore or straight_through:
                return gumbel_softmax(raw, self.config.gumbel_temperature, hard=True, generator=self.generator)
            return torch.zeros_like(raw).scatter_(-1, raw.argmax(-1, keepdim=True), 1.0)
        low, high = self.spec.action_low, self.spec.action_high
        actions = low + (high - low) * torch.sigmoid(raw)
        if explore:
            noise = torch.randn(actions.shape, generator=self.generator, device=actions.device, dtype=actions.dtype)
            actions = (actions + self.config.exploration_noise * (high - low) * noise).clamp(low, high)
        return actions

    def uniform_actions(self, rows: int) -> torch.Tensor:
        """``(rows, joint_actions)`` uniform random action vectors: one-hot draws or points of the box."""
        if not self.spec.continuous:
            joint = torch.zeros(rows, self.joint_action_size, device=self.device)
            start = 0
            for size in self.spec.action_sizes:
                chosen = torch.randint(size, (rows, 1), generator=self.generator, device=self.device)
                joint[:, start:start + size].scatter_(1, chosen, 1.0)
                start += size
            return joint
        low, high = self.spec.action_low, self.spec.action_high
        draw = torch.rand(rows, self.joint_action_size, generator=self.generator, device=self.device)
        return low + (high - low) * draw

    def agent_columns(self, flags: torch.Tensor) -> torch.Tensor:
        """``(M, N)`` per-agent flags -> ``(M, joint_actions)``, each agent's flag over its action columns."""
        return flags.repeat_interleave(self._action_sizes, dim=1)

    def _joint(self, per_group: list[torch.Tensor]) -> torch.Tensor:
        """Group action vectors ``(G, M, n)`` -> the ``(M, joint_actions)`` joint vector."""
        first = per_group[0]
        joint = torch.empty(first.shape[1], self.joint_action_size, dtype=first.dtype, device=first.device)
        for group, actions in zip(self.groups, per_group):
            joint[:, group.action_columns.flatten()] = actions.transpose(0, 1).reshape(first.shape[1], -1)
        return joint

    @torch.no_grad()
    def act(self, observations: torch.Tensor, members: torch.Tensor, explore: bool) -> torch.Tensor:
        """Joint action vectors ``(M, joint_actions)`` for joint observations ``(M, joint_obs)``.

        ``members`` is ``(M, N)``: the ensemble member each agent uses in each row.
        Exploring samples discrete actions (Gumbel-max) or adds noise to continuous ones;
        otherwise discrete actions are the most likely and continuous ones the actor's output.
        """
        raw = self._actor_outputs(self.actors, observations, members)
        return self._joint([self._to_actions(outputs, explore) for outputs in raw])

    @torch.no_grad()
    def act_both(self, observations: torch.Tensor, members: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(greedy, exploring)`` joint actions from one pass of the actors: ``act`` without and with
        exploration (the same draws as ``act(..., explore=True)``)."""
        raw = self._actor_outputs(self.actors, observations, members)
        greedy = self._joint([self._to_actions(outputs, explore=False) for outputs in raw])
        return greedy, self._joint([self._to_actions(outputs, explore=True) for outputs in raw])

    def game_actions(self, joint_actions: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        """``{agent: Tensor[M]}`` indices (discrete) or ``{agent: Tensor[M, n]}`` values for ``game.step``."""
        actions, start = {}, 0
        for agent, size in zip(self.spec.agents, self.spec.action_sizes):
            block = joint_actions[:, start:start + size]
            actions[agent] = (block if self.spec.continuous else block.argmax(1)).to(device)
            start += size
        return actions

    # ----------------------------------------------------------------------------------
    # Learning

    def _critic_inputs(self, group: AgentGroup, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``(G, M, critic_in)`` inputs of a group's critics."""
        return torch.cat([observations, actions], dim=1)[:, group.critic_columns].transpose(0, 1)

    def _q(self, critic: StackedMLP, inputs: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
        """``(G, M)`` values of ``(G, M, critic_in)`` inputs under each row's member."""
        return _select(critic(inputs.unsqueeze(1).expand(-1, self.members, -1, -1)), members)[..., 0]

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One MADDPG update of every agent on ``batch``; returns the losses (scalar tensors)."""
        config = self.config
        with torch.no_grad():
            raw_next = self._actor_outputs(self.target_actors, batch.next_observations, batch.members)
            next_actions = self._joint([self._to_actions(outputs, explore=False, straight_through=True)
                                        for outputs in raw_next])
            learning = None
            if batch.controllers is not None:
                learning = (batch.controllers == 1).to(next_actions.dtype)  # (M, N)
                uniform = self.agent_columns(batch.controllers == -1)
                if bool(uniform.any()):
                    next_actions = torch.where(uniform, self.uniform_actions(next_actions.shape[0]), next_actions)
            targets = []
            for group, critic in zip(self.groups, self.target_critics):
                members = batch.members[:, group.indices].T
                next_q = self._q(critic, self._critic_inputs(group, batch.next_observations, next_actions), members)
                rewards = batch.rewards[:, group.indices].T
                alive = 1.0 - batch.terminated[:, group.indices].T
                targets.append(rewards + config.gamma * alive * next_q)

        critic_loss = torch.zeros((), device=self.device)
        for group, critic, target in zip(self.groups, self.critics, targets):
            members = batch.members[:, group.indices].T
            q = self._q(critic, self._critic_inputs(group, batch.observations, batch.actions), members)
            critic_loss = critic_loss + _mean((q - target).square(), learning, group)
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        for critic in self.critics:
            critic.clip_gradients_(config.grad_clip)
        self.critic_optimizer.step()

        actor_loss = torch.zeros((), device=self.device)
        raw_now = self._actor_outputs(self.actors, batch.observations, batch.members)
        for group, critic, raw in zip(self.groups, self.critics, raw_now):
            members = batch.members[:, group.indices].T
            chosen = self._to_actions(raw, explore=False, straight_through=True)
            inputs = self._critic_inputs(group, batch.observations, batch.actions)
            start = group.observation_size
            inputs = torch.cat([inputs[..., :start], chosen, inputs[..., start + group.action_size:]], dim=-1)
            q = self._q(critic, inputs, members)
            penalty = raw.square().mean(-1)
            actor_loss = actor_loss + _mean(-q + config.actor_regularization * penalty, learning, group)
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward(inputs=list(self.actors.parameters()))  # no gradients for the critics' weights
        for actor in self.actors:
            actor.clip_gradients_(config.grad_clip)
        self.actor_optimizer.step()

        with torch.no_grad():
            for online, target in ((self.actors, self.target_actors), (self.critics, self.target_critics)):
                torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), config.tau)
        self.updates += 1
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach()}

    # ----------------------------------------------------------------------------------
    # Saving

    def state_dict(self) -> dict[str, Any]:
        return {
            "actors": self.actors.state_dict(),
            "critics": self.critics.state_dict(),
            "target_actors": self.target_actors.state_dict(),
            "target_critics": self.target_critics.state_dict(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.actors.load_state_dict(state["actors"])
        self.critics.load_state_dict(state["critics"])
        self.target_actors.load_state_dict(state["target_actors"])
        self.target_critics.load_state_dict(state["target_critics"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.generator.set_state(state["generator"])
        self.updates = int(state["updates"])


def _mean(values: torch.Tensor, learning: torch.Tensor | None, group: AgentGroup) -> torch.Tensor:
    """``(G, M)`` per-row losses -> the sum over the group's agents of each agent's mean loss, over
    the rows where it learned when ``learning`` ``(M, N)`` says (an agent that learned in no row adds 0)."""
    if learning is None:
        return values.mean(1).sum()
    weights = learning[:, group.indices].T  # (G, M)
    return ((values * weights).sum(1) / weights.sum(1).clamp(min=1.0)).sum()


def _copy(modules: torch.nn.ModuleList) -> torch.nn.ModuleList:
    import copy

    target = copy.deepcopy(modules)
    for parameter in target.parameters():
        parameter.requires_grad_(False)
    return target


class TrainedPolicy:
    """Trained actors as a gamelab policy: ``policy(game, observations) -> actions``.

    Discrete actions are the most likely ones, continuous ones the actor's output (no
    exploration). With an ensemble, copy ``i`` of the game uses member ``i mod K``.
    """

    def __init__(self, learner: MADDPG) -> None:
        self.learner = learner

    def __call__(self, game: Any, observations: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        learner = self.learner
        joint = torch.cat([observations[agent] for agent in learner.spec.agents], dim=1).to(
            learner.device, torch.float32
        )
        rows = torch.arange(joint.shape[0], device=learner.device) % learner.members
        members = rows[:, None].expand(-1, learner.spec.num_agents)
        return learner.game_actions(learner.act(joint, members, explore=False), game.device)


__all__ = ["MADDPG", "GameSpec", "MADDPGConfig", "TrainedPolicy", "TrainingError"]
