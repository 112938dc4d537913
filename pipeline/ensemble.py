"""The `ensemble` variant: the mean log-odds of other trained variants.

It is built by `evaluate` from the members' scores (nothing is fitted, so its validation score
is as honest as theirs) and stored as a bundle holding a copy of each member's bundle
(pipeline/bundle.py); its bundle.json is {"type": "ensemble", "members": [...]}.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import bundle
from pipeline.errors import PipelineError
from pipeline.probability import MEMBER_EPS, sigmoid

NAME = "ensemble"
TYPE = "ensemble"


@dataclass(frozen=True)
class EnsembleConfig:
    members: tuple[str, ...]

    @classmethod
    def from_params(cls, section: dict | None, variants: Sequence[str]) -> EnsembleConfig | None:
        """None when params 'evaluate.ensemble' is absent or lists no members (the types of
        its settings are pipeline/schema.py's to check; the names are checked here)."""
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
    clipped = np.clip(np.stack(probabilities).astype(np.float64), MEMBER_EPS, 1 - MEMBER_EPS)
    mean_logit = np.mean(np.log(clipped) - np.log1p(-clipped), axis=0)
    return sigmoid(mean_logit).astype(np.float32)


def write_bundle(members: dict[str, Path], folder: Path) -> None:
    """Write an ensemble bundle into the empty `folder` from the member bundle folders."""
    bundle.write_ensemble(
        folder, {"variant": NAME, "type": TYPE, "members": list(members)}, members
    )


class EnsembleScorer:
    """Scores each text with every member and combines them; each member scorer is loaded by
    `load_member`, the served model's own loader, so the ensemble needs no list of model types.
    """

    def __init__(self, folder: Path, meta: dict, load_member: Callable[[Path], object]):
        self.members = [load_member(bundle.member_folder(folder, m)) for m in meta["members"]]
        self.tokenizers = {
            name: config for member in self.members for name, config in member.tokenizers.items()
        }

    def probabilities(
        self, texts: Sequence[str], tokens: Mapping[str, Sequence[Sequence[str]]]
    ) -> np.ndarray:
        return combine([member.probabilities(texts, tokens) for member in self.members])

    def scores(
        self, texts: Sequence[str], tokens: Mapping[str, Sequence[Sequence[str]]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """P(positive), and whether any member has a feature of the text."""
        probabilities, known = zip(*(m.scores(texts, tokens) for m in self.members), strict=True)
        return combine(probabilities), np.logical_or.reduce(known)
