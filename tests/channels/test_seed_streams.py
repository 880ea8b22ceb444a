"""The entropy words of the per-trial streams, as NumPy's SeedSequence reads its integers."""

import numpy as np
import pytest

from channels.seed_streams import entropy_words, int_words


def test_int_words_are_little_endian_32_bit_words():
    assert int_words(0) == [0]
    assert int_words(2**32 - 1) == [2**32 - 1]
    assert int_words(2**32) == [0, 1]
    assert int_words(2**70 + 5) == [5, 0, 64]
    with pytest.raises(ValueError, match="entropy"):
        int_words(-1)


def test_entropy_words_are_what_seed_sequence_hashes():
    # NumPy keeps the words it hashed: SeedSequence.entropy -> _coerce_to_uint32_array
    from numpy.random.bit_generator import _coerce_to_uint32_array

    for prefix in [(), (0,), (7, 3), (2**40 + 5, 123456), (2**70 + 3, 0, 9)]:
        words = entropy_words(prefix)
        assert words.dtype == np.uint64
        expected = _coerce_to_uint32_array(np.array(prefix, dtype=object)) if prefix else []
        np.testing.assert_array_equal(words, np.asarray(expected, dtype=np.uint64))
