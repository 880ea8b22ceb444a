"""Small ViT-style auto-encoder in which every token is one semantic feature.

The image ``[B, C, H, W]`` is cut into ``N = (H/p)(W/p)`` non-overlapping ``p x p`` patches
(row-major); patch ``i`` becomes token ``i`` and, after the encoder, feature ``i``:

    encoder: t = patches(x) W_e + pos_e                  [B, N, d]
             t = block_depth(...block_1(t))              (pre-norm transformer, see attention.py)
             z = tanh(LN(t) W_z)                         [B, N, L]
    decoder: u = z W_u + pos_d -> blocks -> LN -> W_p    [B, N, p·p·C] -> fold -> sigmoid

``patch_size`` defaults to the ``p`` that gives ``N`` tokens (``p = H / sqrt(N)`` for square
images: 16 features of a 32x32 image are 8x8 patches); an explicit ``patch_size`` must give
exactly ``N`` patches. ``attention_maps(x)`` returns the attention weights of the last encoder
block, ``[B, heads, N, N]`` (row ``i``: how token ``i`` attends to every token ``j``); every
block's attention of a forward can be recorded with :func:`semcom.models.attention.recording`,
and heads can be masked or pruned (:mod:`semcom.models.attention`).
Defaults: ``L = 16``, ``d = 64``, 2 encoder and 2 decoder blocks, 4 heads, MLP ratio 2.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from channels.errors import check_int, fail
from semcom.channel_state import ChannelState
from semcom.models import options as opt
from semcom.models.attention import TransformerBlock
from semcom.models.base import SemanticModel


def _patch_size_for(n_features: int, h: int, w: int) -> int | None:
    for p in range(1, math.gcd(h, w) + 1):
        if h % p == 0 and w % p == 0 and (h // p) * (w // p) == n_features:
            return p
    return None


class ViTAutoencoder(SemanticModel):
    """The ``"vit"`` model; see the module docstring."""

    name = "vit"
    DEFAULTS: dict[str, Any] = {
        "scalars_per_feature": 16,
        "patch_size": None,
        "dim": 64,
        "depth": 2,
        "heads": 4,
        "mlp_ratio": 2,
        "input_shape": [3, 32, 32],
        "num_classes": None,
    }

    @classmethod
    def resolve(cls, n_features: int, options: dict[str, Any]) -> dict[str, Any]:
        """Validate options against ``n_features``; fill in defaults and the patch size."""
        o = {**cls.DEFAULTS, **opt.scalars_per_feature_alias(options)}
        o["scalars_per_feature"] = check_int(
            "scalars_per_feature", o["scalars_per_feature"], 1, 4096
        )
        o["dim"] = check_int("dim", o["dim"], 1, 4096)
        o["depth"] = check_int("depth", o["depth"], 1, 64)
        o["heads"] = check_int("heads", o["heads"], 1, 64)
        o["mlp_ratio"] = check_int("mlp_ratio", o["mlp_ratio"], 1, 16)
        if o["dim"] % o["heads"]:
            raise fail("dim", o["dim"], f"a multiple of heads={o['heads']}")
        o["input_shape"] = opt.image_shape(o["input_shape"])
        o["num_classes"] = opt.num_classes(o["num_classes"])
        _, h, w = o["input_shape"]
        if o["patch_size"] is None:
            p = _patch_size_for(n_features, h, w)
            if p is None:
                counts = sorted(
                    {
                        (h // q) * (w // q)
                        for q in range(1, math.gcd(h, w) + 1)
                        if h % q == w % q == 0
                    }
                )
                raise fail("n_features", n_features, f"a patch count of {h}x{w} images: {counts}")
            o["patch_size"] = p
        else:
            p = check_int("patch_size", o["patch_size"], 1, min(h, w))
            if h % p or w % p or (h // p) * (w // p) != n_features:
                raise fail(
                    "patch_size",
                    p,
                    f"a divisor of {h} and {w} giving n_features={n_features} patches",
                )
            o["patch_size"] = p
        return o

    @classmethod
    def _own_parameter_count(cls, n_features: int, options: dict[str, Any]) -> int:
        """Embedding, positions, ``2·depth`` transformer blocks, norms and the heads: a block
        is two LayerNorms ``2·2d``, attention ``d·3d + 3d + d·d + d`` and the MLP
        ``d·rd + rd + rd·d + d``."""
        c = options["input_shape"][0]
        d, L, r = options["dim"], options["scalars_per_feature"], options["mlp_ratio"]
        patch = c * options["patch_size"] ** 2
        linear = lambda a, b: a * b + b  # noqa: E731
        block = 4 * d + linear(d, 3 * d) + linear(d, d) + linear(d, r * d) + linear(r * d, d)
        per_side = n_features * d + options["depth"] * block + 2 * d
        return linear(patch, d) + linear(d, L) + linear(L, d) + linear(d, patch) + 2 * per_side

    def __init__(self, n_features: int, **options: Any) -> None:
        o = self.resolve(n_features, options)
        c, h, w = o["input_shape"]
        L, d, p = o["scalars_per_feature"], o["dim"], o["patch_size"]
        super().__init__(n_features, L, (c, h, w), o["num_classes"], o)
        self.patch_size = p
        self.grid = (h // p, w // p)
        patch_dim = c * p * p
        self.embed = nn.Linear(patch_dim, d)
        self.pos_enc = nn.Parameter(0.02 * torch.randn(1, n_features, d))
        self.enc_blocks = nn.ModuleList(
            TransformerBlock(d, o["heads"], o["mlp_ratio"]) for _ in range(o["depth"])
        )
        self.enc_norm = nn.LayerNorm(d)
        self.to_z = nn.Linear(d, L)
        self.from_z = nn.Linear(L, d)
        self.pos_dec = nn.Parameter(0.02 * torch.randn(1, n_features, d))
        self.dec_blocks = nn.ModuleList(
            TransformerBlock(d, o["heads"], o["mlp_ratio"]) for _ in range(o["depth"])
        )
        self.dec_norm = nn.LayerNorm(d)
        self.to_patch = nn.Linear(d, patch_dim)

    def _patchify(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, N, C·p·p]`` (patches row-major, values channel-major)."""
        b, c = x.shape[:2]
        p, (gh, gw) = self.patch_size, self.grid
        x = x.reshape(b, c, gh, p, gw, p).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(b, gh * gw, c * p * p)

    def _unpatchify(self, t: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`_patchify`: ``[B, N, C·p·p]`` -> ``[B, C, H, W]``."""
        b = t.shape[0]
        c = self.input_shape[0]
        p, (gh, gw) = self.patch_size, self.grid
        x = t.reshape(b, gh, gw, c, p, p).permute(0, 3, 1, 4, 2, 5)
        return x.reshape(b, c, gh * p, gw * p)

    def _encode_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t, stack = self.encoder_trace(x)
        return t[-1], stack[-1]

    def encoder_trace(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Every encoder stage: tokens and attention weights, for white-box importance methods.

        Returns ``(tokens, weights)``: ``tokens[0]`` is the embedded input ``[B, N, d]`` and
        ``tokens[l]`` the output of block ``l`` (``depth + 1`` entries); ``weights[l]`` is block
        ``l + 1``'s attention ``[B, heads, N, N]`` (``depth`` entries, rows sum to 1).
        """
        t = self.embed(self._patchify(x)) + self.pos_enc
        tokens, weights = [t], []
        for block in self.enc_blocks:
            t, w = block(t)
            tokens.append(t)
            weights.append(w)
        return tokens, weights

    def features_from_tokens(self, t: torch.Tensor) -> torch.Tensor:
        """Encoder head on final tokens ``[B, N, d]`` -> features ``z`` ``[B, N, L]``."""
        return self.to_z(self.enc_norm(t))

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        t, _ = self._encode_tokens(x)
        return self.features_from_tokens(t)

    def attention_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Attention weights of the last encoder block, ``[B, heads, N, N]`` (rows sum to 1)."""
        self.check_input(x)
        _, weights = self._encode_tokens(x)
        return weights

    def decode(self, z: torch.Tensor, state: ChannelState | None = None) -> torch.Tensor:
        """Features ``z`` ``[B, N, L]`` -> reconstruction ``x_hat`` ``[B, C, H, W]`` in [0, 1]."""
        self.check_features(z)
        u = self.from_z(z) + self.pos_dec
        for block in self.dec_blocks:
            u, _ = block(u)
        return torch.sigmoid(self._unpatchify(self.to_patch(self.dec_norm(u))))
