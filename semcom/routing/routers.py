"""Shared routing math: expert-choice dispatch, capacity schedules, capsule routing, k-means,
the Bayes router and the ensemble that the routing methods build on.

- :func:`expert_choice_route`: with router probabilities ``P = softmax(logits)`` over ``E``
  experts per token ``[T, E]``, expert ``e`` takes the ``C`` tokens of largest ``P[:, e]``
  (ties: the lower token index), so every expert processes exactly ``C`` tokens (perfect load
  balance); combine weights are ``P`` on the chosen pairs and 0 elsewhere.
- :func:`capacity_schedule`: experts per token ``k(r) ∈ [kmin, kmax]`` as a function of a
  state scalar ``r ∈ [0, 1]`` (mask / erasure ratio, or a mapped SNR); the expert capacity of
  ``T`` tokens is then ``C = round(T k / E)`` (:func:`expert_capacity`).
- :func:`dynamic_routing`: the textbook capsule routing ``c = softmax_k(b)``,
  ``v_k = squash(Σ_i c_ik u_{k|i})``, ``b_ik += u_{k|i} · v_k``.
- :func:`kmeans`: Lloyd's algorithm from a seeded k-means++ start (data partitions).
- :func:`bayes_router` and :func:`ensemble`: the posterior ``r(k|x) = π_k p_k(x) / Σ_j π_j
  p_j(x)`` and the mixture ``Σ_k r(k|x) f_k(x)``.
"""

from __future__ import annotations

import math

import torch

from channels.errors import check_choice, check_int, fail

SCHEDULES = ("linear-reverse", "linear", "cosine", "constant")
"""Kinds of :func:`capacity_schedule`."""


