"""Memory estimates, checked before a large object is allocated.

A few characters typed by a user (``random(100000,100000)``, ``--set num_agents=100000``,
``--param buffer_size=1000000000``, ``--num-envs 100000000``) or written in a file header
can ask for more memory than the machine has. Each kind of large object has an estimate
of its bytes, computed from its sizes before anything is allocated, and :func:`check`
compares it with the limit:

- a normal-form game's payoff tensor (:func:`payoff_bytes`, used by the random-game
  generators and the ``.nfg`` reader);
- a batch of particle-world copies (``games.particle.ParticleWorld``: state, pairwise
  geometry and observations grow with ``B x E^2``);
- a replay buffer and a set of stacked networks (``marl.replay``, ``marl.maddpg``).

The limit is 80% of the memory the system reports available when the check runs, or
what the user set with ``--max-memory`` (:func:`set_limit`). CUDA devices are checked
against their free memory in the same way.
"""

from __future__ import annotations

import math
import os
import re

from games.errors import GamelabError

SHARE_OF_AVAILABLE = 0.8

_limit: int | None = None


class MemoryLimitError(GamelabError):
    """An object that would not fit in the memory gamelab may use."""


def parse_size(text: str) -> int:
    """Bytes from ``512MB``, ``8GB``, ``1.5GiB``, ``2e9`` (decimal units; ``iB`` binary ones).

    Raises:
        GamelabError: for text that is not a positive size.
    """
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgGtT]?)(i?)[bB]?\s*", text)
    if match is None:
        raise GamelabError(f"{text!r} is not a size; write it like 512MB, 8GB or 1.5GiB")
    number, prefix, binary = match.groups()
    base = 1024 if binary else 1000
    value = float(number) * base ** " KMGT".index(prefix.upper() or " ")
    if not math.isfinite(value) or value < 1:
        raise GamelabError(f"{text!r} is not a positive size")
    return int(value)


def format_bytes(count: float) -> str:
    """``1.5 GB``, ``640 MB``: decimal units, three significant figures."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return f"{int(count)} bytes"


def set_limit(limit: int | None) -> None:
    """Sets the limit in bytes for this process (``--max-memory``); None restores the default."""
    global _limit
    _limit = None if limit is None else int(limit)


def available_bytes(device: object = None) -> int:
    """Memory the system reports available now: RAM for the CPU, free memory on a CUDA device."""
    if device is not None and getattr(device, "type", str(device).split(":")[0]) == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - no way to ask: do not refuse
        return 1 << 62


def limit_bytes(device: object = None) -> tuple[int, str]:
    """``(bytes, where it comes from)``: the ``--max-memory`` limit, else 80% of the available memory."""
    if _limit is not None:
        return _limit, "the --max-memory limit"
    where = f"the free memory of {device}" if device is not None and "cuda" in str(device) else \
        "this machine's available memory"
    return int(SHARE_OF_AVAILABLE * available_bytes(device)), f"{int(SHARE_OF_AVAILABLE * 100)}% of {where}"


def check(what: str, need: float, hint: str, device: object = None) -> None:
    """Raises :class:`MemoryLimitError` when ``need`` bytes exceed the limit.

    Args:
        what: the object, with the sizes that decide it (``the payoffs of random(100000,100000)``).
        need: the estimate in bytes.
        hint: the setting to change (``use fewer actions``).
        device: where it would live (None: the CPU).
    """
    limit, source = limit_bytes(device)
    if need > limit:
        raise MemoryLimitError(f"{what} would take about {format_bytes(need)}, more than the {format_bytes(limit)} "
                               f"gamelab may use ({source}); {hint}, or raise the limit with --max-memory")


def payoff_bytes(num_actions: list[int] | tuple[int, ...], batch: int = 1, itemsize: int = 8) -> int:
    """Bytes of a payoff tensor ``(B, N, A_1, ..., A_N)``."""
    return batch * len(num_actions) * math.prod(int(n) for n in num_actions) * itemsize


__all__ = ["MemoryLimitError", "available_bytes", "check", "format_bytes", "limit_bytes", "parse_size",
           "payoff_bytes", "set_limit"]
