"""The variants' settings: one frozen dataclass per model family (pipeline/schema.py checks them).

Importable without Keras or scikit-learn: reading params, the tracking layer and the served TF-IDF
model need the settings, not the frameworks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pipeline.schema import LSTM_TYPES


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
    max_fit_documents: int | None = None  # the fit reads at most this many training documents


VariantConfig = LstmConfig | TfidfConfig


def variant_from_params(section: dict) -> VariantConfig:
    """The dataclass of a variant's settings, checked and merged (schema.variant_settings)."""
    return (LstmConfig if section["type"] in LSTM_TYPES else TfidfConfig)(**section)


def config_dict(cfg: VariantConfig) -> dict:
    return asdict(cfg)
