"""OpenSpiel normal-form games as gamelab :class:`NormalFormGame` objects.

Accepted: OpenSpiel ``MatrixGame`` and ``TensorGame`` objects, and any one-shot
simultaneous-move game or game string (``"matrix_rps"``, ``"matrix_pd"``,
``"blotto"``, ...), converted with ``pyspiel.extensive_to_tensor_game``. Sequential
(turn-based) games are extensive-form games and are refused here with a clear error.

``pyspiel`` is imported only inside this module.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from games.errors import GameError, MissingDependencyError, UnknownGameError
from games.normal_form import NormalFormGame

# The most pure profiles a converted game may have before conversion is refused.
MAX_PROFILES = 10_000_000


def _pyspiel():
    try:
        import pyspiel
    except ImportError:  # pragma: no cover - open_spiel is a core dependency
        raise MissingDependencyError("open_spiel", "openspiel", "OpenSpiel games") from None
    return pyspiel


def load_openspiel_game(spec: Any) -> Any:
    """A pyspiel game from a game object or a game string.

    Raises:
        UnknownGameError: no OpenSpiel game of that name is registered, or OpenSpiel
            refuses its parameters.
    """
    pyspiel = _pyspiel()
    if not isinstance(spec, str):
        return spec
    if spec.split("(")[0] not in pyspiel.registered_names():
        raise UnknownGameError(f"OpenSpiel cannot load {spec!r}: no game of that name is registered")
    try:
        return pyspiel.load_game(spec)
    except pyspiel.SpielError as error:
        raise UnknownGameError(f"OpenSpiel cannot load {spec!r}: {error}") from None


def load_turn_based(spec: Any) -> Any:
    """A pyspiel game (object or string) whose players move one at a time.

    Simultaneous-move games go through OpenSpiel's turn-based transform
    (``pyspiel.convert_to_turn_based``); sequential games are returned as they are. The
    compiled tree (:func:`extensive_form_from_openspiel`) and sampled tournament play both
    walk this game, so their histories agree.
    """
    pyspiel = _pyspiel()
    game = load_openspiel_game(spec)
    if game.get_type().dynamics == pyspiel.GameType.Dynamics.SIMULTANEOUS:
        game = pyspiel.convert_to_turn_based(game)
    return game


def registered_games() -> list[dict[str, Any]]:
    """Every OpenSpiel game that loads with its default parameters, as gamelab can take it.

    Each row: ``name``, ``kind`` (``normal-form`` for one-shot simultaneous games,
    ``sequential``, or ``simultaneous`` for multi-step simultaneous games, which gamelab
    turns into sequential ones), ``information`` (perfect or imperfect), ``players``,
    ``max_length`` (the longest play) and ``actions`` (distinct actions): a rough size, the
    tree having at most about ``(actions + chance outcomes) ** max_length`` histories.
    OpenSpiel's messages for games that need parameters are silenced.
    """
    import contextlib
    import os

    pyspiel = _pyspiel()
    rows = []
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
            os.dup2(devnull.fileno(), 2)  # OpenSpiel's C++ writes its exceptions to the process's stderr
            for game_type in pyspiel.registered_games():
                try:
                    game = pyspiel.load_game(game_type.short_name)
                except Exception:  # noqa: BLE001 - games that need parameters, or files, do not load bare
                    continue
                one_shot = is_openspiel_normal_form(game)
                simultaneous = game_type.dynamics == pyspiel.GameType.Dynamics.SIMULTANEOUS
                rows.append({
                    "name": game_type.short_name,
                    "kind": "normal-form" if one_shot else ("simultaneous" if simultaneous else "sequential"),
                    "information": "perfect" if game_type.information == pyspiel.GameType.Information.PERFECT_INFORMATION
                    else "imperfect",
                    "players": game.num_players(),
                    "max_length": game.max_game_length(),
                    "actions": game.num_distinct_actions(),
                })
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return rows


def is_openspiel_normal_form(game: Any) -> bool:
    """Whether a pyspiel game is a one-shot simultaneous-move (normal-form) game."""
    pyspiel = _pyspiel()
    if isinstance(game, (pyspiel.MatrixGame, pyspiel.TensorGame)):
        return True
    game_type = game.get_type()
    return game_type.dynamics == pyspiel.GameType.Dynamics.SIMULTANEOUS and game.max_game_length() == 1


def normal_form_from_openspiel(game: Any, **game_kwargs: Any) -> NormalFormGame:
    """Converts an OpenSpiel normal-form game (object or string) to a :class:`NormalFormGame`.

    Raises:
        GameError: for unknown game strings, sequential games, or games too large to tabulate.
    """
    pyspiel = _pyspiel()
    name = game if isinstance(game, str) else game.get_type().short_name
    game = load_openspiel_game(game)
    if not is_openspiel_normal_form(game):
        raise GameError(
            f"OpenSpiel game {name!r} is sequential (turn-based), not a normal-form game; "
            "it is an extensive-form game"
        )
    names = None
    if not isinstance(game, (pyspiel.MatrixGame, pyspiel.TensorGame)):
        num_actions = [game.num_distinct_actions()] * game.num_players()
        if math.prod(num_actions) > MAX_PROFILES:
            raise GameError(f"OpenSpiel game {name!r} has more than {MAX_PROFILES:,} pure profiles")
        # The tensor game's own names describe its states ("Observing player: 0. ..."), not the
        # actions: take the game's names for each player's legal actions, in the tensor's order.
        state = game.new_initial_state()
        names = [[state.action_to_string(p, a) for a in state.legal_actions(p)] for p in range(game.num_players())]
        game = pyspiel.extensive_to_tensor_game(game)
    num_players = game.num_players()
    if isinstance(game, pyspiel.MatrixGame):
        payoffs = np.stack([np.asarray(game.row_utilities()), np.asarray(game.col_utilities())])
        action_names = [
            [game.row_action_name(a) for a in range(game.num_rows())],
            [game.col_action_name(a) for a in range(game.num_cols())],
        ]
    else:
        payoffs = np.stack([np.asarray(game.player_utilities(p)) for p in range(num_players)])
        action_names = [
            [game.action_name(p, a) for a in range(payoffs.shape[1 + p])] for p in range(num_players)
        ]
    if names is not None and [len(row) for row in names] == list(payoffs.shape[1:]):
        action_names = names
    return NormalFormGame(
        payoffs, action_names=action_names, title=f"OpenSpiel {name}", **game_kwargs
    )


PROBES = 200
"""Random root-to-leaf paths of the tree-size estimate that runs before a compile."""
ESTIMATE_MARGIN = 1.0
"""A tree is refused before its walk when its estimated size is this many times what memory holds.
Knuth's estimate is unbiased but, on lopsided trees, more often low than high (liars_dice: 1.6e5
for 294,883), so a tree it passes may still outgrow memory during the walk, and is stopped then."""


def estimate_tree_size(game: Any, probes: int = PROBES, seed: int = 0) -> float:
    """Knuth's estimate of the number of histories of a turn-based OpenSpiel game.

    Knuth, "Estimating the efficiency of backtrack programs" (Mathematics of Computation 29,
    1975): along a uniformly random path from the root, the product of the branching factors
    met so far is an unbiased estimate of the number of nodes at each depth; the mean over
    ``probes`` paths of their sums estimates the tree's size.
    """
    import random

    rng = random.Random(seed)
    total = 0.0
    for _ in range(probes):
        state, width, count = game.new_initial_state(), 1.0, 1.0
        while not state.is_terminal():
            actions = [action for action, _ in state.chance_outcomes()] if state.is_chance_node() else \
                state.legal_actions()
            width *= len(actions)
            count += width
            state = state.child(rng.choice(actions))
        total += count
    return total / probes


def extensive_form_from_openspiel(game: Any, *, max_nodes: int | None = None, progress: Any = None,
                                  **compile_kwargs: Any):
    """Compiles an OpenSpiel game (object or string) into an :class:`ExtensiveFormGame`.

    Sequential games are walked as they are; simultaneous-move games go through
    OpenSpiel's turn-based transform (``pyspiel.convert_to_turn_based``) first. Infosets
    are keyed by ``information_state_string``, so a strategy converts to and from
    OpenSpiel's ``TabularPolicy``. ``compile_kwargs`` (``dtype``, ``device``) place the tensors.

    Before the walk, :func:`estimate_tree_size` refuses a tree clearly larger than memory holds,
    at once, with the estimate and the game's parameters to change; during the walk,
    ``progress(nodes)`` is called every 50,000 nodes.

    Raises:
        GameError: for games that are not finite trees with perfect recall, or trees
            over ``max_nodes`` nodes (by default, what the available memory holds).
    """
    from games.extensive_form import BYTES_PER_NODE, TreeCompiler, default_max_nodes

    pyspiel = _pyspiel()
    game = load_openspiel_game(game)
    name = str(game).removesuffix("()")
    settings = sorted(game.get_parameters())
    game = load_turn_based(game)
    game_type = game.get_type()
    if game_type.dynamics != pyspiel.GameType.Dynamics.SEQUENTIAL:
        raise GameError(f"OpenSpiel game {name!r} is neither sequential nor simultaneous; it cannot be compiled")
    if not game_type.provides_information_state_string:
        raise GameError(f"OpenSpiel game {name!r} provides no information-state strings, so its infosets are unknown")
    limit = default_max_nodes() if max_nodes is None else max_nodes
    estimate = estimate_tree_size(game)
    if estimate > ESTIMATE_MARGIN * limit:
        from games.memory import format_bytes

        parameters = ", ".join(f"{key}=" for key in settings) or "none"
        raise GameError(
            f"OpenSpiel game {name!r} has about {estimate:.2g} histories (estimated from {PROBES} random plays); "
            f"compiling it would need about {format_bytes(estimate * BYTES_PER_NODE)}, and gamelab may use "
            f"{format_bytes(limit * BYTES_PER_NODE)}. Make the game smaller with its parameters ({parameters}), "
            "or raise --max-memory")
    compiler = TreeCompiler(game.num_players(), max_nodes=max_nodes, title=f"OpenSpiel {name}")
    stack = [(game.new_initial_state(), -1, -1)]
    walked = 0
    while stack:
        state, parent, slot = stack.pop()
        walked += 1
        if progress is not None and walked % 50_000 == 0:
            progress(walked)
        if state.is_terminal():
            compiler.terminal(parent, slot, state.returns())
            continue
        if state.is_chance_node():
            outcomes = state.chance_outcomes()
            node = compiler.chance(parent, slot, [p for _, p in outcomes], where=f"at history {state.history()} ")
            children = [(state.child(action), node, s) for s, (action, _) in enumerate(outcomes)]
        else:
            player = state.current_player()
            if player < 0:
                raise GameError(f"OpenSpiel game {name!r} has a node of player {player} that gamelab cannot compile")
            actions = state.legal_actions()
            key = state.information_state_string(player)
            labels = None if (player, key) in compiler.infoset_ids else [state.action_to_string(player, a) for a in actions]
            node = compiler.decision(parent, slot, player, key, actions, labels)
            children = [(state.child(action), node, s) for s, action in enumerate(actions)]
        stack.extend(reversed(children))
    return compiler.compile(**compile_kwargs)


def information_state_tensors(game: Any, spiel_game: Any) -> Any:
    """OpenSpiel's information-state tensor of every infoset of a compiled game, in its infoset order.

    ``spiel_game`` is the OpenSpiel game (object or string) ``game`` was compiled from;
    the tree is walked once more and each infoset's tensor read at its first node (it is
    the same at every node of the infoset). Returns a float tensor ``(num_infosets, d)`` on
    the game's device, or None when the game provides no information-state tensors.

    Raises:
        GameError: when an infoset of ``game`` is not met in ``spiel_game`` (another game).
    """
    import torch

    spiel_game = load_turn_based(load_openspiel_game(spiel_game))
    if not spiel_game.get_type().provides_information_state_tensor:
        return None
    index = {key: infoset for infoset, key in enumerate(game.infoset_keys)}
    rows: list[Any] = [None] * game.num_infosets
    stack = [spiel_game.new_initial_state()]
    while stack:
        state = stack.pop()
        if state.is_terminal():
            continue
        if state.is_chance_node():
            stack.extend(state.child(action) for action, _ in state.chance_outcomes())
            continue
        player = state.current_player()
        infoset = index.get(state.information_state_string(player))
        if infoset is not None and rows[infoset] is None:
            rows[infoset] = state.information_state_tensor(player)
        stack.extend(state.child(action) for action in state.legal_actions())
    missing = [game.infoset_keys[i] for i, row in enumerate(rows) if row is None]
    if missing:
        raise GameError(f"infoset {missing[0]!r} of the compiled game is not in {spiel_game}: it is another game")
    return torch.tensor(rows, dtype=torch.float32, device=game.device)


def strategy_to_tabular_policy(game: Any, strategy: Any, spiel_game: Any) -> Any:
    """A behavioural strategy of a compiled game as an OpenSpiel ``TabularPolicy`` of ``spiel_game``.

    ``spiel_game`` is the (turn-based) pyspiel game ``game`` was compiled from; infosets
    are matched by information-state string and actions by id. Infosets that the
    policy knows and the strategy does not (none, for a compiled game) stay uniform.
    """
    from open_spiel.python import policy as policy_lib

    spiel_game = load_openspiel_game(spiel_game)
    tabular = policy_lib.TabularPolicy(spiel_game)
    values = strategy.detach().to("cpu").double().numpy()
    action_ids = game.infoset_action_ids.cpu().numpy()
    legal = game.legal_mask.cpu().numpy()
    for infoset, key in enumerate(game.infoset_keys):
        row = tabular.state_lookup.get(key)
        if row is None:
            raise GameError(f"OpenSpiel's policy has no infoset {key!r}: the strategy is for another game")
        tabular.action_probability_array[row] = 0.0
        tabular.action_probability_array[row, action_ids[infoset][legal[infoset]]] = values[infoset][legal[infoset]]
    return tabular


def strategy_from_tabular_policy(game: Any, tabular: Any) -> Any:
    """An OpenSpiel ``TabularPolicy`` as a behavioural strategy ``(num_infosets, max_actions)`` of ``game``."""
    import torch

    strategy = torch.zeros(game.num_infosets, game.max_actions, dtype=game.dtype)
    action_ids = game.infoset_action_ids.cpu()
    for infoset, key in enumerate(game.infoset_keys):
        row = tabular.state_lookup.get(key)
        if row is None:
            raise GameError(f"the policy has no infoset {key!r}: it is for another game")
        legal = game.legal_mask[infoset].cpu()
        probabilities = torch.as_tensor(tabular.action_probability_array[row], dtype=game.dtype)
        strategy[infoset, legal] = probabilities[action_ids[infoset][legal]]
    return strategy.to(game.device)