def expert_choice_route(
    logits: torch.Tensor, capacity: int | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Expert-choice routing: each expert takes its top-``capacity`` tokens.

    Args:
        logits: router logits ``[..., T, E]`` (float); leading dims are independent groups
            (e.g. frames), each routed on its own.
        capacity: tokens per expert ``C`` in ``[0, T]``: an int, or an int64 tensor of the
            leading shape (one capacity per group).

    Returns:
        ``(dispatch, combine)``, both ``[..., T, E]``: ``dispatch`` bool, exactly ``C`` True
        entries in every expert column; ``combine = softmax(logits, -1) * dispatch``.

    Raises:
        ConfigError: a capacity outside ``[0, T]``.

    Examples:
        >>> logits = torch.tensor([[2.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
        >>> dispatch, combine = expert_choice_route(logits, 1)
        >>> dispatch.int().tolist()
        [[1, 0], [0, 0], [0, 1]]
        >>> dispatch.sum(0).tolist()
        [1, 1]
    """
    tokens = logits.shape[-2]
    cap = torch.as_tensor(capacity, device=logits.device)
    if cap.dtype.is_floating_point or bool(((cap < 0) | (cap > tokens)).any()):
        raise fail("capacity", capacity, f"integers in [0, {tokens}] (tokens per expert)")
    probs = torch.softmax(logits, dim=-1)
    order = torch.argsort(probs, dim=-2, descending=True, stable=True)
    rank = torch.empty_like(order)
    positions = torch.arange(tokens, device=logits.device).view(-1, 1).expand_as(order)
    rank.scatter_(-2, order, positions.expand(order.shape).contiguous())
    dispatch = rank < cap.reshape(*cap.shape, 1, 1)
    return dispatch, probs * dispatch


def capacity_schedule(state: torch.Tensor, kmin: int, kmax: int, kind: str) -> torch.Tensor:
    """Experts per token ``k(r)`` for state scalars ``r ∈ [0, 1]`` (int64, shape of ``state``).

    - ``"linear-reverse"``: ``k = round(kmin + (1 - r)(kmax - kmin))`` (more compute where
      less is missing: ``k(0) = kmax``, ``k(1) = kmin``);
    - ``"linear"``: ``k = round(kmin + r (kmax - kmin))``;
    - ``"cosine"``: ``k = round(kmin + (kmax - kmin)(1 + cos(π r)) / 2)`` (same endpoints as
      linear-reverse, flat near both ends);
    - ``"constant"``: ``k = round((kmin + kmax) / 2)`` for every ``r`` (the matched-compute
      constant of the linear schedules for uniform ``r``).

    ``round`` is half-to-even (``torch.round``).

    Raises:
        ConfigError: ``kmin < 1``, ``kmax < kmin``, an unknown ``kind`` or ``r`` outside [0, 1].

    Examples:
        >>> capacity_schedule(torch.tensor([0.0, 0.5, 1.0]), 1, 4, "linear-reverse").tolist()
        [4, 2, 1]
    """
    lo = check_int("kmin", kmin, 1)
    hi = check_int("kmax", kmax, lo)
    check_choice("schedule", kind, SCHEDULES)
    r = state.to(torch.float64)
    if bool(((r < 0) | (r > 1) | torch.isnan(r)).any()):
        raise fail("state", "values outside [0, 1]", "ratios in [0, 1]")
    if kind == "linear-reverse":
        k = lo + (1.0 - r) * (hi - lo)
    elif kind == "linear":
        k = lo + r * (hi - lo)
    elif kind == "cosine":
        k = lo + (hi - lo) * (1.0 + torch.cos(math.pi * r)) / 2.0
    else:
        k = torch.full_like(r, (lo + hi) / 2.0)
    return torch.round(k).to(torch.int64)


def expert_capacity(k: torch.Tensor, tokens: int, experts: int) -> torch.Tensor:
    """Tokens per expert ``C = clamp(round(T k / E), 1, T)`` (int64, shape of ``k``).

    With ``C`` tokens per expert, ``E C ≈ T k`` expert-token pairs: ``k`` experts per token on
    average, as a token-choice top-``k`` router would use.

    Examples:
        >>> expert_capacity(torch.tensor([1, 2, 4]), 8, 4).tolist()
        [2, 4, 8]
    """
    c = torch.round(k.to(torch.float64) * tokens / experts).to(torch.int64)
    return c.clamp(1, tokens)


def squash(s: torch.Tensor, dim: int = -1, eps: float = 1e-9) -> torch.Tensor:
    """Capsule non-linearity ``|s|² / (1 + |s|²) · s / |s|`` along ``dim`` (length in [0, 1)).

    Examples:
        >>> round(float(squash(torch.tensor([3.0, 4.0])).norm()), 6)  # 25 / 26
        0.961538
    """
    sq = (s * s).sum(dim=dim, keepdim=True)
    return sq / (1.0 + sq) * s / torch.sqrt(sq + eps)


def dynamic_routing(
    u: torch.Tensor, iters: int, b: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Capsule dynamic routing (routing by agreement) of prediction vectors ``u``.

    ``u`` ``[B, I, K, D]`` holds ``u_{k|i}``: input capsule ``i``'s prediction for output
    capsule (cluster) ``k``. Starting from logits ``b`` (default 0), each of ``iters``
    iterations computes ``c_ik = softmax_k(b_ik)``, ``v_k = squash(Σ_i c_ik u_{k|i})`` and then
    ``b_ik += u_{k|i} · v_k``.

    Args:
        u: prediction vectors ``[B, I, K, D]``.
        iters: routing iterations ``≥ 1``.
        b: initial logits ``[B, I, K]`` (default zeros).

    Returns:
        ``(v, c)``: output capsules ``[B, K, D]`` and the coupling coefficients ``[B, I, K]``
        of the last iteration (each row sums to 1 over ``K``).

    Examples:
        >>> v, c = dynamic_routing(torch.randn(2, 3, 4, 5), iters=1)
        >>> c.tolist()[0][0]  # b = 0, one iteration: uniform
        [0.25, 0.25, 0.25, 0.25]
    """
    n = check_int("iters", iters, 1)
    logits = torch.zeros(u.shape[:3], dtype=u.dtype, device=u.device) if b is None else b
    for step in range(n):
        c = torch.softmax(logits, dim=-1)
        v = squash((c.unsqueeze(-1) * u).sum(dim=1))
        if step + 1 < n:
            logits = logits + (u * v.unsqueeze(1)).sum(-1)
    return v, c


def kmeans(
    points: torch.Tensor, k: int, iters: int = 20, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means from a k-means++ start drawn with ``seed``.

    Args:
        points: ``[M, D]`` (float); with fewer than ``k`` distinct points some centroids
            repeat (their clusters stay empty).
        k: clusters ``≥ 1``.
        iters: Lloyd iterations ``≥ 0``.
        seed: seed of the k-means++ draws.

    Returns:
        ``(centroids [k, D], labels [M] int64)`` on the CPU in ``points``' dtype, labels the
        nearest centroid (lowest index on ties). An empty cluster keeps its centroid.

    Examples:
        >>> pts = torch.tensor([[0.0], [0.1], [10.0], [10.2]])
        >>> c, labels = kmeans(pts, 2)
        >>> sorted(round(float(v), 2) for v in c[:, 0])
        [0.05, 10.1]
    """
    kk = check_int("k", k, 1)
    check_int("iters", iters, 0)
    x = points.detach().to("cpu", torch.float64)  # the seeded draws run on the CPU
    if x.ndim != 2 or x.shape[0] == 0:
        raise fail("points", tuple(points.shape), "a non-empty [M, D] tensor")
    gen = torch.Generator().manual_seed(int(seed))
    centroids = x[torch.randint(x.shape[0], (1,), generator=gen)]
    for _ in range(1, kk):
        d2 = torch.cdist(x, centroids).min(dim=1).values ** 2
        pick = (
            torch.multinomial(d2 / d2.sum(), 1, generator=gen)
            if float(d2.sum()) > 0
            else torch.randint(x.shape[0], (1,), generator=gen)
        )
        centroids = torch.cat([centroids, x[pick]])
    for _ in range(iters):
        labels = torch.cdist(x, centroids).argmin(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=kk).to(x.dtype)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
    labels = torch.cdist(x, centroids).argmin(dim=1)
    return centroids.to(points.dtype), labels


def nearest(points: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index ``[M]`` of the nearest centroid ``[K, D]`` of each point ``[M, D]``."""
    return torch.cdist(points.to(centroids.dtype), centroids).argmin(dim=1)


def bayes_router(log_prior: torch.Tensor, log_likelihood: torch.Tensor) -> torch.Tensor:
    """Posterior ``r(k|x) = softmax_k(log π_k + log p_k(x))``: ``[..., K]`` from ``[K]`` and
    ``[..., K]``; the router a trained classifier of the cluster approaches.

    Examples:
        >>> bayes_router(torch.log(torch.tensor([0.5, 0.5])), torch.zeros(1, 2)).tolist()
        [[0.5, 0.5]]
    """
    return torch.softmax(log_prior + log_likelihood, dim=-1)


def ensemble(weights: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """``Σ_k w[b, k] · outputs[k, b, ...]``: weights ``[B, K]``, outputs ``[K, B, ...]``.

    Examples:
        >>> ensemble(torch.tensor([[0.25, 0.75]]), torch.tensor([[4.0], [8.0]])).tolist()
        [7.0]
    """
    w = weights.transpose(0, 1).reshape(*weights.shape[::-1], *([1] * (outputs.ndim - 2)))
    return (w * outputs).sum(dim=0)


def sparsify(weights: torch.Tensor, top_k: int) -> torch.Tensor:
    """Keep each row's ``top_k`` largest weights ``[B, K]`` and renormalise them to sum 1.

    Examples:
        >>> sparsify(torch.tensor([[0.5, 0.3, 0.2]]), 2).tolist()
        [[0.625, 0.375, 0.0]]
    """
    k = min(check_int("top_k", top_k, 1), weights.shape[-1])
    idx = weights.topk(k, dim=-1).indices
    kept = torch.zeros_like(weights).scatter(-1, idx, weights.gather(-1, idx))
    return kept / kept.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)
