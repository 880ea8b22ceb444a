"""Early exits from the BER model's sums of fast-falling terms that leave every bit unchanged.

The exact Gray BER ``sum_t w_t Q(b_t sqrt(gamma))`` and its slope ``sum_t w_t b_t
exp(-b_t^2 gamma / 2) (...)`` (:mod:`optim.ber_model`) add terms in increasing ``b_t``, so a
later term ``w_u Q_u`` is at most ``|w_u| Q_t`` in size (``erfc`` and ``exp`` decrease). At
high SNR the later terms fall below the rounding of the partial sum, and adding them changes
nothing: for a partial sum ``s > 0`` in ``[2^e, 2^(e+1))`` the floats beside it are at least
``2^(e-53)`` away, so round-to-nearest gives ``fl(s + x) = s`` whenever ``|x| < 2^(e-54)``,
which ``|x| < s 2^-55`` guarantees. The checks here ask for ``s 2^-57``, a factor 4 to spare
for the rounding of the bound itself and of ``erfc``/``exp`` (monotone to within an ulp).
So a loop that stops when they return ``True`` returns the same float as the full sum.

On the GPU the checks' twins always answer ``False``: the threads of a warp add the terms in
lockstep, so an exit saves work only when all of them take it, and the checks themselves made
the batched GPU solver about 5% slower at 10 dB on an H100 (``benchmarks/ab_solve_batch_gpu.py``).
The sums are the same either way.
"""

from __future__ import annotations

from optim.twin import shared

_QUARTER_SPACING = 2.0**-57


def _q_terms_kept(qw, m: int, t: int, stop: int, q: float, total: float) -> bool:
    """GPU twin of :func:`q_terms_negligible`: every term is added."""
    return False


def _slope_terms_kept(qw, qb, m: int, t: int, stop: int, e: float, gam: float,
                      total: float) -> bool:  # fmt: skip
    """GPU twin of :func:`slope_terms_negligible`: every term is added."""
    return False


@shared(cuda=_q_terms_kept, inline="always")
def q_terms_negligible(qw, m: int, t: int, stop: int, q: float, total: float) -> bool:
    """Whether every later term ``qw[m, u] Q_u`` (``t < u < stop``) of a sum whose term ``t``
    had ``Q_t = q`` (so ``Q_u <= q``) leaves the partial sum ``total`` unchanged.

    ``False`` for ``total <= 0`` or NaN, so the caller adds them all.
    """
    limit = total * _QUARTER_SPACING
    for u in range(t + 1, stop):
        if not abs(qw[m, u]) * q < limit:
            return False
    return True


@shared(cuda=_slope_terms_kept, inline="always")
def slope_terms_negligible(qw, qb, m: int, t: int, stop: int, e: float, gam: float,
                           total: float) -> bool:  # fmt: skip
    """Whether every later term ``qw[m, u] b_u E_u`` and ``qw[m, u] b_u E_u (1 + b_u^2 gamma)``
    (``t < u < stop``, ``b_u = qb[m, u]``) of the slope sums leaves the smaller partial sum
    ``total`` unchanged, where term ``t`` had ``E_t = e`` (so ``E_u <= e``).

    ``False`` for ``total <= 0`` or NaN, so the caller adds them all.
    """
    limit = total * _QUARTER_SPACING
    for u in range(t + 1, stop):
        b = qb[m, u]
        if not abs(qw[m, u]) * b * (1.0 + b * b * gam) * e < limit:
            return False
    return True
