"""Rules behind docs/security.md that need no server: rate-limit settings, text that cannot be
stored, and the dummy hash an unknown user's login is checked against."""

import pytest
from werkzeug.security import check_password_hash

from chirp.accounts import _dummy_hash
from chirp.config import ConfigError, load_config
from chirp.validation import InvalidInput, clean_password, clean_post_body, clean_username

BASE = {"CHIRP_STAGE": "2", "CHIRP_SECRET_KEY": "k" * 16,
        "CHIRP_DATABASE_URL": "postgresql://chirp@db:5432/chirp"}


def test_rate_limits_have_defaults_and_take_overrides():
    config = load_config(BASE)
    assert (config.login_limit_per_username, config.login_limit_per_ip,
            config.signup_limit_per_ip) == ("10/minute", "60/minute", "100/minute;1000/hour")
    config = load_config({**BASE, "CHIRP_SIGNUP_LIMIT_PER_IP": "1000/minute;20000/hour"})
    assert config.signup_limit_per_ip == "1000/minute;20000/hour"
    assert config.ignored_variables == ()  # a known variable, not a typo


@pytest.mark.parametrize("variable", ["CHIRP_LOGIN_LIMIT_PER_USERNAME", "CHIRP_LOGIN_LIMIT_PER_IP",
                                      "CHIRP_SIGNUP_LIMIT_PER_IP"])
def test_a_bad_rate_limit_stops_the_start_naming_the_variable(variable):
    with pytest.raises(ConfigError, match=f"^{variable}: 'lots' is not a rate limit"):
        load_config({**BASE, variable: "lots"})


@pytest.mark.parametrize("clean,what", [(clean_username, "username"),
                                        (clean_password, "password"),
                                        (clean_post_body, "body")])
def test_lone_surrogates_are_refused(clean, what):
    with pytest.raises(InvalidInput, match=f"{what} is not valid Unicode text"):
        clean("abc\ud800defghij")


@pytest.mark.parametrize("method", ["scrypt", "pbkdf2:sha256:1000"])
def test_the_dummy_hash_uses_the_configured_method_and_matches_nothing(method):
    dummy = _dummy_hash(method)
    assert dummy.split("$")[0] == method
    assert not check_password_hash(dummy, "")
    assert not check_password_hash(dummy, "no-such-user")
