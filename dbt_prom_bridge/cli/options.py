"""Option groups shared by several commands, and turning them into frozen config objects."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from dbt_prom_bridge.config import (
    DEFAULT_JOB,
    DEFAULT_REMOTE_WRITE_BATCH,
    ArtifactOptions,
    DbtOptions,
    GatewayConfig,
    HttpAuth,
    RemoteWriteConfig,
    Secret,
    parse_duration,
)
from dbt_prom_bridge.errors import UsageError
from dbt_prom_bridge.model import FailOn, validate_grouping_key, validate_meta_labels

F = TypeVar("F", bound=Callable[..., Any])


def _stack(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


def warn(message: str) -> None:
    """One ``dbt-prom: warning:`` line on stderr (every command's warnings look alike)."""
    from dbt_prom_bridge.redact import printable

    click.echo(f"dbt-prom: warning: {printable(message)}", err=True)


def env_help(text: str, env: str) -> str:
    return f"{text}  [env: {env}]"


_project_dir_option = click.option(
    "--project-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    envvar="DBT_PROJECT_DIR",
    show_default=True,
    help=env_help("dbt project directory (as in dbt).", "DBT_PROJECT_DIR"),
)
_profiles_dir_option = click.option(
    "--profiles-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="DBT_PROFILES_DIR",
    help=env_help("Directory of profiles.yml (as in dbt).", "DBT_PROFILES_DIR"),
)
_target_option = click.option(
    "--target",
    "-t",
    envvar="DBT_TARGET",
    help=env_help("dbt target (as in dbt); also the `target` label.", "DBT_TARGET"),
)
_selection_options = _stack(
    click.option(
        "--select",
        "-s",
        multiple=True,
        help="dbt selection (as in dbt). A selected run updates only the sources it checks.",
    ),
    click.option("--exclude", multiple=True, help="dbt exclusion (as in dbt)."),
)
_vars_option = click.option("--vars", help="dbt --vars (YAML string, as in dbt).")
_target_path_option = click.option(
    "--target-path",
    envvar="DBT_TARGET_PATH",
    help=env_help("dbt target path (as in dbt), where artifacts are written.", "DBT_TARGET_PATH"),
)
#: dbt's options, for commands that run dbt source freshness (push, run, serve) or select sources (rules).
dbt_options = _stack(
    _project_dir_option,
    _profiles_dir_option,
    _target_option,
    _selection_options,
    _vars_option,
    _target_path_option,
)
#: Commands that only parse the project (dashboard): no selection.
dbt_parse_options = _stack(
    _project_dir_option, _profiles_dir_option, _target_option, _vars_option, _target_path_option
)
#: Commands that only read artifacts (status): where they are and which target label.
dbt_artifact_options = _stack(_project_dir_option, _profiles_dir_option, _target_option, _target_path_option)


def dbt_config(kw: dict[str, Any]) -> DbtOptions:
    return DbtOptions(
        project_dir=kw.pop("project_dir"),
        profiles_dir=kw.pop("profiles_dir"),
        target=kw.pop("target"),
        select=tuple(kw.pop("select", ())),
        exclude=tuple(kw.pop("exclude", ())),
        vars=kw.pop("vars", None),
        target_path=kw.pop("target_path"),
    )


def _duration(allow_zero: bool) -> Callable[[click.Context, click.Parameter, str | None], float | None]:
    def parse(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
        if value is None:
            return None
        try:
            return parse_duration(value, param.opts[0] if param.opts else "duration", allow_zero)
        except UsageError as exc:
            raise click.BadParameter(str(exc)) from None

    return parse


def duration_option(
    *names: str, default: str | None, help: str, envvar: str | None = None, allow_zero: bool = False
) -> Callable[[F], F]:
    """A Prometheus-style duration option (unit required; zero only with ``allow_zero``)."""
    return click.option(
        *names,
        default=default,
        callback=_duration(allow_zero),
        envvar=envvar,
        show_default=True,
        metavar="DURATION",
        help=env_help(help, envvar) if envvar else help,
    )


artifact_options = _stack(
    click.option("--no-run", is_flag=True, help="Do not run dbt: read the artifacts a previous run left."),
    click.option(
        "--artifacts-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="DBT_PROM_ARTIFACTS_DIR",
        help=env_help(
            "Where sources.json/manifest.json are (default: the project's target dir).",
            "DBT_PROM_ARTIFACTS_DIR",
        ),
    ),
    click.option(
        "--sources-json",
        type=click.Path(dir_okay=False, path_type=Path),
        help="sources.json to read (with --no-run).",
    ),
    click.option(
        "--manifest",
        type=click.Path(dir_okay=False, path_type=Path),
        help="manifest.json to read (optional with --no-run; without it, configured-but-missing "
        "sources cannot be detected).",
    ),
    duration_option(
        "--max-artifact-age",
        default="1h",
        envvar="DBT_PROM_MAX_ARTIFACT_AGE",
        help="With --no-run, refuse a sources.json older than this.",
    ),
    click.option(
        "--allow-stale-artifact", is_flag=True, help="With --no-run, accept an artifact of any age."
    ),
)


run_results_option = click.option(
    "--run-results",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="DBT_PROM_RUN_RESULTS",
    metavar="FILE",
    help=env_help(
        "Also push the model, seed and snapshot builds of this run_results.json (from dbt "
        "build/run/seed/snapshot). With --no-run and no fresh sources.json, only the models are pushed.",
        "DBT_PROM_RUN_RESULTS",
    ),
)


def artifact_config(kw: dict[str, Any]) -> ArtifactOptions:
    """The artifact options; refuses artifact files a dbt run would ignore (without --no-run)."""
    art = ArtifactOptions(
        no_run=kw.pop("no_run"),
        artifacts_dir=kw.pop("artifacts_dir"),
        sources_json=kw.pop("sources_json"),
        manifest=kw.pop("manifest"),
        max_artifact_age=kw.pop("max_artifact_age"),
        allow_stale=kw.pop("allow_stale_artifact"),
        force=kw.pop("force", False),
        run_results=kw.pop("run_results", None),
    )
    for flag, given in (("--sources-json", art.sources_json), ("--manifest", art.manifest)):
        if given is not None and not art.no_run:
            raise UsageError(
                f"{flag} only makes sense with --no-run (a dbt run reads the artifacts it writes); "
                "add --no-run, or drop it"
            )
    if not art.no_run:
        ignored = no_run_only_flags_given()
        if ignored:
            warn(
                f"{', '.join(ignored)} only apply with --no-run (a dbt run's own results are never "
                "stale); ignored"
            )
    return art


#: Flags that only change how --no-run reads an existing artifact (parameter name -> flag).
_NO_RUN_ONLY = {
    "max_artifact_age": "--max-artifact-age",
    "allow_stale_artifact": "--allow-stale-artifact",
    "force": "--force",
}


def no_run_only_flags_given() -> list[str]:
    """The --no-run-only flags typed on this command line (an env var set for cron jobs that
    also run without --no-run is not worth a warning)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return []
    return [
        flag
        for name, flag in _NO_RUN_ONLY.items()
        if name in ctx.params and ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
    ]


def fail_on_option(when: str = "") -> Callable[[F], F]:
    """``--fail-on``: the same choices, default and env var in every command; ``when`` qualifies it."""
    return click.option(
        "--fail-on",
        type=click.Choice([f.value for f in FailOn]),
        default=FailOn.NEVER.value,
        show_default=True,
        envvar="DBT_PROM_FAIL_ON",
        help=env_help(
            f"Exit 1{when} when a source reaches this status (warn: warn or worse; error: error or "
            "runtime_error).",
            "DBT_PROM_FAIL_ON",
        ),
    )


def format_option(help: str) -> Callable[[F], F]:
    """``--format text|json`` (the ``fmt`` parameter)."""
    return click.option(
        "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help=help
    )


meta_label_option = click.option(
    "--meta-label",
    "meta_labels",
    multiple=True,
    metavar="KEY",
    envvar="DBT_PROM_META_LABELS",
    help=env_help(
        "Copy this dbt meta key (e.g. owner, team) into a label. Repeatable.",
        "DBT_PROM_META_LABELS, space-separated",
    ),
)


def meta_labels(kw: dict[str, Any]) -> tuple[str, ...]:
    return validate_meta_labels(kw.pop("meta_labels"))


def _key_value(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    out = []
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE")
        out.append((key.strip(), value))
    return tuple(out)


_gateway_url_option = click.option(
    "--gateway",
    envvar="DBT_PROM_GATEWAY",
    metavar="URL",
    help=env_help(
        "Pushgateway URL, e.g. http://pushgateway:9091 (may embed user:password@).", "DBT_PROM_GATEWAY"
    ),
)
_grouping_options = _stack(
    click.option(
        "--job",
        default=DEFAULT_JOB,
        show_default=True,
        envvar="DBT_PROM_JOB",
        help=env_help("Pushgateway job label.", "DBT_PROM_JOB"),
    ),
    click.option(
        "--grouping-key",
        multiple=True,
        metavar="KEY=VALUE",
        callback=_key_value,
        help="Extra grouping-key label (besides job, project, target). Repeatable.",
    ),
)


def auth_tls_options(prefix: str, what: str) -> Callable[[F], F]:
    """``--PREFIX-user/-password-file/-token-file/-ca/-cert/-key`` with their ``DBT_PROM_*`` env
    vars: one family per endpoint kind (gateway, remote write), all spelled the same way."""
    env = "DBT_PROM_" + prefix.upper().replace("-", "_")

    def path_option(suffix: str, text: str) -> Callable[[F], F]:
        return click.option(
            f"--{prefix}-{suffix}",
            type=click.Path(dir_okay=False, path_type=Path),
            envvar=f"{env}_{suffix.upper().replace('-', '_')}",
            help=env_help(text, f"{env}_{suffix.upper().replace('-', '_')}"),
        )

    return _stack(
        click.option(
            f"--{prefix}-user",
            envvar=f"{env}_USER",
            help=env_help(
                f"Basic-auth user for {what}; the password comes from {env}_PASSWORD or "
                f"--{prefix}-password-file.",
                f"{env}_USER",
            ),
        ),
        path_option("password-file", f"File holding the basic-auth password for {what}."),
        path_option("token-file", f"File holding a bearer token for {what} (or set {env}_TOKEN)."),
        path_option("ca", f"CA bundle to verify the TLS certificate of {what}."),
        path_option("cert", f"Client certificate for mutual TLS with {what}."),
        path_option("key", f"Private key of --{prefix}-cert."),
    )


#: How to reach the gateway (URL, auth, TLS, timeout, retries), without job and grouping key.
_connection_options = _stack(
    auth_tls_options("gateway", "the gateway"),
    duration_option(
        "--timeout", default="10s", envvar="DBT_PROM_TIMEOUT", help="Timeout of each HTTP request."
    ),
    click.option(
        "--retries",
        type=click.IntRange(0, 20),
        default=3,
        show_default=True,
        envvar="DBT_PROM_RETRIES",
        help=env_help(
            "Retries after a retryable failure (connection refused, timeout, 5xx, 408, 429), with "
            "exponential backoff (1s, 2s, 4s... at most 30s).",
            "DBT_PROM_RETRIES",
        ),
    ),
)
gateway_options = _stack(_gateway_url_option, _grouping_options, _connection_options)
#: Options of commands that only connect (``replay``): URL, auth, TLS, timeout, retries.
gateway_connection_options = _stack(_gateway_url_option, _connection_options)
#: Connection options that are never secret (they may be repeated in a printed command line).
CONNECTION_PARAMS: tuple[str, ...] = (
    "gateway",
    "gateway_user",
    "gateway_password_file",
    "gateway_token_file",
    "gateway_ca",
    "gateway_cert",
    "gateway_key",
    "remote_write",
    "remote_write_user",
    "remote_write_password_file",
    "remote_write_token_file",
    "remote_write_ca",
    "remote_write_cert",
    "remote_write_key",
    "timeout",
    "retries",
)

spill_option = click.option(
    "--spill-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="DBT_PROM_SPILL_DIR",
    help=env_help(
        "Where runs that could not be pushed are kept for `dbt-prom replay` "
        "(default: dbt-prom-spill in the project's target dir).",
        "DBT_PROM_SPILL_DIR",
    ),
)


textfile_option = click.option(
    "--textfile",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="DBT_PROM_TEXTFILE",
    metavar="PATH",
    help="Also (or only) write the metrics to this node_exporter textfile-collector file (*.prom), "
    "atomically.  [env: DBT_PROM_TEXTFILE]",
)

auto_replay_option = click.option(
    "--auto-replay/--no-auto-replay",
    default=True,
    show_default=True,
    envvar="DBT_PROM_AUTO_REPLAY",
    help="After a successful push, also push what earlier failed pushes to this gateway spilled "
    "(never over newer data).  [env: DBT_PROM_AUTO_REPLAY]",
)

#: Where a run goes besides the gateway/remote write, and what happens when delivery fails.
delivery_options = _stack(textfile_option, spill_option, auto_replay_option)


def spill_dir(kw: dict[str, Any], dbt: DbtOptions) -> Path:
    """``--spill-dir``, else ``<the project's target dir>/dbt-prom-spill``."""
    from dbt_prom_bridge import dbtproject
    from dbt_prom_bridge.sinks.spill import DEFAULT_DIR_NAME

    given: Path | None = kw.pop("spill_dir")
    return given if given is not None else dbtproject.artifacts_dir(dbt) / DEFAULT_DIR_NAME


def http_auth(kw: dict[str, Any], flag: str = "gateway") -> HttpAuth:
    """Pops the ``--<flag>-user/-password-file/-token-file/-ca/-cert/-key`` options; the password
    and token may also come from ``DBT_PROM_<FLAG>_PASSWORD`` / ``_TOKEN``."""
    import os

    key, env = flag.replace("-", "_"), "DBT_PROM_" + flag.replace("-", "_").upper()
    user = kw.pop(f"{key}_user")
    password = Secret.from_sources(
        os.environ.get(f"{env}_PASSWORD"), kw.pop(f"{key}_password_file"), f"{flag} password"
    )
    token = Secret.from_sources(os.environ.get(f"{env}_TOKEN"), kw.pop(f"{key}_token_file"), f"{flag} token")
    cert, key_file = kw.pop(f"{key}_cert"), kw.pop(f"{key}_key")
    if key_file is not None and cert is None:
        raise UsageError(f"--{flag}-key needs --{flag}-cert")
    return HttpAuth(
        username=user,
        password=password if user else None,
        token=token,
        ca_file=kw.pop(f"{key}_ca"),
        cert_file=cert,
        key_file=key_file,
    )


def connection_config(kw: dict[str, Any]) -> GatewayConfig | None:
    """URL, auth, timeout and retries only (``replay``); None without a URL."""
    url = kw.pop("gateway")
    auth = http_auth(kw)
    timeout, retries = kw.pop("timeout"), kw.pop("retries")
    if not url:
        return None
    return GatewayConfig(url=url, auth=auth, timeout=timeout, retries=retries)


def gateway_config(kw: dict[str, Any]) -> GatewayConfig | None:
    """The gateway config, or None when no --gateway was given (all gateway flags consumed)."""
    url = kw.pop("gateway")
    job = kw.pop("job")
    grouping = validate_grouping_key(kw.pop("grouping_key"))
    auth = http_auth(kw)
    timeout, retries = kw.pop("timeout"), kw.pop("retries")
    if not url:
        return None
    if not job:
        raise UsageError("--job must not be empty")
    return GatewayConfig(url=url, job=job, grouping_key=grouping, auth=auth, timeout=timeout, retries=retries)


remote_write_url_option = click.option(
    "--remote-write",
    envvar="DBT_PROM_REMOTE_WRITE_URL",
    metavar="URL",
    help=env_help(
        "Also (or only) send the series with Prometheus remote write, e.g. "
        "http://prometheus:9090/api/v1/write, Mimir's /api/v1/push (may embed user:password@).",
        "DBT_PROM_REMOTE_WRITE_URL",
    ),
)

_remote_write_auth_options = auth_tls_options("remote-write", "the remote-write endpoint")

#: Remote write: URL, auth/TLS, batch size (``push``; job, --grouping-key, timeout and retries are shared).
remote_write_options = _stack(
    remote_write_url_option,
    _remote_write_auth_options,
    click.option(
        "--remote-write-batch",
        type=click.IntRange(1, 1_000_000),
        default=DEFAULT_REMOTE_WRITE_BATCH,
        show_default=True,
        envvar="DBT_PROM_REMOTE_WRITE_BATCH",
        help=env_help("Series per remote-write request.", "DBT_PROM_REMOTE_WRITE_BATCH"),
    ),
)
#: Remote write connection options of ``replay`` (no batch: the default is used).
remote_write_connection_options = _stack(remote_write_url_option, _remote_write_auth_options)


def remote_write_config(kw: dict[str, Any]) -> RemoteWriteConfig | None:
    """The remote-write config (None without --remote-write). Pops its own options; reads the
    shared --job, --grouping-key, --timeout and --retries, so call it before :func:`gateway_config`."""
    url = kw.pop("remote_write")
    auth = http_auth(kw, "remote-write")
    batch = kw.pop("remote_write_batch", DEFAULT_REMOTE_WRITE_BATCH)
    if not url:
        return None
    job = kw.get("job", DEFAULT_JOB)
    if not job:
        raise UsageError("--job must not be empty")
    return RemoteWriteConfig(
        url=url,
        job=job,
        labels=tuple(kw.get("grouping_key", ())),
        auth=auth,
        timeout=kw.get("timeout", 10.0),
        retries=kw.get("retries", 3),
        batch=batch,
    )


def wants_colour(stream: Any) -> bool:
    import os

    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
