"""A replay buffer of joint transitions that lives on the training device.

Storage is allocated up front as ``(capacity, ...)`` tensors and filled as a ring: each
step of ``B`` parallel copies writes ``B`` rows at once. Sampling draws indices from an
explicit ``torch.Generator`` and gathers rows on the device, so nothing crosses to the
host in a training loop.

Fields of one row (``N`` agents, flat joint vectors in the game's agent order):
    - ``observations``: ``(joint_observation_size,)``, every agent's observation;
    - ``actions``: ``(joint_action_size,)``, one-hot for discrete actions;
    - ``rewards``: ``(N,)``;
    - ``next_observations``: ``(joint_observation_size,)``, the observation the step
      ended in (before any automatic reset);
    - ``terminated``: ``(N,)``, 1.0 where the episode ended for that agent (truncation
      by a time limit is not termination: its values are bootstrapped);
    - ``members``: ``(N,)`` int, the ensemble member each agent acted with;
    - ``controllers`` (only in a buffer made with ``controllers=True``): ``(N,)`` int, who
      acted for each agent: 1 the learner, 0 a fixed policy the learner does not train
      (an opponent of the same network), -1 uniform random play. NeuPL on Markov games
      (``marl.neupl_markov``) keeps it; ``MADDPG.update`` then trains on the learner's rows only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Batch:
    """``batch`` sampled rows; see the module docstring for the fields."""

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor
    terminated: torch.Tensor
    members: torch.Tensor
    controllers: torch.Tensor | None = None


class ReplayBuffer:
    """A ring of at most ``capacity`` transitions on ``device``.

    Args:
        capacity: rows kept; the oldest are overwritten first.
        observation_size: joint observation width.
        action_size: joint action width.
        num_agents: ``N``.
        device, dtype: where and how rows are stored.
        controllers: also keep who acted for each agent (the ``controllers`` field).
    """

    def __init__(
        self,
        capacity: int,
        observation_size: int,
        action_size: int,
        num_agents: int,
        *,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        controllers: bool = False,
    ) -> None:
        from games import memory

        self.capacity = int(capacity)
        self.device = torch.device(device)
        widths = {
            "observations": observation_size,
            "actions": action_size,
            "rewards": num_agents,
            "next_observations": observation_size,
            "terminated": num_agents,
        }
        row = sum(widths.values()) * torch.finfo(dtype).bits // 8 + num_agents * (9 if controllers else 8)
        memory.check(f"a replay buffer of {self.capacity:,} transitions ({row:,} bytes each)", self.capacity * row,
                     "use a smaller buffer_size", self.device)
        self.storage = {
            name: torch.zeros(self.capacity, width, dtype=dtype, device=self.device) for name, width in widths.items()
        }
        self.storage["members"] = torch.zeros(self.capacity, num_agents, dtype=torch.int64, device=self.device)
        if controllers:
            self.storage["controllers"] = torch.zeros(self.capacity, num_agents, dtype=torch.int8, device=self.device)
        self.size = 0
        self.position = 0

    def __len__(self) -> int:
        return self.size

    def add(self, **rows: torch.Tensor) -> None:
        """Writes ``B`` rows: every field of the module docstring as a ``(B, width)`` tensor."""
        count = next(iter(rows.values())).shape[0]
        if count > self.capacity:
            raise ValueError(f"cannot add {count} rows to a buffer of capacity {self.capacity}")
        index = (self.position + torch.arange(count, device=self.device)) % self.capacity
        for name in self.storage:
            if name not in rows:
                raise ValueError(f"the buffer keeps {name!r}; it is missing from the rows added")
            self.storage[name][index] = rows[name].to(self.storage[name].dtype)
        self.position = (self.position + count) % self.capacity
        self.size = min(self.size + count, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        """``batch_size`` rows drawn uniformly with replacement."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        index = torch.randint(self.size, (batch_size,), generator=generator, device=self.device)
        return Batch(**{name: tensor[index] for name, tensor in self.storage.items()})

    def state_dict(self) -> dict[str, object]:
        """The filled rows, in storage order, and the write position, for a checkpoint."""
        return {
            "capacity": self.capacity,
            "size": self.size,
            "position": self.position,
            **{name: tensor[: self.size].to("cpu", copy=True) for name, tensor in self.storage.items()},
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restores what ``state_dict`` saved; sampling then continues exactly as before."""
        size, position = int(state["size"]), int(state["position"])
        if size > self.capacity or int(state["capacity"]) != self.capacity:
            raise ValueError(
                f"the saved buffer has capacity {state['capacity']}, this one {self.capacity}"
            )
        if not 0 <= position < self.capacity or (size < self.capacity and position != size % self.capacity):
            raise ValueError(f"the saved buffer's write position {position} does not fit its {size} rows")
        for name, tensor in self.storage.items():
            saved = state[name]
            if not isinstance(saved, torch.Tensor) or tuple(saved.shape) != (size, tensor.shape[1]):
                raise ValueError(f"saved replay field {name!r} has the wrong shape")
            tensor[:size] = saved.to(device=self.device, dtype=tensor.dtype)
        self.size = size
        self.position = position
