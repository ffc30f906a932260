"""Redaction: every form of a secret, and every piece of 8+ characters of one, becomes ***."""

from __future__ import annotations

import io
import logging
import secrets
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from service.errors import ConfigError, MigrationFailedError
from service.secrets import RedactingFilter, Redactor, url_secrets, value_secrets
from service.services.redaction import redacted_error
from service.settings import Settings
from tests.leaks import leaks

PASSWORD = "Sp@c!al/pw-Qx7rT2mWv9"


@pytest.mark.parametrize(
    "shown",
    [
        PASSWORD,
        quote(PASSWORD, safe=""),
        quote(PASSWORD, safe="!"),  # as configured: Sp%40c!al%2Fpw...
        quote(PASSWORD, safe="").lower().replace("sp", "Sp").replace("qx7rt2mwv9", "Qx7rT2mWv9"),
        quote_plus(PASSWORD),
        quote(PASSWORD, safe="").replace("%", "%%"),  # a DB-API statement doubles each %
    ],
)
def test_a_password_is_redacted_however_it_is_encoded(shown: str) -> None:
    redactor = Redactor([quote(PASSWORD, safe="!")])
    assert redactor.redact(f"password={shown}; next") == "password=***; next"


def test_any_prefix_or_suffix_of_eight_characters_or_more_is_redacted_shorter_ones_are_not() -> (
    None
):
    redactor = Redactor(["Qx7rT2mWv9Lp4Zs8Kd3N"])
    context = 'LINE 1: FROM "u:Qx7rT2mWv9L...\nLINE 1: ...Wv9Lp4Zs8Kd3N@host" FRM x'
    assert redactor.redact(context) == 'LINE 1: FROM "u:***...\nLINE 1: ...***@host" FRM x'
    assert redactor.redact("Qx7rT2m and 4Zs8Kd3") == "Qx7rT2m and 4Zs8Kd3"  # 7 characters


def test_a_short_secret_is_redacted_only_whole_and_never_inside_a_longer_word() -> None:
    redactor = Redactor(["app", "k7!"])
    assert redactor.redact("CREATE TABLE app.orders -- application, apps") == (
        "CREATE TABLE ***.orders -- application, apps"
    )
    assert redactor.redact("pin=k7!; xk7!") == "pin=***; xk7!"


def test_many_secrets_are_found_as_surely_as_a_few() -> None:
    # Past some number of anchors the redactor searches with one regex instead of str.find.
    many = [secrets.token_urlsafe(15) for _ in range(50)] + ["Qx7rT2mWv9Lp4Zs8Kd3N"]
    text = "a ...Wv9Lp4Zs8Kd3N and Qx7rT2mWv9... and " + " ".join(many[:3])
    assert Redactor(many).redact(text) == "a ...*** and ***... and *** *** ***"


def test_tokens_are_redacted_by_their_shape_but_migctl_names_are_not() -> None:
    token = "migctl_" + "pN9cgcKOxGXaXs7M_" + secrets.token_urlsafe(19)
    text = f"GET /x?t={token} migctl_version migctl_test_0a1b2c3d4e5f Authorization: Bearer {token}"
    assert Redactor().redact(text) == (
        "GET /x?t=migctl_*** migctl_version migctl_test_0a1b2c3d4e5f Authorization: Bearer ***"
    )


def test_a_url_s_secrets_are_its_password_as_written_and_decoded_and_sensitive_query_values() -> (
    None
):
    url = "postgresql+psycopg2://app:Sp%40c!al%2Fpw@db.internal/app?sslkey=k-123&sslmode=require"
    assert set(url_secrets(url)) == {"Sp@c!al/pw", "Sp%40c!al%2Fpw", "k-123"}
    assert url_secrets("sqlite:///var/x.db") == []


def test_an_env_value_is_secret_whole_unless_it_is_a_database_url() -> None:
    assert value_secrets("postgresql://app:s3cret-pw@db/app") == ["s3cret-pw", "s3cret-pw"]
    assert value_secrets("https://hooks.example/T0/B0/XX") == ["https://hooks.example/T0/B0/XX"]
    assert value_secrets("tenant_42") == ["tenant_42"]


