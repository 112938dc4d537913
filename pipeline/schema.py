"""Every setting of params.yaml, its type and its range, in one schema; a wrong one is one line.

Each section (and each sub-section: data.file, a tokenizer, a variant, evaluate.gate,
evaluate.ensemble) is a pydantic model whose fields say what a value must be. Nothing is
coerced ("30" is not a number) and nothing has a default here: the defaults are params.yaml's.
A fault is reported with the key as written in the file, e.g.
`params.yaml: train.defaults.lstm.epochs: -5 is not a whole number of at least 1`.

A variant is checked where each of its keys is written (train.defaults.<family>, then
train.variants.<name>), and then as a whole, once its family's defaults are merged in.
"""

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError, model_validator

from pipeline.errors import PipelineError
from pipeline.params import read_section

SOURCES = ("sample", "nsmc", "file")
ENGINES = ("local", "spark")
METHODS = ("kiwi", "whitespace")
LSTM_TYPES = ("lstm", "lstm_dropout", "bilstm")
BASELINE_TYPES = ("tfidf_logreg",)
FAMILIES = {**dict.fromkeys(LSTM_TYPES, "lstm"), **dict.fromkeys(BASELINE_TYPES, "tfidf")}
POOLING = ("last", "mean", "max")
EMBEDDING_INITS = ("random", "ppmi")
ANALYZERS = ("char", "char_wb", "word")
METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
SHOWN_CHARS = 40
OVERRIDES = "--overrides"  # train's option: settings that replace the variant's for one run


@dataclass(frozen=True)
class Rule:
    """What a value must be, in words (the end of "... is not <expected>"), and the test."""

    expected: str
    accepts: Callable[[Any], bool]

    def or_null(self) -> "Rule":
        return Rule(f"{self.expected}, or null", lambda v: v is None or self.accepts(v))

    def check(self, value: Any) -> Any:
        if not self.accepts(value):
            raise ValueError(self.expected)
        return value


def typed(rule: Rule) -> Any:
    """A field annotation that checks the value with `rule` and keeps it as it is."""
    return Annotated[Any, PlainValidator(rule.check)]


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_whole(value) or isinstance(value, float)) and math.isfinite(value)


def whole(least: int, most: int | None = None) -> Rule:
    if most is None:
        return Rule(f"a whole number of at least {least}", lambda v: _is_whole(v) and v >= least)
    return Rule(
        f"a whole number from {least} to {most}", lambda v: _is_whole(v) and least <= v <= most
    )


def number(low: float, high: float = math.inf, low_open=False, high_open=True) -> Rule:
    lowest = f"above {low}" if low_open else f"at least {low}"
    if high == math.inf:
        expected = f"a number {lowest}"
    elif low_open == high_open:
        between, conjunction = ("between", "and") if low_open else ("from", "to")
        expected = f"a number {between} {low} {conjunction} {high}"
    else:
        expected = f"a number {lowest} and {'below' if high_open else 'at most'} {high}"

    def accepts(v):
        return (
            _is_number(v)
            and (v > low if low_open else v >= low)
            and (v < high if high_open else v <= high)
        )

    return Rule(expected, accepts)


def one_of(*choices: str) -> Rule:
    return Rule(f"one of {', '.join(map(repr, choices))}", lambda v: v in choices)


FLAG = Rule("true or false", lambda v: isinstance(v, bool))
TEXT = Rule("a non-empty text", lambda v: isinstance(v, str) and bool(v.strip()))
LABEL = Rule(
    "a label as the file writes it (a text or a whole number)",
    lambda v: (isinstance(v, str) and bool(v.strip())) or _is_whole(v),
)
NAMES = Rule("a list of names", lambda v: isinstance(v, list) and all(TEXT.accepts(n) for n in v))
MAPPING = Rule("a mapping of settings", lambda v: isinstance(v, dict))
NAMED = Rule(
    "a non-empty mapping of names to their settings", lambda v: isinstance(v, dict) and bool(v)
)
# Spark's master URLs: local mode (local, local[N], local[*], local[N,F]), a standalone cluster
# (one or more HOST:PORT), YARN, Kubernetes.
_MASTER = re.compile(
    r"local(\[(\*|[1-9]\d*)(,[1-9]\d*)?\])?|spark://[\w.-]+:\d+(,[\w.-]+:\d+)*"
    r"|yarn|k8s://\S+"
)
MASTER = Rule(
    "a Spark master URL (local[N], local[*], spark://HOST:PORT, yarn or k8s://URL)",
    lambda v: isinstance(v, str) and _MASTER.fullmatch(v) is not None,
)
SPARK_CONF = Rule(
    "a mapping of Spark settings (spark.<name>) to texts, numbers or true/false",
    lambda v: (
        isinstance(v, dict)
        and all(
            isinstance(k, str)
            and k.startswith("spark.")
            and isinstance(x, str | int | float | bool)
            for k, x in v.items()
        )
    ),
)
FRACTION = number(0, 1, low_open=True)
SHARE = number(0, 1)  # from 0 up to, not including, 1
SEED = whole(0, 2**32 - 1)


