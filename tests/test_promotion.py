import pytest

from pipeline.promotion import (
    FORCED,
    KEPT,
    PROMOTE_COMMAND,
    PROMOTED,
    REFUSED,
    Champion,
    Origin,
    Rule,
    Scores,
    beats,
    decide,
    decide_explicitly,
    digest,
    rule_from,
)

ACCURACY = Rule("accuracy", lower_is_better=False, margin=0.01)
LOSS = Rule("log_loss", lower_is_better=True, margin=0.01)
COMMITTED = Origin(commit="abc")
CHAMPION = Champion("1", "data-a", Scores(0.80, 0.78))


def test_beats_needs_a_strict_gain_of_at_least_the_margin():
    assert beats(Scores(0.81, 0), Scores(0.80, 0), ACCURACY)
    assert not beats(Scores(0.805, 0), Scores(0.80, 0), ACCURACY)
    assert not beats(Scores(0.80, 0), Scores(0.80, 0), Rule("accuracy", False, 0.0))
    assert beats(Scores(0.20, 0), Scores(0.30, 0), LOSS)
    assert not beats(Scores(0.30, 0), Scores(0.20, 0), LOSS)


def test_first_run_is_crowned_unless_the_gate_fails():
    assert decide(Scores(0.7, 0.7), "data-a", [], None, COMMITTED, ACCURACY).outcome == PROMOTED
    gated = decide(Scores(0.7, 0.7), "data-a", ["too low"], None, COMMITTED, ACCURACY)
    assert not gated.promote and gated.reason == "failed the gate (too low)"


def test_better_on_the_same_data_from_a_commit_is_promoted():
    decision = decide(Scores(0.85, 0.84), "data-a", [], CHAMPION, COMMITTED, ACCURACY)
    assert decision.promote and decision.outcome == PROMOTED
    assert decision.reason == (
        "validation accuracy 0.8500 vs champion version 1's 0.8000 (+0.0500, better by the "
        "margin); test 0.8400 vs 0.7800"
    )


def test_worse_or_not_better_by_the_margin_is_kept():
    for mine in (Scores(0.75, 0.9), Scores(0.805, 0.9)):
        decision = decide(mine, "data-a", [], CHAMPION, COMMITTED, ACCURACY)
        assert not decision.promote and decision.outcome == KEPT
        assert "not better by the margin 0.01" in decision.reason


@pytest.mark.parametrize(
    ("origin", "data", "why"),
    [
        (Origin("abc", (), "exp-1", "abc"), "data-a", "a DVC experiment (exp-1)"),
        (Origin("abc", ("params.yaml", "dvc.yaml")), "data-a", "uncommitted changes to params"),
        (Origin(None), "data-a", "not run from a git commit"),
        (COMMITTED, "data-b", "trained on other data (digest data-b) than champion version 1"),
    ],
)
def test_explorations_never_move_the_champion(origin, data, why):
    decision = decide(Scores(0.99, 0.99), data, [], CHAMPION, origin, ACCURACY)
    assert not decision.promote and decision.reason.startswith(why)
    assert "better by the margin" in decision.reason and PROMOTE_COMMAND in decision.reason


def test_an_unscorable_champion_is_one_reason_and_no_promotion():
    broken = Champion("1", "data-a", None, "OSError: no such file")
    decision = decide(Scores(0.99, 0.99), "data-a", [], broken, COMMITTED, ACCURACY)
    assert not decision.promote
    assert decision.reason == (
        "champion version 1 could not be scored: OSError: no such file; no automatic promotion"
    )


def test_explicit_promotion_compares_the_same_way_and_forces_only_with_a_reason():
    better = decide_explicitly(Scores(0.85, 0.8), [], CHAMPION, ACCURACY, None)
    assert better.promote and better.outcome == PROMOTED
    worse = decide_explicitly(Scores(0.75, 0.8), [], CHAMPION, ACCURACY, None)
    assert not worse.promote and worse.outcome == REFUSED
    forced = decide_explicitly(Scores(0.75, 0.8), ["low"], CHAMPION, ACCURACY, "hotfix")
    assert forced.promote and forced.outcome == FORCED
    assert forced.reason.startswith("hotfix (forced: failed the gate (low); validation accuracy")
    assert decide_explicitly(Scores(0.1, 0.1), [], None, ACCURACY, None).promote


def test_rule_from_params():
    assert rule_from({"select_by": "log_loss", "promote_margin": 0}) == Rule("log_loss", True, 0.0)
    assert rule_from({"select_by": "accuracy", "promote_margin": 0.003}).margin == 0.003


def test_params_digest_ignores_key_order():
    assert digest({"a": 1, "b": {"c": 2}}) == digest({"b": {"c": 2}, "a": 1})
    assert digest({"a": 1}) != digest({"a": 2}) and len(digest({})) == 16
