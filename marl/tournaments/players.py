"""Tournament players: one configured player made ready for one kind of game.

A player becomes one of three shapes, by the game it plays:

- normal-form: ``MatrixPlayer.strategy(seat) -> Tensor (A_seat,)``, a mixed strategy;
- extensive-form: ``TreePlayer``: ``strategy() -> Tensor (num_infosets, max_actions)``
  for tabular players (exact evaluation and sampled play), and ``agent(seed)`` for
  sampled play, an object whose ``act(state, rng)`` picks an OpenSpiel action;
- Markov game: ``PolicyPlayer.policy(seed)``, gamelab's policy protocol
  ``policy(game, observations) -> actions``, seeded for one batch of matches.

Problems with what the user handed us (a missing file, a checkpoint of another game, a
kind the game does not take) raise :class:`TournamentConfigError` before any match is
played. A player's own code failing while it plays (a ``callable`` that raises) is a
forfeit, decided in ``marl.tournaments.arenas``; so a callable is called during the matches, not here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from games.errors import GamelabError
from marl.errors import TournamentConfigError
from marl.tournaments.config import PlayerConfig, TournamentConfig

Tensor = torch.Tensor


def _fail(player: PlayerConfig, message: str) -> TournamentConfigError:
    return TournamentConfigError(f"{player.where}: player {player.name!r} ({player.kind}): {message}")


def load_callable(player: PlayerConfig) -> Callable:
    """The ``callable:`` attribute, or what its factory returns when ``arguments`` are given.

    The config's ``arguments`` go only to a function marked as a policy factory
    (``games.policy.policy_factory``); anything else is refused before it is called.
    """
    from games.policy import is_policy_factory
    from marl.envs import import_callable

    try:
        target = import_callable(*player.options["callable"].split(":"))
    except GamelabError as error:
        raise _fail(player, str(error)) from None
    if "arguments" not in player.options:
        return target
    if not is_policy_factory(target):
        raise _fail(player, f"{player.options['callable']} is not a policy factory (marked with "
                            "games.policy.policy_factory), so it is not called with the config's arguments")
    try:
        built = target(**player.options["arguments"])
    except Exception as error:  # noqa: BLE001 - the factory is user code; say which one failed and how
        raise _fail(player, f"{player.options['callable']}(**arguments) raised {type(error).__name__}: {error}") from None
    if not callable(built):
        raise _fail(player, f"{player.options['callable']}(**arguments) returned {type(built).__name__}, not a callable")
    return built


def _read_json(config: TournamentConfig, player: PlayerConfig) -> tuple[str, Any]:
    import json

    from games.errors import GameFileError
    from games.io import read_text_file

    path = config.resolve(player.options["path"])
    try:
        return path, json.loads(read_text_file(path))
    except json.JSONDecodeError as error:
        raise GameFileError(path, error.lineno, error.colno, f"not valid JSON: {error.msg}") from None


def _read_run(config: TournamentConfig, player: PlayerConfig, what: str) -> tuple[str, dict]:
    """``(path, state)``: the ``state.pt`` a player's ``path`` names (``weights_only=True``), a ``what`` run
    of the tournament's game; raises ``GamelabError`` otherwise."""
    from games.io import read_torch_file

    path = config.resolve(player.options["path"])
    state = read_torch_file(path, what=f"{what} run")
    if not isinstance(state, dict) or state.get("game") != config.game:
        recorded = state.get("game") if isinstance(state, dict) else None
        raise GamelabError(f"{path} is a {what} run of {recorded!r}, not of {config.game!r}")
    return path, state


def _psro_policies(config: TournamentConfig, player: PlayerConfig, game: Any,
                   space_of: Callable[[dict, str], Any] | None = None) -> tuple[Any, list[Any]]:
    """A ``gamelab psro --out`` run (its ``state.pt``) and each player's policy in it: its sigma-mixture,
    or with ``member: K`` its K-th member. ``space_of(state, path)``: the run's policy space (Markov games)."""
    from solvers.psro import PSRO

    try:
        path, state = _read_run(config, player, "PSRO")
        space = None if space_of is None else space_of(state, path)
        run = PSRO(game, str(state.get("meta_solver")), policy_space=space)
        run.load_state_dict(state, source=path)
    except GamelabError as error:
        raise _fail(player, str(error)) from None
    member = player.options.get("member")
    if member is None:
        run.update_meta_strategies()
        return run, run.mixtures()
    sizes = [len(population) for population in run.populations]
    if member >= min(sizes):
        raise _fail(player, f"member {member}: the run's populations hold {sizes} members, so members 0..{min(sizes) - 1}")
    return run, [population[member] for population in run.populations]


