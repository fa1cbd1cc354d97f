"""Graph observations and the GNN of decentralized controllers (InforMARL's, in torch-geometric).

Nayak, Choi, Ding, Dolan, Gopalakrishnan and Balakrishnan, "Scalable Multi-Agent
Reinforcement Learning through Intelligent Information Aggregation" (ICML 2023). Every
agent decides from a graph of what it senses; one network with shared parameters serves
any number of agents, so a network trained with 3 agents runs with 1,000.

The graph of a step (:func:`navigation_graph`), for ``B`` copies of a world of ``N``
agents, their ``N`` goals and ``O`` obstacles, all copies in one disjoint-union graph:

- nodes: per copy the agents, then the goals, then the obstacles (``M = 2 N + O``); node
  features ``[v, g - p]`` for agents (own velocity, own goal offset) and zeros for goals
  and obstacles, plus the node type (agent 0, goal 1, obstacle 2) read by an embedding;
- edges ``j -> i`` into every agent ``i`` from every other entity ``j`` within the
  sensing radius, with features relative to the receiving agent:
  ``[p_j - p_i, v_j - v_i, |p_j - p_i|, j is i's goal]``.

Neighbours come from :func:`radius_pairs`, a cell list: memory grows with the number of
pairs in range, not with ``N^2``, so ``N = 1024`` agents per world fits.

The network (:class:`GraphEncoder`): a type embedding and one message-passing layer
(:class:`EmbedConv`, InforMARL's ``EmbedConv``), then ``layers`` ``TransformerConv`` layers
(Shi et al. 2021) with ``heads`` heads averaged, ``hidden`` wide (InforMARL: 3 layers, 3
heads, 16). With ``L`` layers an agent's embedding depends on the entities within ``L + 1``
hops of sensing: its neighbours pass on what they sense, as in InforMARL and GCBF+.

Shapes: node features ``(B M, 4)``, node types ``(B M,)``, ``edge_index`` ``(2, E)`` (row 0
the sources), edge features ``(E, 6)``, embeddings ``(B M, hidden)``; agents' rows are
``agent_nodes`` ``(B N,)`` in copy-major order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch_geometric.nn import MessagePassing, TransformerConv

NODE_FEATURES = 4
EDGE_FEATURES = 6
NODE_TYPES = 3  # agent, goal, obstacle
# Cells of the radius search are numbered (copy * width + x) * height + y in int64.
_MAX_CELLS = 2**62


def radius_pairs(position: torch.Tensor, batch: torch.Tensor, radius: float,
                 queries: torch.Tensor | None = None) -> torch.Tensor:
    """Every pair of points of the same copy within ``radius`` of each other, by a cell list.

    Points are put in square cells of side ``radius``; a query point's neighbours are in
    the 3 x 3 cells around its own, found by a sorted search over the cell numbers. Work
    and memory grow with the number of points in those cells, not with the square of the
    number of points.

    Args:
        position: ``(P, 2)`` points.
        batch: ``(P,)`` int64, the copy of each point (points of different copies never pair).
        radius: pairs at distance ``<= radius`` are returned.
        queries: ``(Q,)`` indices of the points whose neighbours are wanted (default all).

    Returns:
        ``(2, E)`` int64: row 0 the neighbour ``j``, row 1 the query point ``i`` (``i != j``),
        sorted by ``i`` then ``j``.
    """
    device = position.device
    if queries is None:
        queries = torch.arange(position.shape[0], device=device)
    if position.shape[0] == 0 or queries.numel() == 0:
        return torch.zeros(2, 0, dtype=torch.long, device=device)
    if not bool(torch.isfinite(position).all()):
        raise ValueError("radius_pairs: positions must be finite")
    cell = torch.floor(position / radius).to(torch.long)
    cell = cell - cell.min(0).values + 1  # every cell and its neighbours >= 0
    width, height = int(cell[:, 0].max()) + 2, int(cell[:, 1].max()) + 2
    copies = int(batch.max()) + 1
    if copies * width * height >= _MAX_CELLS:
        raise ValueError(f"radius_pairs: the points span too many cells of side {radius} ({copies} x {width} x "
                         f"{height}); use a larger radius")
    key = (batch * width + cell[:, 0]) * height + cell[:, 1]  # (P,)
    order = key.argsort()
    sorted_key = key[order]
    around = torch.tensor([(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)], device=device)  # (9, 2)
    query_cell = cell[queries]  # (Q, 2)
    near = ((batch[queries, None] * width + query_cell[:, None, 0] + around[:, 0]) * height
            + query_cell[:, None, 1] + around[:, 1])  # (Q, 9)
    start = torch.searchsorted(sorted_key, near.flatten())
    counts = torch.searchsorted(sorted_key, near.flatten(), right=True) - start  # (Q 9,)
    slot = torch.repeat_interleave(torch.arange(counts.numel(), device=device), counts)
    first = torch.cumsum(counts, 0) - counts
    within = torch.arange(slot.numel(), device=device) - first[slot]
    neighbour = order[start[slot] + within]
    target = queries[slot // around.shape[0]]
    distance = (position[neighbour] - position[target]).square().sum(1)
    keep = (neighbour != target) & (distance <= radius * radius)
    pairs = torch.stack([neighbour[keep], target[keep]])
    ranking = (pairs[1] * position.shape[0] + pairs[0]).argsort()
    return pairs[:, ranking]


def dense_radius_pairs(position: torch.Tensor, batch: torch.Tensor, radius: float,
                       queries: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`radius_pairs` by all pairs (``P^2`` memory): the reference the cell list is tested against."""
    if queries is None:
        queries = torch.arange(position.shape[0], device=position.device)
    distance = (position[None, :] - position[queries, None]).square().sum(-1)  # (Q, P)
    within = (distance <= radius * radius) & (batch[None, :] == batch[queries, None])
    within[torch.arange(queries.numel(), device=position.device), queries] = False
    row, neighbour = within.nonzero(as_tuple=True)
    return torch.stack([neighbour, queries[row]])


