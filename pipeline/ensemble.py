"""The `ensemble` variant: the mean log-odds of other trained variants.

It is built by `evaluate` from the members' scores (nothing is fitted, so its validation score
is as honest as theirs) and stored as a bundle holding a copy of each member's bundle:
  bundle.json            {"type": "ensemble", "members": [...]}
  members/<variant>/     the member's own bundle, unchanged
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError
from pipeline.io import write_json
from pipeline.params import check_keys

NAME = "ensemble"
TYPE = "ensemble"
MEMBERS_DIR = "members"
_EPS = 1e-6


@dataclass(frozen=True)
class EnsembleConfig:
    members: tuple[str, ...]

    @classmethod
    def from_params(cls, section: dict | None, variants: Sequence[str]) -> EnsembleConfig | None:
        """None when params 'evaluate.ensemble' is absent or lists no members."""
        check_keys("evaluate.ensemble", section or {}, {"members"})
        if not section or not section.get("members"):
            return None
        members = tuple(section["members"])
        unknown = [m for m in members if m not in variants]
        if unknown:
            raise PipelineError(
                f"evaluate.ensemble: unknown member(s) {', '.join(map(repr, unknown))}; "
                f"params 'train.variants' defines {', '.join(variants)}"
            )
        if len(set(members)) < 2:
            raise PipelineError("evaluate.ensemble: list at least two different members")
        if NAME in variants:
            raise PipelineError(f"train.variants: {NAME!r} is reserved for evaluate.ensemble")
        return cls(members)


def combine(probabilities: Sequence[np.ndarray]) -> np.ndarray:
    """P(positive) from the members' P(positive): the sigmoid of their mean log-odds."""
    clipped = np.clip(np.stack(probabilities).astype(np.float64), _EPS, 1 - _EPS)
    mean_logit = np.mean(np.log(clipped) - np.log1p(-clipped), axis=0)
    return (1 / (1 + np.exp(-mean_logit))).astype(np.float32)


def write_bundle(members: dict[str, Path], folder: Path) -> None:
    """Write an ensemble bundle into the empty `folder` from the member bundle folders."""
    for name, member in members.items():
        shutil.copytree(member, folder / MEMBERS_DIR / name)
    write_json(folder / "bundle.json", {"variant": NAME, "type": TYPE, "members": list(members)})