def _neupl_strategy(config: TournamentConfig, player: PlayerConfig, game: Any) -> Tensor:
    """A ``gamelab neupl --out`` run's player (its meta-Nash mixture, ``policy: K`` or ``mixture:``) as one
    behavioural strategy ``(num_infosets, max_actions)`` of the run's tree: ``game`` itself for a game
    tree, the tree of ``games.extensive_form.tree_from_normal_form`` (a row per seat) for a normal-form game."""
    from marl.neupl import NeuPL, config_from_record, load_neupl_game

    try:
        path, state = _read_run(config, player, "NeuPL")
        tree, observations, decisions = load_neupl_game(config.game, game=game)
        run = NeuPL(tree, config_from_record(state.get("config"), path), observations=observations,
                    decisions=decisions)
        run.load_state_dict(state, source=path)
    except GamelabError as error:
        raise _fail(player, str(error)) from None
    chosen = _neupl_choice(player, run.config.population)
    if isinstance(chosen, int):
        return run.strategies()[chosen]
    return run.mixture_strategy(run.meta_nash() if chosen is None else chosen.to(run.game.dtype))


def _neupl_choice(player: PlayerConfig, size: int) -> int | Tensor | None:
    """A NeuPL player's ``policy: K`` (an index), ``mixture:`` (float64 weights ``(N,)``) or neither (None:
    the meta-Nash mixture), checked against the run's ``size`` policies."""
    if "policy" in player.options:
        if player.options["policy"] >= size:
            raise _fail(player, f"policy {player.options['policy']}: the run's population has policies 0..{size - 1}")
        return player.options["policy"]
    if "mixture" in player.options:
        if len(player.options["mixture"]) != size:
            raise _fail(player, f"mixture has {len(player.options['mixture'])} weights; the run has {size} policies")
        return torch.tensor(player.options["mixture"], dtype=torch.float64)
    return None


def _solve(game: Any, player: PlayerConfig) -> list[Tensor]:
    from solvers import registry

    try:
        return registry.solve(game, player.options.get("solver", "auto"),
                              iterations=player.options.get("iterations")).strategies
    except GamelabError as error:
        raise _fail(player, str(error)) from None


# --------------------------------------------------------------------------------------
# Normal-form games


