"""semcom's physical layer: modulation, channel models, BER theory, bits, Monte Carlo.

Usable on its own; imports nothing else of semcom. Every public name is importable from the
package (``channels.get_modulation``); the submodule is loaded on first use, so ``import
channels`` is cheap.

Examples:
    >>> import channels
    >>> qam = channels.get_modulation("16qam")
    >>> qam.bits_per_symbol
    4
    >>> esno = channels.db_to_linear(0.0)             # Es/N0 = 0 dB
    >>> round(float(channels.ber_awgn("bpsk", esno)), 4)   # Q(sqrt(2))
    0.0786
"""

from channels.lazy import lazy_exports

_EXPORTS = {
    # modulation
    "Modulation": "channels.modulation",
    "get_modulation": "channels.modulation",
    "gray_pam_levels": "channels.modulation",
    "label_bits": "channels.modulation",
    "bits_per_symbol": "channels.names",
    "check_modulation": "channels.names",
    # channel models
    "esno_db_to_no": "channels.awgn",
    "ebno_db_to_no": "channels.awgn",
    "fading_coefficients": "channels.fading",
    "block_fading": "channels.fading",
    "estimate_channel": "channels.fading",
    "equalize": "channels.fading",
    "subchannel_snr": "channels.subchannels",
    "transmit_parallel": "channels.subchannels",
    "receive_parallel": "channels.subchannels",
    # theory
    "qfunc": "channels.theory",
    "ber_awgn": "channels.theory",
    "ser_awgn": "channels.theory",
    "ber_rayleigh": "channels.theory",
    "ser_rayleigh": "channels.theory",
    "ber_rician": "channels.theory",
    "ser_rician": "channels.theory",
    "ber_theory": "channels.theory",
    "ser_theory": "channels.theory",
    "ber_bound": "channels.theory",
    "db_to_linear": "channels.theory",
    "linear_to_db": "channels.theory",
    "ebno_to_esno": "channels.theory",
    "esno_to_ebno": "channels.theory",
    # bits
    "quantize": "channels.bits",
    "dequantize": "channels.bits",
    "quantization_step": "channels.bits",
    "gray_encode": "channels.bits",
    "gray_decode": "channels.bits",
    "indices_to_bits": "channels.bits",
    "bits_to_indices": "channels.bits",
    "bsc": "channels.bits",
    "transmit_bsc": "channels.bits",
    "mse_bit_errors": "channels.bits",
    # Monte Carlo
    "simulate_ber": "channels.montecarlo",
    "BerResult": "channels.montecarlo",
    "wilson_interval": "channels.montecarlo",
    # errors
    "ConfigError": "channels.errors",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
