import subprocess
import sys

import pytest

from pipeline.quiet import is_noise
from tests.helpers import REPO, clean_env

NOISE = [
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    b"I0000 00:00:1796287102.313980   13645 port.cc:153] oneDNN custom operations are on.\n",
    b"W0000 00:00:1796287102.313980   13645 x.cc:1] something TensorFlow warns about\n",
    b"E0000 00:00:1796287127.901130   13645 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n",
    b"E0000 00:00:1796287184.652612   13645 util.cc:131] oneDNN supports DT_BOOL only on AVX-512\n",
]
KEPT = [
    b"E0000 00:00:1796287127.901130   13645 allocator.cc:1] out of memory allocating 1 GB\n",
    b"F0000 00:00:1796287127.901130   13645 check.cc:1] Check failed\n",
    b"error: params file not found: x.yaml\n",
    b"Epoch 1/30\n",
]


@pytest.mark.parametrize("line", NOISE)
def test_absl_chatter_is_noise(line):
    assert is_noise(line)


@pytest.mark.parametrize("line", KEPT)
def test_real_errors_and_the_pipeline_s_lines_are_kept(line):
    assert not is_noise(line)


SCRIPT = """
import os, sys
from pipeline import quiet
quiet.filter_native_stderr()
for line in {lines!r}:
    os.write(2, line)
print("error: the pipeline's own line", file=sys.stderr)
sys.exit(1)
"""


def test_the_filter_drops_native_noise_and_keeps_everything_else():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(lines=NOISE + KEPT[:2])],
        cwd=REPO,
        env=clean_env(PYTHONPATH=str(REPO)),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert b"error: the pipeline's own line" in result.stderr
    for line in KEPT[:2]:
        assert line in result.stderr
    assert not any(line in result.stderr for line in NOISE)


PROBE = """
import os, sys
sys.argv = ["pipeline", *{argv!r}]
import pipeline.__main__
print(os.environ.get("MLFLOW_LOGGING_LEVEL"), os.environ.get("TF_CPP_MIN_LOG_LEVEL"))
"""


@pytest.mark.parametrize(
    ("argv", "verbose", "shown"),
    [
        (["ui"], "", "WARNING 2"),
        (["--verbose", "ui"], "", "None None"),
        (["ui"], "1", "None None"),
    ],
)
def test_quiet_unless_verbose(argv, verbose, shown):
    env = clean_env(PYTHONPATH=str(REPO), PIPELINE_VERBOSE=verbose)
    for key in ("MLFLOW_LOGGING_LEVEL", "TF_CPP_MIN_LOG_LEVEL"):
        env.pop(key, None)
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == shown, result.stderr


def test_the_cli_documents_verbose():
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "--help"],
        env=clean_env(PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (
        result.returncode == 0
        and "--verbose" in result.stdout
        and "PIPELINE_VERBOSE" in result.stdout
    )
