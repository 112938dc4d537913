"""score-spark: the pure helpers, the errors raised before Spark starts, and real jobs on a local
Spark (marker `spark`): NSMC reviews scored exactly as `predict` scores them, per-row errors,
CSV/TSV/Parquet/text input, atomic output, spark-submit."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.errors import PipelineError
from pipeline.score_spark import Job, input_format, is_local, parse_conf, score, stage_model
from pipeline.spark_session import PANDAS_WARNING, start_spark
from pipeline.spark_tables import (
    MALFORMED_ROW,
    NULL_TEXT,
)
from pipeline.spark_workers import LOAD_MESSAGE
from tests.helpers import REPO, clean_env, nsmc_dir, sh

CHAMPION = "models:/korean-sentiment@champion"
NSMC_ROWS = 20_000
PARTITIONS = 4


def read_output(folder: Path) -> pd.DataFrame:
    """The part files in name order (the input's order)."""
    parts = sorted(folder.glob("part-*"))
    assert parts, f"no part files in {folder}"
    if parts[0].suffix == ".csv":
        return pd.concat(
            [
                pd.read_csv(
                    p, dtype={"text": str}, keep_default_na=False, na_values={"probability": [""]}
                )
                for p in parts
            ],
            ignore_index=True,
        )
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


def reference(model: str, texts: list[str]) -> pd.DataFrame:
    """The single-process `predict` of the same model."""
    from pipeline.predict import load_scorer

    return load_scorer(model)(texts).reset_index(drop=True)


def assert_same_predictions(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert len(got) == len(expected)
    np.testing.assert_array_equal(got["label"].to_numpy(), expected["label"].to_numpy())
    np.testing.assert_array_equal(got["sentiment"].to_numpy(), expected["sentiment"].to_numpy())
    np.testing.assert_allclose(
        got["probability"].to_numpy(), expected["probability"].to_numpy(), rtol=0, atol=1e-6
    )


# ---- helpers, no Spark ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "given", "expected"),
    [
        ("data/reviews.csv", None, "csv"),
        ("data/reviews.TSV", None, "tsv"),
        ("s3a://bucket/reviews.parquet/", None, "parquet"),
        ("reviews.txt", None, "text"),
        ("hdfs:///data/scored", "parquet", "parquet"),
    ],
)
def test_input_format_from_the_suffix_or_the_option(path, given, expected):
    assert input_format(path, given) == expected


def test_input_format_of_an_unknown_suffix_is_an_error():
    with pytest.raises(
        PipelineError, match="cannot tell the format of data/scored from its name; pass --format"
    ):
        input_format("data/scored", None)


def test_local_paths_and_uris():
    assert is_local("data/x.csv") and is_local("/tmp/x")
    assert not any(map(is_local, ["file:/tmp/x", "hdfs://nn/x", "s3a://b/x", "models:/m@c"]))


def test_spark_settings_from_the_command_line():
    assert parse_conf(("spark.executor.memory=4g", "a.b=x=y")) == {
        "spark.executor.memory": "4g",
        "a.b": "x=y",
    }
    with pytest.raises(PipelineError, match="--conf takes KEY=VALUE, got 'spark.ui.enabled'"):
        parse_conf(("spark.ui.enabled",))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "{tmp}/none.csv"], "error: input not found: {tmp}/none.csv"),
        (["--model", "{tmp}/no-model"], "error: model not found: {tmp}/no-model"),
        (["--output", "{tmp}"], "error: output exists: {tmp} (pass --overwrite to replace it)"),
        (["--input", "{tmp}/in.dat"], "error: cannot tell the format of {tmp}/in.dat"),
        (["--conf", "nokey"], "error: --conf takes KEY=VALUE, got 'nokey'"),
    ],
)
def test_bad_arguments_fail_before_spark_starts(tmp_path, args, message):
    (tmp_path / "in.csv").write_text("text\n좋다\n", encoding="utf-8")
    (tmp_path / "in.dat").write_text("좋다\n", encoding="utf-8")
    (tmp_path / "bundle").mkdir()
    defaults = {
        "--model": str(tmp_path / "bundle"),
        "--input": str(tmp_path / "in.csv"),
        "--output": str(tmp_path / "out"),
    }
    given = dict(zip(args[::2], [a.format(tmp=tmp_path) for a in args[1::2]], strict=True))
    options = [x for pair in {**defaults, **given}.items() for x in pair]
    result = CliRunner().invoke(cli, ["score-spark", *options])
    assert result.exit_code == 1
    assert message.format(tmp=tmp_path) in result.output
    assert "Traceback" not in result.output


