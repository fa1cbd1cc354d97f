"""Graph observations and the GNN (marl/gnn.py): the cell-list radius search against all pairs,
the graph's edges and features against the world, batched graphs against one copy at a time,
and one network serving any number of agents."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import scenarios
from marl.gnn import GraphEncoder, dense_radius_pairs, navigation_graph, radius_pairs


def _pairs(edges: torch.Tensor) -> set:
    return set(map(tuple, edges.T.tolist()))


@settings(max_examples=40, deadline=None)
@given(points=st.integers(1, 120), copies=st.integers(1, 4), radius=st.floats(0.05, 3.0), seed=st.integers(0, 10**6),
       spread=st.floats(0.1, 20.0))
def test_radius_pairs_equal_all_pairs(points, copies, radius, seed, spread):
    generator = torch.Generator().manual_seed(seed)
    position = (torch.rand(points, 2, generator=generator, dtype=torch.float64) * 2 - 1) * spread
    batch = torch.randint(copies, (points,), generator=generator)
    queries = torch.randperm(points, generator=generator)[: max(1, points // 2)]
    found = radius_pairs(position, batch, radius, queries)
    assert _pairs(found) == _pairs(dense_radius_pairs(position, batch, radius, queries))
    assert found.shape[1] == len(_pairs(found))  # no pair twice


def test_navigation_graph_edges_and_features_match_the_world():
    game = scenarios.make("navigation", num_envs=3, seed=1, num_agents=10, num_obstacles=4, sensing_radius=0.7,
                          dtype=torch.float64)
    game.reset()
    for _ in range(3):
        game.step({a: torch.rand(3, 5, dtype=torch.float64) for a in game.possible_agents})
    entities = game.entities()
    graph = navigation_graph(entities, 0.7)
    per_copy = 2 * 10 + 4
    source, target = graph.edge_index
    assert bool((target % per_copy < 10).all())  # edges only into agents
    position = torch.cat([entities["agent_position"], entities["goal_position"], entities["obstacle_position"]], 1)
    flat = position.reshape(-1, 2)
    torch.testing.assert_close(graph.edge_features[:, :2], flat[source] - flat[target])
    assert bool((graph.edge_features[:, 4] <= 0.7 + 1e-12).all())
    own_goal = graph.edge_features[:, 5] == 1
    torch.testing.assert_close(source[own_goal], target[own_goal] + 10)
    expected = 0
    for copy in range(3):
        for i in range(10):
            others = [j for j in range(per_copy) if j != i]
            near = [j for j in others if float((position[copy, j] - position[copy, i]).norm()) <= 0.7]
            expected += len(near)
    assert graph.edge_index.shape[1] == expected
    own = graph.node_features[graph.agent_nodes].view(3, 10, 4)
    torch.testing.assert_close(own[..., 2:], entities["goal_position"] - entities["agent_position"])


def test_a_batch_of_graphs_equals_each_copy_alone_and_agents_are_permutation_equivariant():
    torch.manual_seed(0)
    encoder = GraphEncoder().double()
    game = scenarios.make("navigation", num_envs=4, seed=2, num_agents=6, num_obstacles=3, dtype=torch.float64)
    game.reset()
    entities = game.entities()
    graph = navigation_graph(entities, 0.9)
    together = encoder(graph)[graph.agent_nodes].view(4, 6, -1)
    for copy in range(4):
        alone = navigation_graph({k: v[copy:copy + 1] for k, v in entities.items()}, 0.9)
        torch.testing.assert_close(encoder(alone)[alone.agent_nodes], together[copy])
    order = torch.tensor([3, 0, 5, 1, 4, 2])
    permuted = {k: (v[:, order] if k != "obstacle_position" else v) for k, v in entities.items()}
    moved = navigation_graph(permuted, 0.9)
    torch.testing.assert_close(encoder(moved)[moved.agent_nodes].view(4, 6, -1), together[:, order])


def test_one_network_serves_any_number_of_agents_and_1024_agents_fit():
    from marl.mappo import MAPPO, MAPPOConfig, PolicySpec

    config = MAPPOConfig(model="gnn")
    small = scenarios.make("navigation", num_envs=2, seed=0, preset="informarl")
    learner = MAPPO(PolicySpec.of(small, config), config)
    for count in (3, 15):
        game = scenarios.make("navigation", num_envs=2, seed=0, preset="informarl", num_agents=count)
        game.reset()
        snapshot = learner.model.observe(game, {})
        assert learner.model.act(snapshot).shape == (2, count, 5)
        assert learner.model.value(snapshot).shape == (2, count)
    big = scenarios.make("navigation", num_envs=1, seed=0, num_agents=1024, num_obstacles=16)
    big.reset()
    graph = navigation_graph(big.entities(), 1.0)
    assert graph.edge_index.shape[1] < 0.02 * 1024 * (2 * 1024 + 16)  # sparse: a few percent of all pairs
    assert torch.isfinite(learner.model.act(learner.model.observe(big, {}))).all()


@pytest.mark.parametrize("name", ["spread"])
def test_the_gnn_model_refuses_worlds_without_graph_observations(name):
    from marl.errors import TrainingError
    from marl.mappo import MAPPOConfig, PolicySpec

    with pytest.raises(TrainingError, match="need a world with graph observations"):
        PolicySpec.of(scenarios.make(name, num_envs=1, seed=0), MAPPOConfig(model="gnn"))
