"""The tournament configuration: a YAML file, validated field by field.

A tournament file reads like this (``examples/*_tournament.yaml`` are complete ones)::

    name: kuhn                 # optional; default: the file name without .yaml
    game: kuhn_poker           # anything `gamelab solve` takes, or a scenario (`gamelab scenarios`)
    evaluation: exact          # exact | sampled (default: exact when every player is tabular)
    matches_per_pair: 1000     # sampled play only
    seed: 0
    players:
      - {name: cfr+100, kind: solver, solver: cfr+, iterations: 100}
      - {name: random, kind: uniform}
      - {name: always-bet, kind: pure, action: last}

Every wrong field raises :class:`TournamentConfigError` naming the file, the line and the
field's path (``players[2].kind``).

A config is data that people share, so it cannot make gamelab run code or read files
elsewhere on the machine:

- a player's ``path:`` is relative and stays inside the folder of the YAML file (or a
  folder below it): a config and its strategy files travel together, and an absolute
  path, a ``..`` that climbs out, or a link that leads out is refused;
- ``callable`` players import and run Python code named in the file, so they load only
  when the user allows it (``gamelab tournament --allow-code``, or
  ``load_config(..., allow_code=True)``); with ``arguments``, the named function must be
  marked as a policy factory (``games.policy.policy_factory``), and nothing else is
  called with arguments taken from the file. Scenarios' own scripted policies need no
  code from the file: use ``kind: scripted``.

Player kinds (which games take them):

- ``uniform`` (all): uniform random play.
- ``mixed`` (normal-form): ``strategy: [p, ...]``, or one list per seat ``[[...], [...]]``.
- ``pure`` (normal-form, extensive-form): ``action:`` an action index or name
  (normal-form), or ``first`` / ``last``, always the first or last legal action
  (extensive-form).
- ``solver`` (normal-form, extensive-form): ``solver:`` a ``gamelab solvers`` name
  (default ``auto``) and ``iterations:``; the strategy is computed once when the
  tournament starts.
- ``strategy`` (normal-form, extensive-form): ``path:`` a JSON file from
  ``gamelab solve --out``.
- ``psro`` (all but OpenSpiel-only play): ``path:`` the ``state.pt`` of a ``gamelab psro
  --out`` run of the same game (and settings); the player is its populations' meta-strategy
  mixtures (for a JPSRO run, ``ce``/``cce``, the marginals of its joint meta-strategy: a
  tournament seat plays independently; on a Markov game, each team's member is drawn from
  its mixture per match). With ``member: K`` the player is instead the K-th member of
  every population (0 is uniform random play, K the K-th iteration's best responses), so
  each generation of a run can be a player of its own.
- ``neupl`` (normal-form, extensive-form, Markov): ``path:`` the ``state.pt`` of a ``gamelab
  neupl --out`` run of the same game (and settings); the player is the meta-Nash mixture of
  its population (on a tree, one behavioural strategy whose realization plan on each seat is
  the mixture of the policies'; on a Markov game, a policy drawn from the mixture per match),
  or with ``policy: K`` its policy K (the network conditioned on row K of Sigma), or with
  ``mixture: [w_0, ..., w_N-1]`` that mixture of its policies.
- ``mcts`` (OpenSpiel extensive-form games, sampled play): OpenSpiel's MCTS bot on
  perfect-information games, its information-set MCTS bot otherwise; ``simulations``
  (default 100), ``rollouts`` (1), ``uct_c`` (2.0).
- ``checkpoint`` (Markov games): ``path:`` a ``policy.pt`` or ``checkpoint.pt`` from
  ``gamelab train``.
- ``scripted`` (Markov games): the scenario's scripted policy (``scenarios.SCRIPTED``:
  pursuit for ``tag``, the landmark assignment for ``spread``, goal seeking for
  ``navigation``), with ``arguments: {...}`` its numeric settings (``lead``, ``margin``).
- ``callable`` (all, with ``--allow-code``): ``callable: module:attribute``. With
  ``arguments: {...}`` the attribute is a policy factory called with them, which returns the player. A normal-form
  player is ``f(game, seat) -> probabilities (A_seat,)``, an extensive-form one
  ``f(game) -> strategy (num_infosets, max_actions)``, a Markov-game one
  ``f(game, observations) -> actions`` (the policy protocol of ``games.policy``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from games.errors import GamelabError, did_you_mean
from marl.errors import TournamentConfigError

PLAYER_KINDS = ("uniform", "mixed", "pure", "solver", "strategy", "psro", "neupl", "mcts", "checkpoint", "scripted",
                "callable")
PLAYER_FIELDS = {
    "uniform": (),
    "mixed": ("strategy",),
    "pure": ("action",),
    "solver": ("solver", "iterations"),
    "strategy": ("path",),
    "psro": ("path", "member"),
    "neupl": ("path", "policy", "mixture"),
    "mcts": ("simulations", "rollouts", "uct_c"),
    "checkpoint": ("path",),
    "scripted": ("arguments",),
    "callable": ("callable", "arguments"),
}
REQUIRED_FIELDS = {"mixed": ("strategy",), "pure": ("action",), "strategy": ("path",), "psro": ("path",),
                   "neupl": ("path",),
                   "checkpoint": ("path",),
                   "callable": ("callable",)}
TOURNAMENT_FIELDS = ("name", "game", "settings", "evaluation", "matches_per_pair", "seat_swap", "seed", "batch_size",
                     "move_time_limit", "forfeit_payoffs", "device", "alpha_rank", "players")


@dataclass(frozen=True)
class PlayerConfig:
    """One player of the tournament."""

    name: str
    """Unique name, shown in tables."""
    kind: str
    """One of ``PLAYER_KINDS``."""
    options: dict[str, Any]
    """The kind's fields (``strategy``, ``path``, ``solver``, ...), validated for their types."""
    where: str = ""
    """``FILE:LINE: players[i]``, for error messages."""


