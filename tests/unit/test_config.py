"""Settings: one precedence (argument, then CONVEYOR_* environment, then default), and
secrets masked wherever a URL is shown."""

from __future__ import annotations

import pytest

from conveyor import App
from conveyor.config import (
    DEFAULT_BROKER_URL,
    DEFAULT_LEASE_SECONDS,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_RESULT_TTL,
    mask_url,
    resolve_settings,
)
from conveyor.errors import ConfigurationError

ENV_VARS = (
    "CONVEYOR_BROKER_URL",
    "CONVEYOR_RESULTS_URL",
    "CONVEYOR_SIGNING_KEY",
    "CONVEYOR_MAX_MESSAGE_SIZE",
    "CONVEYOR_LEASE_SECONDS",
    "CONVEYOR_RESULT_TTL",
    "CONVEYOR_WORKER_PREFETCH",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)


# -- mask_url ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://user:secret@host:6379/0", "redis://user:***@host:6379/0"),
        ("redis://:secret@host:6379/0", "redis://:***@host:6379/0"),
        ("amqp://guest:guest@localhost:5672//", "amqp://guest:***@localhost:5672//"),
        ("postgresql://app:p4ss@db/shop?sslmode=require",
         "postgresql://app:***@db/shop?sslmode=require"),
    ],
)
def test_mask_url_hides_the_password(url: str, masked: str) -> None:
    # Given a URL with a password / When it is masked / Then only the password is hidden
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    "url",
    ["sqlite:///conveyor.db", "sqlite:////abs/path.db", "redis://host:6379/0", "memory://",
     "redis://user@host:6379"],
)
def test_mask_url_leaves_urls_without_a_password_unchanged(url: str) -> None:
    assert mask_url(url) == url


def test_mask_url_masks_every_url_inside_a_message() -> None:
    # Given an error message naming two URLs with passwords
    text = "can't reach redis://a:one@h1 nor amqp://b:two@h2"
    # When / Then: neither password survives
    masked = mask_url(text)
    assert "one" not in masked and "two" not in masked
    assert masked == "can't reach redis://a:***@h1 nor amqp://b:***@h2"


# -- resolve_settings precedence -----------------------------------------------------------


def test_defaults_apply_when_neither_argument_nor_environment_is_given() -> None:
    settings = resolve_settings("shop", env={})
    assert settings.broker_url == DEFAULT_BROKER_URL == "sqlite:///conveyor.db"
    assert settings.results_url is None
    assert settings.effective_results_url == DEFAULT_BROKER_URL
    assert settings.signing_keys == ()
    assert settings.max_message_size == DEFAULT_MAX_MESSAGE_SIZE == 10 * 2**20
    assert settings.lease_seconds == DEFAULT_LEASE_SECONDS
    assert settings.result_ttl == DEFAULT_RESULT_TTL


def test_environment_overrides_defaults() -> None:
    env = {
        "CONVEYOR_BROKER_URL": "memory://",
        "CONVEYOR_RESULTS_URL": "sqlite:///results.db",
        "CONVEYOR_SIGNING_KEY": "new,old",
        "CONVEYOR_MAX_MESSAGE_SIZE": "2048",
        "CONVEYOR_LEASE_SECONDS": "12.5",
        "CONVEYOR_RESULT_TTL": "60",
    }
    settings = resolve_settings("shop", env=env)
    assert settings.broker_url == "memory://"
    assert settings.results_url == "sqlite:///results.db"
    assert settings.effective_results_url == "sqlite:///results.db"
    assert settings.signing_keys == ("new", "old")
    assert settings.max_message_size == 2048
    assert settings.lease_seconds == 12.5
    assert settings.result_ttl == 60.0