# ---- jobs on a local Spark ----------------------------------------------------------------


@pytest.fixture(scope="module")
def spark():
    """One local Spark for the in-process jobs (its own UI off), stopped after the module."""
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    with pytest.MonkeyPatch.context() as env:
        for name in ("SPARK_LOCAL_IP", "PYSPARK_PYTHON"):  # start_spark sets them
            env.delenv(name, raising=False)
        session = start_spark("local[1]", {"spark.ui.enabled": "false"})
        yield session
        session.stop()


def run_job(spark, model: str, job: Job, tmp_path: Path) -> str:
    staging = tmp_path / "staging"
    staging.mkdir(exist_ok=True)
    kind, folder = stage_model(model, staging)
    return score(spark, job, kind, folder, staging)


@pytest.mark.spark
def test_nulls_empty_texts_and_renamed_columns(spark, sample_repo, tmp_path):
    bundle = str(sample_repo / "models" / "tfidf")
    texts = ["정말 재밌는 영화", None, "   ", "지루하고 별로였다"]
    source = tmp_path / "in.parquet"
    pd.DataFrame({"id": [1, 2, 3, 4], "text": texts, "label": [1, 1, 0, 0]}).to_parquet(source)
    out = tmp_path / "out"
    line = run_job(spark, bundle, Job(str(source), str(out), fmt="parquet"), tmp_path)
    assert line == (
        f"scored 4 texts -> {out} ({{'negative': 1, 'positive': 1, 'unknown': 1}}); "
        f"rows with an error: {{'{NULL_TEXT}': 1}}"
    )
    got = read_output(out)
    assert list(got.columns) == [
        "id",
        "text",
        "input_label",
        "label",
        "sentiment",
        "probability",
        "error",
    ]
    assert got["id"].tolist() == [1, 2, 3, 4]
    assert got.loc[1, "label"] == -1 and got.loc[1, "sentiment"] == "unknown"
    assert pd.isna(got.loc[1, "probability"]) and got.loc[1, "error"] == NULL_TEXT
    assert got.loc[2, ["label", "sentiment", "probability"]].tolist() == [-1, "unknown", 0.5]
    assert got["error"].fillna("").tolist() == ["", NULL_TEXT, "", ""]
    fine = [0, 2, 3]
    assert_same_predictions(
        got.loc[fine].reset_index(drop=True), reference(bundle, [texts[i] for i in fine])
    )


@pytest.mark.spark
def test_a_numeric_text_column_is_an_error_on_every_row(spark, sample_repo, tmp_path, recwarn):
    source = tmp_path / "in.parquet"
    pd.DataFrame({"text": pd.array([5, None], dtype="Int64")}).to_parquet(source)
    out = tmp_path / "out"
    run_job(spark, str(sample_repo / "models" / "tfidf"), Job(str(source), str(out)), tmp_path)
    got = read_output(out)
    assert got["error"].tolist() == ["text is not a string (bigint)", NULL_TEXT]
    assert got["label"].tolist() == [-1, -1] and got["probability"].isna().all()
    assert not [w for w in recwarn if PANDAS_WARNING in str(w.message)]  # a later test's job


@pytest.mark.spark
def test_csv_fields_and_csv_output(spark, sample_repo, tmp_path):
    bundle = str(sample_repo / "models" / "tfidf")
    source = tmp_path / "in.csv"
    source.write_text(
        'id,text\n1,정말 좋아요\n2,\n3,"줄바꿈\n있는 ""인용"" 리뷰"\n4\n5,"재미, 감동"\n',
        encoding="utf-8",
    )
    out = tmp_path / "out"
    job = Job(str(source), str(out), fmt="csv", output_format="csv")
    run_job(spark, bundle, job, tmp_path)
    got = read_output(out)
    assert got["id"].tolist() == [1, 2, 3, 4, 5]
    assert got["text"].tolist() == ["정말 좋아요", "", '줄바꿈\n있는 "인용" 리뷰', "", "재미, 감동"]
    assert got["error"].tolist() == ["", "", "", MALFORMED_ROW, ""]
    assert got.loc[1, ["label", "sentiment", "probability"]].tolist() == [-1, "unknown", 0.5]
    fine = [0, 2, 4]
    expected = reference(bundle, got.loc[fine, "text"].tolist())
    assert_same_predictions(got.loc[fine].reset_index(drop=True), expected)


