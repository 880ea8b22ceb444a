"""ISFR training: nested dropout, BER matching, straight-through quantiser (docs/method.md §2).

During training the features ``z`` ``[B, N, L]`` (in ``[-1, 1]``, feature index ``i = 1..N``
along axis 1) pass through a *training channel* before the decoder (docs/method.md §2.5):

    z -> nested-dropout mask m -> Q-bit quantiser -> per-feature BSC(ε_i) -> de-quantiser -> ⊙ m

1. :class:`NestedDropout` (Rippel et al., 2014): per sample, draw a cut-off ``b`` in ``1..N``
   and zero the features after ``max(b, n_min)``. Geometric law (default)

       P(b = k) = ρ(1-ρ)^(k-1) / (1 - (1-ρ)^N),                       k = 1..N,

   or the uniform tail-drop ``P(b = k) = 1/N``. Only a fraction ``p_nd`` of the samples is
   masked (each independently). Retention of feature ``i``:

       r_i = 1                                       for i <= n_min,
       r_i = 1 - p_nd + p_nd · P(b >= i)             otherwise, with
       P(b >= i) = ((1-ρ)^(i-1) - (1-ρ)^N) / (1 - (1-ρ)^N)    (geometric),  (N - i + 1)/N (uniform).

   :class:`RandomDropout` is its non-nested, uniform-importance twin (the ``conventional-dropout``
   model variant): every feature of every sample is kept independently with the same
   probability ``r̄ = (1/N) Σ_i r_i``, the mean nested-dropout retention of the same
   ``(law, ρ, n_min, p_nd)``, so the expected number of kept features ``N r̄ = Σ_i r_i`` equals
   ISFR's while no feature is favoured and the kept set is not a prefix.

2. :class:`BerMatching`: quantise with the uniform ``Q``-bit quantiser of ``channels.bits``
   (``Δ = 2/2^Q``, index ``floor((z+1)/Δ)`` clipped to ``0..2^Q-1``, midpoint
   ``-1 + (i+½)Δ``, natural binary, MSB first), flip each of the ``Q`` bits of every scalar of
   feature ``i`` independently with probability ``ε_i``, de-quantise. Profiles:

       "log-linear":  ε_i = exp(ln ε_min + (i-1)/(N-1) · (ln ε_max - ln ε_min))
       "uniform":     ε_i = mean_j of the log-linear ε_j   (the conventional baseline's noise)
       "matched":     ε_i given (``flip_probs`` [N]; or a bank [M, N], one row drawn per sample)

   ``mode="gaussian"`` replaces the bit flips by additive noise of the same bit-error MSE
   (docs/method.md §4.5): ``z~ = q(z) + σ_i n``, ``n ~ N(0, 1)``, ``σ_i² = ε_i Δ² (4^Q - 1)/3``.
   The gradient is straight-through: forward the noisy value, backward the identity,
   ``z~ = noisy(z) + (z - sg(z))`` (``sg`` = stop-gradient; the bracket is exactly 0).

Both modules act only in training mode (``module.train()``); in eval mode they are the
identity. Every random draw comes from a ``torch.Generator`` seeded with the module's ``seed``
(one per device; ``seed=None`` uses torch's global generator); ``reseed(seed)`` restarts it.

Examples:
    >>> ch = training_channel("isfr", n_features=16, seed=0)
    >>> z = torch.zeros(4, 16, 64)
    >>> ch.train()(z).shape, bool(torch.equal(ch.eval()(z), z))
    (torch.Size([4, 16, 64]), True)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from channels.errors import check_choice, check_flag, check_int, check_real, check_seed, fail

LAWS = ("geometric", "uniform")
PROFILES = ("log-linear", "uniform", "matched")
MODES = ("bsc", "gaussian")
KINDS = ("isfr", "conventional", "none")
MAX_BITS_PER_SCALAR = 16
MAX_SEED = 2**63 - 1


def derive_seed(*keys: int) -> int:
    """A 63-bit seed derived from integer keys, e.g. ``(seed, epoch, stream)`` (SeedSequence)."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint64)
    return int(state[0] >> np.uint64(1))


