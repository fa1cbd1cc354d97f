"""Pictures of particle games: one frame of one copy, and animated GIFs of episodes.

Frames are drawn with Pillow (a dependency of matplotlib): entities are filled circles in
their scenario's colors, agents outlined in black, on a white square that shows
``[-extent, extent]^2`` with the y axis pointing up. ``record_gif`` plays one episode of
copy 0 under a policy and writes the frames atomically.

A policy is ``games.policy``'s protocol, ``policy(game, observations) -> actions`` in the
batched ``MarkovGame`` format, or the string ``"random"`` for uniform random actions.
"""

from __future__ import annotations

import io
import os
from typing import Any

import torch

from games.errors import GameError
from games.io import atomic_write_bytes
from games.policy import Policy, random_policy


def _image_module():
    from PIL import Image, ImageDraw

    return Image, ImageDraw


def draw_frame(game: Any, copy: int = 0, size: int = 480, extent: float | None = None, caption: str = ""):
    """A ``size`` x ``size`` RGB ``PIL.Image`` of copy ``copy`` of a particle game.

    Args:
        game: a ``ParticleGame`` (it has ``world``, ``colors``).
        copy: which copy to draw.
        size: image side in pixels.
        extent: half-width of the square shown; by default enough for every entity, at least 1.
        caption: text drawn in the top-left corner.
    """
    if not hasattr(game, "world") or not hasattr(game, "colors"):
        raise GameError(f"{type(game).__name__} is not a particle game; only particle games can be drawn")
    Image, ImageDraw = _image_module()
    world = game.world
    positions = world.position[copy].detach().to(torch.float64).cpu().tolist()
    radii = world.sizes.detach().to(torch.float64).cpu().tolist()
    colors = game.entity_colors()[copy] if hasattr(game, "entity_colors") else game.colors
    if extent is None:
        extent = max([1.0] + [max(abs(x), abs(y)) + r for (x, y), r in zip(positions, radii)]) * 1.05
    image = Image.new("RGB", (size, size), (255, 255, 255))
    pen = ImageDraw.Draw(image)
    scale = size / (2 * extent)
    # Landmarks first, so agents are drawn on top.
    order = list(range(world.num_agents, world.num_entities)) + list(range(world.num_agents))
    for index in order:
        (x, y), radius = positions[index], radii[index]
        column, row = (x + extent) * scale, (extent - y) * scale
        reach = max(radius * scale, 1.5)
        fill = tuple(int(255 * channel) for channel in colors[index])
        outline = (0, 0, 0) if index < world.num_agents else None
        pen.ellipse([column - reach, row - reach, column + reach, row + reach], fill=fill, outline=outline)
    if caption:
        pen.text((6, 6), caption, fill=(0, 0, 0))
    return image


def record_gif(
    game: Any,
    policy: Policy | str,
    path: str | os.PathLike,
    *,
    steps: int | None = None,
    seed: int | None = None,
    fps: int = 10,
    size: int = 480,
) -> int:
    """Plays one episode of copy 0 and writes it as an animated GIF, atomically.

    Args:
        game: a particle game; all its copies are stepped, copy 0 is drawn.
        policy: a callable ``policy(game, observations)`` or ``"random"``.
        path: the ``.gif`` to write.
        steps: frames after the first; by default one episode (``game.max_steps``).
        seed: reset seed; ``None`` continues the game's streams.
        fps: frames per second.
        size: frame side in pixels.

    Returns:
        The number of frames written.
    """
    if policy == "random":
        policy = random_policy(0 if seed is None else seed)
    if not callable(policy):
        raise GameError(f"policy must be 'random' or a callable, got {policy!r}")
    steps = game.max_steps if steps is None else steps
    observations, _ = game.reset(seed=seed)
    extent = None
    if hasattr(game, "config") and hasattr(game.config, "half_width"):
        extent = game.config.half_width * 1.1
    autoreset, game.autoreset = game.autoreset, False
    try:
        frames = _play(game, policy, observations, steps, extent, size)
    finally:
        game.autoreset = autoreset
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    atomic_write_bytes(path, buffer.getvalue())
    return len(frames)


def _play(game: Any, policy: Policy, observations: dict, steps: int, extent: float | None, size: int) -> list:
    """Frames of copy 0 until its episode ends or ``steps`` steps have been taken."""
    frames = [draw_frame(game, 0, size, extent, caption=f"{game.metadata['name']}  step 0")]
    total = torch.zeros((), dtype=torch.float64)
    for step in range(1, steps + 1):
        actions = policy(game, observations)
        observations, rewards, terminated, truncated, _ = game.step(actions)
        total += sum(float(rewards[agent][0]) for agent in game.possible_agents) / game.num_agents
        finished = bool(terminated[game.possible_agents[0]][0] or truncated[game.possible_agents[0]][0])
        frames.append(
            draw_frame(game, 0, size, extent, caption=f"{game.metadata['name']}  step {step}  return {float(total):.2f}")
        )
        if finished:
            break
    return frames
