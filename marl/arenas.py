"""Where tournament matches are played: one arena per kind of game.

An arena holds the game and its players and plays a :class:`Unit`: a block of matches
between two players, committed together. Every match is a pure function of the
tournament's seed and the match's place (players, index), so any process (in-process, a
Ray worker) plays it the same way, and a unit played twice gives the same rows.

Seats and matches:

- The two players of a pair are ``first`` (the lower index) and ``second``. Match ``k``
  puts ``first`` in seat ``k mod 2`` when seats are swapped (``seating`` 1), else in seat 0.
- With seat swapping, matches ``2g`` and ``2g + 1`` are a *duplicate* pair: they deal
  the same chance outcomes (cards, start positions) with the seats exchanged, and every
  pair of players sees the same deals. Group ``g`` is the unit of comparison for the
  ratings (``marl.tournament``).
- Exact evaluation (normal-form games, and extensive-form games with tabular players)
  plays one "match" per seating: expected payoffs and the exact probability that
  ``first`` scores more than ``second`` (ties count half).

Forfeits: a player whose code raises, whose move takes longer than ``move_time_limit``
seconds (one call; a batched call in a Markov game), or that returns an illegal action
forfeits the match (every match of the call, for a raise or a timeout); the row records
which player forfeited and the error, and the tournament goes on. The time limit is
enforced with ``SIGALRM`` in a process's main thread, which interrupts Python code and
sleeps; elsewhere (or for code that never returns to Python) the call is left running in
a daemon thread and forfeited when the limit passes.
"""

from __future__ import annotations

import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from games.errors import GamelabError
from marl.players import MatrixPlayer, PolicyPlayer, TreePlayer
from marl.tournament_config import TournamentConfig, TournamentConfigError

Tensor = torch.Tensor

NO_FORFEIT, FIRST_FORFEITS, SECOND_FORFEITS, BOTH_FORFEIT = 0, 1, 2, 3


@dataclass(frozen=True)
class Unit:
    """Matches ``start .. start + count - 1`` between players ``first <= second``."""

    first: int
    second: int
    start: int
    count: int


@dataclass
class MatchRow:
    """One match's outcome, as stored (``marl.match_store``)."""

    first: int
    second: int
    match: int
    seating: int
    """0: ``first`` sits in seat 0; 1: in seat 1."""
    payoff_first: float | None
    """None when the match was forfeited."""
    payoff_second: float | None
    score_first: float | None
    """Exact evaluation: the probability that ``first`` scores more (ties half); sampled: None."""
    forfeit: int = NO_FORFEIT
    error: str | None = None
    seconds: float = 0.0


class MoveTimeout(Exception):
    """A player's move took longer than the tournament's ``move_time_limit``."""


def timed_call(limit: float, function: Callable, *args: Any) -> Any:
    """``function(*args)``, raising :class:`MoveTimeout` once ``limit`` seconds pass."""
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        def expire(signum: int, frame: Any) -> None:
            raise MoveTimeout(f"no move within the {limit:g} s time limit")

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, limit)
        try:
            return function(*args)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = function(*args)
        except BaseException as error:  # noqa: BLE001 - handed to the caller below
            outcome["error"] = error

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        raise MoveTimeout(f"no move within the {limit:g} s time limit")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def describe(error: BaseException) -> str:
    """``Type: message (file:line)`` of the innermost frame, for the forfeit record."""
    if isinstance(error, MoveTimeout):
        return str(error)
    frames = traceback.extract_tb(error.__traceback__)
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}: {error}{where}"


def unit_seed(seed: int, *parts: int) -> int:
    """A 63-bit seed for the match or batch at ``parts``, independent of how work is split."""
    return int(np.random.SeedSequence([seed, *parts]).generate_state(1, np.uint64)[0] >> np.uint64(1))


