"""MAPPO and IPPO on batched Markov games, with MLP or GNN models.

Yu, Velu, Vinitsky, Gao, Wang, Bayen and Wu, "The Surprising Effectiveness of PPO in
Cooperative Multi-Agent Games" (NeurIPS 2022 Datasets and Benchmarks), with the defaults of
its MPE runs. Every agent shares one actor and one critic (parameter sharing). One
iteration:

1. Rollout: act in all ``B`` copies for ``rollout_length`` steps, sampling from the actor;
   store the snapshots the model reads, actions, their log-probabilities, the critic's
   values and the rewards, as ``(T, B, ...)`` tensors.
2. Advantages by GAE(``gamma``, ``gae_lambda``) on the critic's values, de-normalized by
   the running value normalizer; returns = advantages + values; the normalizer then takes
   in the returns. With ``group_size = K > 1`` the copies play in groups of ``K`` from the
   same start states, and an agent's advantage is instead its return minus the mean of the
   same agent's returns in the other ``K - 1`` copies of its group (:func:`group_advantages`).
3. ``epochs`` passes over the ``T B`` copy-steps (every agent of a copy-step together, so a
   GNN sees whole graphs) in ``minibatches`` minibatches. Loss per agent-step: the clipped
   surrogate ``-min(r A, clip(r, 1 - c, 1 + c) A)`` with ``r`` the probability ratio and
   ``A`` normalized over the batch, minus ``entropy_coef`` times the entropy, plus
   ``value_coef`` times the larger of the Huber losses of the new and the clipped value
   against the normalized return. Gradients are clipped to ``max_grad_norm`` per network.

Models:

- ``mlp``: the actor reads the agent's observation; the centralized critic reads it and
  the observations of every agent (MAPPO's agent-specific global state), IPPO's critic its
  own observation only. Both start with a LayerNorm of the input.
- ``gnn``: InforMARL (``marl.gnn``). The actor reads the agent's node embedding and its own
  ``[v, g - p]``; the centralized critic the mean pool of the graph's embeddings and the
  agent's, IPPO's critic the agent's alone. Actor and critic have encoders of their own.
  One network serves any number of agents.

IPPO is this trainer with ``centralized_critic = False``.

Actions: discrete ones from a categorical over the actor's logits; continuous ones from a
Gaussian around the actor's output with a learned, state-independent standard deviation,
clipped to the action box when played. A ``controller`` turns the policy's actions into
the game's: ``online-cbf`` (``marl.cbf``) reads one number per agent, the log of its
class-K gain, and plays the nominal goal-seeking command through the safety filter. With
``cbf_gain = "beta"`` that number is instead a fraction of ``cbf_alpha``, drawn from a Beta
distribution whose two concentrations the actor outputs (Chou, Maturana and Scherer,
"Improving Stochastic Policy Gradients in Continuous Control with Deep Reinforcement
Learning using the Beta Distribution", ICML 2017): a Gaussian's draws beyond a bound that
the game clips all play alike, which biases its gradient near the bound, and the braking
filter's ``gamma = min(alpha dt, 1)`` is such a bound at ``alpha = 1 / dt``.

NOTE: departures from the MAPPO code, for batched games: episodes cut at ``max_cycles``
are treated as terminal (as MAPPO does on MPE, ``use_proper_time_limits=False``);
snapshots, not recurrent states, are stored (no RNN policy).

Shapes: snapshots ``(S, ...)`` per copy-step; the model returns action parameters
``(S, N, A)`` and values ``(S, N)``; storage ``(T, B, N, ...)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from marl.cbf import BARRIERS, GAINS
from marl.errors import TrainingError

MODELS = ("mlp", "gnn")
FILTERS = ("none", "online-cbf")
BETA_EDGE = 1e-6  # Beta actions are kept in [BETA_EDGE, 1 - BETA_EDGE], where the log-density is finite


@dataclass(frozen=True)
class MAPPOConfig:
    """Settings of a MAPPO run. Defaults follow MAPPO's MPE runs (and InforMARL's GNN sizes)."""

    env_steps: int = 2_000_000
    """Copy-steps to collect in all, summed over copies (each is ``N`` agent-steps)."""
    num_envs: int = 128
    """B, copies of the game stepped together."""
    rollout_length: int = 25
    """T, steps per copy between updates (MAPPO on MPE: one 25-step episode)."""
    seed: int = 0
    """Seeds the game's streams, the initial weights, the actions and the minibatches."""
    model: str = "mlp"
    """``mlp`` or ``gnn`` (see the module docstring)."""
    centralized_critic: bool = True
    """MAPPO (True) or IPPO (False)."""
    filter: str = "none"
    """``none``, or ``online-cbf``: the policy sets each agent's CBF gain (``marl.cbf``)."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden widths of the actor's and critic's MLPs (after the GNN for ``gnn``)."""
    gnn_hidden: int = 16
    """Width of the GNN's layers (InforMARL: 16)."""
    gnn_layers: int = 3
    """TransformerConv layers (InforMARL: 3)."""
    gnn_heads: int = 3
    """Attention heads per layer, averaged (InforMARL: 3)."""
    learning_rate: float = 7e-4
    """Adam step size of actor and critic (MAPPO: 7e-4)."""
    epochs: int = 10
    """PPO epochs per rollout (MAPPO on MPE: 10)."""
    minibatches: int = 1
    """Minibatches per epoch (MAPPO on MPE: 1)."""
    clip: float = 0.2
    """PPO's ratio clip, also the value clip."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE's lambda."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus."""
    value_coef: float = 1.0
    """Weight of the value loss."""
    huber_delta: float = 10.0
    """Huber loss threshold of the value loss."""
    max_grad_norm: float = 10.0
    """Gradient norm limit of the actor and of the critic."""
    value_normalization: bool = True
    """Normalize value targets by running statistics (MAPPO's ValueNorm)."""
    initial_log_std: float = -0.5
    """Continuous actions: the initial log standard deviation."""
    cbf_alpha: float = 5.0
    """``online-cbf``: the gain at a zero action (``cbf_gain = "lognormal"``) or the top of the gains (``"beta"``)."""
    cbf_gain: str = "lognormal"
    """``online-cbf``: how an action sets an agent's gain. ``lognormal``: a Gaussian action ``a``,
    ``alpha = cbf_alpha exp(a)``; ``beta``: an action ``u`` in (0, 1) from a Beta distribution,
    ``alpha = cbf_alpha u`` (with ``cbf_alpha = 1 / dt``, ``u`` is the braking rows' ``gamma``)."""
    cbf_margin: float = 0.05
    """``online-cbf``: distance added to the sum of radii in the barrier."""
    cbf_neighbours: int = 8
    """``online-cbf``: k, the nearest agents and obstacles each agent's filter keeps."""
    cbf_barrier: str = "braking"
    """``online-cbf``: the filter's barrier, ``braking``, ``hocbf`` or ``lookahead`` (``marl.cbf``)."""
    cbf_detour: float = 90.0
    """``online-cbf``: degrees the filter turns the nominal command of an agent it holds still; 0: never."""
    checkpoint_minutes: float = 5.0
    """Write a checkpoint after this many minutes of training (and at the end); 0: at the end only."""
    log_every: int = 20_000
    """Log training statistics after about this many copy-steps."""
    eval_episodes: int = 100
    """Episodes of the final evaluation."""
    group_size: int = 1
    """K: copies ``K g`` to ``K g + K - 1`` play the same episodes (one start state per group, each copy its own
    action draws), and an agent's advantage is its return (the GAE return, ``gae_lambda`` included) minus the
    mean of its returns in the other ``K - 1`` copies: a leave-one-out baseline that removes what the start
    state decides, which the critic leaves in (:func:`group_advantages`). 1: GAE's advantages. Copies of a
    group must end their episodes together (navigation: ``terminate_on_goals=false``)."""

    def __post_init__(self) -> None:
        for name in ("env_steps", "num_envs", "rollout_length", "epochs", "minibatches", "gnn_hidden", "gnn_layers",
                     "gnn_heads", "cbf_neighbours", "log_every", "eval_episodes", "group_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TrainingError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TrainingError(f"seed must be an integer, got {self.seed!r}")
        if self.model not in MODELS:
            raise TrainingError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if self.filter not in FILTERS:
            raise TrainingError(f"filter must be one of {', '.join(FILTERS)}, got {self.filter!r}")
        if self.cbf_gain not in GAINS:
            raise TrainingError(f"cbf_gain must be one of {', '.join(GAINS)}, got {self.cbf_gain!r}")
        if self.cbf_barrier not in BARRIERS:
            raise TrainingError(f"cbf_barrier must be one of {', '.join(BARRIERS)}, got {self.cbf_barrier!r}")
        for name in ("centralized_critic", "value_normalization"):
            if not isinstance(getattr(self, name), bool):
                raise TrainingError(f"{name} must be true or false, got {getattr(self, name)!r}")
        bounded = {"gamma": (0.0, 1.0), "gae_lambda": (0.0, 1.0), "clip": (0.0, 1.0)}
        for name in ("learning_rate", "clip", "gamma", "gae_lambda", "entropy_coef", "value_coef", "huber_delta",
                     "max_grad_norm", "initial_log_std", "cbf_alpha", "cbf_margin", "cbf_detour", "checkpoint_minutes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise TrainingError(f"{name} must be a finite number, got {value!r}")
            low, high = bounded.get(name, (-math.inf if name in ("initial_log_std", "cbf_detour") else 0.0, math.inf))
            if not low <= value <= high:
                raise TrainingError(f"{name} must be in [{low}, {high}], got {value}")
        for name in ("learning_rate", "clip", "huber_delta", "max_grad_norm", "cbf_alpha"):
            if getattr(self, name) <= 0:
                raise TrainingError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.num_envs % self.group_size:
            raise TrainingError(f"num_envs ({self.num_envs}) must be a multiple of group_size ({self.group_size})")
        hidden = tuple(self.hidden_sizes) if isinstance(self.hidden_sizes, (list, tuple)) else None
        if not hidden or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in hidden):
            raise TrainingError(f"hidden_sizes must be a non-empty list of positive integers, got {self.hidden_sizes!r}")
        object.__setattr__(self, "hidden_sizes", hidden)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> MAPPOConfig:
        """A config from ``{field: value}``, naming any unknown field."""
        fields = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise TrainingError(f"MAPPO has no setting {unknown[0]!r}; its settings are {', '.join(sorted(fields))}")
        return cls(**{key: tuple(value) if key == "hidden_sizes" and isinstance(value, list) else value
                      for key, value in values.items()})


@dataclass(frozen=True)
class PolicySpec:
    """What the networks are built for (kept in checkpoints).

    ``observation_size`` is the per-agent observation (``mlp``) or 0 (``gnn``, which reads
    the world); ``num_agents`` is what the ``mlp`` critic's global state was built for.
    """

    observation_size: int
    action_size: int
    continuous: bool
    action_low: float
    action_high: float
    num_agents: int
    sensing_radius: float

    @classmethod
    def of(cls, game: Any, config: MAPPOConfig) -> PolicySpec:
        """Reads a game's spaces; raises ``TrainingError`` for a game this model or filter cannot use."""
        from gymnasium import spaces

        agents = list(game.possible_agents)
        observed = {tuple(game.observation_space(agent).shape) for agent in agents}
        acted = {repr(game.action_space(agent)) for agent in agents}
        if len(observed) != 1 or len(acted) != 1:
            raise TrainingError("MAPPO shares one network between agents: every agent needs the same observation "
                                "and action spaces")
        space = game.action_space(agents[0])
        sensing = float(getattr(getattr(game, "config", None), "sensing_radius", 0.0))
        if (config.model == "gnn" or config.filter != "none") and not hasattr(game, "entities"):
            raise TrainingError(f"--model gnn and --filter {config.filter} need a world with graph observations "
                                "(the navigation scenario)")
        size = 0 if config.model == "gnn" else int(observed.pop()[0])
        if config.filter == "online-cbf":
            if isinstance(space, spaces.Discrete):
                raise TrainingError("--filter online-cbf filters continuous commands: set continuous_actions=true")
            return cls(size, 1, True, -math.inf, math.inf, len(agents), sensing)
        if isinstance(space, spaces.Discrete):
            return cls(size, int(space.n), False, 0.0, 0.0, len(agents), sensing)
        if isinstance(space, spaces.Box) and len(space.shape) == 1:
            return cls(size, int(space.shape[0]), True, float(space.low.min()), float(space.high.max()), len(agents),
                       sensing)
        raise TrainingError(f"action space {space}: MAPPO supports Discrete and 1-D Box actions")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def uses_beta(spec: PolicySpec, config: MAPPOConfig) -> bool:
    """Whether the actions come from a Beta distribution (``online-cbf`` with ``cbf_gain = "beta"``)."""
    return spec.continuous and config.filter == "online-cbf" and config.cbf_gain == "beta"


def actor_outputs(spec: PolicySpec, config: MAPPOConfig) -> int:
    """Actor outputs per agent: ``A`` logits or means, or ``2 A`` for a Beta's two concentrations."""
    return spec.action_size * (2 if uses_beta(spec, config) else 1)


def standard_gamma(shape: torch.Tensor, generator: torch.Generator, tries: int = 8) -> torch.Tensor:
    """Draws from Gamma(``shape``, 1) for ``shape >= 1``, with ``generator`` (Marsaglia and Tsang 2000).

    Each element proposes ``d v`` with ``d = k - 1/3``, ``v = (1 + x / sqrt(9 d))^3`` and ``x``
    standard normal, and accepts it when ``log u < x^2 / 2 + d - d v + d log v`` (``u`` uniform).
    ``tries`` proposals are drawn at once and the first accepted one kept; each is accepted with
    probability above 0.95 for ``k >= 1``, so all ``tries`` fail with probability under ``0.05^tries``,
    and such an element keeps ``d`` (the proposal at ``x = 0``).
    """
    d = shape - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    size = (tries, *shape.shape)
    x = torch.randn(size, generator=generator, device=shape.device, dtype=shape.dtype)
    u = torch.rand(size, generator=generator, device=shape.device, dtype=shape.dtype)
    v = (1.0 + c * x) ** 3
    positive = v > 0
    log_v = torch.log(torch.where(positive, v, torch.ones_like(v)))
    accepted = positive & (torch.log(u) < 0.5 * x.square() + d - d * v + d * log_v)
    first = accepted.to(torch.uint8).argmax(0, keepdim=True)  # the first accepted try (0 if none)
    chosen = torch.gather(v, 0, first)[0]
    return d * torch.where(accepted.any(0), chosen, torch.ones_like(chosen))


def _mlp(sizes: list[int], gain: float = math.sqrt(2)) -> nn.Sequential:
    """ReLU MLP with orthogonal initialization (MAPPO's), the last layer scaled by ``gain``."""
    layers: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = nn.Linear(fan_in, fan_out)
        last = index == len(sizes) - 2
        nn.init.orthogonal_(linear.weight, gain=gain if last else math.sqrt(2))
        nn.init.zeros_(linear.bias)
        layers += [linear] if last else [linear, nn.ReLU()]
    return nn.Sequential(*layers)


class MLPActorCritic(nn.Module):
    """The ``mlp`` model (module docstring). Snapshot: ``{"observation": (S, N, D)}``."""

    def __init__(self, spec: PolicySpec, config: MAPPOConfig) -> None:
        super().__init__()
        size, hidden = spec.observation_size, list(config.hidden_sizes)
        critic_in = size * (1 + spec.num_agents) if config.centralized_critic else size
        self.actor = nn.Sequential(nn.LayerNorm(size), _mlp([size, *hidden, actor_outputs(spec, config)], gain=0.01))
        self.critic = nn.Sequential(nn.LayerNorm(critic_in), _mlp([critic_in, *hidden, 1], gain=1.0))
        self.centralized = config.centralized_critic
        self.num_agents = spec.num_agents

    def observe(self, game: Any, observations: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"observation": torch.stack([observations[agent] for agent in game.possible_agents], 1).float()}

    def act(self, snapshot: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.actor(snapshot["observation"])

    def value(self, snapshot: Mapping[str, torch.Tensor]) -> torch.Tensor:
        observation = snapshot["observation"]  # (S, N, D)
        copies, count, _ = observation.shape
        if count != self.num_agents:
            raise TrainingError(f"the mlp critic was built for {self.num_agents} agents, not {count}")
        inputs = observation
        if self.centralized:
            inputs = torch.cat([observation, observation.reshape(copies, 1, -1).expand(-1, count, -1)], dim=-1)
        return self.critic(inputs)[..., 0]

    def act_and_value(self, snapshot: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(act(snapshot), value(snapshot))``."""
        return self.act(snapshot), self.value(snapshot)


class GraphActorCritic(nn.Module):
    """The ``gnn`` model (module docstring). Snapshot: ``Navigation.entities()`` tensors ``(S, ...)``."""

    def __init__(self, spec: PolicySpec, config: MAPPOConfig) -> None:
        super().__init__()
        from marl.gnn import GraphEncoder

        width, hidden = config.gnn_hidden, list(config.hidden_sizes)
        self.actor_encoder = GraphEncoder(width, config.gnn_layers, config.gnn_heads)
        self.critic_encoder = GraphEncoder(width, config.gnn_layers, config.gnn_heads)
        self.actor_head = _mlp([width + 4, *hidden, actor_outputs(spec, config)], gain=0.01)
        critic_in = 2 * width if config.centralized_critic else width
        self.critic_head = _mlp([critic_in, *hidden, 1], gain=1.0)
        self.centralized = config.centralized_critic
        self.radius = spec.sensing_radius

    def observe(self, game: Any, observations: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {key: value.float().clone() for key, value in game.entities().items()}

    def _graph(self, snapshot: Mapping[str, torch.Tensor]):
        from marl.gnn import navigation_graph

        return navigation_graph(dict(snapshot), self.radius)

    def act(self, snapshot: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self._act(self._graph(snapshot))

    def value(self, snapshot: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self._value(self._graph(snapshot))

    def act_and_value(self, snapshot: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(act(snapshot), value(snapshot))`` from one graph."""
        graph = self._graph(snapshot)
        return self._act(graph), self._value(graph)

    def _act(self, graph: Any) -> torch.Tensor:
        embedding = self.actor_encoder(graph)[graph.agent_nodes]  # (S N, W)
        own = graph.node_features[graph.agent_nodes]  # (S N, 4): [v, g - p]
        out = self.actor_head(torch.cat([embedding, own], dim=-1))
        return out.view(graph.num_copies, graph.num_agents, -1)

    def _value(self, graph: Any) -> torch.Tensor:
        from marl.gnn import copy_mean

        nodes = self.critic_encoder(graph)
        embedding = nodes[graph.agent_nodes].view(graph.num_copies, graph.num_agents, -1)
        if self.centralized:
            pooled = copy_mean(nodes, graph)[:, None].expand_as(embedding)
            embedding = torch.cat([pooled, embedding], dim=-1)
        return self.critic_head(embedding)[..., 0]


class ValueNorm(nn.Module):
    """Running mean and variance of value targets (MAPPO's ValueNorm: debiased EMA, beta 0.99999)."""

    def __init__(self, beta: float = 0.99999) -> None:
        super().__init__()
        self.beta = beta
        self.register_buffer("mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean_square", torch.zeros((), dtype=torch.float64))
        self.register_buffer("debias", torch.zeros((), dtype=torch.float64))

    def update(self, values: torch.Tensor) -> None:
        values = values.detach().to(torch.float64)
        weight = self.beta
        self.mean.mul_(weight).add_(values.mean() * (1 - weight))
        self.mean_square.mul_(weight).add_(values.square().mean() * (1 - weight))
        self.debias.mul_(weight).add_(1 - weight)

    def _moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        debias = self.debias.clamp_min(1e-5)
        mean = self.mean / debias
        variance = (self.mean_square / debias - mean.square()).clamp_min(1e-2)
        return mean, variance.sqrt()

    def normalize(self, values: torch.Tensor) -> torch.Tensor:
        mean, std = self._moments()
        return ((values - mean) / std).to(values.dtype)

    def denormalize(self, values: torch.Tensor) -> torch.Tensor:
        mean, std = self._moments()
        return (values * std + mean).to(values.dtype)


class MAPPO:
    """The learner: the model, its log standard deviation, the optimizer and the value normalizer.

    Args:
        spec: what the networks are built for.
        config: the settings.
        device: where the networks live.
    """

    def __init__(self, spec: PolicySpec, config: MAPPOConfig, device: torch.device | str = "cpu") -> None:
        self.spec, self.config, self.device = spec, config, torch.device(device)
        self.beta = uses_beta(spec, config)
        model_class = GraphActorCritic if config.model == "gnn" else MLPActorCritic
        with torch.random.fork_rng(devices=[]):  # torch's initializers draw from the global generator
            torch.manual_seed(config.seed)
            self.model = model_class(spec, config).to(self.device)
        self.log_std = nn.Parameter(torch.full((spec.action_size,), config.initial_log_std, device=self.device))
        self.value_norm = ValueNorm().to(self.device)
        parameters = list(self.model.parameters()) + ([self.log_std] if self._gaussian else [])
        self.optimizer = torch.optim.Adam(parameters, lr=config.learning_rate, eps=1e-5)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed + 1)
        self.updates = 0

    # ----------------------------------------------------------------------------------
    # Acting

    def concentrations(self, outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A Beta policy's concentrations ``(S, N, A)`` each, ``1 + softplus`` of the outputs (so at least
        1: the density has one mode, and it reaches 0 or 1 only where a concentration is exactly 1)."""
        size = self.spec.action_size
        return 1.0 + nn.functional.softplus(outputs[..., :size]), 1.0 + nn.functional.softplus(outputs[..., size:])

    def distribution(self, outputs: torch.Tensor) -> torch.distributions.Distribution:
        """The action distribution of actor outputs ``(S, N, A)`` (``2 A`` for a Beta; batch shape ``(S, N)``)."""
        if self.beta:
            return torch.distributions.Independent(torch.distributions.Beta(*self.concentrations(outputs)), 1)
        if self.spec.continuous:
            return torch.distributions.Independent(torch.distributions.Normal(outputs, self.log_std.exp()), 1)
        return torch.distributions.Categorical(logits=outputs)

    def sample(self, outputs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Actions ``(S, N[, A])`` drawn with ``generator`` (by default the learner's)."""
        generator = self.generator if generator is None else generator
        if self.beta:  # X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b); kept inside (0, 1) for the log-density
            a, b = self.concentrations(outputs)
            x, y = standard_gamma(a, generator), standard_gamma(b, generator)
            return (x / (x + y)).clamp(BETA_EDGE, 1.0 - BETA_EDGE)
        if self.spec.continuous:
            noise = torch.randn(outputs.shape, generator=generator, device=outputs.device, dtype=outputs.dtype)
            return outputs + noise * self.log_std.detach().exp()
        uniform = torch.rand(outputs.shape, generator=generator, device=outputs.device, dtype=outputs.dtype)
        gumbel = -torch.log(-torch.log(uniform.clamp(1e-20, 1.0)))
        return (outputs + gumbel).argmax(-1)

    def greedy(self, outputs: torch.Tensor) -> torch.Tensor:
        """The deterministic actions: the mean (a Gaussian's or a Beta's), or the largest logit."""
        if self.beta:
            a, b = self.concentrations(outputs)
            return a / (a + b)
        return outputs if self.spec.continuous else outputs.argmax(-1)

    def played(self, actions: torch.Tensor) -> torch.Tensor:
        """Actions as played: continuous ones clipped to the box."""
        if self.spec.continuous and math.isfinite(self.spec.action_low):
            return actions.clamp(self.spec.action_low, self.spec.action_high)
        return actions

    # ----------------------------------------------------------------------------------
    # Learning

    def update(self, snapshots: dict[str, torch.Tensor], actions: torch.Tensor, log_probs: torch.Tensor,
               values: torch.Tensor, advantages: torch.Tensor, returns: torch.Tensor) -> dict[str, float]:
        """PPO epochs on one rollout (module docstring, step 3).

        Args:
            snapshots: ``{key: (S, ...)}`` for ``S = T B`` copy-steps.
            actions: ``(S, N[, A])``; log_probs, values (normalized), advantages, returns: ``(S, N)``.
        """
        config = self.config
        if config.value_normalization:
            self.value_norm.update(returns)
            targets = self.value_norm.normalize(returns)
        else:
            targets = returns
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-5)
        steps = actions.shape[0]
        size = max(1, steps // config.minibatches)
        totals = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "clip_fraction": 0.0}
        count = 0
        for _ in range(config.epochs):
            order = torch.randperm(steps, generator=self.generator, device=self.device)
            for start in range(0, steps - size + 1, size):
                rows = order[start:start + size]
                batch = {key: value[rows] for key, value in snapshots.items()}
                outputs, value = self.model.act_and_value(batch)
                distribution = self.distribution(outputs)
                new_log_probs = distribution.log_prob(actions[rows])
                ratio = (new_log_probs - log_probs[rows]).exp()
                advantage = advantages[rows]
                surrogate = torch.min(ratio * advantage, ratio.clamp(1 - config.clip, 1 + config.clip) * advantage)
                entropy = distribution.entropy().mean()
                policy_loss = -surrogate.mean()
                clipped = values[rows] + (value - values[rows]).clamp(-config.clip, config.clip)
                huber = nn.functional.huber_loss
                target = targets[rows]
                value_loss = torch.max(huber(value, target, delta=config.huber_delta, reduction="none"),
                                       huber(clipped, target, delta=config.huber_delta, reduction="none")).mean()
                loss = policy_loss - config.entropy_coef * entropy + config.value_coef * value_loss
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self._actor_parameters(), config.max_grad_norm)
                nn.utils.clip_grad_norm_(self._critic_parameters(), config.max_grad_norm)
                self.optimizer.step()
                totals["policy_loss"] += float(policy_loss.detach())
                totals["value_loss"] += float(value_loss.detach())
                totals["entropy"] += float(entropy.detach())
                totals["clip_fraction"] += float(((ratio.detach() - 1).abs() > config.clip).float().mean())
                count += 1
        self.updates += 1
        return {name: value / max(count, 1) for name, value in totals.items()}

    def _actor_parameters(self) -> list[nn.Parameter]:
        names = ("actor",)
        own = [p for name, p in self.model.named_parameters() if name.startswith(names)]
        return own + ([self.log_std] if self._gaussian else [])

    @property
    def _gaussian(self) -> bool:
        return self.spec.continuous and not self.beta

    def _critic_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.model.named_parameters() if name.startswith("critic")]

    # ----------------------------------------------------------------------------------
    # Saving

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "log_std": self.log_std.detach().cpu(),
                "value_norm": self.value_norm.state_dict(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(), "updates": self.updates}

    def load_state_dict(self, state: Mapping[str, Any], policy_only: bool = False) -> None:
        self.model.load_state_dict(state["model"])
        with torch.no_grad():
            self.log_std.copy_(state["log_std"].to(self.device))
        if policy_only:
            return
        self.value_norm.load_state_dict(state["value_norm"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.updates = int(state["updates"])


def gae(rewards: torch.Tensor, values: torch.Tensor, last_values: torch.Tensor, done: torch.Tensor,
        gamma: float, lam: float) -> torch.Tensor:
    """Generalized advantage estimates (Schulman et al. 2016).

    Args:
        rewards, values: ``(T, B, N)``; last_values: ``(B, N)`` the values after the last step.
        done: ``(T, B)`` bool, the episode ended at step ``t`` (the next value is not bootstrapped).

    Returns:
        ``(T, B, N)`` advantages ``A_t = delta_t + gamma lambda (1 - done_t) A_{t+1}``.
    """
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(last_values)
    following = last_values
    for step in range(rewards.shape[0] - 1, -1, -1):
        alive = (~done[step]).to(rewards.dtype)[:, None]
        delta = rewards[step] + gamma * following * alive - values[step]
        running = delta + gamma * lam * alive * running
        advantages[step] = running
        following = values[step]
    return advantages


def group_advantages(returns: torch.Tensor, group_size: int) -> torch.Tensor:
    """Leave-one-out advantages within groups of copies that play the same episodes.

    Kool, van Hoof and Welling, "Buy 4 REINFORCE Samples, Get a Baseline for Free!" (ICLR 2019
    workshop); the group baseline of GRPO (Shao et al., "DeepSeekMath", 2024). The other copies'
    returns do not depend on this copy's actions, so the baseline leaves the gradient unbiased.

    Args:
        returns: ``(T, B, N)`` returns of every agent, copies ``K g .. K g + K - 1`` a group.
        group_size: ``K >= 2``.

    Returns:
        ``(T, B, N)``: each return minus the mean of the same agent's returns in its group's other copies.
    """
    steps, copies, count = returns.shape
    grouped = returns.view(steps, copies // group_size, group_size, count)
    others = (grouped.sum(2, keepdim=True) - grouped) / (group_size - 1)
    return (grouped - others).view(steps, copies, count)


class MAPPOPolicy:
    """A trained MAPPO model as a gamelab policy, through its controller.

    ``controller`` is ``None`` (the actions are played), or a callable
    ``controller(game, actions (B, N, A)) -> game actions (B, N[, 5])`` such as the online CBF.
    The actions are the deterministic ones (the mean, or the largest logit), or with ``sample`` drawn
    from the policy as it was trained, with a generator of its own seeded by ``seed``: a policy
    trained with PPO is a distribution, and its greedy version can hold still where a draw moves on.
    """

    def __init__(self, learner: MAPPO, controller: Any = None, sample: bool = False, seed: int = 0) -> None:
        self.learner = learner
        self.controller = controller
        self.generator = torch.Generator(device=learner.device).manual_seed(seed) if sample else None

    @torch.no_grad()
    def __call__(self, game: Any, observations: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        learner = self.learner
        snapshot = {key: value.to(learner.device) for key, value in learner.model.observe(game, observations).items()}
        outputs = learner.model.act(snapshot)
        chosen = learner.greedy(outputs) if self.generator is None else learner.sample(outputs, self.generator)
        actions = learner.played(chosen)
        if self.controller is not None:
            actions = self.controller(game, actions)
        actions = actions.to(game.device)
        return {agent: actions[:, index] for index, agent in enumerate(game.possible_agents)}


__all__ = ["FILTERS", "MAPPO", "MODELS", "MAPPOConfig", "MAPPOPolicy", "PolicySpec", "ValueNorm",
           "actor_outputs", "gae", "group_advantages", "standard_gamma", "uses_beta"]
