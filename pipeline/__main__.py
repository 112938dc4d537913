import os

# TensorFlow's C++ start-up chatter (no CUDA found, CPU features) is noise for a CLI.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pipeline.cli import cli

if __name__ == "__main__":
    cli()
