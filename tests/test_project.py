from pipeline.project import copy_project, git_commit, repo_root


def test_repo_root_is_the_folder_holding_dvc_yaml_from_any_subfolder(tmp_path, monkeypatch):
    monkeypatch.delenv("DVC_ROOT", raising=False)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    sub = tmp_path / "pipeline" / "deeper"
    sub.mkdir(parents=True)
    assert repo_root(sub) == tmp_path.resolve()
    monkeypatch.chdir(sub)
    assert repo_root() == tmp_path.resolve()


def test_dvc_root_names_the_repository_even_from_a_temporary_copy(tmp_path, monkeypatch):
    temp_copy = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpab12"
    temp_copy.mkdir(parents=True)
    (temp_copy / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(temp_copy)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "repo"))
    assert repo_root() == (tmp_path / "repo").resolve()


def test_without_markers_the_folder_itself(tmp_path, monkeypatch):
    monkeypatch.delenv("DVC_ROOT", raising=False)
    assert repo_root(tmp_path) == tmp_path.resolve()


def test_copy_project_commits_tracked_files_only(tmp_path):
    from tests.helpers import sh

    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    sh(["git", "init", "-q"], source)
    (source / ".gitignore").write_text("ignored.txt\n")
    (source / "kept.txt").write_text("kept\n")
    (source / "ignored.txt").write_text("not copied\n")
    copy_project(source, dest)
    assert (dest / "kept.txt").read_text() == "kept\n"
    assert not (dest / "ignored.txt").exists()
    assert git_commit(dest) is not None