class Arena:
    """Common parts: the players, seat swapping and the forfeit payoffs."""

    kind = ""
    exact = False
    score_groups = False
    """Whether a win is decided per duplicate group (summed payoffs) instead of per match."""

    def __init__(self, config: TournamentConfig, num_players: int = 2) -> None:
        if num_players != 2:
            raise TournamentConfigError(f"{config.game}: tournaments are between two seats; this game has "
                                        f"{num_players} players")
        self.config = config
        self.names = [player.name for player in config.players]
        self.seat_swap = True

    def seating(self, match: int) -> int:
        return match % 2 if self.seat_swap else 0

    def group(self, match: int) -> int:
        """The duplicate group of a match: matches of a group share their chance outcomes."""
        return match // 2 if self.seat_swap else match

    def matches_per_pair(self, first: int, second: int) -> int:
        if self.exact:
            return 2 if self.seat_swap and first != second else 1
        return self.config.matches_per_pair

    def units(self) -> list[Unit]:
        """Every pair (self-play included) in blocks of ``batch_size`` (even, when seats are swapped)."""
        size = self.config.batch_size
        if self.seat_swap and size > 1:
            size -= size % 2
        units = []
        for first in range(len(self.names)):
            for second in range(first, len(self.names)):
                total = self.matches_per_pair(first, second)
                step = total if self.exact else size
                units.extend(Unit(first, second, start, min(step, total - start)) for start in range(0, total, step))
        return units

    def forfeit_bounds(self) -> tuple[list[float], list[float]] | None:
        """``(worst, best)`` payoff of each seat, or None to take them from the played matches."""
        return None

    def play(self, unit: Unit) -> list[MatchRow]:
        raise NotImplementedError


def _forfeit_code(first_failed: bool, second_failed: bool) -> int:
    return (FIRST_FORFEITS if first_failed else 0) | (SECOND_FORFEITS if second_failed else 0)


def _expected_score(probability: Tensor, mine: Tensor, theirs: Tensor) -> float:
    """The probability of scoring more than the opponent (ties half), outcomes weighted by ``probability``."""
    return float((probability * ((mine > theirs).double() + 0.5 * (mine == theirs).double())).sum())


# --------------------------------------------------------------------------------------
# Normal-form games: exact expected payoffs


class MatrixArena(Arena):
    """2-player normal-form games, evaluated exactly."""

    kind = "normal-form"
    exact = True

    def __init__(self, config: TournamentConfig, game: Any) -> None:
        super().__init__(config, game.num_players)
        if config.evaluation == "sampled":
            raise TournamentConfigError(f"{config.game}: normal-form games are evaluated exactly; remove "
                                        "evaluation: sampled")
        self.game = game.to("cpu", torch.float64)
        payoffs = self.game.payoffs
        symmetric = payoffs.shape[1] == payoffs.shape[2] and bool(torch.equal(payoffs[0], payoffs[1].T))
        self.seat_swap = (not symmetric) if config.seat_swap is None else config.seat_swap
        self.players = [MatrixPlayer(config, player, self.game) for player in config.players]

    def forfeit_bounds(self) -> tuple[list[float], list[float]]:
        payoffs = self.game.payoffs
        return [float(payoffs[s].min()) for s in range(2)], [float(payoffs[s].max()) for s in range(2)]

    def play(self, unit: Unit) -> list[MatchRow]:
        rows = []
        limit = self.config.move_time_limit
        for match in range(unit.start, unit.start + unit.count):
            started = time.perf_counter()
            seating = self.seating(match)
            seat_of = (seating, 1 - seating)  # seats of first and second
            strategies: list[Tensor | None] = [None, None]
            errors: list[str] = []
            for role, index in enumerate((unit.first, unit.second)):
                try:
                    strategies[role] = timed_call(limit, self.players[index].strategy, seat_of[role])
                except Exception as error:  # noqa: BLE001 - the player's own code: a forfeit
                    errors.append(f"{self.names[index]}: {describe(error)}")
            forfeit = _forfeit_code(strategies[0] is None, strategies[1] is None)
            if forfeit:
                rows.append(MatchRow(unit.first, unit.second, match, seating, None, None, None, forfeit,
                                     "; ".join(errors), time.perf_counter() - started))
                continue
            row_strategy, column_strategy = (strategies[0], strategies[1]) if seating == 0 else (strategies[1], strategies[0])
            joint = row_strategy[:, None] * column_strategy[None, :]
            payoffs = self.game.payoffs
            values = (payoffs * joint).flatten(1).sum(-1)
            mine, theirs = payoffs[seat_of[0]], payoffs[seat_of[1]]
            score = _expected_score(joint, mine, theirs)
            rows.append(MatchRow(unit.first, unit.second, match, seating, float(values[seat_of[0]]),
                                 float(values[seat_of[1]]), score, seconds=time.perf_counter() - started))
        return rows