class Section(BaseModel):
    """A mapping of settings: every field required (but those in OPTIONAL), no other key."""

    model_config = ConfigDict(extra="forbid")
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()
    PARTS: ClassVar[dict[str, type["Section"]]] = {}  # key -> its sub-section, checked apart
    ENTRIES: ClassVar[dict[str, type["Section"]]] = {}  # key -> mapping of named sub-sections


class DataFile(Section):
    train: typed(TEXT.or_null())
    test: typed(TEXT.or_null())
    text_column: typed(TEXT)
    label_column: typed(TEXT)
    negative_label: typed(LABEL)
    positive_label: typed(LABEL)


class Data(Section):
    PARTS = {"file": DataFile}
    source: typed(one_of(*SOURCES))
    nsmc_dir: typed(TEXT.or_null())
    nsmc_verify: typed(FLAG)
    file: typed(MAPPING)


class Engine(Section):
    name: typed(one_of(*ENGINES))
    master: typed(MASTER.or_null())
    partitions: typed(whole(1).or_null())
    conf: typed(SPARK_CONF)


class Tokenizer(Section):
    OPTIONAL = frozenset({"tags", "max_repeat", "num_workers", "cutoff_threshold"})
    method: typed(one_of(*METHODS))
    tags: typed(FLAG)
    max_repeat: typed(whole(0))  # 0: off
    num_workers: typed(whole(-1))  # Kiwi's: 0 one thread, -1 every core
    cutoff_threshold: typed(number(0, low_open=True).or_null())


class Tokenize(Section):
    ENTRIES = {"tokenizers": Tokenizer}
    tokenizers: typed(NAMED)


class Split(Section):
    seed: typed(SEED)
    validation_size: typed(FRACTION)
    test_size: typed(FRACTION)
    min_freq: typed(whole(1))
    max_vocab: typed(whole(1))


class Lstm(Section):
    type: typed(one_of(*LSTM_TYPES))
    tokenizer: typed(TEXT)
    vocab_size: typed(whole(2))
    char_fallback: typed(FLAG)
    max_length: typed(whole(1))
    embedding_dim: typed(whole(1))
    embedding_init: typed(one_of(*EMBEDDING_INITS))
    units: typed(whole(1))
    lstm_layers: typed(whole(1))
    pooling: typed(one_of(*POOLING))
    dropout: typed(SHARE)
    recurrent_dropout: typed(SHARE)
    epochs: typed(whole(1))
    batch_size: typed(whole(1))
    learning_rate: typed(number(0, low_open=True))
    ema_momentum: typed(SHARE)  # 0: off
    patience: typed(whole(1))


class Tfidf(Section):
    OPTIONAL = frozenset({"max_fit_documents"})  # absent: the fit reads every document
    type: typed(one_of(*BASELINE_TYPES))
    tokenizer: typed(TEXT.or_null())
    analyzer: typed(one_of(*ANALYZERS))
    ngram_min: typed(whole(1))
    ngram_max: typed(whole(1))
    min_df: typed(whole(1))
    max_features: typed(whole(1))
    max_fit_documents: typed(whole(1).or_null())
    sublinear_tf: typed(FLAG)
    nb_scaling: typed(FLAG)
    C: typed(number(0, low_open=True))

    @model_validator(mode="after")
    def _consistent(self):
        if self.ngram_min > self.ngram_max:
            raise ValueError(f"ngram_min {self.ngram_min} is above ngram_max {self.ngram_max}")
        if self.tokenizer is not None and self.analyzer != "word":
            raise ValueError(
                f"with tokenizer {self.tokenizer!r} the analyzer must be 'word' "
                f"(n-grams of its tokens), not {self.analyzer!r}"
            )
        return self


FAMILY_MODELS: dict[str, type[Section]] = {"lstm": Lstm, "tfidf": Tfidf}


class Defaults(Section):
    OPTIONAL = frozenset(FAMILY_MODELS)
    lstm: typed(MAPPING.or_null())
    tfidf: typed(MAPPING.or_null())


class Train(Section):
    experiment: typed(TEXT)
    seed: typed(SEED)
    defaults: typed(MAPPING)
    variants: typed(NAMED)


class Gate(Section):
    OPTIONAL = frozenset(METRICS)
    accuracy: typed(number(0, 1, high_open=False))
    precision: typed(number(0, 1, high_open=False))
    recall: typed(number(0, 1, high_open=False))
    f1: typed(number(0, 1, high_open=False))
    roc_auc: typed(number(0, 1, high_open=False))
    log_loss: typed(number(0))  # a maximum: lower is better


class Ensemble(Section):
    OPTIONAL = frozenset({"members"})
    members: typed(NAMES.or_null())


class Evaluate(Section):
    OPTIONAL = frozenset({"ensemble"})
    PARTS = {"gate": Gate, "ensemble": Ensemble}
    registered_model: typed(TEXT)
    select_by: typed(one_of(*METRICS))
    promote_margin: typed(number(0))  # the least gain in validation `select_by` that promotes
    gate: typed(MAPPING)
    ensemble: typed(MAPPING.or_null())