class _Seeded(nn.Module):
    """A module that draws from its own ``torch.Generator`` per device, seeded with ``seed``."""

    def __init__(self, seed: int | None) -> None:
        super().__init__()
        self.seed = check_seed("seed", seed, MAX_SEED)
        self._generators: dict[str, torch.Generator] = {}

    def reseed(self, seed: int | None) -> None:
        """Restart the random stream from ``seed`` (``None``: torch's global generator)."""
        self.seed = check_seed("seed", seed, MAX_SEED)
        self._generators = {}

    def generator(self, device: torch.device) -> torch.Generator | None:
        """This module's generator on ``device`` (``None`` when ``seed`` is ``None``)."""
        if self.seed is None:
            return None
        key = str(device)
        gen = self._generators.get(key)
        if gen is None:
            gen = torch.Generator(device=device)
            gen.manual_seed(self.seed)
            self._generators[key] = gen
        return gen

    def get_rng_state(self) -> dict[str, torch.Tensor]:
        """The states of the module's generators (``{device: state}``), to replay its noise."""
        return {key: gen.get_state() for key, gen in self._generators.items()}

    def set_rng_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`get_rng_state` returned: the next draws repeat those after it."""
        generators = {}
        for key, value in state.items():
            gen = torch.Generator(device=key)
            gen.set_state(value)
            generators[key] = gen
        self._generators = generators

    def _rand(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        return torch.rand(shape, generator=self.generator(device), device=device)

    def _randn(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator(device), device=device)


def _check_features(z: torch.Tensor, n_features: int, who: str) -> None:
    if z.ndim != 3 or z.shape[1] != n_features:
        raise fail("z", f"tensor of shape {tuple(z.shape)}", f"[B, {n_features}, L] for {who}")


# ---------------------------------------------------------------------------------------------
# quantiser (torch mirror of channels.bits)


def quantize_index(z: torch.Tensor, bits_per_scalar: int = 8) -> torch.Tensor:
    """Uniform ``Q``-bit quantiser: ``z`` ``[...]`` -> int64 indices ``[...]`` in ``0..2^Q-1``.

    ``i = min(floor((clip(z, -1, 1) + 1) · 2^Q / 2), 2^Q - 1)``, computed in float64 so that it
    equals ``channels.bits.quantize`` exactly for every float input.
    """
    q = check_int("bits_per_scalar", bits_per_scalar, 1, MAX_BITS_PER_SCALAR)
    levels = 1 << q
    scaled = (z.detach().to(torch.float64).clamp(-1.0, 1.0) + 1.0) * (levels / 2.0)
    return torch.floor(scaled).clamp(max=levels - 1).to(torch.int64)


def dequantize_index(indices: torch.Tensor, bits_per_scalar: int = 8) -> torch.Tensor:
    """Bin midpoints ``-1 + (i + ½) Δ`` (float32, exact for ``Q <= 16``) of int indices."""
    q = check_int("bits_per_scalar", bits_per_scalar, 1, MAX_BITS_PER_SCALAR)
    return (-1.0 + (indices.to(torch.float64) + 0.5) * (2.0 / (1 << q))).to(torch.float32)


def straight_through_quantize(z: torch.Tensor, bits_per_scalar: int = 8) -> torch.Tensor:
    """Quantise-de-quantise with a straight-through gradient: ``q(z) + (z - sg(z))``.

    Forward: exactly the bin midpoint ``q(z) = -1 + (i + ½)Δ`` of ``z``'s bin (as
    ``channels.bits``; ``z - sg(z)`` is exactly 0); backward: ``∂/∂z = 1``. Shape and dtype of
    ``z`` are kept.
    """
    zq = dequantize_index(quantize_index(z, bits_per_scalar), bits_per_scalar).to(z.dtype)
    return zq + (z - z.detach())


# ---------------------------------------------------------------------------------------------
# nested dropout


class NestedDropout(_Seeded):
    """Nested dropout on features ``[B, N, L]``: keep features ``1..max(b, n_min)`` per sample.

    Args:
        n_features: ``N``.
        law: ``"geometric"`` (truncated geometric cut-off, parameter ``rho``) or ``"uniform"``.
        rho: ``ρ`` in ``(0, 1)`` of the geometric law (ignored by ``"uniform"``).
        n_min: features ``1..n_min`` are always kept (``0..N``).
        p_nd: probability that a sample is masked at all (``[0, 1]``).
        seed: seed of the module's generator (``None``: torch's global generator).
    """

    def __init__(
        self,
        n_features: int,
        law: str = "geometric",
        rho: float = 0.1,
        n_min: int = 1,
        p_nd: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        self.n_features = check_int("n_features", n_features, 1, 1 << 20)
        self.law = check_choice("law", law, LAWS)
        self.rho = check_real("rho", rho, 0.0, 1.0, open_low=True)
        if law == "geometric" and self.rho >= 1.0:
            raise fail("rho", rho, "a number in (0, 1)")
        self.n_min = check_int("n_min", n_min, 0, self.n_features)
        self.p_nd = check_real("p_nd", p_nd, 0.0, 1.0)
        cdf = torch.cumsum(self.cutoff_pmf(), 0)
        cdf[-1] = 1.0
        self.register_buffer("_cdf", cdf, persistent=False)

    def cutoff_pmf(self) -> torch.Tensor:
        """``P(b = k)``, ``k = 1..N``, float64 ``[N]`` (before ``n_min`` and ``p_nd``)."""
        n = self.n_features
        if self.law == "uniform":
            return torch.full((n,), 1.0 / n, dtype=torch.float64)
        k = torch.arange(n, dtype=torch.float64)
        q = 1.0 - self.rho
        return self.rho * q**k / (1.0 - q**n)

    def kept_pmf(self) -> torch.Tensor:
        """Law of the number of kept features of a masked sample, ``P(max(b, n_min) = k)``."""
        pmf = self.cutoff_pmf()
        if self.n_min > 1:
            pmf[self.n_min - 1] = pmf[: self.n_min].sum()
            pmf[: self.n_min - 1] = 0.0
        return pmf

    def retention(self) -> torch.Tensor:
        """Analytic retention ``r_i = P(feature i kept)``, float64 ``[N]`` (module docstring)."""
        n = self.n_features
        i = torch.arange(1, n + 1, dtype=torch.float64)
        if self.law == "uniform":
            tail = (n - i + 1) / n
        else:
            q = 1.0 - self.rho
            tail = (q ** (i - 1) - q**n) / (1.0 - q**n)
        r = 1.0 - self.p_nd + self.p_nd * tail
        r[: self.n_min] = 1.0
        return r

    def sample_kept(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Number of kept features per sample, int64 ``[batch]`` in ``max(n_min, 1)..N``.

        ``b`` is drawn by inversion, ``b = 1 + #{k : CDF(k) <= u}`` with ``u ~ U[0, 1)``; samples
        outside the ``p_nd`` fraction keep all ``N`` features.
        """
        device = torch.device(device)
        u = self._rand((2, batch), device).to(torch.float64)
        b = torch.searchsorted(self._cdf.to(device), u[0], right=True) + 1
        b = b.clamp(min=max(self.n_min, 1), max=self.n_features)
        masked = u[1] < self.p_nd
        return torch.where(masked, b, torch.full_like(b, self.n_features))

    def sample_mask(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Keep mask float32 ``[batch, N]``: ``1`` for features ``i <= kept``, else ``0``."""
        kept = self.sample_kept(batch, device)
        i = torch.arange(1, self.n_features + 1, device=kept.device)
        return (i[None, :] <= kept[:, None]).to(torch.float32)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` ``[B, N, L]`` -> ``z ⊙ m`` in training mode; ``z`` itself in eval mode."""
        if not self.training:
            return z
        _check_features(z, self.n_features, "NestedDropout")
        return z * self.sample_mask(z.shape[0], z.device)[..., None].to(z.dtype)

    def extra_repr(self) -> str:
        return (
            f"n_features={self.n_features}, law={self.law!r}, rho={self.rho}, "
            f"n_min={self.n_min}, p_nd={self.p_nd}"
        )


class RandomDropout(_Seeded):
    """Random, non-nested feature dropout at ISFR's rate, on features ``[B, N, L]``.

    Each feature ``i`` of each sample is kept independently, ``m_{b,i} ~ Bernoulli(r̄)``, with
    ``r̄ = (1/N) Σ_i r_i`` the mean retention of ``NestedDropout(N, law, rho, n_min, p_nd)``
    (:meth:`NestedDropout.retention`). The expected number of kept features per sample is then
    ``N r̄ = Σ_i r_i``, the same as nested dropout's, but every feature has the same rate and
    the kept set is any subset, not a prefix: the decoder learns to fill in any missing
    feature, which is what a uniform-importance link that drops features needs.

    Args:
        n_features: ``N``.
        law, rho, n_min, p_nd: the nested dropout whose retention sum sets the rate.
        seed: seed of the module's generator (``None``: torch's global generator).

    Examples:
        >>> d = RandomDropout(16, rho=0.1, seed=0)
        >>> kept = float(NestedDropout(16, rho=0.1).retention().sum())
        >>> abs(d.keep_probability * 16 - kept) < 1e-12
        True
    """

    def __init__(
        self,
        n_features: int,
        law: str = "geometric",
        rho: float = 0.1,
        n_min: int = 1,
        p_nd: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        nested = NestedDropout(n_features, law, rho, n_min, p_nd)
        self.n_features = nested.n_features
        self.keep_probability = float(nested.retention().mean())
        """``r̄``, the keep probability of every feature."""

    def retention(self) -> torch.Tensor:
        """``P(feature i kept) = r̄`` for every ``i``, float64 ``[N]``."""
        return torch.full((self.n_features,), self.keep_probability, dtype=torch.float64)

    def sample_mask(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Keep mask float32 ``[batch, N]``: independent ``Bernoulli(r̄)`` entries."""
        device = torch.device(device)
        u = self._rand((batch, self.n_features), device).to(torch.float64)
        return (u < self.keep_probability).to(torch.float32)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` ``[B, N, L]`` -> ``z ⊙ m`` in training mode; ``z`` itself in eval mode."""
        if not self.training:
            return z
        _check_features(z, self.n_features, "RandomDropout")
        return z * self.sample_mask(z.shape[0], z.device)[..., None].to(z.dtype)

    def extra_repr(self) -> str:
        return f"n_features={self.n_features}, keep_probability={self.keep_probability:.6g}"


# ---------------------------------------------------------------------------------------------
# BER matching


def log_linear_profile(n_features: int, eps_min: float, eps_max: float) -> torch.Tensor:
    """``ε_i = exp(ln ε_min + (i-1)/(N-1)(ln ε_max - ln ε_min))``, float64 ``[N]``.

    ``N = 1`` gives ``[ε_min]``.
    """
    if n_features == 1:
        return torch.tensor([eps_min], dtype=torch.float64)
    t = torch.arange(n_features, dtype=torch.float64) / (n_features - 1)
    return torch.exp(math.log(eps_min) + t * (math.log(eps_max) - math.log(eps_min)))


def bsc_bit_flips(
    z: torch.Tensor, eps: torch.Tensor, bits_per_scalar: int, rand: Any
) -> torch.Tensor:
    """Quantise ``z`` ``[B, N, L]``, flip each of the ``Q`` bits of every scalar of feature ``i``
    of sample ``b`` with probability ``eps[b, i]`` (``eps`` ``[1 or B, N]``), de-quantise.

    ``rand(shape, device)`` gives the uniforms (a module's seeded stream). Returns float32
    ``[B, N, L]``, no gradient.
    """
    b, n, length = z.shape
    q = bits_per_scalar
    indices = quantize_index(z, q)
    flips = rand((b, n, length, q), z.device) < eps[:, :, None, None].float()
    weights = 2 ** torch.arange(q - 1, -1, -1, device=z.device)  # MSB first
    error = (flips.long() * weights).sum(-1)
    return dequantize_index(indices ^ error, q)


def gaussian_bit_noise(
    z: torch.Tensor, sigma: torch.Tensor, bits_per_scalar: int, randn: Any
) -> torch.Tensor:
    """``q(z) + σ n`` (``σ`` float ``[1 or B, N]``, ``n ~ N(0, 1)`` from ``randn(shape, device)``):
    the Gaussian stand-in of the bit flips, float32 ``[B, N, L]``, no gradient."""
    zq = dequantize_index(quantize_index(z, bits_per_scalar), bits_per_scalar)
    return zq + sigma[..., None] * randn(tuple(z.shape), z.device)


def bit_error_variance(eps: torch.Tensor, bits_per_scalar: int) -> torch.Tensor:
    """Gaussian-mode variance ``σ² = ε Δ² (4^Q - 1)/3`` with ``Δ = 2/2^Q`` (shape of ``eps``)."""
    step = 2.0 / (1 << bits_per_scalar)
    return eps * step**2 * (4.0**bits_per_scalar - 1.0) / 3.0


class BerMatching(_Seeded):
    """Index-dependent quantise -> BSC(ε_i) -> de-quantise (or Gaussian) with a straight-through
    gradient, on features ``[B, N, L]`` (module docstring).

    Args:
        n_features: ``N``.
        bits_per_scalar: ``Q`` in 1..16.
        profile: ``"log-linear"``, ``"uniform"`` or ``"matched"``.
        eps_min, eps_max: ends of the log-linear profile, ``0 < ε_min <= ε_max <= 1``.
        flip_probs: ``"matched"`` only: ``ε`` as ``[N]`` or a bank ``[M, N]`` (one row drawn per
            sample), values in ``[0, 1]``.
        mode: ``"bsc"`` (bit flips) or ``"gaussian"`` (additive noise of equal bit-error MSE).
        seed: seed of the module's generator (``None``: torch's global generator).
    """

    def __init__(
        self,
        n_features: int,
        bits_per_scalar: int = 8,
        profile: str = "log-linear",
        eps_min: float = 1e-4,
        eps_max: float = 5e-2,
        flip_probs: Any = None,
        mode: str = "bsc",
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        self.n_features = check_int("n_features", n_features, 1, 1 << 20)
        self.bits_per_scalar = check_int("bits_per_scalar", bits_per_scalar, 1, MAX_BITS_PER_SCALAR)
        self.profile = check_choice("profile", profile, PROFILES)
        self.mode = check_choice("mode", mode, MODES)
        self.eps_min = check_real("eps_min", eps_min, 0.0, 1.0, open_low=True)
        self.eps_max = check_real("eps_max", eps_max, 0.0, 1.0, open_low=True)
        if self.eps_max < self.eps_min:
            raise fail("eps_max", eps_max, f"a number >= eps_min={self.eps_min}")
        if profile == "matched":
            probs = self._check_flip_probs(flip_probs)
        elif flip_probs is not None:
            raise fail("flip_probs", "an array", "None unless profile='matched'")
        else:
            probs = log_linear_profile(self.n_features, self.eps_min, self.eps_max)
            if profile == "uniform":
                probs = torch.full_like(probs, float(probs.mean()))
        self.register_buffer("probs", probs, persistent=False)

    def _check_flip_probs(self, flip_probs: Any) -> torch.Tensor:
        n = self.n_features
        allowed = f"probabilities in [0, 1] of shape [{n}] or [M, {n}]"
        if flip_probs is None:
            raise fail("flip_probs", None, f"{allowed} when profile='matched'")
        try:
            p = torch.as_tensor(np.asarray(flip_probs, dtype=np.float64))
        except (TypeError, ValueError):
            raise fail("flip_probs", flip_probs, allowed) from None
        if p.ndim not in (1, 2) or p.shape[-1] != n or p.numel() == 0:
            raise fail("flip_probs", f"array of shape {tuple(p.shape)}", allowed)
        if not bool(((p >= 0) & (p <= 1)).all()):
            raise fail("flip_probs", "values outside [0, 1]", allowed)
        return p

    @property
    def flip_probs(self) -> torch.Tensor:
        """``ε`` per feature, float64 ``[N]`` (or the bank ``[M, N]`` of a matched profile)."""
        return self.probs

    @property
    def step(self) -> float:
        """Quantiser step ``Δ = 2 / 2^Q``."""
        return 2.0 / (1 << self.bits_per_scalar)

    def noise_variance(self) -> torch.Tensor:
        """Gaussian-mode variance ``σ_i² = ε_i Δ² (4^Q - 1)/3`` (shape of :attr:`flip_probs`)."""
        return self.probs * self.step**2 * (4.0**self.bits_per_scalar - 1.0) / 3.0

    def _per_sample(self, values: torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
        """``[N]`` -> ``[1, N]``; a bank ``[M, N]`` -> one random row per sample ``[B, N]``."""
        values = values.to(device)
        if values.ndim == 1:
            return values[None, :]
        rows = torch.floor(self._rand((batch,), device) * values.shape[0]).long()
        return values[rows.clamp(max=values.shape[0] - 1)]

    def noisy(self, z: torch.Tensor) -> torch.Tensor:
        """The forward value (no gradient): quantise -> BSC or Gaussian -> de-quantise."""
        b = z.shape[0]
        if self.mode == "gaussian":
            sigma = torch.sqrt(self._per_sample(self.noise_variance(), b, z.device)).float()
            return gaussian_bit_noise(z, sigma, self.bits_per_scalar, self._randn)
        eps = self._per_sample(self.probs, b, z.device)  # [1 or B, N], float64
        return bsc_bit_flips(z, eps, self.bits_per_scalar, self._rand)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` ``[B, N, L]`` -> ``noisy(z) + (z - sg(z))`` in training; ``z`` in eval mode."""
        if not self.training:
            return z
        _check_features(z, self.n_features, "BerMatching")
        return self.noisy(z).to(z.dtype) + (z - z.detach())

    def extra_repr(self) -> str:
        return (
            f"n_features={self.n_features}, bits_per_scalar={self.bits_per_scalar}, "
            f"profile={self.profile!r}, mode={self.mode!r}"
        )


# ---------------------------------------------------------------------------------------------
# the training channel


class TrainingChannel(nn.Module):
    """``z -> m ⊙ D(m ⊙ z)``: nested-dropout mask ``m`` then distortion ``D``, training only.

    The dropout slot (``nested_dropout``) takes a :class:`NestedDropout` or a
    :class:`RandomDropout`: anything with ``n_features`` and ``sample_mask(batch, device)``.

    Either module may be ``None`` (switched off). The mask is applied again after the
    distortion, so a dropped feature reaches the decoder as exact zeros, as at a receiver that
    zero-fills unsent features. In eval mode the channel is the identity.

    Attributes:
        kind: the scheme it was built for (set by :func:`training_channel`).
        options: the resolved keyword options it was built with (set by
            :func:`training_channel`): ``training_channel(kind, N, **options)`` rebuilds it.
    """

    def __init__(
        self,
        nested_dropout: NestedDropout | RandomDropout | None = None,
        distortion: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.nested_dropout = nested_dropout
        self.distortion = distortion
        self.kind = "isfr"
        self.options: dict[str, Any] = {}

    def reseed(self, seed: int | None) -> None:
        """Restart both modules' streams from seeds derived from ``seed``."""
        for k, module in enumerate((self.nested_dropout, self.distortion)):
            if module is not None:
                module.reseed(None if seed is None else derive_seed(seed, k))

    def get_rng_state(self) -> list[dict[str, torch.Tensor] | None]:
        """Both modules' generator states (:meth:`set_rng_state` replays the noise after it)."""
        return [
            None if module is None else module.get_rng_state()
            for module in (self.nested_dropout, self.distortion)
        ]

    def set_rng_state(self, state: list[dict[str, torch.Tensor] | None]) -> None:
        """Restore what :meth:`get_rng_state` returned."""
        for module, value in zip((self.nested_dropout, self.distortion), state, strict=True):
            if module is not None and value is not None:
                module.set_rng_state(value)

    def forward(self, z: torch.Tensor, state: Any = None) -> torch.Tensor:
        """``z`` ``[B, N, L]`` -> ``z~`` ``[B, N, L]``.

        ``state`` (a :class:`~semcom.channel_state.ChannelState`) goes to a state-aware
        distortion (:mod:`semcom.training.matched_channel`); ``None`` keeps ``distortion(z)``.
        """
        if not self.training:
            return z
        mask = None
        if self.nested_dropout is not None:
            _check_features(z, self.nested_dropout.n_features, "TrainingChannel")
            mask = self.nested_dropout.sample_mask(z.shape[0], z.device)[..., None].to(z.dtype)
            z = z * mask
        if self.distortion is not None:
            z = self.distortion(z) if state is None else self.distortion(z, state)
            if mask is not None:
                z = z * mask
        return z


def training_channel(
    kind: str,
    n_features: int,
    *,
    nested_dropout: bool | None = None,
    distortion: bool | None = None,
    law: str = "geometric",
    rho: float = 0.1,
    n_min: int = 1,
    p_nd: float = 1.0,
    bits_per_scalar: int = 8,
    profile: str | None = None,
    eps_min: float = 1e-4,
    eps_max: float = 5e-2,
    flip_probs: Any = None,
    mode: str = "bsc",
    random_dropout: bool = False,
    seed: int | None = None,
) -> TrainingChannel:
    """Build the training channel of a scheme, with switches for ablations.

    Args:
        kind: ``"isfr"`` (nested dropout + log-linear BER matching), ``"conventional"`` (no
            nested dropout, uniform BSC at the mean of the log-linear ``ε``) or ``"none"``
            (identity).
        n_features: ``N``.
        nested_dropout, distortion: switch a module on or off; ``None`` takes the kind's
            default (``"none"`` allows neither).
        law, rho, n_min, p_nd: :class:`NestedDropout` options.
        bits_per_scalar, profile, eps_min, eps_max, flip_probs, mode: :class:`BerMatching`
            options; ``profile=None`` is ``"log-linear"`` for ``"isfr"`` and ``"uniform"`` for
            ``"conventional"``.
        random_dropout: put a :class:`RandomDropout` (non-nested, every feature kept with
            the mean retention of the nested dropout of ``law, rho, n_min, p_nd``) where the
            nested dropout goes; requires nested dropout off (``nested_dropout=None`` turns it
            off). The resolved options name it only when it is on, so the options (and
            checkpoint hashes) of the channels without it are those they always had.
        seed: base seed of both modules' streams (``None``: torch's global generator).

    Returns:
        A :class:`TrainingChannel` whose ``options`` hold the resolved options (without seed).

    Raises:
        ConfigError: an unknown kind or a bad option value, a module switched on with
            ``kind="none"``, or ``random_dropout`` together with ``nested_dropout=True``.
    """
    check_choice("kind", kind, KINDS)
    defaults = {"isfr": (True, True), "conventional": (False, True), "none": (False, False)}[kind]
    allowed = "true, false or None (the kind's default)"
    use_random = check_flag("random_dropout", random_dropout)
    if use_random and kind == "none":
        raise fail("random_dropout", True, "false with kind='none' (it has no modules)")
    if use_random and nested_dropout:
        raise fail("random_dropout", True, "false with nested_dropout=true (one dropout at most)")
    nd_default = defaults[0] and not use_random
    use_nd = check_flag(
        "nested_dropout", nd_default if nested_dropout is None else nested_dropout, allowed=allowed
    )
    use_dist = check_flag(
        "distortion", defaults[1] if distortion is None else distortion, allowed=allowed
    )
    for field, value in (("nested_dropout", use_nd), ("distortion", use_dist)):
        if kind == "none" and value:
            raise fail(field, value, "false or None with kind='none' (it has no modules)")
    if profile is None:
        profile = "uniform" if kind == "conventional" else "log-linear"
    nd: NestedDropout | RandomDropout | None = None
    if use_nd:
        nd = NestedDropout(n_features, law, rho, n_min, p_nd)
    elif use_random:
        nd = RandomDropout(n_features, law, rho, n_min, p_nd)
    dist = (
        BerMatching(n_features, bits_per_scalar, profile, eps_min, eps_max, flip_probs, mode)
        if use_dist
        else None
    )
    # validate the options of a switched-off module as well, so a config is valid or not as a
    # whole, independently of its switches
    if nd is None:
        NestedDropout(n_features, law, rho, n_min, p_nd)
    if dist is None:
        BerMatching(n_features, bits_per_scalar, profile, eps_min, eps_max, flip_probs, mode)
    channel = TrainingChannel(nd, dist)
    channel.reseed(check_seed("seed", seed, MAX_SEED))
    channel.kind = kind
    channel.options = {
        "nested_dropout": use_nd,
        "distortion": use_dist,
        "law": law,
        "rho": float(rho),
        "n_min": int(n_min),
        "p_nd": float(p_nd),
        "bits_per_scalar": int(bits_per_scalar),
        "profile": profile,
        "eps_min": float(eps_min),
        "eps_max": float(eps_max),
        "flip_probs": None if flip_probs is None else np.asarray(flip_probs, float).tolist(),
        "mode": mode,
    }
    if use_random:
        channel.options["random_dropout"] = True
    return channel
