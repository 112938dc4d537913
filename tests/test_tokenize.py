from pipeline.tokenize import configs_from_params, run
from pipeline.tokenizers import whitespace_tokens


def test_adds_every_tokenization_and_keeps_fields():
    records = [{"text": "좋은 영화", "label": 1}, {"text": "별로", "label": 0}]
    tokenizers = {"space": whitespace_tokens, "upper": lambda ts: [[t.upper()] for t in ts]}
    out = list(run(records, tokenizers))
    assert out[0] == {
        "text": "좋은 영화",
        "label": 1,
        "tokens": {"space": ["좋은", "영화"], "upper": ["좋은 영화"]},
    }
    assert records[0] == {"text": "좋은 영화", "label": 1}  # inputs are not modified


def test_chunks_are_tokenized_in_order_one_chunk_at_a_time():
    records = [{"text": f"문서 {i}", "label": i % 2} for i in range(10)]
    calls = []

    def recording(texts):
        calls.append(len(texts))
        return whitespace_tokens(texts)

    out = run(iter(records), {"space": recording}, chunk=4)
    assert next(out)["tokens"] == {"space": ["문서", "0"]}
    assert calls == [4]  # the first chunk only, before the rest is read
    assert [r["tokens"]["space"][1] for r in out] == [str(i) for i in range(1, 10)]
    assert calls == [4, 4, 2]


def test_configs_from_params():
    configs = configs_from_params({"tokenizers": {"space": {"method": "whitespace"}}})
    assert configs["space"].method == "whitespace"
