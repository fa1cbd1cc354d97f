"""Torch devices named by a user, checked before anything is placed on them."""

from __future__ import annotations

from games.errors import GamelabError


def parse_device(name: str):
    """``torch.device(name)``, for a device this machine has.

    Raises:
        GamelabError: for a name torch does not know, CUDA asked for where there is none, or
            ``cuda:N`` beyond the machine's GPUs (naming the devices there are).
    """
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise GamelabError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise GamelabError(f"device {name!r}: gamelab runs on cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GamelabError(f"device {name!r} was asked for, but CUDA is not available")
    count = torch.cuda.device_count() if device.type == "cuda" else 0
    if device.type == "cuda" and device.index is not None and device.index >= count:
        raise GamelabError(f"device {name!r} was asked for, but this machine has {count} "
                           f"CUDA device(s): use cuda:0 to cuda:{count - 1}")
    return device


__all__ = ["parse_device"]
