"""Where tournament matches are played: one arena per kind of game.

An arena holds the game and its players and plays a ``Unit`` (``marl.tournaments.rows``): a block of matches
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
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from games.errors import GamelabError
from marl.errors import TournamentConfigError
from marl.tournaments.config import TournamentConfig
from marl.tournaments.players import MatrixPlayer, PolicyPlayer, TreePlayer
from marl.tournaments.rows import FIRST_FORFEITS, NO_FORFEIT, SECOND_FORFEITS, MatchRow, Unit, forfeit_code

Tensor = torch.Tensor

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
        # Seeds name the players by a hash of their names, not their places in the config, so a
        # pair plays the same matches whoever else is in the tournament.
        self.keys = [zlib.crc32(name.encode()) for name in self.names]
        self.seat_swap = True

    def pair_key(self, unit: Unit) -> tuple[int, int]:
        """The two players of ``unit`` as seed parts."""
        return self.keys[unit.first], self.keys[unit.second]

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
            forfeit = forfeit_code(strategies[0] is None, strategies[1] is None)
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
            code = forfeit_code(*failed)
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
        agents = [self.players[index].agent(unit_seed(seed, *self.pair_key(unit), unit.start, role), strategies[role])
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
            choices = np.random.default_rng([seed, *self.pair_key(unit), match])
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


class _Stop(Exception):
    """A player failed in every copy at once (its call raised, or no action was usable): stop the episode."""


class _Match:
    """Both players of a unit as one policy of the whole batched game, recording forfeits.

    Copy ``c`` of the game is match ``start + c``. At every step both players' policies
    see every copy's observations; each agent's action in copy ``c`` is taken from the
    player seated on that agent's team in ``c``. A player whose call raises, runs out of
    time or returns a malformed value forfeits every copy; one that plays an illegal
    action forfeits the copies where it did (a legal filler is played there instead).
    Actions in copies whose episode already ended do not count.
    """

    def __init__(self, arena: MarkovArena, game: Any, unit: Unit, first_in_seat0: Tensor) -> None:
        self.arena = arena
        self.teams = arena.teams
        self.limit = arena.config.move_time_limit
        indices = (unit.first, unit.second)
        self.self_play = unit.first == unit.second
        self.names = [arena.names[index] for index in indices]
        self.policies = [arena.players[index].policy(unit_seed(arena.config.seed, *arena.pair_key(unit), unit.start, role))
                         for role, index in enumerate(indices[:1] if self.self_play else indices)]
        # plays[role][seat]: (B,) bool, the copies where player `role` (0 first, 1 second) sits in `seat`.
        self.plays = [[first_in_seat0, ~first_in_seat0], [~first_in_seat0, first_in_seat0]]
        self.failed = torch.zeros(2, unit.count, dtype=torch.bool, device=game.device)  # [role, copy]
        self.errors: list[str | None] = [None, None]
        self.running = torch.ones(unit.count, dtype=torch.bool, device=game.device)

    def forfeit(self, role: int, copies: Tensor | bool, message: str) -> None:
        """``role`` forfeits ``copies`` (in self-play, both roles are the one player)."""
        for forfeiting in ((0, 1) if self.self_play else (role,)):
            self.failed[forfeiting] |= copies
            if self.errors[forfeiting] is None:
                self.errors[forfeiting] = f"{self.names[forfeiting]}: {message}"

    def after_step(self, running: Tensor, infos: dict[str, Any]) -> None:
        self.running = running

    def __call__(self, game: Any, observations: dict[str, Tensor]) -> dict[str, Tensor]:
        chosen: list[Any] = []
        for role, policy in enumerate(self.policies):
            try:
                chosen.append(timed_call(self.limit, policy, game, observations))
            except Exception as error:  # noqa: BLE001 - the player's code raised or ran out of time
                chosen.append(None)
                self.forfeit(role, True, describe(error))
        if any(actions is None for actions in chosen):
            raise _Stop
        if self.self_play:
            chosen = chosen * 2
        return {agent: self._joint_action(game, seat, agent, chosen)
                for seat, team in enumerate(self.teams) for agent in team}

    def _joint_action(self, game: Any, seat: int, agent: str, chosen: list[Any]) -> Tensor:
        """``(B,)`` or ``(B, A)``: in each copy, the action of the player seated on ``agent``'s team."""
        combined = None
        for role in range(2):
            try:
                if not isinstance(chosen[role], dict) or agent not in chosen[role]:
                    raise KeyError(f"returned no action for {agent}")
                actions, legal = self.arena.checked_actions(game, agent, chosen[role][agent])
            except Exception as error:  # noqa: BLE001 - the player's code: a forfeit
                self.forfeit(role, True, describe(error))
                continue
            plays = self.plays[role][seat]
            illegal = plays & ~legal & self.running
            if bool(illegal.any()):
                copy = int(illegal.nonzero()[0])
                self.forfeit(role, illegal, f"illegal action {actions[copy].tolist()} for {agent} "
                                            f"(action space {game.action_space(agent)})")
            use = plays & legal
            use = use[:, None] if actions.dim() == 2 else use
            fill = torch.full_like(actions, game.action_low) if game.continuous else torch.zeros_like(actions)
            combined = torch.where(use, actions, fill if combined is None else combined)
        if combined is None:
            raise _Stop
        return combined


