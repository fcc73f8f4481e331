"""Reading project name, profile target and target path without importing dbt."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbt_prom_bridge import dbtproject
from dbt_prom_bridge.config import DbtOptions


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("DBT_TARGET", "DBT_PROFILES_DIR", "DBT_TARGET_PATH"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "dbt_project.yml").write_text("name: shop\nprofile: shop_profile\ntarget-path: out\n")
    (tmp_path / "profiles.yml").write_text(
        "shop_profile:\n  target: \"{{ env_var('SHOP_TARGET', 'staging') }}\"\n  outputs: {}\n"
    )
    return tmp_path


def test_target_from_profile_default_renders_env_var(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opts = DbtOptions(project_dir=project, profiles_dir=project)
    assert dbtproject.target_name(opts) == "staging"
    monkeypatch.setenv("SHOP_TARGET", "prod")
    assert dbtproject.target_name(opts) == "prod"


def test_flag_and_env_win(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBT_TARGET", "from_env")
    assert dbtproject.target_name(DbtOptions(project_dir=project, profiles_dir=project)) == "from_env"
    assert dbtproject.target_name(DbtOptions(project_dir=project, profiles_dir=project, target="ci")) == "ci"


def test_no_profile_means_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBT_TARGET", raising=False)
    assert dbtproject.target_name(DbtOptions(project_dir=tmp_path, profiles_dir=tmp_path)) == "default"


def test_a_target_label_that_fell_back_to_default_is_explained(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Reading artifacts on a box without the profile silently pushed target="default".
    assert dbtproject.unknown_target_warning(DbtOptions(project_dir=project, profiles_dir=project)) is None
    assert dbtproject.unknown_target_warning(DbtOptions(project_dir=project, target="prod")) is None
    elsewhere = tmp_path_factory.mktemp("no-profiles")
    warning = dbtproject.unknown_target_warning(DbtOptions(project_dir=project, profiles_dir=elsewhere))
    assert warning is not None
    assert "no profile 'shop_profile' naming a target in " + str(elsewhere / "profiles.yml") in warning
    assert 'target="default"' in warning and "--target" in warning
    bare = dbtproject.unknown_target_warning(DbtOptions(project_dir=elsewhere, profiles_dir=elsewhere))
    assert bare is not None and f"no dbt_project.yml in {elsewhere} naming a profile" in bare


def test_artifacts_dir_follows_target_path(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opts = DbtOptions(project_dir=project)
    assert dbtproject.artifacts_dir(opts) == project / "out"
    monkeypatch.setenv("DBT_TARGET_PATH", "elsewhere")
    assert dbtproject.artifacts_dir(opts) == project / "elsewhere"
    assert dbtproject.artifacts_dir(DbtOptions(project_dir=project, target_path="/abs")) == Path("/abs")
    assert dbtproject.project_info(opts).name == "shop"


def test_broken_yaml_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBT_TARGET_PATH", raising=False)
    (tmp_path / "dbt_project.yml").write_text("name: [unclosed\n")
    info = dbtproject.project_info(DbtOptions(project_dir=tmp_path))
    assert info.name is None and info.target_path == "target"