class MatrixPlayer:
    """A mixed strategy for each seat of a 2-player normal-form game.

    ``strategy(seat)`` returns ``(A_seat,)`` probabilities; a ``callable`` player's
    function is called there (so its failures happen during a match).
    """

    def __init__(self, config: TournamentConfig, player: PlayerConfig, game: Any) -> None:
        self.name = player.name
        self.game = game
        self._config = player
        self._fixed: list[Tensor | None] = [None, None]
        self._function: Callable | None = None
        kind, options = player.kind, player.options
        sizes = [int(size) for size in game.num_actions]
        if kind == "uniform":
            self._fixed = [torch.full((size,), 1.0 / size, dtype=torch.float64) for size in sizes]
        elif kind == "mixed":
            strategy = options["strategy"]
            per_seat = strategy if isinstance(strategy[0], list) else [strategy, strategy]
            if len(per_seat) != 2:
                raise _fail(player, f"expected one strategy per seat (2), got {len(per_seat)}")
            self._fixed = [self._check(per_seat[seat], seat) for seat in range(2)]
        elif kind == "pure":
            self._fixed = [self._pure(options["action"], seat) for seat in range(2)]
        elif kind == "solver":
            self._fixed = [s.detach().to("cpu", torch.float64) for s in _solve(game, player)]
        elif kind == "psro":
            self._fixed = [mixture.detach().to("cpu", torch.float64) for mixture in _psro_policies(config, player, game)[1]]
        elif kind == "neupl":
            rows = _neupl_strategy(config, player, game).detach().to("cpu", torch.float64)
            self._fixed = [rows[seat, : sizes[seat]] for seat in range(2)]
        elif kind == "strategy":
            path, payload = _read_json(config, player)
            strategies = payload.get("strategies") if isinstance(payload, dict) else None
            if not isinstance(strategies, list) or len(strategies) != 2:
                raise _fail(player, f"{path}: expected the JSON of `gamelab solve --out` with two strategies")
            self._fixed = [self._check(strategies[seat], seat) for seat in range(2)]
        elif kind == "callable":
            self._function = load_callable(player)
        else:
            raise _fail(player, "this kind does not play normal-form games; use uniform, mixed, pure, solver, "
                                "strategy, psro, neupl or callable")

    def _check(self, values: Any, seat: int) -> Tensor:
        size = int(self.game.num_actions[seat])
        try:
            strategy = torch.as_tensor(values, dtype=torch.float64).flatten()
        except (TypeError, ValueError):
            raise _fail(self._config, f"seat {seat}: {values!r} is not a list of probabilities") from None
        if strategy.numel() != size:
            raise _fail(self._config, f"seat {seat} has {size} actions, the strategy {strategy.numel()} entries")
        if not bool(torch.isfinite(strategy).all()) or bool((strategy < 0).any()) or abs(float(strategy.sum()) - 1) > 1e-6:
            raise _fail(self._config, f"seat {seat}: {strategy.tolist()} is not a probability distribution")
        return strategy / strategy.sum()

    def _pure(self, action: int | str, seat: int) -> Tensor:
        names = list(self.game.action_names[seat])
        size = len(names)
        if isinstance(action, str):
            if action not in names:
                raise _fail(self._config, f"seat {seat} has no action {action!r}; its actions are {names}")
            index = names.index(action)
        else:
            if not 0 <= action < size:
                raise _fail(self._config, f"action {action} is out of range for seat {seat} ({size} actions)")
            index = action
        strategy = torch.zeros(size, dtype=torch.float64)
        strategy[index] = 1.0
        return strategy

    def strategy(self, seat: int) -> Tensor:
        """``(A_seat,)`` float64 probabilities; raises what a callable raises, or ``ValueError`` for a bad one."""
        fixed = self._fixed[seat]
        if fixed is not None:
            return fixed
        values = self._function(self.game, seat)
        size = int(self.game.num_actions[seat])
        strategy = torch.as_tensor(values, dtype=torch.float64).flatten().cpu()
        if strategy.numel() != size or not bool(torch.isfinite(strategy).all()) or bool((strategy < 0).any()) \
                or abs(float(strategy.sum()) - 1) > 1e-6:
            raise ValueError(f"returned {strategy.tolist()}, not a distribution over seat {seat}'s {size} actions")
        return strategy


# --------------------------------------------------------------------------------------
# Extensive-form games


class TabularAgent:
    """Samples OpenSpiel actions from a behavioural strategy, looked up by information state."""

    def __init__(self, rows: dict[str, tuple[list[int], np.ndarray]]) -> None:
        self.rows = rows

    def act(self, state: Any, rng: np.random.Generator) -> int:
        key = state.information_state_string(state.current_player())
        actions, probabilities = self.rows[key]
        return actions[int(rng.choice(len(actions), p=probabilities))]


class MCTSAgent:
    """OpenSpiel's MCTS bot (perfect information) or IS-MCTS bot (imperfect information)."""

    def __init__(self, spiel_game: Any, options: dict[str, Any], seed: int) -> None:
        import pyspiel
        from open_spiel.python.algorithms import ismcts, mcts

        random_state = np.random.RandomState(seed % (2**32))
        evaluator = mcts.RandomRolloutEvaluator(n_rollouts=options.get("rollouts", 1), random_state=random_state)
        simulations, uct_c = options.get("simulations", 100), options.get("uct_c", 2.0)
        if spiel_game.get_type().information == pyspiel.GameType.Information.PERFECT_INFORMATION:
            self.bot = mcts.MCTSBot(spiel_game, uct_c, simulations, evaluator, random_state=random_state)
        else:
            self.bot = ismcts.ISMCTSBot(spiel_game, evaluator, uct_c, simulations, random_state=random_state)
            # NOTE: IS-MCTS samples worlds with an unseeded C++ sampler by default; seed it
            # so that a match is reproducible (and the same in every process).
            sampler = pyspiel.UniformProbabilitySampler(seed % (2**31), 0.0, 1.0)
            self.bot.set_resampler(lambda state, player: state.resample_from_infostate(player, sampler))

    def act(self, state: Any, rng: np.random.Generator) -> int:
        del rng
        return int(self.bot.step(state))


