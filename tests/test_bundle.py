import subprocess
import sys
import zipfile

import numpy as np
import pytest

from pipeline import bundle
from pipeline.errors import PipelineError

SAVE_A_MODEL = """
import sys
from pathlib import Path

import keras

from pipeline import bundle

keras.utils.set_random_seed(1)
layers = keras.layers
model = keras.Sequential(
    [
        keras.Input((None,), dtype="int32"),
        layers.Embedding(10, 4, mask_zero=True),
        layers.Bidirectional(layers.LSTM(3)),  # shares objects between layers in its config
        layers.Dense(1),
    ]
)
bundle.save_keras(model, Path(sys.argv[1]))
"""


@pytest.mark.slow
def test_a_saved_model_is_the_same_bytes_every_time_and_loads(tmp_path):
    paths = [tmp_path / "a" / "model.keras", tmp_path / "b" / "model.keras"]
    for path in paths:  # two processes: Keras' save date and object ids differ between them
        path.parent.mkdir()
        subprocess.run([sys.executable, "-c", SAVE_A_MODEL, str(path)], check=True)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert sorted(p.name for p in paths[0].parent.iterdir()) == ["model.keras"]
    with zipfile.ZipFile(paths[0]) as archive:
        assert "date_saved" not in archive.read("metadata.json").decode()
    model = bundle.load_keras(paths[0])
    assert model.predict(np.array([[1, 2, 3]]), verbose=0).shape == (1, 1)


def test_a_bundle_is_written_and_read_back(tmp_path):
    meta = {"variant": "v", "type": "tfidf_logreg"}
    bundle.write(tmp_path, meta, {bundle.TFIDF_FILE: {"terms": ["좋다"]}})
    assert bundle.is_bundle(tmp_path)
    assert bundle.read_meta(tmp_path) == meta
    assert bundle.read_part(tmp_path, bundle.TFIDF_FILE) == {"terms": ["좋다"]}


def test_a_folder_without_bundle_json_is_named(tmp_path):
    assert not bundle.is_bundle(tmp_path)
    with pytest.raises(PipelineError, match=f"{tmp_path} is not a model bundle"):
        bundle.read_meta(tmp_path)


def test_an_ensemble_holds_a_copy_of_each_member(tmp_path):
    member = tmp_path / "m"
    bundle.write(member, {"variant": "m", "type": "tfidf_logreg"}, {"tfidf.json": {}})
    bundle.write_ensemble(tmp_path / "e", {"type": "ensemble", "members": ["m"]}, {"m": member})
    assert bundle.read_meta(bundle.member_folder(tmp_path / "e", "m"))["variant"] == "m"


def test_the_digest_follows_every_file_s_name_and_content(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        bundle.write(folder, {"variant": "v"}, {"vocab.json": ["a", "b"]})
    assert bundle.digest(first) == bundle.digest(second)
    (second / "vocab.json").write_text('["a", "c"]')
    assert bundle.digest(first) != bundle.digest(second)
    (second / "vocab.json").rename(second / "other.json")
    bundle.write(second, {"variant": "v"}, {"renamed.json": ["a", "b"]})
    assert bundle.digest(first) != bundle.digest(second)
