"""What we can learn about a dbt project without importing dbt (which costs ~2 s).

Used by the ``--no-run`` paths: the project name, the target name for the ``target`` label, and
the target directory where dbt wrote its artifacts. Follows dbt's own lookup order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbt_prom_bridge.config import DbtOptions


@dataclass(frozen=True)
class ProjectInfo:
    name: str | None
    profile: str | None
    target_path: str


#: Parsed YAML files by (path, modification time, size): one command asks several times.
_YAML: dict[tuple[str, int, int], Any] = {}


def _load_yaml(path: Path) -> Any:
    """The parsed file (None when absent or not YAML); parsed once while it stays unchanged.
    The document is shared: callers only read it."""
    import yaml

    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
        if key not in _YAML:
            if len(_YAML) > 64:
                _YAML.clear()
            _YAML[key] = yaml.safe_load(path.read_text(encoding="utf-8"))
        return _YAML[key]
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


def _render(value: object) -> str | None:
    """Render dbt's ``{{ env_var('X', 'default') }}`` in a profile/project value."""
    if not isinstance(value, str):
        return None if value is None else str(value)
    if "{{" not in value:
        return value
    from jinja2.sandbox import SandboxedEnvironment

    def env_var(name: str, default: str | None = None) -> str:
        found = os.environ.get(name, default)
        return "" if found is None else found

    try:
        return SandboxedEnvironment().from_string(value).render(env_var=env_var).strip() or None
    except Exception:
        return None


def project_info(dbt: DbtOptions) -> ProjectInfo:
    doc = _load_yaml(dbt.project_dir / "dbt_project.yml")
    doc = doc if isinstance(doc, dict) else {}
    target_path = (
        dbt.target_path or os.environ.get("DBT_TARGET_PATH") or _render(doc.get("target-path")) or "target"
    )
    return ProjectInfo(
        name=_render(doc.get("name")),
        profile=_render(doc.get("profile")),
        target_path=target_path,
    )


def profiles_dir(dbt: DbtOptions) -> Path:
    """dbt's order: --profiles-dir, DBT_PROFILES_DIR, the current dir, then ~/.dbt."""
    if dbt.profiles_dir is not None:
        return dbt.profiles_dir
    env = os.environ.get("DBT_PROFILES_DIR")
    if env:
        return Path(env)
    if Path("profiles.yml").exists():
        return Path()
    return Path.home() / ".dbt"


#: The ``target`` label when the target cannot be found (dbt's own name for a profile's default).
DEFAULT_TARGET = "default"


def target_name(dbt: DbtOptions, info: ProjectInfo | None = None) -> str:
    """The dbt target for the ``target`` label: --target / DBT_TARGET, else the profile's default."""
    return configured_target(dbt, info) or DEFAULT_TARGET


def configured_target(dbt: DbtOptions, info: ProjectInfo | None = None) -> str | None:
    """:func:`target_name`, or None when neither the flags nor a profiles.yml name one."""
    if dbt.target:
        return dbt.target
    env = os.environ.get("DBT_TARGET")
    if env:
        return env
    info = info or project_info(dbt)
    profiles = _load_yaml(profiles_dir(dbt) / "profiles.yml")
    if isinstance(profiles, dict) and info.profile and isinstance(profiles.get(info.profile), dict):
        found = _render(profiles[info.profile].get("target"))
        if found:
            return found
    return None


def unknown_target_warning(dbt: DbtOptions) -> str | None:
    """Why the ``target`` label fell back to ``default`` (reading artifacts), or None when it did not."""
    info = project_info(dbt)
    if configured_target(dbt, info) is not None:
        return None
    if info.profile:
        why = f"no profile {info.profile!r} naming a target in {profiles_dir(dbt) / 'profiles.yml'}"
    else:
        why = f"no dbt_project.yml in {dbt.project_dir} naming a profile"
    return (
        f'the dbt target is unknown ({why}): the series get target="{DEFAULT_TARGET}"; pass --target '
        "(or DBT_TARGET), or --profiles-dir"
    )


def artifacts_dir(dbt: DbtOptions, info: ProjectInfo | None = None) -> Path:
    info = info or project_info(dbt)
    path = Path(info.target_path)
    return path if path.is_absolute() else dbt.project_dir / path
