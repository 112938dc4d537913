"""Whether a challenger becomes the champion: the registry's rules, as pure functions of scores
and of where the run came from (no MLflow here; pipeline/registry.py applies the decision).

- The first model that passes the gate is crowned: there is nothing to compare it with.
- Otherwise the champion is scored on the challenger's own validation and test splits, and the
  challenger must beat it on the validation metric `select_by` by at least `margin`.
- Explorations never move the champion, however good: DVC experiments, runs from a working tree
  whose params.yaml or dvc.yaml differ from the commit, runs on other data than the champion's.
  `python -m pipeline registry promote` makes the same comparison on request.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from pipeline.scoring import LOWER_IS_BETTER

PROMOTED, KEPT, ALREADY = "promoted", "kept as challenger", "already champion"
FORCED, REFUSED = "promoted by force", "refused"
PROMOTE_COMMAND = "python -m pipeline registry promote"


@dataclass(frozen=True)
class Rule:
    select_by: str  # a validation metric
    lower_is_better: bool
    margin: float  # the least improvement that promotes


@dataclass(frozen=True)
class Scores:
    """One model's `select_by` metric on the challenger's validation and test splits."""

    validation: float
    test: float


@dataclass(frozen=True)
class Origin:
    """Where a run came from: the DVC experiment (if any), the commit, what was uncommitted."""

    commit: str | None
    uncommitted: tuple[str, ...] = ()
    dvc_experiment: str | None = None
    dvc_baseline: str | None = None

    def exploration(self) -> str | None:
        """Why this run may not move the champion by itself, or None."""
        if self.dvc_experiment:
            return f"a DVC experiment ({self.dvc_experiment})"
        if self.uncommitted:
            return f"uncommitted changes to {', '.join(self.uncommitted)}"
        if not self.commit:
            return "not run from a git commit"
        return None


@dataclass(frozen=True)
class Champion:
    version: str
    data_digest: str
    scores: Scores | None  # None: it could not be loaded or scored
    problem: str = ""


@dataclass(frozen=True)
class Decision:
    promote: bool
    outcome: str  # PROMOTED, KEPT, ALREADY, FORCED or REFUSED
    reason: str


def improvement(challenger: float, champion: float, rule: Rule) -> float:
    """How much better the challenger is (negative: worse), in the metric's direction."""
    return champion - challenger if rule.lower_is_better else challenger - champion


def beats(challenger: Scores, champion: Scores, rule: Rule) -> bool:
    """Strictly better on validation, and by at least the margin."""
    gain = improvement(challenger.validation, champion.validation, rule)
    return gain > 0 and gain >= rule.margin


def comparison(challenger: Scores, champion: Champion, rule: Rule) -> str:
    """One line: both scores on the challenger's splits, and whether that beats the margin."""
    if champion.scores is None:
        return f"champion version {champion.version} could not be scored: {champion.problem}"
    theirs = champion.scores
    gain = improvement(challenger.validation, theirs.validation, rule)
    verdict = (
        "better by the margin"
        if beats(challenger, theirs, rule)
        else f"not better by the margin {rule.margin:g}"
    )
    return (
        f"validation {rule.select_by} {challenger.validation:.4f} vs champion version "
        f"{champion.version}'s {theirs.validation:.4f} ({gain:+.4f}, {verdict}); test "
        f"{challenger.test:.4f} vs {theirs.test:.4f}"
    )


def decide(
    challenger: Scores,
    data_digest: str,
    gate_failures: list[str],
    champion: Champion | None,
    origin: Origin,
    rule: Rule,
) -> Decision:
    """What `evaluate` does with its best variant, already registered as the challenger."""
    if gate_failures:
        return Decision(False, KEPT, f"failed the gate ({'; '.join(gate_failures)})")
    if champion is None:
        return Decision(True, PROMOTED, "first champion: the registry had none")
    compared = comparison(challenger, champion, rule)
    if champion.scores is None:
        return Decision(False, KEPT, f"{compared}; no automatic promotion")
    explicitly = f"`{PROMOTE_COMMAND}` compares them on request"
    if data_digest != champion.data_digest:
        return Decision(
            False,
            KEPT,
            f"trained on other data (digest {data_digest}) than champion version "
            f"{champion.version} ({champion.data_digest}); {compared}; {explicitly}",
        )
    exploration = origin.exploration()
    if exploration:
        return Decision(False, KEPT, f"{exploration}; {compared}; {explicitly}")
    if beats(challenger, champion.scores, rule):
        return Decision(True, PROMOTED, compared)
    return Decision(False, KEPT, compared)


def decide_explicitly(
    challenger: Scores,
    gate_failures: list[str],
    champion: Champion | None,
    rule: Rule,
    force_reason: str | None,
) -> Decision:
    """What `registry promote` does: the same comparison, whatever the run's origin; a worse
    model (or one that failed the gate, or an unscorable champion) only with a reason."""
    if champion is None:
        return Decision(True, PROMOTED, "first champion: the registry had none")
    compared = comparison(challenger, champion, rule)
    problems = [f"failed the gate ({'; '.join(gate_failures)})"] if gate_failures else []
    if champion.scores is None or not beats(challenger, champion.scores, rule):
        problems.append(compared)
    if not problems:
        return Decision(True, PROMOTED, compared)
    if force_reason:
        return Decision(True, FORCED, f"{force_reason} (forced: {'; '.join(problems)})")
    return Decision(False, REFUSED, "; ".join(problems))


def digest(params: dict) -> str:
    """A short digest of a params mapping, independent of key order and formatting."""
    text = json.dumps(params, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def rule_from(section: dict) -> Rule:
    """The rule from params `evaluate` (select_by, promote_margin), checked by the schema."""
    select_by = section["select_by"]
    return Rule(select_by, select_by in LOWER_IS_BETTER, float(section["promote_margin"]))
