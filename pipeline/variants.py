"""The variants' settings: one frozen dataclass per model family, checked when params are read.

Importable without Keras or scikit-learn: reading params, the tracking layer and the served TF-IDF
model need the settings, not the frameworks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pipeline.errors import PipelineError
from pipeline.params import check_keys

LSTM_TYPES = ("lstm", "lstm_dropout", "bilstm")
BASELINE_TYPES = ("tfidf_logreg",)
POOLING = ("last", "mean", "max")
EMBEDDING_INITS = ("random", "ppmi")
ANALYZERS = ("char", "char_wb", "word")


@dataclass(frozen=True)
class LstmConfig:
    type: str
    tokenizer: str
    vocab_size: int
    char_fallback: bool  # spell out-of-vocabulary tokens with their characters (pipeline/vocab.py)
    max_length: int
    embedding_dim: int
    embedding_init: str  # random | ppmi: start from the training split's co-occurrences
    units: int
    lstm_layers: int  # stacked (Bi)LSTM layers; every one but the last returns all time steps
    pooling: str
    dropout: float
    recurrent_dropout: float
    epochs: int
    batch_size: int
    learning_rate: float
    ema_momentum: float  # > 0: validate and keep the moving average of the weights (0: off)
    patience: int


@dataclass(frozen=True)
class TfidfConfig:
    type: str
    tokenizer: str | None  # None: n-grams of the raw text; a name: word n-grams of its tokens
    analyzer: str
    ngram_min: int
    ngram_max: int
    min_df: int
    max_features: int
    sublinear_tf: bool
    nb_scaling: bool  # scale each n-gram by its naive Bayes log-count ratio (NBSVM-style)
    C: float


VariantConfig = LstmConfig | TfidfConfig


FAMILIES = {**dict.fromkeys(LSTM_TYPES, "lstm"), **dict.fromkeys(BASELINE_TYPES, "tfidf")}


def with_defaults(section: dict, defaults: dict | None) -> dict:
    """The variant's settings over the defaults of its family (params 'train.defaults')."""
    defaults = defaults or {}
    check_keys("train.defaults", defaults, set(FAMILIES.values()))
    family = FAMILIES.get(section.get("type"))
    return {**(defaults.get(family) or {}), **section} if family else section


def variant_from_params(name: str, section: dict) -> VariantConfig:
    kind = section.get("type")
    if kind in LSTM_TYPES:
        cls = LstmConfig
    elif kind in BASELINE_TYPES:
        cls = TfidfConfig
    else:
        raise PipelineError(
            f"variant {name!r}: unknown type {kind!r}; "
            f"choose one of {', '.join(LSTM_TYPES + BASELINE_TYPES)}"
        )
    fields = set(cls.__dataclass_fields__)
    check_keys(f"train.variants.{name}", section, fields)
    missing = sorted(fields - set(section))
    if missing:
        raise PipelineError(f"variant {name!r} ({kind}) lacks setting(s): {', '.join(missing)}")
    cfg = cls(**section)
    if isinstance(cfg, LstmConfig):
        _check_lstm(name, cfg)
    else:
        _check_tfidf(name, cfg)
    return cfg


def _check_lstm(name: str, cfg: LstmConfig) -> None:
    if cfg.pooling not in POOLING:
        raise PipelineError(f"variant {name!r}: pooling must be one of {', '.join(POOLING)}")
    if not isinstance(cfg.lstm_layers, int) or cfg.lstm_layers < 1:
        raise PipelineError(f"variant {name!r}: lstm_layers must be a whole number, at least 1")
    if cfg.embedding_init not in EMBEDDING_INITS:
        raise PipelineError(
            f"variant {name!r}: embedding_init must be one of {', '.join(EMBEDDING_INITS)}"
        )
    momentum = cfg.ema_momentum
    if isinstance(momentum, bool) or not isinstance(momentum, int | float) or not 0 <= momentum < 1:
        raise PipelineError(f"variant {name!r}: ema_momentum must be a number in [0, 1), 0 for off")


def _check_tfidf(name: str, cfg: TfidfConfig) -> None:
    if not isinstance(cfg.nb_scaling, bool):
        raise PipelineError(f"variant {name!r}: nb_scaling must be true or false")
    if cfg.analyzer not in ANALYZERS:
        raise PipelineError(f"variant {name!r}: analyzer must be one of {', '.join(ANALYZERS)}")
    if cfg.tokenizer is not None and cfg.analyzer != "word":
        raise PipelineError(
            f"variant {name!r}: with tokenizer {cfg.tokenizer!r} the analyzer must be 'word' "
            f"(n-grams of its tokens), not {cfg.analyzer!r}"
        )


def config_dict(cfg: VariantConfig) -> dict:
    return asdict(cfg)