@dataclass(frozen=True)
class TournamentConfig:
    """A validated tournament file. See the module docstring for the format."""

    name: str
    """The tournament's name (the report's title)."""
    game: str
    """The game: a ``gamelab solve`` game specification or a Markov-game scenario name."""
    players: tuple[PlayerConfig, ...]
    """At least two players with distinct names."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Scenario settings of a Markov game (``gamelab scenarios`` lists them)."""
    evaluation: str | None = None
    """``exact`` (expected payoffs, normal-form and extensive-form games with tabular
    players) or ``sampled`` (played matches); ``None`` picks exact where it can."""
    matches_per_pair: int = 100
    """Sampled matches between every pair of players (self-play included)."""
    seat_swap: bool | None = None
    """Alternate the players' seats; ``None``: swap unless the game is symmetric."""
    seed: int = 0
    """Seeds every match: the same seed gives the same table."""
    batch_size: int = 1000
    """Sampled matches played together (one batch of a Markov game, one row commit)."""
    move_time_limit: float = 60.0
    """Seconds a player may take for one move (one batched call); slower ones forfeit."""
    forfeit_payoffs: tuple[float, float] | None = None
    """``(loser, winner)`` payoffs of a forfeited match; by default the loser gets its
    seat's worst payoff and the winner its seat's best (see ``marl.tournament``)."""
    device: str = "cpu"
    """Torch device of Markov games and networks."""
    alpha_rank: dict[str, Any] = field(default_factory=dict)
    """Options of alpha-rank: ``alpha`` (default 100), ``population_size`` (50)."""
    folder: str = "."
    """The folder of the YAML file; relative player paths are read from it."""

    def resolve(self, path: str) -> str:
        """A player's file path inside the config's folder.

        Raises:
            TournamentConfigError: for an absolute path, or one that leads (through ``..`` or a
                link) out of the config's folder.
        """
        if os.path.isabs(path):
            raise TournamentConfigError(f"{path}: a config names files relative to its own folder, not absolute paths")
        folder = os.path.realpath(self.folder)
        resolved = os.path.realpath(os.path.join(folder, path))
        if os.path.commonpath([folder, resolved]) != folder:
            raise TournamentConfigError(f"{path}: leads out of the config's folder {folder}; put the file in that "
                                        "folder or one below it")
        return resolved


def _line_index(root: Any) -> dict[tuple, int]:
    """``{path: line}`` for every node of the composed YAML document (1-based lines).

    ``root`` comes from ``games.io.read_yaml``, which bounds its size with aliases expanded.
    """
    import yaml

    lines: dict[tuple, int] = {}

    def walk(node: Any, path: tuple) -> None:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                walk(value, (*path, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, index))

    if root is not None:
        walk(root, ())
    return lines


