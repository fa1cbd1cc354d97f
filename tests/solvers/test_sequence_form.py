"""The packed sequence form (Treeplex) against walks over the infosets written out in Python."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from games.adapters.openspiel import extensive_form_from_openspiel
from games.efg import read_efg
from solvers import sequence_form
from solvers.cfr import regret_matching
from tests.conftest import gambit_files
from tests.games.test_efg import IMPERFECT_RECALL
from tests.games.test_extensive_form import random_strategy

GAMES = {name: extensive_form_from_openspiel(name) for name in
         ["kuhn_poker", "leduc_poker", "kuhn_poker(players=3)", "goofspiel(num_cards=3)"]}
GAMES.update({path.name: read_efg(path) for path in gambit_files(".efg") if path.name not in IMPERFECT_RECALL})


def walked_plans(game, strategy):
    """Realization plans by a walk over infosets, parents before children (levels ascend)."""
    plans = torch.zeros_like(strategy)
    for infoset in sorted(range(game.num_infosets), key=lambda i: int(game.infoset_level[i])):
        parent = int(game.infoset_parent[infoset])
        above = 1.0 if parent < 0 else plans[parent, int(game.infoset_parent_slot[infoset])]
        plans[infoset] = above * strategy[infoset]
    return plans


@pytest.mark.parametrize("name", sorted(GAMES))
def test_treeplexes_partition_the_legal_sequences(name):
    game = GAMES[name]
    treeplexes = sequence_form.treeplexes(game)
    indices = torch.cat([treeplex.sequence_index for treeplex in treeplexes])
    assert torch.equal(indices.sort().values, game.legal_mask.reshape(-1).nonzero().flatten())
    rows = torch.arange(game.legal_mask.numel(), dtype=game.dtype).view_as(game.legal_mask) * game.legal_mask
    for player, treeplex in enumerate(treeplexes):
        assert bool((game.infoset_player[treeplex.infosets] == player).all())
        packed = treeplex.pack(rows)
        assert torch.equal(treeplex.pack(treeplex.unpack_into(torch.zeros_like(rows), packed)), packed)
        runs = treeplex.sequence_infoset
        assert bool((runs[1:] >= runs[:-1]).all())  # each infoset's sequences are one run
        assert torch.equal(treeplex.segment_sums(torch.ones(treeplex.size, dtype=game.dtype)),
                           game.legal_mask[treeplex.infosets].sum(-1).to(game.dtype))


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(GAMES)), seed=st.integers(0, 2**31 - 1))
def test_realization_plans_and_on_policy_values_equal_a_walk(name, seed):
    game = GAMES[name]
    strategy = random_strategy(game, seed)
    plans = walked_plans(game, strategy)
    torch.testing.assert_close(sequence_form.realization_plans(game, strategy), plans, rtol=0, atol=1e-14)
    # Each terminal's probability from the walked plans, and each player's payoff from it.
    flat = torch.cat([plans.reshape(-1), torch.ones(1, dtype=game.dtype)])
    own = flat[sequence_form.layout(game).terminal_last_flat]
    payoffs = (game.terminal_chance * own.prod(0)) @ game.terminal_utilities
    own_reach = sequence_form.terminal_own_reach(game, sequence_form.flat_realization_plans(game, strategy))
    for player in range(game.num_players):
        values, infoset_values, root = sequence_form.counterfactual_values(game, strategy, player, own_reach)
        torch.testing.assert_close(root, payoffs[player], rtol=1e-12, atol=1e-12)
        mine = game.infoset_player == player
        torch.testing.assert_close(infoset_values[mine], (strategy * values).sum(-1)[mine], rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(GAMES)), seed=st.integers(0, 2**31 - 1))
def test_regret_matching_equals_rows_normalized(name, seed):
    game = GAMES[name]
    generator = torch.Generator().manual_seed(seed)
    regrets = torch.randn(game.num_infosets, game.max_actions, generator=generator, dtype=game.dtype)
    regrets[torch.rand(game.num_infosets, generator=generator) < 0.3] = -1.0  # some rows with no positive regret
    positive = regrets.clamp_min(0) * game.legal_mask
    total = positive.sum(-1, keepdim=True)
    expected = torch.where(total > 0, positive / total, game.uniform_strategy())
    for player, treeplex in enumerate(sequence_form.treeplexes(game)):
        matched = regret_matching(treeplex, treeplex.pack(regrets))
        mine = game.infoset_player == player
        ours = treeplex.unpack_into(torch.zeros_like(regrets), matched)
        torch.testing.assert_close(ours[mine], expected[mine], rtol=0, atol=1e-15)


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(sorted(GAMES)), seed=st.integers(0, 2**31 - 1))
def test_batched_plans_and_folds_equal_one_strategy_at_a_time(name, seed):
    game = GAMES[name]
    strategies = [random_strategy(game, seed + k) for k in range(3)]
    for player, treeplex in enumerate(sequence_form.treeplexes(game)):
        packed = torch.stack([treeplex.pack(strategy) for strategy in strategies], dim=1)  # (size, K)
        plans = treeplex.realization_plan(packed)
        weights = torch.stack([game.terminal_chance * game.terminal_utilities[:, player] * (k + 1.0)
                               for k in range(3)], dim=1)  # (T, K)
        values, infoset_values = treeplex.fold(treeplex.terminal_sums(weights), packed)
        for k, strategy in enumerate(strategies):
            assert torch.allclose(plans[:, k], treeplex.realization_plan(treeplex.pack(strategy)))
            alone, alone_infosets = treeplex.fold(treeplex.terminal_sums(weights[:, k]), treeplex.pack(strategy))
            assert torch.allclose(values[:, k], alone) and torch.allclose(infoset_values[:, k], alone_infosets)