def test_arguments_override_the_environment() -> None:
    env = {
        "CONVEYOR_BROKER_URL": "sqlite:///from-env.db",
        "CONVEYOR_RESULTS_URL": "sqlite:///results-env.db",
        "CONVEYOR_SIGNING_KEY": "env-key",
        "CONVEYOR_MAX_MESSAGE_SIZE": "2048",
        "CONVEYOR_LEASE_SECONDS": "12",
        "CONVEYOR_RESULT_TTL": "60",
    }
    settings = resolve_settings(
        "shop", broker="memory://", results="memory://", signing_key=["a", "b"],
        max_message_size=4096, lease_seconds=5, result_ttl=10, env=env,
    )
    assert settings.broker_url == "memory://"
    assert settings.results_url == "memory://"
    assert settings.signing_keys == ("a", "b")
    assert settings.max_message_size == 4096
    assert settings.lease_seconds == 5
    assert settings.result_ttl == 10


def test_process_environment_is_read_when_no_mapping_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONVEYOR_BROKER_URL", "memory://")
    monkeypatch.setenv("CONVEYOR_LEASE_SECONDS", "7")
    settings = resolve_settings("shop")
    assert settings.broker_url == "memory://"
    assert settings.lease_seconds == 7.0


def test_a_single_signing_key_string_is_one_key_not_characters() -> None:
    settings = resolve_settings("shop", signing_key="abc", env={})
    assert settings.signing_keys == ("abc",)


@pytest.mark.parametrize(
    "var", ["CONVEYOR_MAX_MESSAGE_SIZE", "CONVEYOR_LEASE_SECONDS", "CONVEYOR_RESULT_TTL"]
)
def test_a_non_numeric_environment_variable_is_a_configuration_error(var: str) -> None:
    # Given a numeric setting whose environment variable holds text
    # When the settings are resolved
    with pytest.raises(ConfigurationError) as info:
        resolve_settings("shop", env={var: "ten"})
    # Then the error names the variable and the bad value
    assert var in str(info.value)
    assert "'ten'" in str(info.value)


def test_a_non_numeric_environment_variable_fails_app_creation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONVEYOR_LEASE_SECONDS", "thirty")
    with pytest.raises(ConfigurationError, match="CONVEYOR_LEASE_SECONDS"):
        App("shop", broker="memory://")


@pytest.mark.parametrize(
    "kwargs",
    [{"max_message_size": -1}, {"lease_seconds": 0.5}, {"result_ttl": -5}],
)
def test_out_of_range_numbers_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        resolve_settings("shop", env={}, **kwargs)  # type: ignore[arg-type]


def test_a_broker_url_without_a_scheme_is_rejected_with_an_example() -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_settings("shop", broker="localhost:6379", env={})
    assert "sqlite:///conveyor.db" in str(info.value)


@pytest.mark.parametrize("key", ["", ["ok", ""]])
def test_an_empty_signing_key_is_rejected(key: str | list[str]) -> None:
    with pytest.raises(ConfigurationError, match="signing_key"):
        resolve_settings("shop", signing_key=key, env={})


def test_settings_repr_masks_passwords_and_hides_signing_keys() -> None:
    settings = resolve_settings(
        "shop", broker="redis://u:brokerpw@h/0", results="redis://u:resultpw@h/1",
        signing_key="topsecretkey", env={},
    )
    text = repr(settings)
    assert "brokerpw" not in text
    assert "resultpw" not in text
    assert "topsecretkey" not in text
    assert "signed=True" in text


def test_the_worker_prefetch_comes_from_the_app_or_the_environment() -> None:
    assert resolve_settings("t").worker_prefetch is None  # the adaptive window
    assert resolve_settings("t", worker_prefetch=1).worker_prefetch == 1
    assert resolve_settings("t", env={"CONVEYOR_WORKER_PREFETCH": "4"}).worker_prefetch == 4
    with pytest.raises(ConfigurationError, match="worker_prefetch must be a whole number"):
        resolve_settings("t", worker_prefetch=0)
    with pytest.raises(ConfigurationError, match="CONVEYOR_WORKER_PREFETCH must be a whole"):
        resolve_settings("t", env={"CONVEYOR_WORKER_PREFETCH": "1.5"})
