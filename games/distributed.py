"""Ray, started or joined the same way by every part of gamelab that uses it.

``ray`` is an optional extra (``pip install 'gamelab[ray]'``); it is imported here only.
"""

from __future__ import annotations

from typing import Any


def start_ray(num_cpus: int | None = None, address: str | None = None, feature: str = "--backend ray") -> tuple[Any, bool]:
    """``(ray, started_here)``: joins a running Ray (``address``, or one already initialized in
    this process), else starts a local one with ``num_cpus``; the caller shuts down what it started.

    Raises:
        MissingDependencyError: naming ``feature`` and the extra, when Ray is not installed.
    """
    try:
        import ray
    except ImportError:
        from games.errors import MissingDependencyError

        raise MissingDependencyError("ray", "ray", feature) from None
    if ray.is_initialized():
        return ray, False
    if address is None:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    else:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    return ray, True


__all__ = ["start_ray"]
