"""The engine's progress hook and launch sizing never change a result; the max_bits bound."""

from __future__ import annotations

import pytest

from channels.errors import ConfigError
from channels.montecarlo import max_bits_limit, simulate_ber, trial_shape


def _same(a: dict, b: dict) -> bool:
    """Equal results apart from the wall time."""
    return {k: v for k, v in a.items() if k != "seconds"} == {
        k: v for k, v in b.items() if k != "seconds"
    }


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        # no errors at all: runs to max_bits; theory underflows to 0
        (("bpsk", "awgn", 30.0), dict(min_errors=10, max_bits=2e6)),
        # imperfect CSI: no theory, so the first launch is sized for BER 0.5 and must grow
        (("16qam", "rayleigh", 20.0), dict(csi_error_var=0.02, min_errors=300, max_bits=1e9)),
        # theory-guided launches that stop on min_errors
        (("qpsk", "awgn", 6.0), dict(min_errors=2000, max_bits=1e9)),
    ],
)
def test_progress_and_adaptive_launches_do_not_change_the_result(args, kwargs) -> None:
    seen: list[tuple[int, int]] = []
    auto = simulate_ber(*args, **kwargs, seed=4, progress=lambda e, b: seen.append((e, b)))
    plain = simulate_ber(*args, **kwargs, seed=4)
    fixed = simulate_ber(*args, **kwargs, seed=4, batch_trials=37)  # fixed size per launch
    assert _same(auto.to_dict(), plain.to_dict()) and _same(auto.to_dict(), fixed.to_dict())
    assert seen[-1] == (auto.errors, auto.bits)  # the last call sees the result's counts
    errors, bits = zip(*seen, strict=True)
    assert list(errors) == sorted(errors) and list(bits) == sorted(bits)
    assert len(set(bits)) == len(bits)  # one call per launch, each adds trials
    per_trial = trial_shape(args[0], 1)[1]
    assert all(b % per_trial == 0 for b in bits)


def test_launches_grow_when_the_first_guess_is_low() -> None:
    """Imperfect CSI has no theory, so the first launch is sized for BER 0.5 (2 trials); at
    BER ~4e-5 the launches must grow (a fixed size took ~750 launches for this point), and a
    point whose theory underflows to 0 is sized from max_bits at once."""
    seen: list[int] = []
    r = simulate_ber("bpsk", "awgn", 9.0, csi_error_var=1e-3, min_errors=200, seed=2,
                     progress=lambda e, b: seen.append(b))  # fmt: skip
    assert r.errors == 200 and r.bits > 300 * trial_shape("bpsk", 1)[1]
    assert len(seen) <= 10
    seen.clear()
    r = simulate_ber("bpsk", "awgn", 30.0, min_errors=10, max_bits=1e7, seed=1,
                     progress=lambda e, b: seen.append(b))  # fmt: skip
    assert r.errors == 0 and r.theory_ber == 0.0
    assert len(seen) <= 4  # 1e7 bits = 2442 trials, at most 1024 per CPU launch


def test_max_bits_is_bounded_by_the_trial_counter() -> None:
    """At most 2**32 - 1 trials (32-bit Philox counter word), refused before any work."""
    assert max_bits_limit("bpsk") == (2**32 - 1) * 4096
    assert max_bits_limit("256qam", coherence=3) == (2**32 - 1) * 1366 * 3 * 8
    assert max_bits_limit("bpsk") > 1e13  # the documented magnitude
    with pytest.raises(ConfigError, match=r"^max_bits: 17592186040321 is too large"):
        simulate_ber("bpsk", "awgn", 1.0, max_bits=max_bits_limit("bpsk") + 1)
    with pytest.raises(ConfigError, match=r"^max_bits: .* is too large"):
        simulate_ber("bpsk", "awgn", 1.0, max_bits=1e14)


@pytest.mark.parametrize("seed", [1.5, 2.0, "3", True, None])
def test_seed_must_be_an_integer(seed) -> None:
    with pytest.raises(ConfigError, match=r"^seed: .* allowed: an integer"):
        simulate_ber("qpsk", "awgn", 1.0, seed=seed)
