from pipeline.tokenizers import TokenizerConfig, make_tokenizer, squeeze_repeats, whitespace_tokens


def test_whitespace_mirrors_the_notebook_keras_tokenizer():
    assert whitespace_tokens(["이 영화, 정말 재미있다!!", "OST 최고"]) == [
        ["이", "영화", "정말", "재미있다"],
        ["ost", "최고"],
    ]


def test_squeeze_repeats():
    assert squeeze_repeats("ㅋㅋㅋㅋㅋㅋ 좋다!!!!!", 3) == "ㅋㅋㅋ 좋다!!!"
    assert squeeze_repeats("ㅋㅋㅋㅋ", 0) == "ㅋㅋㅋㅋ"


def test_kiwi_morphemes_with_tags_batch_equals_single():
    tokenize = make_tokenizer(TokenizerConfig("kiwi", tags=True, max_repeat=2, num_workers=1))
    batch = tokenize(["정말 감동적인 영화ㅋㅋㅋㅋ", "지루했다"])
    assert batch[0][:2] == ["정말/MAG", "감동/NNG"]
    assert batch[0][-1] == "ㅋㅋ/SW"
    assert tokenize(["지루했다"]) == [batch[1]]


def test_kiwi_without_tags():
    tokenize = make_tokenizer(TokenizerConfig("kiwi", tags=False, max_repeat=0, num_workers=1))
    assert tokenize(["영화"]) == [["영화"]]
    assert tokenize([]) == []


def test_kiwi_is_built_once_per_settings_even_across_a_reload_of_the_package(monkeypatch):
    import importlib
    import sys

    first = make_tokenizer(TokenizerConfig("kiwi", tags=True, num_workers=1)).kiwi
    assert make_tokenizer(TokenizerConfig("kiwi", tags=False, num_workers=1)).kiwi is first
    other = TokenizerConfig("kiwi", tags=True, num_workers=1, cutoff_threshold=5)
    assert make_tokenizer(other).kiwi is not first
    # A serving worker drops the package's modules before it loads another model version.
    monkeypatch.delitem(sys.modules, "pipeline.tokenizers")  # put back after the test
    reloaded = importlib.import_module("pipeline.tokenizers")
    config = reloaded.TokenizerConfig("kiwi", tags=True, num_workers=1)
    assert reloaded.make_tokenizer(config).kiwi is first


def test_kiwi_cutoff_threshold_is_applied():
    tokenize = make_tokenizer(
        TokenizerConfig("kiwi", tags=True, max_repeat=0, num_workers=1, cutoff_threshold=6)
    )
    assert tokenize.kiwi.global_config.cutoff_threshold == 6
    assert tokenize(["배우 연기가 훌륭하다"])[0][:2] == ["배우/NNG", "연기/NNG"]
