"""Stacks of small MLPs evaluated together: one batched matrix product per layer.

A multi-agent learner keeps one actor and one critic per agent (and per ensemble member).
They share a shape, so gamelab stores them as one stack of weights ``(P, K, in, out)``:
``P`` parameter sets (one per agent, or one shared by all agents of a role) times ``K``
ensemble members. A forward pass over every agent and member is then one ``baddbmm`` per
layer instead of ``P K`` small calls.

Layers are initialized like ``torch.nn.Linear`` (uniform in ``+-1/sqrt(fan_in)``) from an
explicit ``torch.Generator``, so a seed fixes the networks.

Shapes:
    - input ``x``: ``(G, K, batch, in)``, ``G`` agents of the group;
    - output: ``(G, K, batch, out)``; with ``P = 1`` all ``G`` agents use the same weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# A network in training lives about five times over: its weights, a target copy, gradients
# and Adam's two moments. Memory checks count that many copies.
TRAINING_COPIES = 5


class StackedMLP(nn.Module):
    """``P x K`` MLPs ``in -> hidden... -> out`` with ReLU between layers (none after the last).

    Args:
        parameter_sets: ``P``; 1 shares the weights between every agent of the group.
        members: ``K``, ensemble members per parameter set.
        sizes: ``(in, hidden..., out)`` layer widths.
        generator: source of the initial weights.
        device, dtype: where the weights live.
    """

    def __init__(
        self,
        parameter_sets: int,
        members: int,
        sizes: Sequence[int],
        *,
        generator: torch.Generator,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.parameter_sets = parameter_sets
        self.members = members
        self.sizes = tuple(int(size) for size in sizes)
        from games import memory

        count = parameter_sets * members * sum((a + 1) * b for a, b in zip(self.sizes[:-1], self.sizes[1:]))
        memory.check(f"{parameter_sets * members} network(s) of layer sizes {list(self.sizes)}",
                     TRAINING_COPIES * count * torch.finfo(dtype).bits // 8,
                     "use smaller hidden_sizes", device)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:]):
            bound = 1.0 / fan_in**0.5
            shape = (parameter_sets * members, fan_in, fan_out)
            weight = (torch.rand(shape, generator=generator, dtype=dtype) * 2 - 1) * bound
            bias = (torch.rand(shape[0], 1, fan_out, generator=generator, dtype=dtype) * 2 - 1) * bound
            self.weights.append(nn.Parameter(weight.to(device)))
            self.biases.append(nn.Parameter(bias.to(device)))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """``(G, K, batch, in) -> (G, K, batch, out)``; ``G`` must equal ``P`` unless ``P == 1``."""
        agents, members, batch, width = inputs.shape
        if self.parameter_sets == 1 and agents > 1:
            # One weight set for every agent: fold the agents into the batch.
            hidden = inputs.transpose(0, 1).reshape(members, agents * batch, width)
        else:
            hidden = inputs.reshape(agents * members, batch, width)
        last = len(self.weights) - 1
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            hidden = torch.baddbmm(bias, hidden, weight)
            if layer < last:
                hidden = torch.relu(hidden)
        if self.parameter_sets == 1 and agents > 1:
            return hidden.reshape(members, agents, batch, -1).transpose(0, 1)
        return hidden.reshape(agents, members, batch, -1)

    def clip_gradients_(self, max_norm: float) -> None:
        """Clips each network's gradient of each weight and bias to norm ``max_norm``.

        NOTE: openai/maddpg clips every variable's gradient separately (``clip_by_norm``);
        here every stacked network's slice of a variable is clipped on its own, the same rule.
        """
        for parameter in list(self.weights) + list(self.biases):
            if parameter.grad is None:
                continue
            norms = parameter.grad.flatten(1).norm(dim=1).clamp_min(1e-12)
            scale = (max_norm / norms).clamp(max=1.0)
            parameter.grad.mul_(scale.view(-1, 1, 1))