class Invalid(Exception):
    """A fault at `keys` (the path of keys as params.yaml writes them, or "--overrides" and
    the key of train's overrides)."""

    def __init__(self, keys: list[str], problem: str):
        self.keys, self.problem = keys, problem
        names = [str(key) for key in keys]
        overridden = names[:1] == [OVERRIDES] and len(names) > 1
        where = f"{OVERRIDES}: {'.'.join(names[1:])}" if overridden else ".".join(names)
        super().__init__(f"{where}: {problem}")


def shown(value: Any) -> str:
    """A value as YAML writes it (null, true), quoted if text, cut short."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}... ({len(text):,} chars)"


def check(model: type[Section], value: Any, keys: list[str], partial: bool = False) -> None:
    """Raise Invalid for the first fault of `value` as a `model`; `partial`: keys may be
    missing (a family's defaults, a variant before its defaults are merged)."""
    if not isinstance(value, dict):
        raise Invalid(keys, f"{shown(value)} is not a mapping of settings")
    try:
        model.model_validate(value)
    except ValidationError as exc:
        _raise_first(model, exc.errors(), keys, partial)
    for key, part in model.PARTS.items():
        if value.get(key) is not None:
            check(part, value[key], [*keys, key], partial)
    for key, entry in model.ENTRIES.items():
        for name, settings in value[key].items():
            check(entry, settings, [*keys, key, name], partial)


def _raise_first(model: type[Section], errors: list[dict], keys: list[str], partial: bool):
    missing = [e["loc"][0] for e in errors if e["type"] == "missing"]
    missing = [] if partial else [key for key in missing if key not in model.OPTIONAL]
    for error in errors:
        if error["type"] == "extra_forbidden":
            raise Invalid(
                [*keys, *error["loc"]],
                f"unknown setting; allowed: {', '.join(model.model_fields)}",
            )
        if error["type"] == "missing":
            if error["loc"][0] in missing:
                raise Invalid(keys, f"lacks setting(s): {', '.join(missing)}")
            continue
        problem = str(error["ctx"]["error"]) if "ctx" in error else error["msg"]
        if not error["loc"]:  # a rule between several settings
            raise Invalid(keys, problem)
        raise Invalid([*keys, *error["loc"]], f"{shown(error['input'])} is not {problem}")


def check_train(section: Any) -> None:
    check(Train, section, ["train"])
    check(Defaults, section["defaults"], ["train", "defaults"])
    for family, model in FAMILY_MODELS.items():
        check(model, section["defaults"].get(family) or {}, ["train", "defaults", family], True)
    for name in section["variants"]:
        _variant(section, name)


def with_defaults(section: dict, defaults: dict | None) -> dict:
    """The variant's settings over the defaults of its family (params 'train.defaults')."""
    family = FAMILIES.get(section.get("type"))
    return {**((defaults or {}).get(family) or {}), **section} if family else section


def variant_settings(section: dict, name: str, overrides: dict | None = None) -> dict:
    """A variant's settings: its own (`overrides` win) over its family's defaults, checked; a
    fault is a PipelineError naming the key where it is written."""
    try:
        return _variant(section, name, overrides)
    except Invalid as exc:
        raise PipelineError(str(exc)) from None


def _variant(section: dict, name: str, overrides: dict | None = None) -> dict:
    keys = ["train", "variants", name]
    own = section["variants"][name]
    if not isinstance(own, dict):
        raise Invalid(keys, f"{shown(own)} is not a mapping of settings")
    kind = {**own, **(overrides or {})}.get("type")
    if kind is None:
        raise Invalid(keys, "lacks setting(s): type")
    if kind not in FAMILIES:
        types = one_of(*FAMILIES).expected
        raise Invalid([*keys, "type"], f"{shown(kind)} is not {types}")
    model = FAMILY_MODELS[FAMILIES[kind]]
    check(model, own, keys, partial=True)
    if overrides:
        check(model, overrides, [OVERRIDES], partial=True)
    merged = with_defaults({**own, **(overrides or {})}, section.get("defaults"))
    try:
        check(model, merged, keys)
    except Invalid as exc:
        if exc.keys != keys:
            raise
        family = f"train.defaults.{FAMILIES[kind]}"
        raise Invalid(keys, f"{exc.problem} (in it or in {family})") from None
    return merged


CHECKS: dict[str, Callable[[Any], None]] = {
    "data": lambda section: check(Data, section, ["data"]),
    "engine": lambda section: check(Engine, section, ["engine"]),
    "tokenize": lambda section: check(Tokenize, section, ["tokenize"]),
    "split": lambda section: check(Split, section, ["split"]),
    "train": check_train,
    "evaluate": lambda section: check(Evaluate, section, ["evaluate"]),
}


def load_section(params_path: Path, name: str) -> dict:
    """The section `name` of the params file, checked against the schema: any fault is one
    PipelineError naming the file and the key, e.g. `params.yaml: split.seed: ...`."""
    section = read_section(params_path, name)
    try:
        CHECKS[name](section)
    except Invalid as exc:
        raise PipelineError(f"{params_path}: {exc}") from None
    return section