@dataclass
class Graph:
    """A batch of graph observations (see the module docstring for the layout).

    Attributes:
        node_features: ``(B M, 4)``; node_types: ``(B M,)`` int64.
        edge_index: ``(2, E)`` int64, sources in row 0; edge_features: ``(E, 6)``.
        agent_nodes: ``(B N,)`` rows of the agents, copy-major; node_copy: ``(B M,)`` copy of each node.
        num_copies, num_agents: ``B`` and ``N``.
    """

    node_features: torch.Tensor
    node_types: torch.Tensor
    edge_index: torch.Tensor
    edge_features: torch.Tensor
    agent_nodes: torch.Tensor
    node_copy: torch.Tensor
    num_copies: int
    num_agents: int


def navigation_graph(entities: dict[str, torch.Tensor], radius: float) -> Graph:
    """The graph observations of ``B`` copies of a navigation world (``Navigation.entities()``).

    Args:
        entities: ``agent_position``, ``agent_velocity``, ``goal_position`` ``(B, N, 2)`` and
            ``obstacle_position`` ``(B, O, 2)``.
        radius: the sensing radius.
    """
    agents, velocity = entities["agent_position"], entities["agent_velocity"]
    goals, obstacles = entities["goal_position"], entities["obstacle_position"]
    copies, count, _ = agents.shape
    per_copy = 2 * count + obstacles.shape[1]
    device, dtype = agents.device, agents.dtype
    position = torch.cat([agents, goals, obstacles], dim=1).reshape(-1, 2)  # (B M, 2)
    speed = torch.cat([velocity, torch.zeros(copies, per_copy - count, 2, device=device, dtype=dtype)], 1).reshape(-1, 2)
    own = torch.cat([velocity, goals - agents], dim=-1)  # (B, N, 4)
    features = torch.cat([own, torch.zeros(copies, per_copy - count, NODE_FEATURES, device=device, dtype=dtype)], 1)
    types = torch.cat([torch.zeros(count, dtype=torch.long, device=device),
                       torch.ones(count, dtype=torch.long, device=device),
                       torch.full((obstacles.shape[1],), 2, dtype=torch.long, device=device)])
    node_copy = torch.arange(copies, device=device).repeat_interleave(per_copy)
    agent_nodes = (torch.arange(copies, device=device)[:, None] * per_copy
                   + torch.arange(count, device=device)).flatten()
    edge_index = radius_pairs(position, node_copy, radius, agent_nodes)
    source, target = edge_index
    offset = position[source] - position[target]
    own_goal = (source == target + count).to(dtype)  # goal k of a copy sits N rows after agent k
    edge_features = torch.cat([offset, speed[source] - speed[target], offset.norm(dim=1, keepdim=True),
                               own_goal[:, None]], dim=1)
    return Graph(features.reshape(-1, NODE_FEATURES), types.repeat(copies), edge_index, edge_features,
                 agent_nodes, node_copy, copies, count)


