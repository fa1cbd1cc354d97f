"""Concrete Markov-game worlds built on ``games.particle``.

``make(name, num_envs=B, device=..., seed=..., **config)`` builds a scenario; the keyword
arguments beyond the game's own are the fields of the scenario's typed config dataclass
(``SpreadConfig``, ``TagConfig``, ...). ``names()`` lists the scenarios.

>>> import scenarios
>>> game = scenarios.make("spread", num_envs=4, seed=0, num_agents=3)
>>> observations, infos = game.reset()
>>> observations["agent_0"].shape
torch.Size([4, 18])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from games.errors import GameError, did_you_mean
from games.markov import ConfigError, MarkovGame
from games.policy import Policy
from scenarios.adversary import Adversary, AdversaryConfig
from scenarios.navigation import Navigation, NavigationConfig, goal_seeking_policy
from scenarios.spread import Spread, SpreadConfig, optimal_assignment_policy
from scenarios.tag import Tag, TagConfig, pursuit_policy
from scenarios.two_step import TwoStep, TwoStepConfig

SCENARIOS: dict[str, type] = {
    "spread": Spread,
    "tag": Tag,
    "adversary": Adversary,
    "navigation": Navigation,
    "two_step": TwoStep,
}

# The mpe2 task each MPE-equivalent scenario reproduces.
MPE_EQUIVALENTS = {"spread": "simple_spread_v3", "tag": "simple_tag_v3", "adversary": "simple_adversary_v3"}


# Each scenario's scripted policy, built from keyword arguments (tag: lead, margin).
SCRIPTED: dict[str, Callable[..., Policy]] = {
    "spread": lambda: optimal_assignment_policy,
    "navigation": lambda: goal_seeking_policy,
    "tag": pursuit_policy,
}


def scripted_policy(name: str, **arguments: Any) -> Policy:
    """The scripted policy of scenario ``name``, gamelab's policy protocol.

    Raises:
        GameError: for a scenario without one, or arguments its factory does not take.
    """
    if name not in SCRIPTED:
        raise GameError(f"no scripted policy for {name!r} (there are for {', '.join(sorted(SCRIPTED))})")
    try:
        return SCRIPTED[name](**arguments)
    except TypeError as error:
        raise GameError(f"the scripted policy of {name} does not take {sorted(arguments)}: {error}") from None


def names() -> list[str]:
    """The scenario names ``make`` accepts."""
    return sorted(SCENARIOS)


def config_class(name: str) -> type:
    """The config dataclass of a scenario."""
    return _lookup(name).config_class


def configure(name: str, settings: dict[str, Any]) -> Any:
    """The config dataclass of scenario ``name`` built from ``{field: value}``.

    A scenario with presets (``navigation``'s ``preset=informarl``) starts from the named
    preset's values; the other settings given override them.

    Raises:
        GameError: for an unknown name; ``ConfigError`` for an unknown field or a bad value.
    """
    config_class = _lookup(name).config_class
    fields = {field.name for field in dataclasses.fields(config_class)}
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise ConfigError(
            f"{name} has no setting {unknown[0]!r}; its settings are {', '.join(sorted(fields))}"
        )
    presets = getattr(config_class, "presets", None)
    if presets is not None and "preset" in settings:
        preset = settings["preset"]
        if not isinstance(preset, str) or preset not in presets:
            raise ConfigError(f"{name} has no preset {preset!r}; its presets are {', '.join(presets)}")
        settings = {**presets[preset], **settings}
    return config_class(**settings)


def _lookup(name: str) -> type:
    if name not in SCENARIOS:
        raise GameError(f"unknown scenario {name!r}{did_you_mean(name, SCENARIOS)}; the scenarios are {', '.join(names())}")
    return SCENARIOS[name]


def make(
    name: str,
    num_envs: int = 1,
    device: torch.device | str = "cpu",
    seed: int | None = None,
    dtype: torch.dtype = torch.float32,
    first_copy: int = 0,
    **config: Any,
) -> MarkovGame:
    """Builds ``num_envs`` copies of scenario ``name`` on ``device``.

    Args:
        name: one of ``names()``.
        num_envs: ``B``, the number of copies stepped together.
        device: torch device.
        seed: seed of the copies' random streams; ``None`` draws one from the OS.
        dtype: torch.float32 (the default) or torch.float64.
        first_copy: stream index of copy 0 (see ``games.markov``).
        **config: fields of the scenario's config dataclass.

    Raises:
        GameError: for an unknown name; ``ConfigError`` for an unknown field or a bad value.
    """
    scenario = _lookup(name)
    settings = configure(name, config)
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ConfigError(f"device {device!r} is not a torch device: {error}") from None
    return scenario(
        settings,
        num_envs=num_envs,
        device=device,
        seed=seed,
        dtype=dtype,
        first_copy=first_copy,
    )


__all__ = [
    "MPE_EQUIVALENTS",
    "Adversary",
    "AdversaryConfig",
    "Navigation",
    "NavigationConfig",
    "Spread",
    "SpreadConfig",
    "Tag",
    "TagConfig",
    "TwoStep",
    "TwoStepConfig",
    "config_class",
    "configure",
    "make",
    "names",
]