# --------------------------------------------------------------------------------------
# Extensive-form games: exact on the compiled tree, or sampled through OpenSpiel


class TreeArena(Arena):
    """2-player extensive-form games: exact evaluation of tabular players, or sampled play."""

    kind = "extensive-form"

    def __init__(self, config: TournamentConfig, game: Any, spiel_game: Any | None) -> None:
        super().__init__(config, game.num_players)
        self.game = game.to("cpu", torch.float64)
        self.spiel_game = spiel_game
        self.players = [TreePlayer(config, player, self.game, spiel_game) for player in config.players]
        tabular = all(player.tabular for player in self.players)
        self.exact = config.evaluation == "exact" or (config.evaluation is None and tabular)
        if self.exact and not tabular:
            names = ", ".join(p.name for p in self.players if not p.tabular)
            raise TournamentConfigError(f"{config.game}: exact evaluation needs tabular players, and {names} "
                                        "is not; use evaluation: sampled")
        if not self.exact and spiel_game is None:
            raise TournamentConfigError(f"{config.game}: sampled play runs OpenSpiel games; this one is a Gambit "
                                        "file, so use evaluation: exact")
        self.seat_swap = True if config.seat_swap is None else config.seat_swap
        self._seat0 = (self.game.infoset_player == 0)[:, None]

    def forfeit_bounds(self) -> tuple[list[float], list[float]]:
        utilities = self.game.terminal_utilities
        return [float(utilities[:, s].min()) for s in range(2)], [float(utilities[:, s].max()) for s in range(2)]

    def _strategies(self, unit: Unit) -> tuple[list[Tensor | None], list[str]]:
        strategies: list[Tensor | None] = [None, None]
        errors = []
        for role, index in enumerate((unit.first, unit.second)):
            player = self.players[index]
            if not player.tabular:
                continue
            try:
                strategies[role] = timed_call(self.config.move_time_limit, player.strategy)
            except Exception as error:  # noqa: BLE001 - the player's code: a forfeit
                errors.append(f"{self.names[index]}: {describe(error)}")
        return strategies, errors

    def play(self, unit: Unit) -> list[MatchRow]:
        started = time.perf_counter()
        strategies, errors = self._strategies(unit)
        failed = [self.players[index].tabular and strategies[role] is None
                  for role, index in enumerate((unit.first, unit.second))]
        if any(failed):
            code = _forfeit_code(*failed)
            seconds = time.perf_counter() - started
            return [MatchRow(unit.first, unit.second, match, self.seating(match), None, None, None, code,
                             "; ".join(errors), seconds) for match in range(unit.start, unit.start + unit.count)]
        return self._exact(unit, strategies) if self.exact else self._sampled(unit, strategies)

    def _exact(self, unit: Unit, strategies: list[Tensor | None]) -> list[MatchRow]:
        from solvers.sequence_form import terminal_probabilities

        rows = []
        utilities = self.game.terminal_utilities
        for match in range(unit.start, unit.start + unit.count):
            started = time.perf_counter()
            seating = self.seating(match)
            seat_of = (seating, 1 - seating)
            in_seat0 = strategies[0] if seating == 0 else strategies[1]
            in_seat1 = strategies[1] if seating == 0 else strategies[0]
            profile = torch.where(self._seat0, in_seat0, in_seat1)
            probability = terminal_probabilities(self.game, profile)
            values = probability @ utilities
            mine, theirs = utilities[:, seat_of[0]], utilities[:, seat_of[1]]
            score = _expected_score(probability, mine, theirs)
            rows.append(MatchRow(unit.first, unit.second, match, seating, float(values[seat_of[0]]),
                                 float(values[seat_of[1]]), score, seconds=time.perf_counter() - started))
        return rows

    def _sampled(self, unit: Unit, strategies: list[Tensor | None]) -> list[MatchRow]:
        seed = self.config.seed
        agents = [self.players[index].agent(unit_seed(seed, unit.first, unit.second, unit.start, role), strategies[role])
                  for role, index in enumerate((unit.first, unit.second))]
        limit = self.config.move_time_limit
        rows = []
        for match in range(unit.start, unit.start + unit.count):
            started = time.perf_counter()
            seating = self.seating(match)
            seat_of = (seating, 1 - seating)
            by_seat = [None, None]
            for role in range(2):
                by_seat[seat_of[role]] = role
            chance = np.random.default_rng([seed, self.group(match)])
            choices = np.random.default_rng([seed, unit.first, unit.second, match])
            state = self.spiel_game.new_initial_state()
            forfeit, error = NO_FORFEIT, None
            while not state.is_terminal():
                if state.is_chance_node():
                    actions, probabilities = zip(*state.chance_outcomes())
                    state.apply_action(actions[int(chance.choice(len(actions), p=np.asarray(probabilities)))])
                    continue
                role = by_seat[state.current_player()]
                try:
                    action = timed_call(limit, agents[role].act, state, choices)
                    if action not in state.legal_actions():
                        raise ValueError(f"illegal action {action!r}; legal: {state.legal_actions()}")
                except Exception as failure:  # noqa: BLE001 - the player's code: a forfeit
                    forfeit = FIRST_FORFEITS if role == 0 else SECOND_FORFEITS
                    error = f"{self.names[(unit.first, unit.second)[role]]}: {describe(failure)}"
                    break
                state.apply_action(action)
            if forfeit:
                rows.append(MatchRow(unit.first, unit.second, match, seating, None, None, None, forfeit, error,
                                     time.perf_counter() - started))
                continue
            returns = state.returns()
            rows.append(MatchRow(unit.first, unit.second, match, seating, float(returns[seat_of[0]]),
                                 float(returns[seat_of[1]]), None, seconds=time.perf_counter() - started))
        return rows