class TreePlayer:
    """A player of a 2-player extensive-form game.

    ``tabular`` players (every kind but ``mcts``) have ``strategy()``, a
    ``(num_infosets, max_actions)`` behavioural strategy covering every infoset (the
    tournament uses the rows of the seat it plays). ``agent(seed)`` makes a sampling agent.
    """

    def __init__(self, config: TournamentConfig, player: PlayerConfig, game: Any, spiel_game: Any | None) -> None:
        from games.errors import GameError
        from games.extensive_form import read_strategy

        self.name = player.name
        self.game = game
        self.spiel_game = spiel_game
        self._config = player
        self._fixed: Tensor | None = None
        self._function: Callable | None = None
        kind, options = player.kind, player.options
        self.tabular = kind != "mcts"
        if kind == "uniform":
            self._fixed = game.uniform_strategy()
        elif kind == "pure":
            if options["action"] not in ("first", "last"):
                raise _fail(player, f"in extensive-form games action is first or last, got {options['action']!r}")
            legal = game.legal_mask.to(torch.int64)
            slots = torch.arange(game.max_actions, device=legal.device)
            choice = (legal * slots).argmax(-1) if options["action"] == "last" else legal.argmax(-1)
            self._fixed = torch.nn.functional.one_hot(choice, game.max_actions).to(game.dtype)
        elif kind == "solver":
            self._fixed = _solve(game, player)[0].detach()
        elif kind == "psro":
            mixtures = _psro_policies(config, player, game)[1]
            mine = [(game.infoset_player == seat)[:, None] for seat in range(game.num_players)]
            self._fixed = torch.where(mine[0], mixtures[0], mixtures[1])
        elif kind == "neupl":
            self._fixed = _neupl_strategy(config, player, game).to(game.device, game.dtype)
        elif kind == "strategy":
            try:
                self._fixed = read_strategy(game, config.resolve(options["path"]))
            except GameError as error:
                raise _fail(player, str(error)) from None
        elif kind == "callable":
            self._function = load_callable(player)
        elif kind == "mcts":
            if spiel_game is None:
                raise _fail(player, "MCTS plays OpenSpiel games; this game is not one")
        else:
            raise _fail(player, "this kind does not play extensive-form games; use uniform, pure, solver, "
                                "strategy, psro, neupl, mcts or callable")

    def strategy(self) -> Tensor:
        """``(num_infosets, max_actions)`` (a callable's output is validated; it raises ``GameError`` if bad)."""
        if self._fixed is not None:
            return self._fixed
        if self._function is None:
            raise TypeError(f"player {self.name!r} ({self._config.kind}) has no tabular strategy")
        strategy = torch.as_tensor(self._function(self.game), dtype=self.game.dtype, device=self.game.device)
        if tuple(strategy.shape) != (self.game.num_infosets, self.game.max_actions):
            raise ValueError(f"returned a strategy of shape {tuple(strategy.shape)}, expected "
                             f"{(self.game.num_infosets, self.game.max_actions)}")
        return self.game.check_strategy(strategy)

    def agent(self, seed: int, strategy: Tensor | None = None) -> TabularAgent | MCTSAgent:
        """A sampling agent for one batch of matches (``strategy``: the tabular one, already computed)."""
        if not self.tabular:
            return MCTSAgent(self.spiel_game, self._config.options, seed)
        values = (self.strategy() if strategy is None else strategy).detach().cpu().numpy()
        action_ids = self.game.infoset_action_ids.cpu().numpy()
        legal = self.game.legal_mask.cpu().numpy()
        rows = {}
        for infoset, key in enumerate(self.game.infoset_keys):
            mask = legal[infoset]
            probabilities = values[infoset][mask]
            rows[key] = ([int(a) for a in action_ids[infoset][mask]], probabilities / probabilities.sum())
        return TabularAgent(rows)


