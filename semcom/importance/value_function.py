"""The value of a subset of features: the cooperative game behind the black-box importance methods.

For a model with encoder ``f`` and decoder ``g``, features ``z = f(x)`` of shape ``[N, L]`` and a
subset ``S`` of the feature indices ``V = {0, ..., N−1}``:

    v(S) = −E_x MSE(x, g(z ⊙ m_S)),      (m_S)_i = 1 if i ∈ S else 0,
    MSE(x, x̂) = (1/D) Σ_p (x_p − x̂_p)^2 over the D = C·H·W pixels of one image,

so the features outside ``S`` are zero-filled, as the receiver of the link zero-fills a feature
it did not receive. ``v(V)`` is minus the clean reconstruction MSE, ``v(∅)`` minus the MSE of
``g(0)``; masking importance is ``v(V) − v(V ∖ {i})``. ``E_x`` is the mean over the images.

A *value function* is anything callable as ``value_fn(subsets) -> values``: ``subsets`` a bool
array ``[M, N]`` (one subset per row, ``True`` = feature present), ``values`` float64 ``[M]``.
The black-box methods (LiMA, ReAGent, Data Shapley) only ever call such a function, so they run
on planted toy games as well as on a model; :class:`SubsetValue` is the model's.

:class:`SubsetValue` encodes the images once (the encoder output is cached), decodes many masked
copies per decoder call, and memoises every subset it has evaluated (``n_evaluations`` counts
the subsets actually decoded, the cost of a method in decoder passes per image).

Options of the fill (``fill``):

- ``"zero"`` (default): the link's convention above.
- ``"other-image"``: a feature outside ``S`` is *replaced* by the same feature of another image
  (a fixed derangement of the images drawn from ``seed``), ``z ⊙ m_S + z_π ⊙ (1 − m_S)``:
  replacement rather than deletion, as replacement-based attribution does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from channels.errors import ConfigError, check_int, check_real, fail
from semcom.importance.base import (
    ImportanceEstimator,
    as_images,
    check_model,
    encode_checked,
    eval_mode,
    model_dtype_device,
    normalize_importance,
)

FILLS = ("zero", "other-image")

ValueFn = Callable[[np.ndarray], np.ndarray]
"""``value_fn(subsets: bool [M, N]) -> float64 [M]``."""


def check_subsets(subsets: Any, n: int) -> np.ndarray:
    """``subsets`` as a bool array ``[M, N]`` (a single ``[N]`` row becomes ``[1, N]``).

    Accepts bool arrays, 0/1 integer arrays and tensors; raises ConfigError otherwise.
    """
    if isinstance(subsets, torch.Tensor):
        subsets = subsets.detach().cpu().numpy()
    arr = np.asarray(subsets)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != n:
        raise fail("subsets", f"array of shape {arr.shape}", f"a bool array [M, N={n}]")
    if arr.dtype != np.bool_:
        if not np.issubdtype(arr.dtype, np.integer) or not np.isin(arr, (0, 1)).all():
            raise fail("subsets", f"array of dtype {arr.dtype}", "bool or 0/1 integers")
        arr = arr.astype(bool)
    return arr


def evaluate(value_fn: ValueFn, subsets: np.ndarray) -> np.ndarray:
    """``value_fn(subsets)`` checked to be ``M`` finite float64 values."""
    values = np.asarray(value_fn(subsets), dtype=np.float64).reshape(-1)
    if values.shape[0] != subsets.shape[0]:
        raise ConfigError(
            f"value function: returned {values.shape[0]} values for {subsets.shape[0]} subsets"
        )
    if not np.all(np.isfinite(values)):
        raise ConfigError("value function: returned non-finite values")
    return values


def check_fill(fill: Any) -> str:
    """``fill`` as one of :data:`FILLS` or ConfigError."""
    key = str(fill).strip().lower()
    if key not in FILLS:
        raise fail("fill", fill, " or ".join(FILLS))
    return key


class SubsetValue:
    """``v(S) = −E_x MSE(x, g(z ⊙ m_S))`` of a model on images; see the module docstring.

    Args:
        model: a semantic model (``encode``, ``decode``, ``n_features``).
        images: ``[B, C, H, W]`` (a Tensor, an array or a data set with ``.images``).
        batch_size: images per encoder pass and per masked decode.
        decode_batch: largest number of latents per decoder call (memory only).
        fill: ``"zero"`` or ``"other-image"`` (needs ``B >= 2``).
        seed: draws the derangement of ``fill="other-image"``.

    Calling it with a bool array ``[M, N]`` returns float64 ``[M]``. Cost: one decoder pass per
    image for each subset not seen before.

    Examples:
        >>> import torch
        >>> class Toy(torch.nn.Module):          # x = A z with A = diag(1, 2)
        ...     n_features, scalars_per_feature = 2, 1
        ...     def encode(self, x): return x.reshape(-1, 2, 1) / torch.tensor([[1.0], [2.0]])
        ...     def decode(self, z): return (z * torch.tensor([[1.0], [2.0]])).reshape(-1, 1, 1, 2)
        >>> v = SubsetValue(Toy(), torch.tensor([[[[0.6, 0.2]]]]))
        >>> v([[True, True], [True, False], [False, False]]).round(6)   # -(x_i^2 dropped)/2
        array([ 0.  , -0.02, -0.2 ])
    """

    def __init__(
        self,
        model: Any,
        images: Any,
        batch_size: int = 256,
        decode_batch: int = 4096,
        fill: str = "zero",
        seed: int = 0,
    ) -> None:
        check_model(model)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.decode_batch = check_int("decode_batch", decode_batch, 1)
        self.fill = check_fill(fill)
        images = as_images(images)
        if self.fill == "other-image" and images.shape[0] < 2:
            raise fail("fill", fill, "'zero' when there is a single image")
        self.model = model
        dtype, device = model_dtype_device(model, images)
        self._x = images.to(device=device, dtype=dtype)
        with torch.no_grad(), eval_mode(model):
            self._z = torch.cat(
                [
                    encode_checked(model, self._x[s : s + self.batch_size])
                    for s in range(0, self._x.shape[0], self.batch_size)
                ]
            )
        self.n_features = int(model.n_features)
        self.n_images = int(self._x.shape[0])
        self._fill = torch.zeros_like(self._z)
        if self.fill == "other-image":
            order = np.random.default_rng(seed).permutation(self.n_images)
            source = np.empty(self.n_images, dtype=np.int64)
            source[order] = np.roll(order, -1)  # image order[j] takes order[j+1]'s features
            self._fill = self._z[torch.from_numpy(source).to(self._z.device)]
        self._cache: dict[bytes, float] = {}
        self.n_evaluations = 0

    @property
    def features(self) -> torch.Tensor:
        """The cached encoder output ``z`` ``[B, N, L]``."""
        return self._z

    def __call__(self, subsets: Any) -> np.ndarray:
        """``v(S)`` for every row of ``subsets`` (bool ``[M, N]``), float64 ``[M]``."""
        subsets = check_subsets(subsets, self.n_features)
        keys = [row.tobytes() for row in np.packbits(subsets, axis=1)]
        todo: dict[bytes, int] = {}
        for row, key in enumerate(keys):
            if key not in self._cache and key not in todo:
                todo[key] = row
        if todo:
            rows = subsets[list(todo.values())]
            masks = torch.from_numpy(rows).to(device=self._z.device, dtype=self._z.dtype)
            with torch.no_grad():
                values = self._values(masks).cpu().numpy()
            self._cache.update(zip(todo, values.tolist(), strict=True))
            self.n_evaluations += len(todo)
        return np.array([self._cache[key] for key in keys], dtype=np.float64)

    def continuous(self, masks: torch.Tensor) -> torch.Tensor:
        """``v(m) = −E_x MSE(x, g(z ⊙ m + fill ⊙ (1 − m)))`` for real masks ``m`` ``[M, N]``.

        Differentiable in ``masks`` (nothing is cached); equals :meth:`__call__` on 0/1 masks.
        Returns float64 ``[M]`` on the model's device.
        """
        if masks.ndim != 2 or masks.shape[1] != self.n_features:
            raise fail("masks", f"shape {tuple(masks.shape)}", f"[M, N={self.n_features}]")
        return self._values(masks.to(device=self._z.device, dtype=self._z.dtype))

    def _values(self, masks: torch.Tensor) -> torch.Tensor:
        """``−E_x MSE`` per mask row (float64 ``[M]``); decodes in chunks."""
        m = masks.shape[0]
        total = torch.zeros(m, dtype=torch.float64, device=self._z.device)
        with eval_mode(self.model):
            for first in range(0, self.n_images, self.batch_size):
                x = self._x[first : first + self.batch_size]
                z = self._z[first : first + self.batch_size]
                fill = self._fill[first : first + self.batch_size]
                b = x.shape[0]
                step = max(1, self.decode_batch // b)
                chunks = []
                for lo in range(0, m, step):
                    mk = masks[lo : lo + step][:, None, :, None]  # [s, 1, N, 1]
                    s = mk.shape[0]
                    latent = (z.unsqueeze(0) * mk + fill.unsqueeze(0) * (1 - mk)).reshape(
                        s * b, *z.shape[1:]
                    )
                    x_hat = self.model.decode(latent).reshape(s, b, -1).to(torch.float64)
                    err = (x_hat - x.reshape(1, b, -1).to(torch.float64)).pow(2).mean(dim=2)
                    chunks.append(err.sum(dim=1))
                total = total + torch.cat(chunks)
        return 0.0 - total / self.n_images  # 0.0 - ...: no negative zero for v = 0

    def contribution_distance(self) -> np.ndarray:
        """Angular distance between the features' lone contributions, float64 ``[N, N]``.

        ``e_i = vec_x(g(z ⊙ m_{i} + fill ⊙ (1 − m_{i})) − g(fill))``, the change of the
        reconstructions (all images stacked) when feature ``i`` alone is sent;
        ``d_ij = arccos(cos(e_i, e_j)) / π`` in ``[0, 1]`` (0: same direction). A feature whose
        contribution is exactly zero is at distance 1/2 from every other. Costs ``N + 1``
        decoder passes per image.
        """
        n = self.n_features
        eye = torch.eye(n, dtype=self._z.dtype, device=self._z.device)
        gram = torch.zeros(n, n, dtype=torch.float64, device=self._z.device)
        with torch.no_grad(), eval_mode(self.model):
            for first in range(0, self.n_images, self.batch_size):
                z = self._z[first : first + self.batch_size]
                fill = self._fill[first : first + self.batch_size]
                b = z.shape[0]
                base = self.model.decode(fill).reshape(b, -1).to(torch.float64)
                step = max(1, self.decode_batch // b)
                rows = []
                for lo in range(0, n, step):
                    mk = eye[lo : lo + step][:, None, :, None]
                    s = mk.shape[0]
                    latent = (z.unsqueeze(0) * mk + fill.unsqueeze(0) * (1 - mk)).reshape(
                        s * b, *z.shape[1:]
                    )
                    out = self.model.decode(latent).reshape(s, b, -1).to(torch.float64)
                    rows.append((out - base.unsqueeze(0)).reshape(s, -1))
                e = torch.cat(rows)  # [N, b * D]
                gram += e @ e.T
        norm = gram.diagonal().clamp_min(0).sqrt()
        denom = norm[:, None] * norm[None, :]
        cos = torch.where(denom > 0, gram / denom.clamp_min(1e-300), torch.zeros_like(gram))
        dist = torch.arccos(cos.clamp(-1.0, 1.0)) / torch.pi
        dist.fill_diagonal_(0.0)
        return dist.cpu().numpy()


class SubsetGameEstimator(ImportanceEstimator):
    """Base of the black-box estimators: a method of the game ``v`` on the whole image set.

    ``fit(model, images)`` builds one :class:`SubsetValue` on all the images (the game is the
    data-set value ``v(S) = −E_x MSE``, one importance profile per model, as the link uses) and
    calls :meth:`_attribute`, which returns the raw scores ``w̃`` float64 ``[N]``. Then
    ``importances_ = normalize_importance(w̃)``: negative attributions clip to 0 (a feature whose
    presence hurts the reconstruction gets no protection). Also sets ``n_evaluations_``, the
    number of subsets decoded (each one decoder pass per image).

    Args:
        batch_size: images per encoder pass and per masked decode.
        decode_batch: largest number of latents per decoder call (memory only).
        fill: how a feature outside a subset is filled; ``"zero"`` (the link) or
            ``"other-image"``; see :class:`SubsetValue`.
    """

    def __init__(self, batch_size: int = 256, decode_batch: int = 4096, fill: str = "zero") -> None:
        super().__init__(batch_size)
        self.decode_batch = check_int("decode_batch", decode_batch, 1)
        self.fill = check_fill(fill)

    def _check_players(self, n: int) -> None:
        """Hook: raise ConfigError before any work when the method cannot handle ``n`` features."""

    def _attribute(self, value_fn: SubsetValue, n: int) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def fit(self, model: Any, images: Any) -> SubsetGameEstimator:
        """Estimate the importance of every feature of ``model`` on ``images`` [B, C, H, W]."""
        check_model(model)
        images = as_images(images)
        self._check_players(int(model.n_features))
        value = SubsetValue(
            model,
            images,
            batch_size=self.batch_size,
            decode_batch=self.decode_batch,
            fill=self.fill,
            seed=getattr(self, "seed", 0),
        )
        with eval_mode(model):
            raw = np.asarray(self._attribute(value, value.n_features), dtype=np.float64)
        self.raw_importances_ = raw
        self.importances_ = normalize_importance(raw)
        self.n_images_ = value.n_images
        self.n_evaluations_ = value.n_evaluations
        return self


def check_seed(seed: Any) -> int:
    """An integer seed >= 0 or ConfigError."""
    return check_int("seed", seed, 0)


def check_unit(field: str, value: Any, low_open: bool = True, high: float = 1.0) -> float:
    """A finite float in ``(0, high]`` (``[0, high]`` when ``low_open`` is False) or ConfigError."""
    allowed = f"a number in {'(' if low_open else '['}0, {high:g}]"
    return check_real(field, value, 0, high, open_low=low_open, allowed=allowed)


def check_nonnegative(field: str, value: Any) -> float:
    """A finite float >= 0 or ConfigError."""
    return check_real(field, value, 0)


__all__ = [
    "FILLS",
    "SubsetGameEstimator",
    "SubsetValue",
    "ValueFn",
    "check_fill",
    "check_subsets",
    "evaluate",
]
