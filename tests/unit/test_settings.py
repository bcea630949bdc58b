"""`bulkhead.settings.load`: precedence, database URLs, validation and a repr without secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkhead.errors import ConfigError
from bulkhead.settings import load

PASSWORD = "s3cret-Pa55word"


def test_data_dir_argument_wins_over_environment(tmp_path: Path) -> None:
    env = {"BULKHEAD_DATA_DIR": str(tmp_path / "from-env")}
    settings = load(data_dir=tmp_path / "from-arg", env=env)
    assert settings.data_dir == (tmp_path / "from-arg").resolve()


def test_data_dir_from_environment_without_argument(tmp_path: Path) -> None:
    settings = load(env={"BULKHEAD_DATA_DIR": str(tmp_path / "from-env")})
    assert settings.data_dir == (tmp_path / "from-env").resolve()


def test_data_dir_defaults_to_dot_bulkhead_in_working_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load(env={})
    assert settings.data_dir == tmp_path.resolve() / ".bulkhead"
    assert settings.data_dir.is_absolute()


def test_process_environment_is_read_when_no_mapping_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BULKHEAD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BULKHEAD_PORT", "8181")
    monkeypatch.delenv("BULKHEAD_DATABASE_URL", raising=False)
    settings = load()
    assert (settings.data_dir, settings.port) == (tmp_path.resolve(), 8181)


@pytest.mark.parametrize(
    ("field", "variable", "given", "from_env", "default"),
    [
        ("host", "BULKHEAD_HOST", "10.0.0.1", "10.0.0.2", "127.0.0.1"),
        ("port", "BULKHEAD_PORT", 1111, "2222", 8080),
        ("metrics_port", "BULKHEAD_METRICS_PORT", 3333, "4444", 9464),
    ],
)
def test_argument_beats_environment_beats_default(
    tmp_path: Path, field: str, variable: str, given: object, from_env: str, default: object
) -> None:
    env = {variable: from_env}
    with_arg = load(data_dir=tmp_path, env=env, **{field: given})
    assert getattr(with_arg, field) == given
    expected_env = int(from_env) if isinstance(default, int) else from_env
    assert getattr(load(data_dir=tmp_path, env=env), field) == expected_env
    assert getattr(load(data_dir=tmp_path, env={}), field) == default


def test_blank_host_means_the_loopback_default(tmp_path: Path) -> None:
    assert load(data_dir=tmp_path, env={"BULKHEAD_HOST": ""}).host == "127.0.0.1"


def test_port_zero_argument_is_not_mistaken_for_absent(tmp_path: Path) -> None:
    settings = load(data_dir=tmp_path, port=0, metrics_port=0, env={"BULKHEAD_PORT": "9000"})
    assert (settings.port, settings.metrics_port) == (0, 0)


def test_sqlite_is_the_default_store_inside_the_data_dir(tmp_path: Path) -> None:
    settings = load(data_dir=tmp_path / "data", env={})
    assert settings.is_sqlite
    assert settings.database_url == f"sqlite:///{(tmp_path / 'data').resolve() / 'bulkhead.db'}"
    # An absolute path: four slashes, so the store never depends on the working directory.
    assert settings.database_url.startswith("sqlite:////")


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_postgres_urls_use_the_psycopg3_driver(tmp_path: Path, scheme: str) -> None:
    env = {"BULKHEAD_DATABASE_URL": f"{scheme}://bulkhead:{PASSWORD}@db.internal:5432/bh"}
    settings = load(data_dir=tmp_path, env=env)
    assert settings.database_url == f"postgresql+psycopg://bulkhead:{PASSWORD}@db.internal:5432/bh"
    assert not settings.is_sqlite


def test_explicit_sqlite_url_is_kept(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    assert load(data_dir=tmp_path, env={"BULKHEAD_DATABASE_URL": f"  {url} "}).database_url == url


def test_blank_database_url_means_the_default(tmp_path: Path) -> None:
    settings = load(data_dir=tmp_path, env={"BULKHEAD_DATABASE_URL": "   "})
    assert settings.is_sqlite


def assert_one_line_config_error(env: dict[str, str], tmp_path: Path, **kw: object) -> str:
    with pytest.raises(ConfigError) as caught:
        load(data_dir=tmp_path, env=env, **kw)
    message = caught.value.message
    assert message and "\n" not in message and message == str(caught.value)
    return message


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("mysql://root@localhost/bh", id="mysql"),
        pytest.param("postgresql+asyncpg://u@h/bh", id="other-postgres-driver"),
        pytest.param("http://db.internal/bh", id="http"),
        pytest.param("db.internal:5432/bh", id="no-scheme"),
        pytest.param("/var/lib/bulkhead.db", id="bare-path"),
    ],
)
def test_unsupported_database_scheme_is_a_config_error(tmp_path: Path, url: str) -> None:
    message = assert_one_line_config_error({"BULKHEAD_DATABASE_URL": url}, tmp_path)
    assert "BULKHEAD_DATABASE_URL" in message


def test_unparsable_database_url_is_a_config_error(tmp_path: Path) -> None:
    url = f"postgresql://bulkhead:{PASSWORD}@[db.internal/bh"
    message = assert_one_line_config_error({"BULKHEAD_DATABASE_URL": url}, tmp_path)
    assert PASSWORD not in message


def test_non_integer_port_in_database_url_is_a_config_error(tmp_path: Path) -> None:
    url = f"postgresql://bulkhead:{PASSWORD}@db.internal:port/bh"
    message = assert_one_line_config_error({"BULKHEAD_DATABASE_URL": url}, tmp_path)
    assert PASSWORD not in message


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        pytest.param("BULKHEAD_PORT", "http", id="port-word"),
        pytest.param("BULKHEAD_PORT", "80.5", id="port-float"),
        pytest.param("BULKHEAD_PORT", "0x50", id="port-hex"),
        pytest.param("BULKHEAD_PORT", "80\n81", id="port-two-lines"),
        pytest.param("BULKHEAD_METRICS_PORT", "nine", id="metrics-port-word"),
        pytest.param("BULKHEAD_MAX_BODY_BYTES", "8MB", id="body-with-unit"),
        pytest.param("BULKHEAD_PORT", "65536", id="port-too-high"),
        pytest.param("BULKHEAD_PORT", "-1", id="port-negative"),
        pytest.param("BULKHEAD_METRICS_PORT", "70000", id="metrics-port-too-high"),
        pytest.param("BULKHEAD_MAX_BODY_BYTES", "1023", id="body-too-small"),
        pytest.param("BULKHEAD_MAX_BODY_BYTES", str((1 << 31) + 1), id="body-too-large"),
        pytest.param("BULKHEAD_CA_ROTATION_DAYS", "1800", id="ca-outlives-its-certificate"),
    ],
)
def test_bad_numbers_in_the_environment_are_config_errors(
    tmp_path: Path, variable: str, value: str
) -> None:
    assert variable in assert_one_line_config_error({variable: value}, tmp_path)


@pytest.mark.parametrize(
    ("option", "value"),
    [("port", 65536), ("port", -1), ("metrics_port", 1 << 20)],
)
def test_out_of_range_port_arguments_are_config_errors(
    tmp_path: Path, option: str, value: int
) -> None:
    message = assert_one_line_config_error({}, tmp_path, **{option: value})
    assert f"--{option.replace('_', '-')}" in message


def test_boundary_values_are_accepted(tmp_path: Path) -> None:
    env = {"BULKHEAD_PORT": "65535", "BULKHEAD_MAX_BODY_BYTES": "1024"}
    settings = load(data_dir=tmp_path, env=env)
    assert (settings.port, settings.max_body_bytes) == (65535, 1024)


def test_data_dir_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    assert "data dir" in assert_one_line_config_error({}, tmp_path / "file")


@pytest.mark.parametrize(("value", "expected"), [("0", False), ("no", False), ("1", True)])
def test_start_workers_switch(tmp_path: Path, value: str, expected: bool) -> None:
    settings = load(data_dir=tmp_path, env={"BULKHEAD_START_WORKERS": value})
    assert settings.start_workers is expected


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://bulkhead:{PASSWORD}@db.internal:5432/bh",
        f"postgres://bulkhead:{PASSWORD}@db.internal/bh?sslmode=require",
        f"postgresql+psycopg://bulkhead:{PASSWORD}@db.internal/bh",
        f"postgresql://bulkhead@db.internal/bh?password={PASSWORD}",
        f"postgresql://bulkhead:{PASSWORD}@/bh?host=/run/postgresql",
    ],
)
def test_repr_never_shows_the_database_password(tmp_path: Path, url: str) -> None:
    settings = load(data_dir=tmp_path, env={"BULKHEAD_DATABASE_URL": url})
    assert PASSWORD in settings.database_url
    for text in (repr(settings), str(settings), f"{settings}", repr([settings])):
        assert PASSWORD not in text
    assert repr(settings).startswith("Settings(")


def test_admin_url_is_for_migrations_and_never_shown(tmp_path: Path) -> None:
    env = {
        "BULKHEAD_DATABASE_URL": "postgresql://bulkhead_app@db.internal/bh",
        "BULKHEAD_DATABASE_ADMIN_URL": f"postgres://owner:{PASSWORD}@db.internal/bh",
    }
    settings = load(data_dir=tmp_path, env=env)
    assert settings.database_admin_url == f"postgresql+psycopg://owner:{PASSWORD}@db.internal/bh"
    assert PASSWORD not in repr(settings)


def test_admin_url_is_optional(tmp_path: Path) -> None:
    env = {"BULKHEAD_DATABASE_URL": "postgresql://bulkhead_app@db.internal/bh"}
    assert load(data_dir=tmp_path, env=env).database_admin_url is None


@pytest.mark.parametrize(
    ("database", "admin"),
    [
        pytest.param("", "postgresql://owner@db.internal/bh", id="sqlite-default"),
        pytest.param("postgresql://app@db.internal/bh", "sqlite:///x.db", id="sqlite-admin"),
        pytest.param("postgresql://app@db.internal/bh", "mysql://owner@h/bh", id="mysql-admin"),
    ],
)
def test_admin_url_needs_postgresql_on_both_sides(
    tmp_path: Path, database: str, admin: str
) -> None:
    env = {"BULKHEAD_DATABASE_URL": database, "BULKHEAD_DATABASE_ADMIN_URL": admin}
    assert "BULKHEAD_DATABASE_ADMIN_URL" in assert_one_line_config_error(env, tmp_path)


def test_unparsable_admin_url_does_not_echo_its_password(tmp_path: Path) -> None:
    env = {
        "BULKHEAD_DATABASE_URL": "postgresql://app@db.internal/bh",
        "BULKHEAD_DATABASE_ADMIN_URL": f"postgresql://owner:{PASSWORD}@db.internal:port/bh",
    }
    assert PASSWORD not in assert_one_line_config_error(env, tmp_path)


def test_upstream_allow_cidrs(tmp_path: Path) -> None:
    assert load(data_dir=tmp_path, env={}).upstream_allow_cidrs == ()
    env = {"BULKHEAD_UPSTREAM_ALLOW_CIDRS": " 169.254.10.0/24, fd00:ec2::/64 ,"}
    assert load(data_dir=tmp_path, env=env).upstream_allow_cidrs == (
        "169.254.10.0/24",
        "fd00:ec2::/64",
    )
    for bad in ("169.254.10.1/24", "metadata", "0.0.0.0/0"):
        with pytest.raises(ConfigError) as caught:
            load(data_dir=tmp_path, env={"BULKHEAD_UPSTREAM_ALLOW_CIDRS": bad})
        assert "BULKHEAD_UPSTREAM_ALLOW_CIDRS" in caught.value.message


def test_a_ca_version_outlasts_everything_it_must_at_the_longest_settings(tmp_path: Path) -> None:
    """Activation, the period, the next version's activation and the last leaf it issued fit
    in the CA certificate's own lifetime, at the largest values the settings accept."""
    from datetime import timedelta

    from bulkhead.identity.ca import CA_LIFETIME, MAX_LIFETIME, SKEW

    env = {"BULKHEAD_CA_ROTATION_DAYS": "1700", "BULKHEAD_CA_ACTIVATION_S": str(30 * 86_400)}
    settings = load(data_dir=tmp_path, env=env)
    activation = timedelta(seconds=settings.ca_activation_s)
    period = timedelta(days=settings.ca_rotation_days)
    assert 2 * activation + period + MAX_LIFETIME + SKEW < CA_LIFETIME


