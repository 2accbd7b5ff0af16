"""Vectorised construction of identifier strings (person ids, national IDs, phones, names).

Strings are assembled as fixed-width ASCII byte matrices and handed to Arrow without a Python loop,
which is what makes a million persons cheap.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# ISO 7064 MOD 11-2 weights and check characters of the 18-digit resident identity number (GB 11643-1999).
_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_ID_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)


def digit_matrix(values: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of non-negative integers as an (n, width) uint8 matrix of ASCII codes."""
    values = np.asarray(values, dtype=np.int64)
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((values[:, None] // powers) % 10 + ord("0")).astype(np.uint8)


def ascii_strings(matrix: np.ndarray) -> pa.StringArray:
    """Rows of an (n, width) ASCII byte matrix as an Arrow string array (zero copy of the bytes)."""
    matrix = np.ascontiguousarray(matrix, dtype=np.uint8)
    n, width = matrix.shape
    offsets = (np.arange(n + 1, dtype=np.int64) * width).astype(np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(matrix.tobytes()))


def prefixed_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.StringArray:
    """'P00000042'-style ids: a constant prefix and a zero-padded number."""
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    digits = digit_matrix(numbers, width)
    return ascii_strings(np.hstack([np.broadcast_to(head, (len(digits), len(head))), digits]))


def national_id_check_char(first17: np.ndarray) -> np.ndarray:
    """Check character (ASCII code) for an (n, 17) matrix of ASCII digits."""
    total = (first17.astype(np.int64) - ord("0")) @ _ID_WEIGHTS
    return _ID_CHECK[total % 11]


def national_ids(
    region: str, birth_days: np.ndarray, sequence: np.ndarray, male: np.ndarray
) -> pa.StringArray:
    """Valid-format resident IDs: region (6) + birth date YYYYMMDD + sequence (3, odd for men) + check."""
    births = np.asarray(birth_days, dtype="datetime64[D]")
    years = births.astype("datetime64[Y]").astype(np.int64) + 1970
    months = births.astype("datetime64[M]").astype(np.int64) % 12 + 1
    days = (births - births.astype("datetime64[M]")).astype(np.int64) + 1
    yyyymmdd = years * 10000 + months * 100 + days
    seq = (np.asarray(sequence, dtype=np.int64) % 500) * 2 + np.where(male, 1, 0)
    region_bytes = np.frombuffer(region.encode("ascii"), dtype=np.uint8)
    first17 = np.hstack(
        [
            np.broadcast_to(region_bytes, (len(seq), 6)),
            digit_matrix(yyyymmdd, 8),
            digit_matrix(seq, 3),
        ]
    )
    return ascii_strings(np.hstack([first17, national_id_check_char(first17)[:, None]]))


def phone_numbers(rng: np.random.Generator, n: int) -> pa.StringArray:
    """Fake 11-digit mobile numbers: '1' + a plausible second digit + 9 random digits."""
    second = rng.choice(np.frombuffer(b"3578", dtype=np.uint8), size=n)
    rest = digit_matrix(rng.integers(0, 10**9, size=n), 9)
    return ascii_strings(np.hstack([np.full((n, 1), ord("1"), dtype=np.uint8), second[:, None], rest]))


def chinese_names(rng: np.random.Generator, male: np.ndarray, parts: dict) -> pa.Array:
    """Surname + one or two given-name characters, drawn from the lists in synth_county.yaml."""
    n = len(male)
    weights = np.asarray(parts["surname_weights"], dtype=float)
    surname = pc.take(
        pa.array(parts["surnames"]), rng.choice(len(weights), size=n, p=weights / weights.sum())
    )
    male_chars, female_chars = parts["given_male"], parts["given_female"]
    pool = pa.array(list(male_chars) + list(female_chars) + [""])
    offset = np.where(male, 0, len(male_chars))
    first = rng.integers(0, len(male_chars), size=n) + offset
    second = np.where(
        rng.random(n) < parts["two_char_given_share"],
        rng.integers(0, len(male_chars), size=n) + offset,
        len(pool) - 1,
    )
    return pc.binary_join_element_wise(surname, pc.take(pool, first), pc.take(pool, second), "")
