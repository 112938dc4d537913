from pipeline.tokenize import configs_from_params, run
from pipeline.tokenizers import whitespace_tokens


def test_adds_every_tokenization_and_keeps_fields():
    records = [{"text": "좋은 영화", "label": 1}, {"text": "별로", "label": 0}]
    out = run(records, {"space": whitespace_tokens, "upper": lambda ts: [[t.upper()] for t in ts]})
    assert out[0] == {
        "text": "좋은 영화",
        "label": 1,
        "tokens": {"space": ["좋은", "영화"], "upper": ["좋은 영화"]},
    }
    assert records[0] == {"text": "좋은 영화", "label": 1}  # inputs are not modified


def test_configs_from_params():
    configs = configs_from_params({"tokenizers": {"space": {"method": "whitespace"}}})
    assert configs["space"].method == "whitespace"