class MarkovArena(Arena):
    """Two-team Markov games: every match of a unit is one copy of one batched game.

    The teams (seats) are the agents' roles (``games.markov.agent_role``) in order of
    appearance (``adversary_*`` then ``agent_*`` in ``tag``). A match's payoff for a player
    is its team's episode return per agent (the sum over steps of the team's mean reward,
    ``games.policy.team_returns``).
    """

    kind = "markov"
    score_groups = True  # the teams' returns are on different scales: compare seat-swapped pairs

    def __init__(self, config: TournamentConfig, game_name: str) -> None:
        from games.markov import teams as teams_by_role
        from marl.envs import make_game

        super().__init__(config)
        if config.evaluation == "exact":
            raise TournamentConfigError(f"{game_name}: Markov games are played, not evaluated exactly; remove "
                                        "evaluation: exact")
        self.game_name = game_name
        self.device = torch.device(config.device)
        probe = make_game(game_name, 1, device=self.device, seed=config.seed, settings=config.settings)
        teams = teams_by_role(probe.possible_agents)
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
            game.validate_actions = False  # _Match checks every action and replaces illegal ones
            self._games[copies] = game
        return self._games[copies]

    @staticmethod
    def checked_actions(game: Any, agent: str, actions: Any) -> tuple[Tensor, Tensor]:
        """``(actions, legal)``: ``agent``'s actions in the game's dtype and ``(B,)`` bool legality.

        Raises for a malformed value (not a tensor, wrong shape or kind): the whole call forfeits.
        """
        if not isinstance(actions, Tensor):
            raise TypeError(f"the action of {agent} is {type(actions).__name__}, not a tensor")
        size = game.action_size(agent)
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
        """Plays the unit's matches as the copies of one batched game.

        1. seat the players: with seat swapping, ``first`` takes seat ``k mod 2`` in match ``k``,
           and matches ``2g`` and ``2g + 1`` share random stream ``g`` (the same deal);
        2. play one episode of every copy with both players as one policy (:class:`_Match`);
        3. turn the teams' returns into each player's payoff, and forfeits into rows.
        """
        from games.policy import team_returns

        started = time.perf_counter()
        game = self._game(unit.count)
        matches = torch.arange(unit.start, unit.start + unit.count, device=game.device)
        seating = matches % 2 if self.seat_swap else torch.zeros_like(matches)
        streams = matches // 2 if self.seat_swap else matches
        first_in_seat0 = seating == 0
        match = _Match(self, game, unit, first_in_seat0)
        returns = None  # (2, B): [seat, copy]
        try:
            returns = team_returns(match, game, self.config.seed, self.teams, options={"streams": streams},
                                   after_step=match.after_step)
        except _Stop:
            pass  # a player failed in every copy: every match is forfeited, and no return is read
        seconds = (time.perf_counter() - started) / unit.count
        failed = match.failed.cpu().tolist()
        payoffs: list[list[float | None]] = [[None] * unit.count, [None] * unit.count]
        if returns is not None:
            payoffs = [torch.where(first_in_seat0, returns[0], returns[1]).cpu().tolist(),
                       torch.where(first_in_seat0, returns[1], returns[0]).cpu().tolist()]
        rows = []
        for copy, seat in enumerate(seating.cpu().tolist()):
            code = forfeit_code(failed[0][copy], failed[1][copy])
            error = "; ".join(match.errors[r] for r in range(2) if failed[r][copy] and match.errors[r]) or None
            rows.append(MatchRow(unit.first, unit.second, unit.start + copy, seat,
                                 None if code else payoffs[0][copy], None if code else payoffs[1][copy], None,
                                 code, error, seconds))
        return rows


# --------------------------------------------------------------------------------------


def build_arena(config: TournamentConfig) -> Arena:
    """The arena of ``config.game``: a Markov-game scenario (or ``pettingzoo:MODULE``), else a game ``gamelab solve`` loads."""
    from games.extensive_form import ExtensiveFormGame
    from games.loading import load_game
    from marl.envs import is_markov_game

    if is_markov_game(config.game):
        return MarkovArena(config, config.game)
    if config.settings:
        raise TournamentConfigError(f"{config.game}: settings apply to Markov-game scenarios only")
    game = load_game(config.game, dtype=torch.float64)
    if isinstance(game, ExtensiveFormGame):
        spiel_game = None
        if not config.game.endswith(".efg"):
            from games.adapters.openspiel import load_turn_based

            spiel_game = load_turn_based(config.game)
        return TreeArena(config, game, spiel_game)
    if getattr(game, "batched", False):
        raise GamelabError(f"{config.game}: a batch of games cannot host a tournament")
    return MatrixArena(config, game)


__all__ = [
    "Arena",
    "MarkovArena",
    "MatrixArena",
    "MoveTimeout",
    "TreeArena",
    "build_arena",
    "describe",
    "timed_call",
    "unit_seed",
]
