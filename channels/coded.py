"""Coded transmission modes: a Gray QAM modulation with a 5G NR LDPC code rate.

A coded entry is named ``<modulation>-r<num>/<den>``, for example ``"16qam-r1/2"``: its
information bits are LDPC-encoded at rate ``r = num/den`` (:mod:`channels.ldpc`), mapped to
the modulation's Gray constellation, and decoded after soft demapping. It carries
``beta(m) r`` information bits per channel symbol (fractional), so a feature of ``b`` bits
takes ``S = ceil(b den / (num beta))`` symbols (:func:`entry_symbols`): the whole codeword of
``n = beta S`` coded bits fills whole symbols.

Its post-decoding bit-error rate is the measured curve of :mod:`channels.coded_table`, a
function of the per-symbol SNR ``gamma = Es/N0`` (the project's one SNR convention). An
uncoded modulation name (``"qpsk"``) is an entry too, with rate 1.

Examples:
    >>> parse_entry("16qam-r1/2")
    ('16qam', Fraction(1, 2))
    >>> entry_symbols(512, "16qam-r1/2"), entry_symbols(512, "16qam")
    (256, 128)
    >>> coded_entries(["qpsk"], ["1/2", "5/6"])
    ('qpsk-r1/2', 'qpsk-r5/6')
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from channels.errors import fail
from channels.names import BITS_PER_SYMBOL, MODULATION_NAMES, check_modulation

CODE_RATES: tuple[str, ...] = ("1/3", "1/2", "2/3", "5/6")
"""5G NR LDPC code rates a coded entry may use (base graph chosen by Sionna from k and r)."""

CODED_MODULATIONS: tuple[str, ...] = ("qpsk", "16qam", "64qam")
"""Modulations a coded entry may use (those of the measured table)."""

MAX_BLOCK_BITS = 8448
"""Largest information block of the 5G NR LDPC code (base graph 1); longer messages are
segmented (:func:`block_sizes`)."""

MAX_BLOCK_BITS_LOW_RATE = 3824
"""Largest block at a rate of 1/3 or less: base graph 1 needs a rate above 1/3, so such
blocks must stay on base graph 2, which Sionna selects for ``k <= 3824`` (3GPP TS 38.212)."""

__all__ = [
    "CODED_MODULATIONS",
    "CODE_RATES",
    "MAX_BLOCK_BITS",
    "MAX_BLOCK_BITS_LOW_RATE",
    "block_sizes",
    "max_block_bits",
    "check_entry",
    "coded_entries",
    "entry_bits_per_symbol",
    "entry_name",
    "entry_symbols",
    "is_coded",
    "parse_entry",
]


def _allowed() -> str:
    return (
        f"a modulation ({', '.join(MODULATION_NAMES)}) or a coded entry '<modulation>-r<rate>' "
        f"with modulation in {', '.join(CODED_MODULATIONS)} and rate in {', '.join(CODE_RATES)}"
    )


def is_coded(name: str) -> bool:
    """True for a coded entry name (``"qpsk-r1/2"``), False for a plain modulation."""
    return isinstance(name, str) and "-r" in name


def parse_entry(name: str, field: str = "modulation") -> tuple[str, Fraction]:
    """``(modulation, rate)`` of an entry name; rate 1 for a plain modulation.

    Raises:
        ConfigError: unknown modulation or rate, naming ``field``.
    """
    if not isinstance(name, str):
        raise fail(field, name, _allowed())
    if not is_coded(name):
        return check_modulation(name, field), Fraction(1)
    mod, _, rate = name.strip().lower().partition("-r")
    if mod not in CODED_MODULATIONS or rate not in CODE_RATES:
        raise fail(field, name, _allowed())
    return mod, Fraction(rate)


def check_entry(name: str, field: str = "modulation") -> str:
    """The canonical (lower-case) entry name, or a one-line ConfigError naming ``field``."""
    mod, rate = parse_entry(name, field)
    return entry_name(mod, rate)


def entry_name(modulation: str, rate: Fraction | str | None) -> str:
    """The entry name of a modulation and rate (``None`` or 1: the plain modulation)."""
    if rate is None or Fraction(rate) == 1:
        return modulation
    r = Fraction(rate)
    return f"{modulation}-r{r.numerator}/{r.denominator}"


def entry_bits_per_symbol(name: str) -> Fraction:
    """Information bits per channel symbol, ``beta(m) r`` (exact fraction)."""
    mod, rate = parse_entry(name)
    return BITS_PER_SYMBOL[mod] * rate


def max_block_bits(rate: Fraction | float) -> int:
    """Largest 5G LDPC information block at code rate ``rate``: :data:`MAX_BLOCK_BITS`
    above 1/3, :data:`MAX_BLOCK_BITS_LOW_RATE` at 1/3 or less."""
    return MAX_BLOCK_BITS if rate > Fraction(1, 3) else MAX_BLOCK_BITS_LOW_RATE


def block_sizes(bits: int, rate: Fraction | float = 1) -> list[int]:
    """Code-block segmentation of a message of ``bits`` information bits at code ``rate``.

    ``C = ceil(bits / k_max)`` blocks (``k_max`` = :func:`max_block_bits`) of as equal sizes
    as possible (the first ``bits mod C`` take one bit more), as 5G NR segments a transport
    block: each block is encoded on its own. One block (``[bits]``) up to ``k_max``.

    Examples:
        >>> block_sizes(512), block_sizes(20000), block_sizes(5000, Fraction(1, 3))
        ([512], [6667, 6667, 6666], [2500, 2500])
    """
    bits = int(bits)
    limit = max_block_bits(rate)
    count = max(1, -(-bits // limit))
    base, extra = divmod(bits, count)
    return [base + 1] * extra + [base] * (count - extra)


def entry_symbols(bits: int, name: str) -> int:
    """Channel symbols of ``bits`` information bits: ``ceil(bits / (beta r))``, summed over
    the code blocks of a coded entry (:func:`block_sizes`; each codeword fills whole symbols).
    """
    ratio = entry_bits_per_symbol(name)
    blocks = block_sizes(bits, parse_entry(name)[1]) if is_coded(name) else [int(bits)]
    return sum(-(-(k * ratio.denominator) // ratio.numerator) for k in blocks)


def coded_entries(modulations: Sequence[str], rates: Sequence[str]) -> tuple[str, ...]:
    """Every (modulation, rate) entry name, modulation-major; rate ``"1"`` keeps it uncoded."""
    out = []
    for m in modulations:
        for r in rates:
            out.append(check_entry(entry_name(check_modulation(m, "modulations"), r), "rates"))
    return tuple(out)
