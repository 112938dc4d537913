"""Reading one section of params.yaml (pipeline/schema.py checks it; each stage turns it into a
frozen dataclass)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import PipelineError


def read_section(params_path: Path, section: str) -> dict[str, Any]:
    if not params_path.is_file():
        raise PipelineError(f"params file not found: {params_path}")
    with params_path.open(encoding="utf-8") as f:
        params = yaml.safe_load(f) or {}
    if section not in params:
        raise PipelineError(f"{params_path} has no '{section}' section")
    return params[section]