def test_tracing_is_off_unless_an_endpoint_is_set(tmp_path: Path) -> None:
    settings = load(data_dir=tmp_path, env={})
    assert settings.otlp_endpoint is None and settings.otlp_headers == ()
    assert (settings.otlp_service_name, settings.trace_sample_ratio) == ("bulkhead", 1.0)
    with pytest.raises(ConfigError, match="BULKHEAD_OTLP_ENDPOINT"):
        load(data_dir=tmp_path, env={"BULKHEAD_OTLP_ENDPOINT": "collector:4318"})


def test_otlp_headers_are_pairs_and_an_error_never_shows_a_value(tmp_path: Path) -> None:
    env = {"BULKHEAD_OTLP_HEADERS": "Authorization=Bearer%20s3cret, x-team = ops ,"}
    settings = load(data_dir=tmp_path, env=env)
    assert settings.otlp_headers == (("authorization", "Bearer s3cret"), ("x-team", "ops"))
    assert "s3cret" not in repr(settings)
    for bad in ("s3cret", "a b=s3cret", "a=s3cret%0d%0aevil: 1"):
        with pytest.raises(ConfigError, match="BULKHEAD_OTLP_HEADERS") as caught:
            load(data_dir=tmp_path, env={"BULKHEAD_OTLP_HEADERS": bad})
        assert "s3cret" not in caught.value.message