def _path_text(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


class _Checker:
    """Raises errors that name the file, the line and the field."""

    def __init__(self, source: str, lines: dict[tuple, int]) -> None:
        self.source = source
        self.lines = lines

    def where(self, path: tuple) -> str:
        probe = path
        while probe and probe not in self.lines:
            probe = probe[:-1]
        line = self.lines.get(probe)
        return f"{self.source}:{line}" if line is not None else self.source

    def fail(self, path: tuple, message: str) -> TournamentConfigError:
        return TournamentConfigError(f"{self.where(path)}: {_path_text(path)}: {message}")

    def mapping(self, value: Any, path: tuple, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping of fields, got {type(value).__name__}")
        for key in value:
            if not isinstance(key, str) or key not in allowed:
                raise self.fail((*path, key), f"unknown field{did_you_mean(key, allowed)}; the fields are {', '.join(allowed)}")
        return value

    def integer(self, value: Any, path: tuple, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected a whole number, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.fail(path, f"must be at least {minimum}, got {value}")
        return value

    def number(self, value: Any, path: tuple, positive: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(path, f"expected a finite number, got {value!r}")
        if positive and value <= 0:
            raise self.fail(path, f"must be positive, got {value}")
        return float(value)

    def string(self, value: Any, path: tuple) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, f"expected a non-empty string, got {value!r}")
        return value


def _probabilities(check: _Checker, value: Any, path: tuple) -> list:
    """A list of numbers, or a list of such lists (one per seat)."""
    if not isinstance(value, list) or not value:
        raise check.fail(path, "expected a list of probabilities, or one list per seat")
    if all(isinstance(item, list) for item in value):
        return [_probabilities(check, item, (*path, index)) for index, item in enumerate(value)]
    for index, item in enumerate(value):
        if check.number(item, (*path, index)) < 0:
            raise check.fail((*path, index), f"probabilities must be >= 0, got {item}")
    if abs(sum(value) - 1.0) > 1e-6:
        raise check.fail(path, f"probabilities must sum to 1, they sum to {sum(value):.6g}")
    return [float(item) for item in value]


def _player(check: _Checker, value: Any, path: tuple, allow_code: bool) -> PlayerConfig:
    if not isinstance(value, dict):
        raise check.fail(path, f"expected a player mapping with name and kind, got {type(value).__name__}")
    if "kind" not in value:
        raise check.fail(path, f"missing field kind (one of {', '.join(PLAYER_KINDS)})")
    kind = value["kind"]
    if kind not in PLAYER_KINDS:
        raise check.fail((*path, "kind"),
                         f"unknown player kind {kind!r}{did_you_mean(kind, PLAYER_KINDS)}; known: {', '.join(PLAYER_KINDS)}")
    check.mapping(value, path, ("name", "kind", *PLAYER_FIELDS[kind]))
    if "name" not in value:
        raise check.fail(path, "missing field name")
    name = check.string(value["name"], (*path, "name"))
    for required in REQUIRED_FIELDS.get(kind, ()):
        if required not in value:
            raise check.fail(path, f"a {kind} player needs the field {required}")
    if kind == "neupl" and "policy" in value and "mixture" in value:
        raise check.fail(path, "a neupl player is one policy or one mixture: give policy or mixture, not both")
    if kind == "callable" and not allow_code:
        raise check.fail((*path, "callable"),
                         f"player {name!r} runs Python code named in the config ({value['callable']!r}); "
                         "gamelab runs code from a config only with --allow-code")
    options: dict[str, Any] = {}
    for key in PLAYER_FIELDS[kind]:
        if key not in value:
            continue
        item, here = value[key], (*path, key)
        if key == "strategy":
            options[key] = _probabilities(check, item, here)
        elif key == "action":
            if isinstance(item, bool) or not isinstance(item, (int, str)):
                raise check.fail(here, f"expected an action index or name, got {item!r}")
            options[key] = item
        elif key == "path":
            text = check.string(item, here)
            if os.path.isabs(text) or os.path.normpath(text).split(os.sep)[0] == "..":
                raise check.fail(here, f"{text!r} is outside the config's folder; a config names files in its "
                                       "own folder or below it")
            options[key] = text
        elif key == "solver":
            options[key] = check.string(item, here)
        elif key == "callable":
            text = check.string(item, here)
            if text.count(":") != 1 or not all(text.split(":")):
                raise check.fail(here, f"expected module:attribute, got {text!r}")
            options[key] = text
        elif key == "arguments":
            if not isinstance(item, dict) or not all(isinstance(k, str) for k in item):
                raise check.fail(here, "expected a mapping of keyword arguments")
            if kind == "scripted":
                item = {k: check.number(v, (*here, k)) for k, v in item.items()}
            options[key] = dict(item)
        elif key in ("member", "policy"):
            options[key] = check.integer(item, here, minimum=0)
        elif key == "mixture":
            if not isinstance(item, list) or not item or any(isinstance(part, list) for part in item):
                raise check.fail(here, "expected one list of probabilities, a weight per policy of the population")
            options[key] = _probabilities(check, item, here)
        elif key in ("iterations", "simulations", "rollouts"):
            options[key] = check.integer(item, here, minimum=1)
        elif key == "uct_c":
            options[key] = check.number(item, here, positive=True)
    return PlayerConfig(name=name, kind=kind, options=options, where=check.where(path))


def parse_config(data: Any, source: str = "<config>", lines: dict[tuple, int] | None = None,
                 folder: str = ".", *, allow_code: bool = False) -> TournamentConfig:
    """Validates a tournament mapping (what the YAML file holds).

    ``allow_code``: accept ``callable`` players, which import and run Python code named in
    the config (the command line's ``--allow-code``).

    Raises:
        TournamentConfigError: naming the first wrong field.
    """
    check = _Checker(source, lines or {})
    if data is None:
        raise check.fail((), "the file is empty; a tournament needs at least game and players")
    check.mapping(data, (), TOURNAMENT_FIELDS)
    for required in ("game", "players"):
        if required not in data:
            raise check.fail((), f"missing field {required}")
    game = check.string(data["game"], ("game",))
    players_value = data["players"]
    if not isinstance(players_value, list) or len(players_value) < 2:
        raise check.fail(("players",), "expected a list of at least two players")
    players = tuple(_player(check, item, ("players", index), allow_code) for index, item in enumerate(players_value))
    seen: dict[str, int] = {}
    for index, player in enumerate(players):
        if player.name in seen:
            raise check.fail(("players", index, "name"), f"{player.name!r} is also the name of players[{seen[player.name]}]")
        seen[player.name] = index
    stem = os.path.splitext(os.path.basename(source))[0] if source != "<config>" else "tournament"
    fields: dict[str, Any] = {"name": check.string(data.get("name", stem), ("name",)), "game": game,
                              "players": players, "folder": folder}
    if "settings" in data:
        if not isinstance(data["settings"], dict):
            raise check.fail(("settings",), "expected a mapping of scenario settings")
        fields["settings"] = dict(data["settings"])
    if "evaluation" in data:
        if data["evaluation"] not in ("exact", "sampled"):
            raise check.fail(("evaluation",), f"expected exact or sampled, got {data['evaluation']!r}")
        fields["evaluation"] = data["evaluation"]
    if "matches_per_pair" in data:
        fields["matches_per_pair"] = check.integer(data["matches_per_pair"], ("matches_per_pair",), minimum=1)
    if "seat_swap" in data:
        if not isinstance(data["seat_swap"], bool):
            raise check.fail(("seat_swap",), f"expected true or false, got {data['seat_swap']!r}")
        fields["seat_swap"] = data["seat_swap"]
    if "seed" in data:
        fields["seed"] = check.integer(data["seed"], ("seed",), minimum=0)
    if "batch_size" in data:
        fields["batch_size"] = check.integer(data["batch_size"], ("batch_size",), minimum=1)
    if "move_time_limit" in data:
        fields["move_time_limit"] = check.number(data["move_time_limit"], ("move_time_limit",), positive=True)
    if "forfeit_payoffs" in data:
        value = data["forfeit_payoffs"]
        if not isinstance(value, list) or len(value) != 2:
            raise check.fail(("forfeit_payoffs",), "expected [loser payoff, winner payoff]")
        loser, winner = (check.number(item, ("forfeit_payoffs", i)) for i, item in enumerate(value))
        if loser > winner:
            raise check.fail(("forfeit_payoffs",), f"the loser's payoff {loser} exceeds the winner's {winner}")
        fields["forfeit_payoffs"] = (loser, winner)
    if "device" in data:
        from games.devices import parse_device

        device = check.string(data["device"], ("device",))
        try:
            parse_device(device)
        except GamelabError as error:
            raise check.fail(("device",), str(error)) from None
        fields["device"] = device
    if "alpha_rank" in data:
        options = check.mapping(data["alpha_rank"], ("alpha_rank",), ("alpha", "population_size"))
        parsed: dict[str, Any] = {}
        if "alpha" in options:
            parsed["alpha"] = check.number(options["alpha"], ("alpha_rank", "alpha"), positive=True)
        if "population_size" in options:
            parsed["population_size"] = check.integer(options["population_size"], ("alpha_rank", "population_size"),
                                                      minimum=2)
        fields["alpha_rank"] = parsed
    return TournamentConfig(**fields)


def load_config(path: str | os.PathLike, *, allow_code: bool = False) -> TournamentConfig:
    """Reads and validates a tournament YAML file (``allow_code``: see :func:`parse_config`).

    Raises:
        GameFileError: for a missing or unreadable file, YAML that does not parse (with its
            line), or YAML whose aliases or nesting would exhaust the machine (``games.io.read_yaml``).
        TournamentConfigError: for a field that is wrong, naming its line and path.
    """
    from games.io import read_yaml

    source = os.fspath(path)
    data, root = read_yaml(source)
    return parse_config(data, source, _line_index(root), folder=os.path.dirname(os.path.abspath(source)),
                        allow_code=allow_code)


__all__ = ["PLAYER_KINDS", "PlayerConfig", "TournamentConfig", "TournamentConfigError", "load_config", "parse_config"]
