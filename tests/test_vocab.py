from pipeline.vocab import OOV_ID, PAD_ID, build_vocab, encode, index_of


def test_vocab_by_frequency_with_min_freq_and_max_size():
    docs = [["a", "b", "b"], ["c", "b", "a"], ["d"]]
    assert build_vocab(docs, min_freq=2, max_size=10) == ["<pad>", "<oov>", "b", "a"]
    assert build_vocab(docs, min_freq=1, max_size=4) == ["<pad>", "<oov>", "b", "a"]


def test_encode_truncates_keeps_start_and_maps_unknown_to_oov():
    index = index_of(["<pad>", "<oov>", "좋다", "영화"])
    ids = encode([["영화", "정말", "좋다", "좋다"], []], index, max_length=3)
    assert ids[0].tolist() == [3, OOV_ID, 2]
    assert ids[1].tolist() == []
    assert PAD_ID == 0
