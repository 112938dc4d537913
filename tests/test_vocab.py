from pipeline.vocab import (
    OOV_ID,
    PAD_ID,
    PIECE,
    build_pieces,
    build_vocab,
    encode,
    id_tokens,
    index_of,
)


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


def test_pieces_are_characters_of_forms_by_frequency():
    docs = [["영화/NNG", "좋/VA"], ["영상/NNG"]]
    assert build_pieces(docs, min_freq=1, tagged=True) == ["영", "상", "좋", "화"]
    assert build_pieces(docs, min_freq=2, tagged=True) == ["영"]
    assert "/" in build_pieces(docs, min_freq=1, tagged=False)


def test_char_fallback_spells_unknown_tokens_with_known_characters():
    vocab = {"tokens": ["<pad>", "<oov>", "영화/NNG", "좋/VA"], "pieces": ["영", "상"]}
    tokens = id_tokens(vocab, size=4, char_fallback=True)
    assert tokens[4:] == [PIECE + "영", PIECE + "상"]
    index = index_of(tokens)
    docs = [["영상미/NNG", "좋/VA"], ["뭥미/NNP"]]
    ids = encode(docs, index, max_length=10, char_fallback=True, tagged=True)
    assert ids[0].tolist() == [4, 5, 3]  # 영, 상 (미 unknown), then 좋/VA
    assert ids[1].tolist() == [OOV_ID]  # no known character at all
    assert encode(docs, index, max_length=2, char_fallback=True, tagged=True)[0].tolist() == [4, 5]


def test_without_fallback_pieces_are_not_used():
    vocab = {"tokens": ["<pad>", "<oov>", "영화/NNG"], "pieces": ["영"]}
    index = index_of(id_tokens(vocab, size=2, char_fallback=False))
    assert len(index) == 2
    assert encode([["영화/NNG"]], index, max_length=5, tagged=True)[0].tolist() == [OOV_ID]
