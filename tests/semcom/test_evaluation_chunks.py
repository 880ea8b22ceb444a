"""LinkEvaluation's chunking: more images per ``simulate`` call (a multiple of the link's batch
size, as a CUDA link gets) change no result, bit for bit, and a CUDA link gets full launches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semcom.evaluation import DEVICE_FRAMES, DEVICE_VALUES, LinkEvaluation
from tests.semcom.test_link import TanhModel, flat_link


def test_larger_calls_give_the_same_results_bit_for_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    model = TanhModel(n=6, length=8)
    x = torch.rand(23, 3, 4, 4, generator=torch.Generator().manual_seed(4))

    def evaluate() -> LinkEvaluation:
        link = flat_link(model, channel="rayleigh", snr_db=3.0, n_subchannels=4, batch_size=4)
        evaluation = LinkEvaluation(link, x)
        for draw in range(3):
            evaluation.add_draw(draw)
        return evaluation

    plain = evaluate()  # calls of 4 images (the last one 3)
    monkeypatch.setattr(LinkEvaluation, "images_per_call", lambda self: 12)
    larger = evaluate()  # calls of 12 (encoded in pieces of 4 inside simulate)
    assert plain.per_image("mse").min() > 0  # the channel corrupted something
    for name in ("psnr_db", "mse", "ssim"):
        np.testing.assert_array_equal(larger.per_image(name), plain.per_image(name))
    assert np.array_equal(plain._errors_f, larger._errors_f)
    assert np.array_equal(plain._sent_f, larger._sent_f)


def test_a_cuda_link_is_called_with_full_launches() -> None:
    link = flat_link(TanhModel(), batch_size=256)
    small = LinkEvaluation(link, torch.rand(5000, 3, 4, 4))
    assert small.images_per_call() == 256  # a CPU link: its batch size
    link.backend = "cuda"  # only the chunking is read here; nothing is simulated
    assert small.images_per_call() == DEVICE_FRAMES
    photos = LinkEvaluation(link, torch.rand(2, 3, 256, 256))
    assert photos.images_per_call() == 256  # 85 photos' values fit: the batch size stays
    link.batch_size = 100
    assert small.images_per_call() == 4000  # a multiple of the batch size
    assert DEVICE_VALUES // (3 * 256 * 256) < 256
