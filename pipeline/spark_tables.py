"""score-spark's tables on the driver: the input read with a malformed-row column, the
predictions joined to the input's columns with a per-row error, the partitions in input order,
and the output written whole or not at all (a hidden sibling folder renamed into place)."""

from __future__ import annotations

import uuid

from pipeline.errors import PipelineError

PREDICTION_COLUMNS = ("label", "sentiment", "probability", "error")
RENAMED_PREFIX = "input_"
NULL_TEXT = "text is null"
MALFORMED_ROW = "malformed row (too few or too many fields)"
MALFORMED = "__malformed"  # Spark's corrupt-record column of a CSV/TSV input


def renamed_columns(columns: list[str]) -> dict[str, str]:
    """Input columns whose names the predictions take, each mapped to `input_<name>`."""
    clashes = {name: f"{RENAMED_PREFIX}{name}" for name in columns if name in PREDICTION_COLUMNS}
    taken = set(columns) & set(clashes.values())
    if taken:
        raise PipelineError(
            f"input columns {', '.join(sorted(clashes))} would be renamed to "
            f"{', '.join(sorted(taken))}, which the input already has; rename them first"
        )
    return clashes


def type_error(type_name: str) -> str | None:
    """The per-row error for a text column of this Spark type (None: a string column)."""
    return None if type_name == "string" else f"text is not a string ({type_name})"


def read_input(spark, path: str, fmt: str, text_column: str):
    """The input with one more column, MALFORMED: the raw line of a CSV/TSV row that has too few
    or too many fields (else null). An empty CSV/TSV field is an empty text, as in `predict`."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    if fmt in ("parquet", "text"):
        frame = spark.read.parquet(path) if fmt == "parquet" else spark.read.text(path)
        if fmt == "text":
            frame = frame.withColumnRenamed("value", text_column)
        frame = frame.withColumn(MALFORMED, F.lit(None).cast("string"))
    else:
        options = {"header": "true", "encoding": "UTF-8", "mode": "PERMISSIVE"}
        if fmt == "csv":
            options |= {"multiLine": "true", "quote": '"', "escape": '"'}
        else:  # TSV as `predict` reads it: tabs, no quoting
            options |= {"sep": "\t", "quote": ""}
        header = spark.read.options(**options).csv(path).columns
        schema = StructType([StructField(name, StringType()) for name in [*header, MALFORMED]])
        frame = (
            spark.read.options(**options, columnNameOfCorruptRecord=MALFORMED)
            .schema(schema)
            .csv(path)
        )
        if text_column in header:
            text = F.col(f"`{text_column}`")
            fields_ok = F.col(MALFORMED).isNull()
            frame = frame.withColumn(text_column, F.when(fields_ok, F.coalesce(text, F.lit(""))))
    if text_column not in frame.columns:
        found = [name for name in frame.columns if name != MALFORMED]
        raise PipelineError(
            f"{path}: no column {text_column!r}; found {', '.join(found) or 'none'}"
        )
    return frame


def with_predictions(frame, text_column: str, score):
    """The input's columns (clashing names prefixed) plus the predictions and the error."""
    from pyspark.sql import functions as F

    text = F.col(f"`{text_column}`")
    wrong_type = type_error(frame.schema[text_column].dataType.simpleString())
    error = F.when(F.col(MALFORMED).isNotNull(), F.lit(MALFORMED_ROW)).when(
        text.isNull(), F.lit(NULL_TEXT)
    )
    if wrong_type:
        error = error.otherwise(F.lit(wrong_type))
        scored_text = F.lit("")
    else:
        scored_text = F.when(text.isNull(), F.lit("")).otherwise(text)
    columns = [name for name in frame.columns if name != MALFORMED]
    renamed = renamed_columns(columns)
    inputs = [F.col(f"`{name}`").alias(renamed.get(name, name)) for name in columns]
    staged = frame.select(*inputs, error.alias("__error"), score(scored_text).alias("__scored"))
    ok = F.col("__error").isNull()
    return staged.select(
        *[F.col(f"`{renamed.get(name, name)}`") for name in columns],
        F.when(ok, F.col("__scored.label")).otherwise(F.lit(-1)).alias("label"),
        F.when(ok, F.col("__scored.sentiment")).otherwise(F.lit("unknown")).alias("sentiment"),
        F.when(ok, F.col("__scored.probability")).alias("probability"),
        F.col("__error").alias("error"),
    )


def partitioned(frame, partitions: int | None, default_parallelism: int):
    """`partitions` partitions (else at least one per core), in input order: a row number
    range-partitions the rows, so part files in name order hold the input's rows in order."""
    from pyspark.sql import functions as F

    wanted = partitions or (
        default_parallelism if frame.rdd.getNumPartitions() < default_parallelism else None
    )
    if wanted is None:
        return frame
    return (
        frame.withColumn("__row", F.monotonically_increasing_id())
        .repartitionByRange(wanted, "__row")
        .sortWithinPartitions("__row")
        .drop("__row")
    )


class HadoopPaths:
    """exists / delete / rename on any file system Spark writes to (local, HDFS, S3, ...)."""

    def __init__(self, spark, path: str):
        jvm = spark.sparkContext._jvm
        self._path = jvm.org.apache.hadoop.fs.Path
        self.fs = self._path(path).getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())

    def exists(self, path: str) -> bool:
        return self.fs.exists(self._path(path))

    def delete(self, path: str) -> None:
        self.fs.delete(self._path(path), True)

    def rename(self, source: str, dest: str) -> None:
        if not self.fs.rename(self._path(source), self._path(dest)):
            raise PipelineError(f"could not rename {source} to {dest}")


def temporary_sibling(output: str) -> str:
    parent, _, name = output.rstrip("/").rpartition("/")
    hidden = f".{name}.tmp-{uuid.uuid4().hex[:12]}"
    return f"{parent}/{hidden}" if parent or output.startswith("/") else hidden


def write_atomically(frame, output: str, fmt: str, overwrite: bool, paths: HadoopPaths) -> None:
    """Write to a hidden sibling folder; rename it to `output` only after the job succeeded."""
    if paths.exists(output) and not overwrite:
        raise PipelineError(f"output exists: {output} (pass --overwrite to replace it)")
    tmp = temporary_sibling(output)
    try:
        writer = frame.write.mode("error")
        if fmt == "csv":
            writer.options(
                header="true",
                quote='"',
                escape='"',
                ignoreLeadingWhiteSpace="false",
                ignoreTrailingWhiteSpace="false",
            ).csv(tmp)
        else:
            writer.parquet(tmp)
        if paths.exists(output):
            paths.delete(output)
        paths.rename(tmp, output)
    finally:
        if paths.exists(tmp):
            paths.delete(tmp)


def summary(spark, output: str, fmt: str) -> str:
    """Counts per sentiment and per error, read back from what was written."""
    if fmt == "csv":
        written = spark.read.options(header="true", escape='"', multiLine="true").csv(output)
    else:
        written = spark.read.parquet(output)
    counts = written.groupBy("sentiment", "error").count().collect()
    total = sum(row["count"] for row in counts)
    sentiments: dict[str, int] = {}
    errors: dict[str, int] = {}
    for row in counts:
        if row["error"]:
            errors[row["error"]] = errors.get(row["error"], 0) + row["count"]
        else:
            sentiments[row["sentiment"]] = sentiments.get(row["sentiment"], 0) + row["count"]
    line = f"scored {total} texts -> {output} ({dict(sorted(sentiments.items()))})"
    if errors:
        line += f"; rows with an error: {dict(sorted(errors.items()))}"
    return line