class EmbedConv(MessagePassing):
    r"""InforMARL's first layer: embeds every node and sums messages from its neighbours.

    .. math::
        h_i = \mathrm{ReLU}\big(W_s [x_i, t_i]\big)
              + \sum_{j \to i} \mathrm{ReLU}\big(W_m [x_j, t_j, e_{ji}] + b_m\big)

    with ``t`` the node's type embedding and ``e`` the edge features.

    Shapes: ``x`` ``(V, in)``, ``edge_index`` ``(2, E)``, ``edge_attr`` ``(E, edge)`` -> ``(V, out)``.
    """

    def __init__(self, in_channels: int, edge_channels: int, out_channels: int) -> None:
        super().__init__(aggr="add")
        self.root = nn.Linear(in_channels, out_channels)
        self.message_layer = nn.Linear(in_channels + edge_channels, out_channels)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.root(x)) + self.propagate(edge_index, x=x, edge_attr=edge_attr)

    def message(self, x_j: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.message_layer(torch.cat([x_j, edge_attr], dim=-1)))


class GraphEncoder(nn.Module):
    """Type embedding, :class:`EmbedConv`, then ``layers`` ``TransformerConv`` layers (module docstring).

    Args:
        hidden: width of every layer (InforMARL: 16).
        layers: ``TransformerConv`` layers (InforMARL: 3).
        heads: attention heads per layer, averaged (InforMARL: 3).

    Shapes: a :class:`Graph` -> ``(B M, hidden)`` node embeddings.
    """

    def __init__(self, hidden: int = 16, layers: int = 3, heads: int = 3) -> None:
        super().__init__()
        self.types = nn.Embedding(NODE_TYPES, hidden)
        self.embed = EmbedConv(NODE_FEATURES + hidden, EDGE_FEATURES, hidden)
        self.convs = nn.ModuleList(TransformerConv(hidden, hidden, heads=heads, concat=False, edge_dim=EDGE_FEATURES)
                                   for _ in range(layers))
        self.hidden = hidden

    def forward(self, graph: Graph) -> torch.Tensor:
        x = torch.cat([graph.node_features, self.types(graph.node_types)], dim=-1)
        h = self.embed(x, graph.edge_index, graph.edge_features)
        for conv in self.convs:
            h = torch.relu(conv(h, graph.edge_index, graph.edge_features))
        return h


def copy_mean(values: torch.Tensor, graph: Graph) -> torch.Tensor:
    """``(B M, F)`` node values -> ``(B, F)``: the mean over each copy's nodes (the critic's pool)."""
    total = values.new_zeros(graph.num_copies, values.shape[1]).index_add_(0, graph.node_copy, values)
    return total / (values.shape[0] // graph.num_copies)


__all__ = ["EmbedConv", "Graph", "GraphEncoder", "copy_mean", "dense_radius_pairs", "navigation_graph",
           "radius_pairs"]
