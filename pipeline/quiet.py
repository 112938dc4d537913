"""Quiet by default: a user sees the pipeline's own lines and real errors, not the start-up
chatter of TensorFlow, absl and MLflow. `python -m pipeline --verbose ...` or PIPELINE_VERBOSE=1
(inherited by the stages `dvc repro` runs) shows everything again.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import sys
import threading
import warnings

VERBOSE_ENV = "PIPELINE_VERBOSE"
DRAIN_SECONDS = 2.0
QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "2",  # TensorFlow's C++ INFO and WARNING lines
    "MLFLOW_LOGGING_LEVEL": "WARNING",  # read when mlflow is imported
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
# TensorFlow writes through absl before absl is initialised, which ignores TF_CPP_MIN_LOG_LEVEL:
# such lines are dropped at the file descriptor: info and warnings, and the errors that only say
# there is no GPU or no AVX-512. Any other error line, and everything else, passes.
ABSL_LINE = re.compile(rb"^(?:[IW]\d{4} |E\d{4} .*(?:failed call to cuInit|oneDNN supports))")
ABSL_PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called"
# The commands whose C++ output is filtered: they load TensorFlow or Kiwi, start no process that
# outlives them, and never exec another program (which would inherit the filter's pipe).
NATIVE_FILTERED = {"prepare", "tokenize", "split", "train", "evaluate", "predict"}


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def quiet_env() -> None:
    """Environment settings that must precede the imports they govern (the user's win)."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


def quiet_python() -> None:
    """MLflow's and absl's Python warnings and log lines below WARNING are not shown."""
    warnings.filterwarnings("ignore", module=r"mlflow(\.|$)")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("absl").setLevel(logging.ERROR)


def is_noise(line: bytes) -> bool:
    return bool(ABSL_LINE.match(line)) or line.startswith(ABSL_PREAMBLE)


def filter_native_stderr() -> None:
    """Route file descriptor 2 (what C++ libraries write) through a thread that drops absl's
    noise; Python's own sys.stderr keeps writing to the real stderr directly, so no message of
    the pipeline can be lost or delayed. For the program `python -m pipeline` only."""
    real = os.dup(2)
    sys.stderr.flush()
    sys.stderr = open(real, "w", encoding="utf-8", errors="backslashreplace", buffering=1)  # noqa: SIM115
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)

    def forward():
        with open(read, "rb") as native:
            for line in native:
                if not is_noise(line):
                    os.write(real, line)

    thread = threading.Thread(target=forward, name="native-stderr", daemon=True)
    thread.start()
    atexit.register(_drain, thread, real)


def _drain(thread: threading.Thread, real: int) -> None:
    """At exit: give fd 2 back to the real stderr (closing the pipe), forward what is left."""
    os.dup2(real, 2)
    thread.join(DRAIN_SECONDS)
