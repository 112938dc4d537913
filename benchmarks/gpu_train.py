"""Training time of the LSTM variants on an accelerator, for comparison with the CPU benchmark.

Runs the same training code (`pipeline.train.train_variant`) on the split data of a benchmark
run, with the benchmark's params, on whatever Keras backend is configured (KERAS_BACKEND=jax on
a machine without TensorFlow). Only training is measured: the data stages and MLflow logging
stay on the CPU machine.

    KERAS_BACKEND=jax python benchmarks/gpu_train.py --data-dir split --params params.yaml \
        --out gpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import yaml

from pipeline.io import read_jsonl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--params", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variants", nargs="*", default=None)
    args = parser.parse_args()

    import keras

    from pipeline.models import LstmConfig
    from pipeline.train import TrainSettings, final_metrics, train_variant

    section = yaml.safe_load(args.params.read_text(encoding="utf-8"))["train"]
    splits = {
        name: read_jsonl(next(args.data_dir.glob(f"{name}.jsonl*")))
        for name in ("train", "validation")
    }
    results = {
        "backend": keras.backend.backend(),
        "python": platform.python_version(),
        "train_size": len(splits["train"]),
        "variants": {},
    }
    for variant in args.variants or list(section["variants"]):
        settings = TrainSettings.from_params(section, variant)
        if not isinstance(settings.config, LstmConfig):
            continue
        vocab = json.loads(
            (args.data_dir / "vocab" / f"{settings.config.tokenizer}.json").read_text(
                encoding="utf-8"
            )
        )
        started = time.perf_counter()
        trained = train_variant(settings, splits, vocab)
        metrics = final_metrics(trained)
        metrics["wall_seconds"] = round(time.perf_counter() - started, 1)
        results["variants"][variant] = metrics
        print(variant, metrics, flush=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
