"""The champion's lifecycle in a real MLflow store and registry (SQLite): what `evaluate`
registers and crowns, explicit promotion and rollback, history and status, the lock."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import mlflow
import pytest
import yaml
from click.testing import CliRunner
from mlflow import MlflowClient

from pipeline import model_versions, registry
from pipeline.cli import cli
from pipeline.errors import PipelineError
from pipeline.promotion import PROMOTE_COMMAND, Champion, Origin, Rule, Scores, decide
from pipeline.registry_history import history_lines, status
from tests.helpers import COMMITTED, RULE, make_lab


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        lab = make_lab(folder)
        yield {"lab": lab, "folder": folder, "uri": uri, "patch": patch}
    mlflow.set_tracking_uri(None)


@pytest.fixture
def lab(store):
    return store["lab"]


@pytest.fixture
def name(request) -> str:
    """A registered model of its own for each test, in the shared store."""
    return f"m-{request.node.name}"[:60].replace("[", "-").replace("]", "")


def aliases(name: str) -> dict[str, str]:
    return {k: str(v) for k, v in MlflowClient().get_registered_model(name).aliases.items()}


def tags(name: str, version: str) -> dict[str, str]:
    return MlflowClient().get_model_version(name, version).tags


def test_first_run_crowns_its_best_variant_with_what_explains_it(lab, name):
    outcome = lab.evaluate(name, "medium")
    assert outcome.decision.promote and outcome.champion == outcome.version == "1"
    assert aliases(name) == {"champion": "1", "challenger": "1"}
    found = tags(name, "1")
    assert found["decision"] == "promoted" and "first champion" in found["decision_reason"]
    assert found["decided_by"].startswith("evaluate (")
    assert found["data.digest"] == lab.digests["A"] and found["params.digest"] == "params"
    assert found["git_commit"] == COMMITTED.commit and found["val_accuracy"] == "0.7500"
    assert found["test_accuracy"] == "0.7500" and found["dvc.exp_name"] == ""


def test_a_worse_challenger_on_the_same_data_stays_challenger(lab, name):
    lab.evaluate(name, "good")
    outcome = lab.evaluate(name, "medium")
    assert not outcome.decision.promote and outcome.champion == "1"
    assert aliases(name) == {"champion": "1", "challenger": "2"}
    found = tags(name, "2")
    assert found["decision"] == "kept as challenger"
    assert found["compared_with"] == "1" and float(found["compared_with.val_accuracy"]) == 1.0
    assert "0.7500 vs champion version 1's 1.0000" in found["decision_reason"]


def test_a_better_challenger_becomes_champion_and_the_old_one_is_told(lab, name):
    lab.evaluate(name, "medium")
    outcome = lab.evaluate(name, "good")
    assert outcome.decision.promote and aliases(name) == {"champion": "2", "challenger": "2"}
    assert tags(name, "2")["previous_champion"] == "1"
    assert tags(name, "1")["decision"] == "replaced"


def test_the_margin_must_be_beaten(lab, name):
    lab.evaluate(name, "medium")
    outcome = lab.evaluate(name, "good", rule=Rule("accuracy", False, 0.3))
    assert not outcome.decision.promote and "not better by the margin 0.3" in (
        outcome.decision.reason
    )


@pytest.mark.parametrize(
    ("origin", "why"),
    [
        (Origin(COMMITTED.commit, (), "exp-1a2b3", "abc"), "a DVC experiment (exp-1a2b3)"),
        (Origin(COMMITTED.commit, ("params.yaml",)), "uncommitted changes to params.yaml"),
        (Origin(None), "not run from a git commit"),
    ],
    ids=["dvc-exp-run", "uncommitted-params", "no-git"],
)
def test_an_exploration_that_is_better_still_stays_challenger(lab, name, origin, why):
    lab.evaluate(name, "medium")
    outcome = lab.evaluate(name, "good", origin=origin)
    assert not outcome.decision.promote and aliases(name)["champion"] == "1"
    assert outcome.decision.reason.startswith(why) and PROMOTE_COMMAND in outcome.decision.reason
    assert "+0.2500, better by the margin" in outcome.decision.reason
    assert tags(name, "2")["dvc.exp_name"] == (origin.dvc_experiment or "")


def test_a_model_of_other_data_stays_challenger(lab, name):
    lab.evaluate(name, "medium")
    outcome = lab.evaluate(name, "good", data="B")
    assert not outcome.decision.promote and aliases(name)["champion"] == "1"
    assert f"trained on other data (digest {lab.digests['B']})" in outcome.decision.reason


def test_a_champion_that_cannot_be_scored_is_one_reason_and_no_promotion(lab, name):
    lab.evaluate(name, "broken")
    outcome = lab.evaluate(name, "good")
    assert not outcome.decision.promote and aliases(name)["champion"] == "1"
    reason = outcome.decision.reason
    assert "champion version 1 could not be scored" in reason and "mystery" in reason
    assert "\n" not in reason and "no automatic promotion" in reason


def test_a_gate_failure_is_registered_but_moves_nothing(lab, name):
    lab.evaluate(name, "medium")
    outcome = lab.evaluate(name, "good", gate=["validation accuracy 0.1 < minimum 0.9"])
    assert not outcome.decision.promote and aliases(name) == {"champion": "1", "challenger": "2"}
    assert outcome.decision.reason.startswith("failed the gate")


def test_the_same_model_again_is_the_same_version(lab, name):
    lab.evaluate(name, "good")
    outcome = lab.evaluate(name, "good")
    assert outcome.version == "1" and outcome.decision.outcome == "already champion"
    assert len(model_versions.all_versions(MlflowClient(), name)) == 1


def test_the_champion_moving_during_the_comparison_is_compared_again(lab, name):
    """Compare-and-set: while `medium` is compared with `bad`, another evaluation crowns
    `good`; `medium` is then compared with `good`, and stays challenger."""
    lab.evaluate(name, "bad")
    good = lab.evaluate(name, "good", origin=Origin(None)).version  # registered, not crowned
    medium = registry.register_candidate(
        name, "medium", lab.runs[("medium", lab.digests["A"])], lab.results["medium"], COMMITTED, {}
    )
    compared = []

    def describe(current):
        compared.append(str(current.version))
        if len(compared) == 1:
            MlflowClient().set_registered_model_alias(name, "champion", good)
        scored = model_versions.score_version(name, current.version, lab.splits)
        found = Scores(scored["validation"]["accuracy"], scored["test"]["accuracy"])
        return Champion(current.version, lab.digests["A"], found)

    def judge(champion):
        return decide(Scores(0.75, 0.75), lab.digests["A"], [], champion, COMMITTED, RULE)

    outcome = registry.settle(name, medium, judge, describe, "test", RULE)
    assert compared == ["1", str(good)] and not outcome.decision.promote
    assert aliases(name)["champion"] == str(good)


def write_params(tmp_path, name: str, margin: float = 0.0):
    params = tmp_path / "params.yaml"
    section = {
        "registered_model": name,
        "select_by": "accuracy",
        "promote_margin": margin,
        "gate": {},
    }
    params.write_text(yaml.safe_dump({"evaluate": section}), encoding="utf-8")
    return params


def registry_cli(params, *args):
    return CliRunner().invoke(cli, ["registry", *args[:1], "--params", str(params), *args[1:]])


def test_promote_makes_the_same_comparison_explicitly(lab, name, tmp_path):
    lab.evaluate(name, "medium")
    lab.evaluate(name, "good", origin=Origin(COMMITTED.commit, ("params.yaml",)))
    result = registry_cli(write_params(tmp_path, name), "promote")
    assert result.exit_code == 0, result.output
    assert "version 2 (good): promoted: validation accuracy 1.0000 vs champion version 1's" in (
        result.output
    )
    assert f"{name}@champion is version 2" in result.output
    assert tags(name, "2")["decided_by"].startswith("registry promote (")


def test_promote_refuses_a_worse_model_unless_forced_with_a_reason(lab, name, tmp_path):
    lab.evaluate(name, "good")
    lab.evaluate(name, "medium")
    params = write_params(tmp_path, name)
    refused = registry_cli(params, "promote", "--version", "2")
    assert refused.exit_code == 1 and "error: version 2 (medium): refused: validation" in (
        refused.output
    )
    assert "Traceback" not in refused.output and aliases(name)["champion"] == "1"
    no_reason = registry_cli(params, "promote", "--version", "2", "--force")
    assert no_reason.exit_code == 1 and "--force needs --reason" in no_reason.output
    forced = registry_cli(params, "promote", "--version", "2", "--force", "--reason", "demo day")
    assert forced.exit_code == 0, forced.output
    assert aliases(name)["champion"] == "2"
    found = tags(name, "2")
    assert found["decision"] == "promoted by force" and found["decision_reason"].startswith(
        "demo day (forced: validation accuracy 0.7500"
    )


def test_promote_of_other_data_scores_the_champion_on_that_data(lab, name, store, tmp_path):
    lab.evaluate(name, "medium")
    lab.evaluate(name, "good", data="B")  # v2, compared with v1
    lab.evaluate(name, "bad")
    registry.promote(name, "3", RULE, Path("no-data"), "a worse champion, to compare with")
    params = write_params(tmp_path, name)
    args = ["promote", "--version", "2", "--data-dir"]
    elsewhere = registry_cli(params, *args, str(store["folder"] / "A"))
    assert elsewhere.exit_code == 1 and "does not hold version 2's" in elsewhere.output
    result = registry_cli(params, *args, str(store["folder"] / "B"))
    assert result.exit_code == 0, result.output
    assert "1.0000 vs champion version 3's 0.0000" in result.output
    assert aliases(name)["champion"] == "2"


def test_unknown_versions_are_one_line(lab, name, tmp_path):
    lab.evaluate(name, "good")
    result = registry_cli(write_params(tmp_path, name), "promote", "--version", "9")
    assert result.exit_code == 1 and f"error: {name} has no version '9'" in result.output


def test_rollback_returns_to_the_previous_champion(lab, name, tmp_path):
    lab.evaluate(name, "medium")
    lab.evaluate(name, "good")
    params = write_params(tmp_path, name)
    result = registry_cli(params, "rollback")
    assert result.exit_code == 0, result.output
    assert f"{name}@champion is version 1 again (medium)" in result.output
    assert aliases(name) == {"champion": "1", "challenger": "2"}
    assert tags(name, "2")["decision"] == "rolled back" and tags(name, "1")["decision"] == (
        "restored"
    )
    again = registry_cli(params, "rollback")
    assert again.exit_code == 1 and "(version 1) replaced no champion" in again.output


def test_history_is_one_line_per_version_with_every_decision(lab, name, tmp_path):
    lab.evaluate(name, "medium")
    lab.evaluate(name, "good", origin=Origin(COMMITTED.commit, (), "exp-1a2b3", "abc"))
    params = write_params(tmp_path, name)
    registry_cli(params, "promote")
    result = registry_cli(params, "history")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2
    newest, oldest = lines
    assert newest.startswith(f"v2 [challenger,champion] good data {lab.digests['A']} ")
    assert "val_accuracy 1.0000 test_accuracy 1.0000 commit 0123456 exp exp-1a2b3" in newest
    assert "kept as challenger by evaluate" in newest and "; " in newest
    assert "promoted by registry promote" in newest
    assert oldest.startswith("v1 [-] medium") and "replaced by registry promote" in oldest


def test_history_of_an_unknown_model(store):
    assert history_lines("nothing-here") == ["nothing-here has no registered versions"]


def test_status_says_whether_the_champion_is_this_workspace_s_model(lab, name):
    lab.evaluate(name, "medium")
    medium = tags(name, "1")
    evaluated = {
        "variant": "medium",
        "model_digest": medium["model.digest"],
        "data_digest": medium["data.digest"],
    }
    same, lines = status(name, evaluated)
    assert same and lines == [
        f"{name}@champion is this workspace's model: version 1 (medium, data {lab.digests['A']})"
    ]
    lab.evaluate(name, "good", data="B")
    registry.promote(name, "2", RULE, Path("no-data"), "demo")
    same, lines = status(name, evaluated)
    assert not same
    champion = f"version 2 (good, data {lab.digests['B']})"
    assert lines[0] == f"{name}@champion ({champion}) is not this workspace's evaluated model"
    assert any("trained on other data" in line for line in lines)
    assert any("last decision: promoted by registry promote" in line for line in lines)
    assert lines[-1] == f"to compare them again: {PROMOTE_COMMAND} --version 1"


def test_status_of_a_model_this_store_never_registered(lab, name):
    lab.evaluate(name, "medium")
    same, lines = status(name, {"variant": "x", "model_digest": "0" * 16, "data_digest": "1"})
    assert not same and "is not registered in this store" in lines[1]


def test_status_through_the_cli_warns_and_exits_0(lab, name, tmp_path):
    params = write_params(tmp_path, name)
    result = registry_cli(params, "status", "--evaluated", str(tmp_path / "none.json"))
    assert result.exit_code == 0 and "registry warning: this workspace has no evaluation" in (
        result.output
    )


def test_the_lock_admits_one_holder_and_takes_over_a_dead_one(store, name, monkeypatch):
    client = MlflowClient()
    order = []

    def hold():
        with model_versions.lock(client, name):
            order.append("first in")
            time.sleep(1.0)
            order.append("first out")

    first = threading.Thread(target=hold)
    first.start()
    time.sleep(0.3)
    with model_versions.lock(client, name):
        order.append("second in")
    first.join()
    assert order == ["first in", "first out", "second in"]
    client.create_registered_model(f"{name}{model_versions.LOCK_SUFFIX}")  # its holder died
    monkeypatch.setattr(model_versions, "LOCK_STALE_SECONDS", 0.5)
    started = time.monotonic()
    with model_versions.lock(client, name):
        pass
    assert time.monotonic() - started < 5
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_registered_model(f"{name}{model_versions.LOCK_SUFFIX}")


def test_rollback_without_a_champion_is_an_error(store, name):
    model_versions.ensure_registered_model(MlflowClient(), name)
    with pytest.raises(PipelineError, match="has no champion to roll back"):
        registry.rollback(name)


def test_status_in_a_clone_with_no_store_says_so_and_creates_none(tmp_path, monkeypatch):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n", encoding="utf-8")
    params = write_params(tmp_path, "m-none")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    result = CliRunner().invoke(cli, ["registry", "status", "--params", str(params)])
    assert result.exit_code == 0, result.output
    assert "no tracking store at mlflow.db yet" in result.output
    assert not (tmp_path / "mlflow.db").exists()