def test_a_json_like_value_is_redacted_in_every_string_it_holds() -> None:
    value = {"error": "pw Qx7rT2mWv9L...", "steps": [{"sql": "'Qx7rT2mWv9Lp4Zs8Kd3N'"}], "n": 3}
    assert Redactor(["Qx7rT2mWv9Lp4Zs8Kd3N"]).redact_value(value) == {
        "error": "pw ***...",
        "steps": [{"sql": "'***'"}],
        "n": 3,
    }


def test_a_migctl_error_is_redacted_in_its_detail_and_context_and_keeps_its_class() -> None:
    failure = RuntimeError('relation "u:Qx7rT2mWv9Lp4Zs8Kd3N"\nLINE 1: u:Qx7rT2mWv9...')
    error = MigrationFailedError("a1", failure, "SELECT 'Qx7rT2mWv9Lp4Zs8Kd3N'")
    clean = redacted_error(error, Redactor(["Qx7rT2mWv9Lp4Zs8Kd3N"]))
    assert isinstance(clean, MigrationFailedError) and clean.code == "migration-failed"
    assert leaks(f"{clean.detail} {clean.context}", "Qx7rT2mWv9Lp4Zs8Kd3N") == []
    assert clean.context["sql"] == "SELECT '***'" and clean.context["revision"] == "a1"


def logged(redactor: Redactor, *args: object, exc: bool = False) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(redactor))
    log = logging.getLogger("tests.redaction")
    log.addHandler(handler)
    try:
        if exc:
            try:
                raise RuntimeError("failed with Qx7rT2mWv9Lp4Zs8Kd3N")
            except RuntimeError:
                log.exception(*args)  # type: ignore[arg-type]
        else:
            log.warning(*args)  # type: ignore[arg-type]
    finally:
        log.removeHandler(handler)
    return stream.getvalue()


def test_the_log_filter_redacts_messages_arguments_and_tracebacks() -> None:
    redactor = Redactor(["Qx7rT2mWv9Lp4Zs8Kd3N"])
    assert logged(redactor, "url %s at %d%%", "u:Qx7rT2mWv9L...", 5) == "url u:***... at 5%\n"
    assert logged(redactor, "%(r)s", {"r": "GET /?t=Qx7rT2mWv9Lp4Zs8Kd3N"}) == "GET /?t=***\n"
    traceback = logged(redactor, "boom", exc=True)
    assert "RuntimeError: failed with ***" in traceback and "Qx7rT2mW" not in traceback
    assert "Qx7rT2mW" not in logged(redactor, "bad %d format", "Qx7rT2mWv9Lp4Zs8Kd3N")


def test_the_log_filter_learns_a_token_without_its_migctl_prefix() -> None:
    log_filter = RedactingFilter(Redactor(["Qx7rT2mWv9Lp4Zs8Kd3N"]))
    log_filter.learn("4kT9qmZ0vbnX")
    record = logging.LogRecord("x", logging.INFO, "", 0, "%s %s", ("4kT9qmZ0vb", "Qx7rT2mW"), None)
    log_filter.filter(record)
    assert record.getMessage() == "*** ***"
    log_filter.use(Redactor())  # a new configuration: learned tokens stay known
    record = logging.LogRecord("x", logging.INFO, "", 0, "kT9qmZ0vbnX", (), None)
    log_filter.filter(record)
    assert record.getMessage() == "***"


def write_file(tmp_path: Path, text: str) -> Settings:
    ini = Path(__file__).parent / "fixtures" / "linear" / "alembic.ini"
    path = tmp_path / "databases.toml"
    path.write_text(f'[databases.db]\nurl = "sqlite:///x.db"\nalembic_config = "{ini}"\n{text}')
    return Settings.from_env({"MIGCTL_DATABASES_FILE": str(path)})


def test_env_values_named_in_public_env_are_not_secrets(tmp_path: Path) -> None:
    settings = write_file(
        tmp_path,
        'public_env = ["SCHEMA"]\n[databases.db.env]\nSCHEMA = "tenant_42"\nAPI_KEY = "k-1234"\n',
    )
    (database,) = settings.databases
    assert database.public_env == {"SCHEMA"} and database.secret_values() == ["k-1234"]


def test_public_env_naming_a_variable_env_does_not_set_stops_migctl_at_start(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match="public_env names 'SCHEMAS'"):
        write_file(tmp_path, 'public_env = ["SCHEMAS"]\n[databases.db.env]\nSCHEMA = "a"\n')