@pytest.mark.parametrize(
    "url",
    [
        "https://user:s3cret@collector:4318/v1/traces",
        "https://collector:4318/v1/traces?api_key=s3cret",
        "https://collector:4318/v1/traces#s3cret",
        "https://collector:99999/v1/traces",
        "https:///v1/traces",
    ],
)
def test_the_otlp_endpoint_carries_no_credential(tmp_path: Path, url: str) -> None:
    """The exporter logs its URL's path and query with every failed export, and the
    endpoint is no secret setting: a credential belongs in BULKHEAD_OTLP_HEADERS."""
    with pytest.raises(ConfigError, match="BULKHEAD_OTLP_ENDPOINT") as caught:
        load(data_dir=tmp_path, env={"BULKHEAD_OTLP_ENDPOINT": url})
    assert "s3cret" not in caught.value.message
    good = "https://collector:4318/v1/traces"
    assert load(data_dir=tmp_path, env={"BULKHEAD_OTLP_ENDPOINT": good}).otlp_endpoint == good


@pytest.mark.parametrize("value", ["-0.1", "1.5", "half", "nan"])
def test_the_sample_ratio_is_a_fraction(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="BULKHEAD_TRACE_SAMPLE_RATIO"):
        load(data_dir=tmp_path, env={"BULKHEAD_TRACE_SAMPLE_RATIO": value})
    assert (
        load(data_dir=tmp_path, env={"BULKHEAD_TRACE_SAMPLE_RATIO": "0.25"}).trace_sample_ratio
        == 0.25
    )


