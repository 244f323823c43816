"""Settings: defaults, embedded URLs, derived values, and a SettingsError naming each bad variable."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from config.settings import (
    EMBEDDED_REDIS_PORT,
    SETTINGS_EXIT_STATUS,
    Settings,
    SettingsError,
    cpus,
    embedded_redis_port,
    embedded_urls,
    load_settings,
    settings_or_exit,
)

KEY = {"SECRET_KEY": "unit-test-secret"}  # given, so the dev key is never written to disk
EXTERNAL = {**KEY, "DATABASE_URL": "postgresql://app:pw@db.example:5433/allot",
            "BROKER_URL": "redis://redis.example:6379/0"}


def test_defaults_use_the_embedded_servers_under_var_dir() -> None:
    settings = load_settings({**KEY, "VAR_DIR": "/srv/allot"})
    urls = embedded_urls(Path("/srv/allot"))
    assert settings.env == "development"
    assert settings.embedded
    assert settings.database_url == urls["database_url"]
    assert settings.broker_url == urls["broker_url"]
    assert settings.result_backend == urls["result_backend"]
    assert settings.database_url.startswith("postgresql+psycopg://postgres@/allotment?host=/srv/allot/pg")
    assert settings.trial_database_url == settings.database_url.replace("/allotment?", "/allotment_trial?")
    assert settings.placement_servers == (settings.database_url.replace("/allotment?", "/postgres?"),)


def test_defaults_of_the_message_plane_and_limits() -> None:
    settings = load_settings(KEY)
    assert (settings.message_lease_seconds, settings.message_max_attempts) == (60.0, 8)
    assert settings.task_soft_time_limit < settings.task_time_limit
    assert settings.cookie_secure is True
    assert settings.max_content_length == 1_048_576


def test_external_urls_are_normalised_and_the_rest_derived() -> None:
    settings = load_settings({**EXTERNAL, "DATABASE_URL": "postgres://app:pw@db.example:5433/allot"})
    assert not settings.embedded
    assert settings.database_url == "postgresql+psycopg://app:pw@db.example:5433/allot"
    assert settings.trial_database_url == "postgresql+psycopg://app:pw@db.example:5433/allot_trial"
    assert settings.placement_servers == ("postgresql+psycopg://app:pw@db.example:5433/postgres",)
    assert settings.result_backend == settings.broker_url


def test_an_external_broker_without_database_url_keeps_the_broker_for_results() -> None:
    # The run command starts no embedded Redis when BROKER_URL is set, so results must not
    # point at it.
    settings = load_settings({**KEY, "BROKER_URL": "redis://redis.example:6379/3"})
    assert settings.embedded
    assert settings.broker_url == "redis://redis.example:6379/3"
    assert settings.result_backend == "redis://redis.example:6379/3"


def test_values_are_typed_from_strings() -> None:
    settings = load_settings({**KEY, "RELAY_INTERVAL_SECONDS": "2.5", "MESSAGE_MAX_ATTEMPTS": "3",
                              "COOKIE_SECURE": "false",
                              "PLACEMENT_SERVERS": "postgresql://a:5432/x, postgresql://b:5433/y"})
    assert settings.relay_interval_seconds == 2.5
    assert settings.message_max_attempts == 3
    assert settings.cookie_secure is False
    assert settings.placement_servers == ("postgresql+psycopg://a:5432/postgres",
                                          "postgresql+psycopg://b:5433/postgres")


def test_the_web_process_runs_one_sync_worker_more_than_its_cpus_on_localhost() -> None:
    settings = load_settings(KEY)
    assert settings.web_concurrency == cpus() + 1
    assert cpus() <= len(os.sched_getaffinity(0))
    assert (settings.web_threads, settings.web_host, settings.flower_address) == (1, "127.0.0.1", "127.0.0.1")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "::1", "10.1.2.3", "localhost", "web.internal"])  # noqa: S104
def test_the_processes_listen_on_an_address_or_a_host_name(host: str) -> None:
    settings = load_settings({**KEY, "WEB_HOST": host, "FLOWER_ADDRESS": host, "WEB_CONCURRENCY": "9"})
    assert (settings.web_host, settings.flower_address, settings.web_concurrency) == (host, host, 9)


@pytest.mark.parametrize("host", ["0", "8000", "1.2.3", "999.999.1.1", "a..b", "-web", "web_1", "[::1]",
                                  "web:8000", "x" * 64])
def test_a_listen_address_that_is_neither_an_address_nor_a_host_name_is_refused(host: str) -> None:
    with pytest.raises(SettingsError, match=r"\bWEB_HOST: .*IP address or a host name"):
        load_settings({**KEY, "WEB_HOST": host})


def _cgroup(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(("files", "limit"), [
    ({}, None),                                                      # no cgroup files: affinity only
    ({"cpu.max": "max 100000\n"}, None),                             # v2, unlimited
    ({"cpu.max": "150000 100000\n"}, 2),                             # v2, 1.5 CPUs: rounded up
    ({"cpu.max": "50000 100000\n"}, 1),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),  # v1, unlimited
    ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),
])
def test_the_cpus_counted_are_no_more_than_the_cgroup_quota(tmp_path: Path, files: dict[str, str],
                                                             limit: int | None) -> None:
    affinity = len(os.sched_getaffinity(0))
    expected = affinity if limit is None else min(affinity, limit)
    assert cpus(_cgroup(tmp_path, files)) == expected


def test_the_run_command_reads_its_embedded_redis_port_as_a_port() -> None:
    assert embedded_redis_port({}) == EMBEDDED_REDIS_PORT
    assert embedded_redis_port({"EMBEDDED_REDIS_PORT": "6380"}) == 6380
    for bad in ("0", "65536", "redis", "\u00b2"):
        with pytest.raises(SettingsError, match=r"^invalid configuration: EMBEDDED_REDIS_PORT: "):
            embedded_redis_port({"EMBEDDED_REDIS_PORT": bad})


def test_unrelated_environment_variables_are_ignored() -> None:
    assert load_settings({**KEY, "PATH": "/bin", "HOME": "/root"}).env == "development"


def test_settings_are_frozen() -> None:
    settings = load_settings(KEY)
    with pytest.raises(ValueError, match="frozen"):
        settings.env = "production"  # type: ignore[misc]


@pytest.mark.parametrize(("environ", "variable"), [
    ({"DATABASE_URL": "mysql://db/allot", "BROKER_URL": "redis://r/0"}, "DATABASE_URL"),
    ({"TRIAL_DATABASE_URL": "sqlite:///trial.db"}, "TRIAL_DATABASE_URL"),
    ({"BROKER_URL": "amqp://guest@rabbit//"}, "BROKER_URL"),
    ({"RESULT_BACKEND": "db+postgresql://x/y"}, "RESULT_BACKEND"),
    ({"PLACEMENT_SERVERS": "postgresql://a/x,mysql://b/y"}, "PLACEMENT_SERVERS"),
    ({"RELAY_INTERVAL_SECONDS": "often"}, "RELAY_INTERVAL_SECONDS"),
    ({"RELAY_INTERVAL_SECONDS": "0"}, "RELAY_INTERVAL_SECONDS"),
    ({"MESSAGE_MAX_ATTEMPTS": "0"}, "MESSAGE_MAX_ATTEMPTS"),
    ({"MESSAGE_LEASE_SECONDS": "-1"}, "MESSAGE_LEASE_SECONDS"),
    ({"ENGINE_CACHE_SIZE": "1"}, "ENGINE_CACHE_SIZE"),
    ({"MAX_CONTENT_LENGTH": "10"}, "MAX_CONTENT_LENGTH"),
    ({"WEB_PORT": "70000"}, "WEB_PORT"),
    ({"WEB_HOST": "127.0.0.1:8000"}, "WEB_HOST"),
    ({"WEB_HOST": "http://example.com"}, "WEB_HOST"),
    ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY"),
    ({"WEB_CONCURRENCY": "many"}, "WEB_CONCURRENCY"),
    ({"WEB_THREADS": "0"}, "WEB_THREADS"),
    ({"WEB_STATEMENT_TIMEOUT_MS": "30000"}, "WEB_STATEMENT_TIMEOUT_MS"),  # past gunicorn's timeout
    ({"WEB_STATEMENT_TIMEOUT_MS": "-1"}, "WEB_STATEMENT_TIMEOUT_MS"),
    ({"WEB_LOCK_TIMEOUT_MS": "soon"}, "WEB_LOCK_TIMEOUT_MS"),
    ({"FLOWER_ADDRESS": "-flower"}, "FLOWER_ADDRESS"),
    ({"FLOWER_PORT": "0"}, "FLOWER_PORT"),
    ({"COOKIE_SECURE": "sometimes"}, "COOKIE_SECURE"),
    ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL"),
    ({"ENV": "staging"}, "ENV"),
    ({"TASK_SOFT_TIME_LIMIT": "300", "TASK_TIME_LIMIT": "300"}, "TASK_SOFT_TIME_LIMIT"),
    ({"TASK_SOFT_TIME_LIMIT": "400", "TASK_TIME_LIMIT": "300"}, "TASK_SOFT_TIME_LIMIT"),
    ({"DATABASE_URL": "postgresql://db/allot"}, "BROKER_URL"),
])
def test_a_bad_value_names_its_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=rf"\b{variable}:"):
        load_settings({**KEY, **environ})


def test_a_process_start_ends_with_the_message_instead_of_a_traceback(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert settings_or_exit(KEY).db_pool_size == 5
    with pytest.raises(SystemExit) as exited:
        settings_or_exit({**KEY, "DB_POOL_SIZE": "many"})
    assert exited.value.code == SETTINGS_EXIT_STATUS == 4  # gunicorn's "app failed to load": it stops
    assert capsys.readouterr().err.startswith("invalid configuration: DB_POOL_SIZE: ")
    assert exited.value.__cause__ is None and exited.value.__suppress_context__


@pytest.mark.parametrize("missing", ["SECRET_KEY", "DATABASE_URL", "BROKER_URL"])
def test_production_requires_its_secrets_and_services(missing: str) -> None:
    environ = {**EXTERNAL, "ENV": "production"}
    del environ[missing]
    with pytest.raises(SettingsError, match=rf"\b{missing}: required in production"):
        load_settings(environ)


def test_production_with_everything_given_loads() -> None:
    settings = load_settings({**EXTERNAL, "ENV": "production"})
    assert settings.env == "production"
    assert settings.secret_key == KEY["SECRET_KEY"]


def test_the_password_hash_profile_defaults_to_rfc_9106_and_cheapest_stays_out_of_production() -> None:
    assert load_settings(KEY).password_hash_profile == "rfc9106-low-memory"
    assert load_settings({**KEY, "PASSWORD_HASH_PROFILE": "cheapest"}).password_hash_profile == "cheapest"
    with pytest.raises(SettingsError, match=r"\bPASSWORD_HASH_PROFILE: cheapest is for test suites"):
        load_settings({**EXTERNAL, "ENV": "production", "PASSWORD_HASH_PROFILE": "cheapest"})
    with pytest.raises(SettingsError, match=r"\bPASSWORD_HASH_PROFILE:"):
        load_settings({**KEY, "PASSWORD_HASH_PROFILE": "md5"})


def test_every_field_is_read_from_its_upper_case_variable() -> None:
    # The error names the variable, so the variable must be the field's name upper-cased.
    numeric = [name for name, field in Settings.model_fields.items() if field.annotation in (int, float)]
    assert len(numeric) >= 10
    for name in numeric:
        with pytest.raises(SettingsError, match=rf"\b{name.upper()}:"):
            load_settings({**KEY, name.upper(): "not-a-number"})