# --------------------------------------------------------------------------------------
# Markov games: batched episodes, one copy per match


def team_of(agent: str) -> str:
    """An agent's team: its name without the trailing index (``adversary_2`` -> ``adversary``)."""
    return agent.rstrip("0123456789").rstrip("_") or agent


class MarkovArena(Arena):
    """Two-team Markov games: every match of a unit is one copy of one batched game.

    The teams (seats) are the agents' name prefixes in order of appearance
    (``adversary_*`` then ``agent_*`` in ``tag``). A match's payoff for a player is its
    team's episode return per agent (the sum over steps of the team's mean reward).
    """

    kind = "markov"
    score_groups = True  # the teams' returns are on different scales: compare seat-swapped pairs

    def __init__(self, config: TournamentConfig, game_name: str) -> None:
        from marl.envs import make_game

        super().__init__(config)
        if config.evaluation == "exact":
            raise TournamentConfigError(f"{game_name}: Markov games are played, not evaluated exactly; remove "
                                        "evaluation: exact")
        self.game_name = game_name
        self.device = torch.device(config.device)
        probe = make_game(game_name, 1, device=self.device, seed=config.seed, settings=config.settings)
        teams: dict[str, list[str]] = {}
        for agent in probe.possible_agents:
            teams.setdefault(team_of(agent), []).append(agent)
        if len(teams) != 2:
            raise TournamentConfigError(f"{game_name}: a tournament needs a game of two teams; its agents form "
                                        f"{len(teams)} ({', '.join(teams)})")
        self.teams = list(teams.values())
        self.team_names = list(teams)
        self.seat_swap = True if config.seat_swap is None else config.seat_swap
        self._games: dict[int, Any] = {1: probe}
        self.players = [PolicyPlayer(config, player, game_name, probe) for player in config.players]

    def _game(self, copies: int) -> Any:
        from marl.envs import make_game

        if copies not in self._games:
            game = make_game(self.game_name, copies, device=self.device, seed=self.config.seed,
                             settings=self.config.settings)
            game.validate_actions = False  # play() checks every action and replaces illegal ones
            self._games[copies] = game
        return self._games[copies]

    def _checked(self, game: Any, agent: str, actions: Any) -> tuple[Tensor, Tensor]:
        """``(actions, legal)``: ``agent``'s actions in the game's dtype and ``(B,)`` bool legality.

        Raises for a malformed value (not a tensor, wrong shape or kind): the whole call forfeits.
        """
        if not isinstance(actions, Tensor):
            raise TypeError(f"the action of {agent} is {type(actions).__name__}, not a tensor")
        size = int(game._action_sizes[agent])
        actions = actions.to(game.device)
        if game.continuous:
            if tuple(actions.shape) != (game.num_envs, size) or not actions.is_floating_point():
                raise ValueError(f"the action of {agent} has shape {tuple(actions.shape)} and dtype {actions.dtype}; "
                                 f"expected floats of shape {(game.num_envs, size)}")
            actions = actions.to(game.dtype)
            inside = (actions >= game.action_low) & (actions <= game.action_high)
            return actions, (torch.isfinite(actions) & inside).all(-1)
        if tuple(actions.shape) != (game.num_envs,) or actions.is_floating_point() or actions.dtype == torch.bool:
            raise ValueError(f"the action of {agent} has shape {tuple(actions.shape)} and dtype {actions.dtype}; "
                             f"expected integers of shape {(game.num_envs,)}")
        actions = actions.to(torch.int64)
        return actions, (actions >= 0) & (actions < size)

    def play(self, unit: Unit) -> list[MatchRow]:
        started = time.perf_counter()
        game = self._game(unit.count)
        device = game.device
        matches = torch.arange(unit.start, unit.start + unit.count, device=device)
        seating = matches % 2 if self.seat_swap else torch.zeros_like(matches)
        streams = matches // 2 if self.seat_swap else matches
        # plays[role][seat]: (B,) bool, the copies where player `role` (0 first, 1 second) plays `seat`.
        first_in_seat0 = seating == 0
        plays = [[first_in_seat0, ~first_in_seat0], [~first_in_seat0, first_in_seat0]]
        indices = (unit.first, unit.second)
        self_play = unit.first == unit.second
        policies = [self.players[index].policy(unit_seed(self.config.seed, unit.first, unit.second, unit.start, role))
                    for role, index in enumerate(indices[:1] if self_play else indices)]
        failed = torch.zeros(2, unit.count, dtype=torch.bool, device=device)  # [role, copy]
        errors: list[str | None] = [None, None]

        def forfeit(role: int, copies: Tensor | bool, message: str) -> None:
            for r in ((0, 1) if self_play else (role,)):
                failed[r] |= copies
                if errors[r] is None:
                    errors[r] = f"{self.names[indices[r]]}: {message}"

        returns = torch.zeros(2, unit.count, dtype=torch.float64, device=device)  # [seat, copy]
        running = torch.ones(unit.count, dtype=torch.bool, device=device)
        observations, _ = game.reset(seed=self.config.seed, options={"streams": streams})
        limit = self.config.move_time_limit
        while bool(running.any()):
            chosen: list[Any] = []
            for role, policy in enumerate(policies):
                try:
                    chosen.append(timed_call(limit, policy, game, observations))
                except Exception as error:  # noqa: BLE001 - the player's code raised or ran out of time
                    chosen.append(None)
                    forfeit(role, True, describe(error))
            if any(actions is None for actions in chosen):
                break
            if self_play:
                chosen = chosen * 2
            joint = {}
            for seat, team in enumerate(self.teams):
                for agent in team:
                    combined = None
                    for role in range(2):
                        try:
                            if not isinstance(chosen[role], dict) or agent not in chosen[role]:
                                raise KeyError(f"returned no action for {agent}")
                            actions, legal = self._checked(game, agent, chosen[role][agent])
                        except Exception as error:  # noqa: BLE001 - the player's code: a forfeit
                            forfeit(role, True, describe(error))
                            continue
                        illegal = plays[role][seat] & ~legal & running
                        if bool(illegal.any()):
                            copy = int(illegal.nonzero()[0])
                            forfeit(role, illegal, f"illegal action {actions[copy].tolist()} for {agent} "
                                                   f"(action space {game.action_space(agent)})")
                        use = plays[role][seat] & legal
                        use = use[:, None] if actions.dim() == 2 else use
                        fill = torch.full_like(actions, game.action_low) if game.continuous else torch.zeros_like(actions)
                        mine = torch.where(use, actions, fill)
                        combined = mine if combined is None else torch.where(use, actions, combined)
                    if combined is None:
                        break
                    joint[agent] = combined
            if len(joint) != game.num_agents:
                break
            observations, rewards, terminated, truncated, _ = game.step(joint)
            for seat, team in enumerate(self.teams):
                reward = torch.stack([rewards[agent] for agent in team]).to(torch.float64).mean(0)
                returns[seat] += torch.where(running, reward, torch.zeros_like(reward))
            for agent in game.possible_agents:
                running &= ~(terminated[agent] | truncated[agent])
        seconds = (time.perf_counter() - started) / unit.count
        payoff_first = torch.where(first_in_seat0, returns[0], returns[1]).cpu().tolist()
        payoff_second = torch.where(first_in_seat0, returns[1], returns[0]).cpu().tolist()
        failed = failed.cpu().tolist()
        seating = seating.cpu().tolist()
        rows = []
        for copy in range(unit.count):
            code = _forfeit_code(failed[0][copy], failed[1][copy])
            error = "; ".join(errors[r] for r in range(2) if failed[r][copy] and errors[r]) or None
            rows.append(MatchRow(unit.first, unit.second, unit.start + copy, seating[copy],
                                 None if code else payoff_first[copy], None if code else payoff_second[copy], None,
                                 code, error, seconds))
        return rows


