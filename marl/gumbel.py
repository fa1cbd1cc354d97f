"""Gumbel-softmax samples of discrete actions, with straight-through gradients.

Jang, Gu and Poole, "Categorical Reparameterization with Gumbel-Softmax" (ICLR 2017);
Maddison, Mnih and Teh, "The Concrete Distribution" (ICLR 2017). MADDPG uses it to pass a
critic's gradient through a discrete action (Lowe et al. 2017, appendix).

With Gumbel noise ``g_k = -log(-log u_k)``, ``u_k ~ U(0, 1)``:

1. ``argmax_k (logits_k + g_k)`` is an exact sample of ``Categorical(softmax(logits))``;
2. ``y = softmax((logits + g) / temperature)`` is its relaxation;
3. the straight-through sample is ``one_hot(argmax) - y.detach() + y``: its value is the
   one-hot sample, its gradient is that of ``y``.

NOTE: openai/maddpg feeds the relaxed ``y`` itself to the environment and the critics.
gamelab's games take integer actions, so the environment gets the exact sample and the
critics see one-hot vectors; only the gradient is relaxed.
"""

from __future__ import annotations

import torch


def gumbel_noise(shape: torch.Size | tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard Gumbel noise of ``shape``, with ``like``'s dtype and device."""
    uniform = torch.rand(shape, generator=generator, dtype=like.dtype, device=like.device)
    tiny = torch.finfo(like.dtype).tiny
    exponential = -torch.log(uniform.clamp_min(tiny))  # Exp(1), > 0
    return -torch.log(exponential.clamp_min(tiny))


def gumbel_softmax(
    logits: torch.Tensor,
    temperature: float = 1.0,
    *,
    hard: bool = True,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """A Gumbel-softmax sample along the last dimension.

    Args:
        logits: ``(..., n)`` unnormalized log-probabilities.
        temperature: relaxation temperature ``> 0``; lower is closer to one-hot.
        hard: return the straight-through one-hot sample (else the relaxed ``y``).
        generator: source of the Gumbel noise.
        noise: ``(..., n)`` Gumbel noise to use instead of drawing it (for tests).

    Returns:
        ``(..., n)``: a one-hot sample with the relaxed gradient, or the relaxed sample.
    """
    if noise is None:
        noise = gumbel_noise(logits.shape, logits, generator)
    perturbed = logits + noise
    relaxed = torch.softmax(perturbed / temperature, dim=-1)
    if not hard:
        return relaxed
    one_hot = torch.zeros_like(relaxed).scatter_(-1, perturbed.argmax(-1, keepdim=True), 1.0)
    return one_hot - relaxed.detach() + relaxed
