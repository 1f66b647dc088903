import hashlib

from runtools.server.domain.keys import (
    KEY_LENGTH,
    generate_key,
    hash_key,
    is_well_formed,
    sha256_hex,
)


def test_generated_keys_have_the_documented_shape() -> None:
    live = generate_key(is_test=False)
    test = generate_key(is_test=True)
    assert live.plaintext.startswith("rt_live_")
    assert test.plaintext.startswith("rt_test_")
    assert len(live.plaintext) == KEY_LENGTH == 8 + 32 + 6
    assert live.display_prefix == live.plaintext[:12]
    assert live.key_hash == hash_key(live.plaintext) != live.plaintext
    assert is_well_formed(live.plaintext)
    assert is_well_formed(test.plaintext)


def test_keys_are_unique() -> None:
    assert len({generate_key(is_test=False).plaintext for _ in range(200)}) == 200


def test_a_single_changed_character_fails_the_checksum() -> None:
    key = generate_key(is_test=False).plaintext
    for position in (8, 20, 39, len(key) - 1):
        replacement = "A" if key[position] != "A" else "B"
        assert not is_well_formed(key[:position] + replacement + key[position + 1 :])


def test_wrong_prefix_length_or_alphabet_is_malformed() -> None:
    key = generate_key(is_test=False).plaintext
    assert not is_well_formed(key.replace("rt_live_", "rt_prod_"))
    assert not is_well_formed(key[:-1])
    assert not is_well_formed(key + "x")
    assert not is_well_formed(key[:10] + "-" + key[11:])
    assert not is_well_formed("")


def test_digests_are_sha256_on_both_sides_of_the_short_input_bound() -> None:
    # Stored key hashes and cache keys must not depend on which implementation ran.
    assert sha256_hex(b"abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    for size in (0, 1, 46, 63, 64, 65, 700):
        data = bytes(range(256)) * 3
        assert sha256_hex(data[:size]) == hashlib.sha256(data[:size]).hexdigest()