# --------------------------------------------------------------------------------------


def build_arena(config: TournamentConfig) -> Arena:
    """The arena of ``config.game``: a Markov-game scenario (or ``pettingzoo:MODULE``), else a game ``gamelab solve`` loads."""
    import scenarios
    from games.extensive_form import ExtensiveFormGame
    from games.loading import load_game

    if config.game in scenarios.names() or config.game.startswith("pettingzoo:"):
        return MarkovArena(config, config.game)
    if config.settings:
        raise TournamentConfigError(f"{config.game}: settings apply to Markov-game scenarios only")
    game = load_game(config.game, dtype=torch.float64)
    if isinstance(game, ExtensiveFormGame):
        spiel_game = None
        if not config.game.endswith(".efg"):
            import pyspiel

            from games.adapters.openspiel import load_openspiel_game

            spiel_game = load_openspiel_game(config.game)
            if spiel_game.get_type().dynamics == pyspiel.GameType.Dynamics.SIMULTANEOUS:
                spiel_game = pyspiel.convert_to_turn_based(spiel_game)
        return TreeArena(config, game, spiel_game)
    if getattr(game, "batched", False):
        raise GamelabError(f"{config.game}: a batch of games cannot host a tournament")
    return MatrixArena(config, game)


__all__ = [
    "Arena",
    "MarkovArena",
    "MatchRow",
    "MatrixArena",
    "MoveTimeout",
    "TreeArena",
    "Unit",
    "build_arena",
    "describe",
    "team_of",
    "timed_call",
    "unit_seed",
]