TENANT_BOUNDS = (
    "BULKHEAD_TENANT_MAX_KEYS",
    "BULKHEAD_TENANT_MAX_PRINCIPALS",
    "BULKHEAD_MODEL_MAX_LIVE_VERSIONS",
    "BULKHEAD_TENANT_MAX_PENDING_QUOTA_REQUESTS",
)


def test_the_tenant_bounds_default_to_the_stores_and_reach_it(tmp_path: Path) -> None:
    from bulkhead.app.backends import tenant_bounds
    from bulkhead.store import TenantBounds

    assert tenant_bounds(load(data_dir=tmp_path, env={})) == TenantBounds()
    low = load(data_dir=tmp_path, env=dict.fromkeys(TENANT_BOUNDS, "1"))
    assert tenant_bounds(low) == TenantBounds(1, 1, 1, 1)


@pytest.mark.parametrize("name", TENANT_BOUNDS)
@pytest.mark.parametrize("value", ["0", "-1", "1000001", "many"])
def test_a_tenant_bound_has_a_floor_and_a_ceiling(tmp_path: Path, name: str, value: str) -> None:
    """A bound of 0 would lock every tenant out; one past the ceiling would let one tenant
    make every replica's catalog reload slow again."""
    with pytest.raises(ConfigError, match=name):
        load(data_dir=tmp_path, env={name: value})
