"""The saved-model format: a "bundle" is a folder of JSON and Keras-native files only.

  bundle.json   variant name and type, tokenizer settings, sequence length (every bundle)
  vocab.json    token list, index = id                    (LSTM variants)
  model.keras   the Keras model                          (LSTM variants)
  tfidf.json    vocabulary, idf and coefficients          (TF-IDF variants)
  members/      one bundle per member, unchanged          (the ensemble)

Nothing in a bundle is unpickled when it loads. Writing is byte-for-byte reproducible: the same
model gives the same files (Keras' save date and zip times are fixed), so DVC sees an unchanged
output when a stage reruns with the same code, params and data.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.io import atomic_file, read_json, write_json

BUNDLE_FILE = "bundle.json"
VOCAB_FILE = "vocab.json"
KERAS_FILE = "model.keras"
TFIDF_FILE = "tfidf.json"
MEMBERS_DIR = "members"

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


def is_bundle(folder: Path) -> bool:
    return (folder / BUNDLE_FILE).is_file()


def read_meta(folder: Path) -> dict[str, Any]:
    if not is_bundle(folder):
        raise PipelineError(f"{folder} is not a model bundle (it has no {BUNDLE_FILE})")
    return read_json(folder / BUNDLE_FILE)


def read_part(folder: Path, name: str) -> Any:
    """One JSON file of a bundle (vocab.json, tfidf.json); with orjson, where installed, a
    TF-IDF model of a million n-grams loads about three times faster."""
    try:
        import orjson
    except ImportError:
        return read_json(folder / name)
    return orjson.loads((folder / name).read_bytes())


def write(folder: Path, meta: dict, parts: dict[str, Any], keras_model=None) -> None:
    """Write a variant's bundle into `folder`: its meta, its JSON parts, its Keras model."""
    write_json(folder / BUNDLE_FILE, meta)
    for name, content in parts.items():
        write_json(folder / name, content)
    if keras_model is not None:
        save_keras(keras_model, folder / KERAS_FILE)


def write_ensemble(folder: Path, meta: dict, members: dict[str, Path]) -> None:
    """Write an ensemble's bundle into `folder`: a copy of each member's bundle, then its meta."""
    for name, member in members.items():
        shutil.copytree(member, member_folder(folder, name))
    write_json(folder / BUNDLE_FILE, meta)


def member_folder(folder: Path, name: str) -> Path:
    return folder / MEMBERS_DIR / name


def save_keras(model, path: Path) -> None:
    """`model.save`, then the archive rewritten without its save date and zip times."""
    saved = path.with_name(f".{path.stem}.saving.keras")  # Keras insists on the suffix
    try:
        model.save(saved)
        _rewrite_reproducibly(saved, path)
    finally:
        saved.unlink(missing_ok=True)


def _rewrite_reproducibly(source: Path, dest: Path) -> None:
    with (
        zipfile.ZipFile(source) as original,
        atomic_file(dest) as tmp,
        zipfile.ZipFile(tmp, "w") as copy,
    ):
        for entry in original.infolist():
            data = original.read(entry)
            if entry.filename == "metadata.json":
                metadata = json.loads(data)
                metadata.pop("date_saved", None)
                data = json.dumps(metadata, sort_keys=True).encode()
            elif entry.filename == "config.json":
                data = json.dumps(_numbered_shared_objects(json.loads(data))).encode()
            fixed = zipfile.ZipInfo(entry.filename, date_time=_ZIP_EPOCH)
            fixed.compress_type = entry.compress_type
            fixed.external_attr = entry.external_attr
            copy.writestr(fixed, data)


def _numbered_shared_objects(config: Any, numbers: dict | None = None) -> Any:
    """Keras names objects shared between layers by their memory address (`id()`), which
    differs from run to run; number them 1, 2, ... in order of appearance instead."""
    numbers = {} if numbers is None else numbers
    if isinstance(config, list):
        return [_numbered_shared_objects(item, numbers) for item in config]
    if not isinstance(config, dict):
        return config
    return {
        key: numbers.setdefault(value, len(numbers) + 1)
        if key == "shared_object_id"
        else _numbered_shared_objects(value, numbers)
        for key, value in config.items()
    }


def load_keras(path: Path):
    import keras

    from pipeline.models import CUSTOM_OBJECTS

    return keras.saving.load_model(path, custom_objects=CUSTOM_OBJECTS, compile=False)


def digest(folder: Path) -> str:
    """sha256 over every file's relative path and content: the identity of a trained model,
    which its MLflow run carries as a tag so that `evaluate` finds the run that made it."""
    hashed = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        hashed.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                hashed.update(block)
        hashed.update(b"\0")
    return hashed.hexdigest()
