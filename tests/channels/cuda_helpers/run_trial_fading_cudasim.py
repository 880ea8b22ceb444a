"""Draw a few trials' fading with ``channels.fading.trial_fading_device`` under Numba's CUDA
simulator and print ``h_re, h_im, gains`` as one JSON object (floats round-trip exactly);
``tests/channels/test_trial_fading.py`` compares them with the host's draws."""

from __future__ import annotations

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))

from channels.fading import trial_fading_device  # noqa: E402
from tests.channels.cuda_helpers.cases import FADING_CASES  # noqa: E402


def main() -> None:
    out = []
    for model, k, prefix, trials, k_factor in FADING_CASES:
        h_re, h_im, gains = trial_fading_device(model, k, prefix, np.array(trials), k_factor)
        out.append([a.copy_to_host().tolist() for a in (h_re, h_im, gains)])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