@pytest.mark.spark
def test_tsv_and_text_inputs_read_as_predict_reads_them(spark, sample_repo, tmp_path):
    from pipeline.predict import read_texts

    bundle = str(sample_repo / "models" / "tfidf")
    tsv = tmp_path / "in.tsv"
    tsv.write_text('id\ttext\n1\t"따옴표로 시작\n2\t\t\n3\t지루했다\n', encoding="utf-8")
    txt = tmp_path / "in.txt"
    txt.write_text("최고의 영화\n\n   \n지루했다\n", encoding="utf-8")
    for source, fmt in ((tsv, "tsv"), (txt, "text")):
        out = tmp_path / f"out-{fmt}"
        run_job(spark, bundle, Job(str(source), str(out), fmt=fmt), tmp_path)
        got = read_output(out)
        if fmt == "tsv":  # row 2 has one field too many: pandas would refuse the whole file
            assert got["error"].fillna("").tolist() == ["", MALFORMED_ROW, ""]
            got = got.loc[[0, 2]].reset_index(drop=True)
            texts = ['"따옴표로 시작', "지루했다"]
        else:
            texts = read_texts(txt, "text")
        assert got["text"].tolist() == texts
        assert_same_predictions(got, reference(bundle, texts))


@pytest.mark.spark
def test_the_ensemble_run_uri_scores_as_predict_does(spark, sample_repo, tmp_path, monkeypatch):
    import mlflow

    from pipeline.predict import read_texts

    uri = f"sqlite:///{sample_repo / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    try:
        run = mlflow.search_runs(
            experiment_names=["korean-sentiment"],
            filter_string="tags.variant = 'ensemble'",
            order_by=["start_time DESC"],
            output_format="list",
        )[0]
        model = f"runs:/{run.info.run_id}/model"
        source = sample_repo / "data" / "sample" / "reviews.tsv"
        out = tmp_path / "out"
        run_job(spark, model, Job(str(source), str(out), "document", "tsv"), tmp_path)
        texts = read_texts(source, "document")
        expected = reference(model, texts)
    finally:
        mlflow.set_tracking_uri(None)
    got = read_output(out)
    assert got["document"].tolist() == texts
    assert_same_predictions(got, expected)


