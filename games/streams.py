"""Counter-based random numbers for batched Markov games.

Each copy of a batched game draws the random start of each episode from its own stream,
keyed by ``(seed, copy index, episode number)``. The numbers come from hashing that key
and a slot counter with SplitMix64's finalizer (Steele, Lea and Flood, "Fast splittable
pseudorandom number generators", OOPSLA 2014), computed as whole-batch int64 tensor
operations. Because no generator state is shared between copies:

- copy ``i`` of a batch of any size, and a single copy made with ``first_copy=i``, play
  exactly the same episodes, which is what lets a batch be split across processes;
- resetting some copies never shifts the random numbers of the others;
- the same seed gives the same trajectories on every device.

NOTE: int64 tensor arithmetic wraps around modulo 2**64 on CPU and CUDA, which is what
SplitMix64 needs; the logical right shift is an arithmetic shift followed by a mask.
"""

from __future__ import annotations

import torch

_GOLDEN = 0x9E3779B97F4A7C15 - (1 << 64)  # 2**64 / golden ratio, as a signed int64
_MIX_1 = 0xBF58476D1CE4E5B9 - (1 << 64)
_MIX_2 = 0x94D049BB133111EB - (1 << 64)


def _shift_right(values: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 values, as if they were uint64."""
    return (values >> bits) & ((1 << (64 - bits)) - 1)


def splitmix64(values: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finalizer applied elementwise to int64 values (read as uint64)."""
    values = (values ^ _shift_right(values, 30)) * _MIX_1
    values = (values ^ _shift_right(values, 27)) * _MIX_2
    return values ^ _shift_right(values, 31)


def stream_keys(seed: int, copies: torch.Tensor, episodes: torch.Tensor) -> torch.Tensor:
    """One int64 key per copy for the episode it is in.

    Args:
        seed: the game's seed, any Python int (taken modulo 2**64).
        copies: ``(B,)`` int64 copy indices.
        episodes: ``(B,)`` int64 episode numbers.

    Returns:
        ``(B,)`` int64 keys.
    """
    seed = int(seed) % (1 << 64)
    seed_key = splitmix64(torch.tensor(seed - (1 << 64) if seed >= 1 << 63 else seed, dtype=torch.int64))
    keys = splitmix64(seed_key.to(copies.device) + copies * _GOLDEN)
    return splitmix64(keys + episodes * _GOLDEN)


def uniform(keys: torch.Tensor, count: int, dtype: torch.dtype = torch.float32, offset: int = 0) -> torch.Tensor:
    """Uniform numbers in ``[0, 1)`` from each key's stream.

    Args:
        keys: ``(B,)`` int64 keys from :func:`stream_keys`.
        count: how many numbers per key.
        dtype: float32 (24 random bits) or float64 (53 random bits).
        offset: the first slot to read, so that several draws from one stream do not overlap.

    Returns:
        ``(B, count)`` tensor of ``dtype`` on the keys' device.
    """
    slots = torch.arange(offset, offset + count, device=keys.device, dtype=torch.int64)
    bits = splitmix64(keys[:, None] + (slots + 1) * _GOLDEN)
    if dtype == torch.float64:
        return _shift_right(bits, 11).to(torch.float64) * (2.0**-53)
    return (_shift_right(bits, 40).to(torch.float32) * (2.0**-24)).to(dtype)