# --------------------------------------------------------------------------------------
# Markov games


class PolicyPlayer:
    """A team's policy in a Markov game: ``policy(seed)`` is ``f(game, observations) -> actions``."""

    def __init__(self, config: TournamentConfig, player: PlayerConfig, game_name: str, game: Any) -> None:
        self.name = player.name
        self.kind = player.kind
        self._policy: Callable | None = None
        if player.kind == "uniform":
            return
        if player.kind == "checkpoint":
            from marl.checkpoint import CheckpointError
            from marl.train import load_policy

            try:
                self._policy = load_policy(config.resolve(player.options["path"]), game=game, game_name=game_name,
                                           game_settings=config.settings, device=game.device)
            except (CheckpointError, GamelabError) as error:
                raise _fail(player, str(error)) from None
        elif player.kind == "scripted":
            import scenarios

            if game_name not in scenarios.SCRIPTED:
                raise _fail(player, f"{game_name} has no scripted policy; the scenarios with one are "
                                    f"{', '.join(sorted(scenarios.SCRIPTED))}")
            try:
                self._policy = scenarios.scripted_policy(game_name, **player.options.get("arguments", {}))
            except GamelabError as error:
                raise _fail(player, str(error)) from None
        elif player.kind == "psro":
            self._policy = self._psro(config, player, game_name, game)
        elif player.kind == "neupl":
            self._policy = self._neupl(config, player, game_name, game)
        elif player.kind == "callable":
            self._policy = load_callable(player)
        else:
            raise _fail(player, "this kind does not play Markov games; use uniform, checkpoint, scripted, psro, "
                                "neupl or callable")

    @staticmethod
    def _neupl(config: TournamentConfig, player: PlayerConfig, game_name: str, game: Any) -> Callable:
        """A NeuPL run of the Markov game: its meta-Nash mixture, ``policy: K`` or ``mixture:`` (a policy
        drawn per copy and match), every policy playing whichever team its seat is."""
        from marl.envs import resolved_settings
        from marl.neupl_markov import from_state

        try:
            path, state = _read_run(config, player, "NeuPL")
            run = from_state(state, game.device, path, replay=False)
            if resolved_settings(game_name, run.settings) != resolved_settings(game_name, config.settings):
                raise GamelabError(f"{path} is a run of {game_name} with settings {run.settings}, not "
                                   f"{config.settings}")
        except GamelabError as error:
            raise _fail(player, str(error)) from None
        chosen = _neupl_choice(player, run.config.population)
        if isinstance(chosen, int):
            return run.policy(lambda played: torch.full((2, played.num_envs), chosen, dtype=torch.int64))
        return run.mixture_policy(run.meta_nash() if chosen is None else chosen, seed=run.config.seed + 23)

    @staticmethod
    def _psro(config: TournamentConfig, player: PlayerConfig, game_name: str, game: Any) -> Callable:
        """A PSRO run's teams as one policy: each team's sigma-mixture, or its ``member``."""
        from marl.envs import resolved_settings
        from marl.psro_oracle import MarkovPopulations, TeamMixture

        def space_of(state: dict, path: str) -> MarkovPopulations:
            space = MarkovPopulations.from_record(game_name, state.get("markov"), game.device, source=path)
            if resolved_settings(game_name, space.settings) != resolved_settings(game_name, config.settings):
                raise GamelabError(f"{path} is a run of {game_name} with settings {space.settings}, not "
                                   f"{config.settings}")
            return space

        run, policies = _psro_policies(config, player, game, space_of)
        one = torch.ones(1, dtype=torch.float64)
        return run.policy_space.profile([policy if isinstance(policy, TeamMixture) else TeamMixture((policy,), one)
                                         for policy in policies])

    def policy(self, seed: int) -> Callable:
        """The policy for one batch of matches; ``seed`` seeds a random player."""
        if self._policy is not None:
            return self._policy
        from games.policy import random_policy

        return random_policy(seed)


__all__ = ["MCTSAgent", "MatrixPlayer", "PolicyPlayer", "TabularAgent", "TreePlayer", "load_callable"]