@pytest.mark.spark
def test_a_failure_mid_job_leaves_no_output(spark, sample_repo, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    for i in range(3):
        texts = [f"정말 재밌는 영화 {j}" for j in range(200)]
        pd.DataFrame({"text": texts}).to_parquet(source / f"part-{i}.parquet")
    (source / "part-9.parquet").write_bytes(b"not parquet")  # the smallest: read last
    out = tmp_path / "out"
    spark.conf.set("spark.sql.files.maxPartitionBytes", "1000")  # one task per file
    spark.conf.set("spark.sql.files.openCostInBytes", "1")
    try:
        with pytest.raises(PipelineError) as failure:
            run_job(
                spark, str(sample_repo / "models" / "tfidf"), Job(str(source), str(out)), tmp_path
            )
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
        spark.conf.unset("spark.sql.files.openCostInBytes")
    assert str(failure.value).startswith("Spark job failed: ")
    assert "part-9.parquet is not a Parquet file" in str(failure.value)
    assert "\n" not in str(failure.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "staging"]


@pytest.mark.spark
def test_an_existing_output_is_replaced_only_when_asked(spark, sample_repo, tmp_path):
    bundle = str(sample_repo / "models" / "tfidf")
    source = tmp_path / "in.txt"
    source.write_text("좋다\n", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(PipelineError, match="output exists: .*pass --overwrite"):
        run_job(spark, bundle, Job(str(source), str(out), fmt="text"), tmp_path)
    assert (out / "keep.txt").is_file()
    run_job(spark, bundle, Job(str(source), str(out), fmt="text", overwrite=True), tmp_path)
    assert not (out / "keep.txt").exists() and len(read_output(out)) == 1


# ---- the command and spark-submit in their own processes -------------------------------------


@pytest.fixture(scope="module")
def nsmc_slice(tmp_path_factory) -> Path:
    """The first NSMC_ROWS reviews of the NSMC test split (id, document, label), as TSV."""
    source = nsmc_dir() / "ratings_test.txt"
    if not source.is_file():
        pytest.skip(f"NSMC corpus not found at {source} (set NSMC_DIR)")
    lines = source.read_text(encoding="utf-8").splitlines()[: NSMC_ROWS + 1]
    path = tmp_path_factory.mktemp("nsmc") / "reviews.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.spark
@pytest.mark.parametrize("model", [CHAMPION, "ensemble"], ids=["lstm-champion", "ensemble-bundle"])
def test_nsmc_reviews_score_exactly_as_predict(
    sample_repo, nsmc_slice, tmp_path, model, monkeypatch
):
    """20,000 NSMC reviews on local[2] in 4 partitions: every row as `predict` scores it, the
    input's order kept, and the model loaded once per Python worker, not once per partition."""
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    from pipeline.predict import read_texts

    model = model if model.startswith("models:/") else str(sample_repo / model)
    tracking = f"sqlite:///{sample_repo / 'mlflow.db'}"
    out = tmp_path / "scored"
    result = sh(
        [
            sys.executable,
            "-m",
            "pipeline",
            "score-spark",
            *("--model", model, "--input", str(nsmc_slice), "--output", str(out)),
            *("--text-column", "document", "--master", "local[2]"),
            *("--partitions", str(PARTITIONS), "--conf", "spark.ui.enabled=false"),
        ],
        REPO,
        env=clean_env(MLFLOW_TRACKING_URI=tracking, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    loads = Counter(re.findall(rf"{LOAD_MESSAGE} (\d+) ", result.stderr))
    assert loads and set(loads.values()) == {1}, loads  # once per worker process
    assert sum(loads.values()) < PARTITIONS, loads  # workers were reused across partitions
    got = read_output(out)
    source = pd.read_csv(nsmc_slice, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    assert got["id"].tolist() == source["id"].tolist()
    assert got["input_label"].tolist() == source["label"].tolist()
    assert got["error"].isna().all()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    assert_same_predictions(got, reference(model, read_texts(nsmc_slice, "document")))


@pytest.mark.spark
def test_spark_submit_runs_the_module(sample_repo, tmp_path):
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    source = tmp_path / "in.txt"
    source.write_text(
        "정말 감동적이고 훌륭한 영화\n지루하고 별로였어 다시 안봐\n", encoding="utf-8"
    )
    env = clean_env(PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1")
    submit = [
        str(Path(sys.executable).parent / "spark-submit"),
        *("--master", "local[1]", "--conf", "spark.ui.enabled=false"),
        str(REPO / "pipeline" / "score_spark.py"),
        *("--model", str(sample_repo / "models" / "tfidf"), "--output", str(tmp_path / "out")),
    ]
    result = sh([*submit, "--input", str(source)], tmp_path, env=env)
    assert f"scored 2 texts -> {tmp_path / 'out'}" in result.stdout
    assert read_output(tmp_path / "out")["sentiment"].tolist() == ["positive", "negative"]
    failed = sh([*submit, "--input", str(tmp_path / "none.txt")], tmp_path, check=False, env=env)
    output = failed.stdout + failed.stderr  # spark-submit merges the script's stderr into stdout
    assert failed.returncode == 1
    assert f"error: input not found: {tmp_path / 'none.txt'}" in output
    assert "Traceback" not in output


@pytest.mark.spark
def test_spark_that_cannot_start_is_a_one_line_error(sample_repo, tmp_path):
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    source = tmp_path / "in.txt"
    source.write_text("좋다\n", encoding="utf-8")
    model = str(sample_repo / "models" / "tfidf")
    args = ["--model", model, "--input", str(source), "--output", str(tmp_path / "out")]
    env = clean_env(JAVA_HOME=str(tmp_path / "no-java"))
    result = sh([sys.executable, "-m", "pipeline", "score-spark", *args], REPO, False, env=env)
    assert result.returncode == 1
    assert "error: could not start Spark (" in result.stderr
    assert "it needs Java 17 or later" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
