"""Redactor: each default pattern (what it catches and what it must leave), secret keys at any depth
and of any value type, user patterns and keys, defaults off, refused patterns, hostile input, linear time."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbtasklog import Engine
from nbtasklog.redact import DEFAULT_KEYS, MARKER, Redactor
from nbtasklog.server.app import NbTaskLogApp

R = Redactor()
COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode  # as record.metadata_to_json writes

JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
GHP = "ghp_" + "A1b2C3d4E5f6G7h8I9j0" * 2  # 40 characters after the prefix
PEM_BODY = "MIIEowIBAAKCAQEA7x\nq3Zk9+/abc==\n"

# (text, what text() must give): the secret replaced, everything else kept.
CAUGHT = [
    # bearer tokens
    ("Authorization: Bearer abc123def456", "Authorization: Bearer [REDACTED]"),
    ("proxy-authorization=Basic dXNlcjpwYXNz", "proxy-authorization=Basic [REDACTED]"),
    ('headers {"Authorization": "token gh-abc-123"}', 'headers {"Authorization": "token [REDACTED]"}'),
    (f"sent Bearer {JWT} to the API", "sent Bearer [REDACTED] to the API"),
    ("bearer 0123456789abcdef", "bearer [REDACTED]"),
    # key=value and key: value pairs
    ("connect password=hunter2 user=bob", "connect password=[REDACTED] user=bob"),
    ("passwd: hunter2", "passwd: [REDACTED]"),
    ("pwd=hunter2", "pwd=[REDACTED]"),
    ('payload {"password": "correct horse", "user": "bob"}', 'payload {"password": "[REDACTED]", "user": "bob"}'),
    ("kwargs {'db_password': 'two words'}", "kwargs {'db_password': '[REDACTED]'}"),
    ("DB_PASSWORD=s3cr3t&next=1", "DB_PASSWORD=[REDACTED]&next=1"),
    ("api_key=abc123 apiKey: abc X-Api-Key:abc", "api_key=[REDACTED] apiKey: [REDACTED] X-Api-Key:[REDACTED]"),
    ("token=abc client_secret = abc secret => abc", "token=[REDACTED] client_secret = [REDACTED] secret => [REDACTED]"),
    ("GITHUB_TOKEN:=abc basic_auth=bob:pw", "GITHUB_TOKEN:=[REDACTED] basic_auth=[REDACTED]"),
    ("password: 'unterminated", "password: '[REDACTED]"),
    ("Cookie: _ga=GA1.2.3; sessionid=abc", "Cookie: [REDACTED]"),
    ("Set-Cookie: sid=abc; Path=/; HttpOnly", "Set-Cookie: [REDACTED]"),
    # AWS
    ("key id AKIAIOSFODNN7EXAMPLE in use", "key id [REDACTED] in use"),
    ("ASIAY34FZKBOKMUTVV7A,", "[REDACTED],"),
    ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key=[REDACTED]"),
    ("AWS_SECRET_ACCESS_KEY: wJalrXUtnFEMI/K7MDENG", "AWS_SECRET_ACCESS_KEY: [REDACTED]"),
    # private keys, over lines, also without their END line
    (f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}-----END RSA PRIVATE KEY-----\nnext",
     "-----BEGIN RSA PRIVATE KEY-----[REDACTED]-----END RSA PRIVATE KEY-----\nnext"),
    (f"key: -----BEGIN PRIVATE KEY-----\n{PEM_BODY}", "key: -----BEGIN PRIVATE KEY-----[REDACTED]"),
    ("-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQdG\n-----END PGP PRIVATE KEY BLOCK-----",
     "-----BEGIN PGP PRIVATE KEY BLOCK-----[REDACTED]-----END PGP PRIVATE KEY BLOCK-----"),
    # URLs with a password: the user and the host stay
    ("postgresql://bob:hunter2@db.example.org:5432/logs", "postgresql://bob:[REDACTED]@db.example.org:5432/logs"),
    ("redis://:hunter2@cache:6379/0", "redis://:[REDACTED]@cache:6379/0"),
    ("ftp://bob:p@ss@host/file and more", "ftp://bob:[REDACTED]@host/file and more"),
    # GitHub, Slack, JWT
    (f"pushed with {GHP}.", "pushed with [REDACTED]."),
    ("gho_" + "x" * 36 + " ghs_" + "y" * 36 + " ghu_" + "z" * 36 + " ghr_" + "w" * 36,
     " ".join([MARKER] * 4)),
    ("github_pat_11ABCDEFG0123456789abc_defghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVW", MARKER),
    ("slack xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx done", "slack [REDACTED] done"),
    ("xoxp-1234567890-abc", MARKER),
    (f"id_token {JWT}", "id_token [REDACTED]"),
    ("eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", MARKER),  # alg none: no signature
]

# Text that looks close to a secret and must come back as the same object.
LEFT = [
    "GET /api/v1/dashboard/12 returned 200 in 35 ms (3 charts, 2 filters)",
    "the bearer of bad news",
    "Bearer authentication failed",
    "token_type=bearer",
    "Authorization failed for bob",
    "authorization:",
    "token_count=5 max_tokens: 100 author=bob tokens=7",
    "password_policy=strict secret_name: prod passwords: 3 keyboard=us key=dashboard:12 monkey: 3",
    "password is required; password reset email sent",
    "Enter password:\nnext line",
    "KeyError: 'password'",
    "AKIAIOSFODNN7EXAMPL is too short, AKIAIOSFODNN7EXAMPLEX too long, XAKIAIOSFODNN7EXAMPLE glued",
    "akiaiosfodnn7example ASIAN markets",
    "-----BEGIN PUBLIC KEY-----\nMIIBIjAN\n-----END PUBLIC KEY-----",
    "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----",
    "https://bob@example.org/x https://example.org:8443/a?b=c@d mailto:bob@example.org http://[::1]:8080/@x",
    "ghp_short ghx_" + "a" * 36 + " xghp_" + "a" * 36 + " git_pat_x",
    "xoxb-123 xoxz-123456789012-1234 xox",
    "eyJhbGciOiJIUzI1NiJ9 is one part; eyJhbGciOiJIUzI1NiJ9.notapayload.x; version eyJ.1.2",
    "cookie consent banner shown; the session started",
    "",
    "password=",
    "password=[REDACTED] is already hidden",
]


@pytest.mark.parametrize("text,expected", CAUGHT)
def test_each_default_pattern_replaces_the_secret_and_keeps_the_rest(text, expected):
    assert R.text(text) == expected
    assert R.text(expected) == expected  # redacting again changes nothing


@pytest.mark.parametrize("text", LEFT)
def test_near_misses_come_back_as_the_same_object(text):
    assert R.text(text) is text


def test_json_escaped_inside_a_message_loses_the_secret():
    """A JSON body logged with its quotes escaped: the value goes, to its closing quote."""
    text = 'body="{\\"user\\": \\"bob\\", \\"password\\": \\"hunter2\\"}" status=401'
    out = R.text(text)
    assert out.startswith('body="{\\"user\\": \\"bob\\", \\"password\\": \\"[REDACTED]')
    assert "hunter2" not in out and out.endswith(" status=401")


# ---- keys -----------------------------------------------------------------------------------
@pytest.mark.parametrize("key", [
    "password", "PASSWORD", "db_password", "dbPassword", "passwd", "pwd", "passphrase", "secret", "client_secret",
    "token", "githubToken", "access_token", "X-CSRF-Token", "api_key", "apikey", "apiKey", "API-KEY", "X-Api-Key",
    "api key", "access_key", "AWS_SECRET_ACCESS_KEY", "awsSecretAccessKey", "secret_key", "private_key",
    "authorization", "Proxy-Authorization", "auth", "basic_auth", "oauth", "credential", "credentials",
    "cookie", "Set-Cookie", "cookies", "session",
])
def test_keys_that_name_a_secret(key):
    assert R.is_secret_key(key)


@pytest.mark.parametrize("key", [
    "token_count", "max_tokens", "tokens", "author", "authority", "password_policy", "password_length",
    "secret_name", "secrets_manager_arn", "public_key", "primary_key", "key", "keyboard", "monkey",
    "session_id", "aws_access_key_id", "cookie_consent", "dashboard_id", "",
])
def test_keys_where_the_word_only_qualifies_another(key):
    assert not R.is_secret_key(key)


# ---- metadata -------------------------------------------------------------------------------
def test_metadata_without_secrets_is_the_same_object():
    for text in ['{"dashboard_id":12,"table":"users","rows":4213}', '{"token_count":5,"author":"bob"}', "{}",
                 '{"msg":"say \\"hi\\"\\nbye","url":"https://example.org/a?b=1"}', '{"password":""}']:
        assert R.metadata_json(text) is text


def test_values_of_every_json_type_under_secret_keys_are_replaced_at_any_depth():
    metadata = {
        "user": "bob",
        "password": "hunter2",
        "token": 12345,
        "api_key": 1.5,
        "secret": True,
        "auth": False,
        "credentials": None,
        "cookie": {"sid": "abc", "nested": [1, {"x": 2}]},
        "session": ["a", "b"],
        "empty": {"token": ""},  # an empty value hides nothing
        "deep": {"a": [{"b": {"db_password": "x", "rows": 3}}], "c": "keep"},
        "after": "kept",
    }
    out = R.metadata_json(COMPACT(metadata))
    assert out == COMPACT({
        "user": "bob", "password": MARKER, "token": MARKER, "api_key": MARKER, "secret": MARKER, "auth": MARKER,
        "credentials": MARKER, "cookie": MARKER, "session": MARKER, "empty": {"token": ""},
        "deep": {"a": [{"b": {"db_password": MARKER, "rows": 3}}], "c": "keep"}, "after": "kept",
    })


def test_string_values_are_redacted_like_text_and_the_rest_is_kept_as_written():
    text = ('{"msg":"connect password=hunter2\\nthen","n":1.50,"big":12345678901234567890,"e":1E5,'
            '"list":[' + json.dumps(f"Bearer {JWT}") + ',"ok"],"u":"é \\u00e9"}')
    out = R.metadata_json(text)
    assert out == ('{"msg":"connect password=[REDACTED]\\nthen","n":1.50,"big":12345678901234567890,"e":1E5,'
                   '"list":["Bearer [REDACTED]","ok"],"u":"é \\u00e9"}')


def test_metadata_that_is_not_json_is_redacted_as_text():
    assert R.metadata_json("password=hunter2 {") == "password=[REDACTED] {"
    assert R.metadata_json('{"password":"x"') == '{"password":"[REDACTED]"'  # cut short: a text pattern finds it
    assert R.metadata_json('{"a":"\\x password=1"}') == '{"a":"\\\\x password=[REDACTED]"}'  # a broken escape


JSON_KEYS = st.sampled_from(["password", "db_password", "apiKey", "token", "token_count", "author", "rows", "msg",
                             "session", "a", "Set-Cookie", "public_key"]) | st.text(max_size=8)
JSON_STRINGS = st.sampled_from(["", "bob", f"Bearer {JWT}", "password=hunter2", GHP, "AKIAIOSFODNN7EXAMPLE",
                                "postgresql://u:p@h/db", "line\nnext", 'say "hi"', "\\", "token_count=5",
                                MARKER]) | st.text(max_size=12)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | JSON_STRINGS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(JSON_KEYS, children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(JSON_KEYS, JSON_VALUES, max_size=5))
def test_metadata_json_agrees_with_params_on_any_json(metadata):
    """The token pass over the text and the walk over the objects redact alike; the output is compact JSON of the same shape."""
    text = COMPACT(metadata)
    out = R.metadata_json(text)
    assert json.loads(out) == R.params(metadata)
    assert out == COMPACT(json.loads(out))  # still compact, keys in their order
    assert R.metadata_json(out) == out
    if out == text:
        assert out is text
    spaced = json.dumps(metadata, ensure_ascii=False)  # ", " and ": ", as run_task writes params
    assert json.loads(R.metadata_json(spaced)) == R.params(metadata)



USER_REDACTOR = Redactor([r"ACME-\d{4}"], ["badge"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(JSON_KEYS | st.sampled_from(["my_badge", "Badge", "n"]),
                       JSON_VALUES | st.sampled_from(["ACME-1234", "id ACME-12"]) | st.builds(object), max_size=5))
def test_fields_called_clean_are_what_the_json_pass_leaves_alone(fields):
    """A logging call's fields that fields_clean passes (so their JSON is never scanned) are exactly
    fields whose JSON metadata_json would give back unchanged: the shortcut never lets a secret through."""
    from nbtasklog.record import metadata_to_json

    for redactor in (R, USER_REDACTOR):
        text = metadata_to_json(fields)
        if redactor.fields_clean(fields):
            assert redactor.metadata_json(text) is text


def test_fields_clean_looks_at_keys_values_and_kinds():
    """Secret keys, secrets in values, nested values and objects all send the fields to the JSON pass."""
    assert R.fields_clean({"rows": 5, "table": "users", "ratio": 0.5, "ok": True, "none": None})
    assert not R.fields_clean({"db_password": 5})
    assert not R.fields_clean({"url": "postgresql://u:p@h/db"})
    assert not R.fields_clean({"nested": {"a": 1}})
    assert not R.fields_clean({"obj": object()})
    assert not USER_REDACTOR.fields_clean({"id": "ACME-1234"})
    assert not USER_REDACTOR.fields_clean({"my_badge": "x"})


# ---- params ---------------------------------------------------------------------------------
def test_params_are_copied_only_where_a_secret_is():
    params = {"dashboards": [10, 11], "db": {"host": "h", "password": "x"}, "dsn": "postgresql://u:p@h/db",
              "token_count": 3}
    out = R.params(params)
    assert out == {"dashboards": [10, 11], "db": {"host": "h", "password": MARKER}, "dsn": "postgresql://u:[REDACTED]@h/db",
                   "token_count": 3}
    assert params["db"]["password"] == "x" and params["dsn"] == "postgresql://u:p@h/db"  # the caller's are untouched
    assert out["dashboards"] is params["dashboards"]
    clean = {"dashboards": [10, 11], "delay": 0.5, "names": ["a", "b"]}
    assert R.params(clean) is clean


# ---- configuration --------------------------------------------------------------------------
def test_extra_patterns_replace_whole_matches_or_their_secret_groups():
    redactor = Redactor([r"INTERNAL-\d{6}", re.compile(r"employee=(?P<secret>\d+)"), r"(?P<secret>x+)-(?P<secret2>y+)"])
    assert redactor.text("ticket INTERNAL-123456 ok") == "ticket [REDACTED] ok"
    assert redactor.text("employee=4711 joined") == "employee=[REDACTED] joined"
    assert redactor.text("xx-yy") == "[REDACTED]-[REDACTED]"
    assert redactor.text("password=x") == "password=[REDACTED]"  # the defaults still apply
    assert redactor.metadata_json('{"note":"INTERNAL-123456"}') == '{"note":"[REDACTED]"}'
    plain = "nothing here"
    assert redactor.text(plain) is plain


def test_extra_keys_apply_to_metadata_params_and_text():
    redactor = Redactor(keys=["dsn", "x_internal"])
    assert redactor.is_secret_key("X-Internal") and redactor.is_secret_key("xInternal") and redactor.is_secret_key("db_dsn")
    assert (redactor.metadata_json('{"dsn":"h","X-Internal":[1],"a":1}')
            == '{"dsn":"[REDACTED]","X-Internal":"[REDACTED]","a":1}')
    assert redactor.params({"dsn": 1}) == {"dsn": MARKER}
    assert redactor.text("dsn=abc x-internal: 7") == "dsn=[REDACTED] x-internal: [REDACTED]"
    assert redactor.text("password=x") == "password=[REDACTED]"


def test_defaults_off_leaves_only_the_given_patterns_and_keys():
    bare = Redactor(defaults=False)
    for text in [c for c, _ in CAUGHT]:
        assert bare.text(text) is text
    assert bare.metadata_json('{"password":"x"}') == '{"password":"x"}'
    only = Redactor([r"INTERNAL-\d+"], ["password"], defaults=False)
    assert only.text("password=x INTERNAL-1 token=y " + JWT) == "password=[REDACTED] [REDACTED] token=y " + JWT
    assert only.metadata_json('{"password":"x","token":"y"}') == '{"password":"[REDACTED]","token":"y"}'
    assert only.keys == ("password",) and Redactor().keys == DEFAULT_KEYS


@pytest.mark.parametrize("patterns,message", [
    (["("], "'(' is not a valid regular expression"),
    (["ok", "[a-"], "'[a-' is not a valid regular expression"),
    ([r"\d*"], r"'\\d*' matches the empty string"),
    ([b"bytes"], "b'bytes' is not a valid regular expression of text"),
])
def test_a_broken_pattern_is_refused_when_the_redactor_is_built(patterns, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Redactor(patterns)


def test_other_bad_configuration_is_refused():
    with pytest.raises(TypeError, match="must be a list"):
        Redactor("password")
    with pytest.raises(TypeError, match="must be a list"):
        Redactor(keys="password")
    for key in ["", " ", "_", 3]:
        with pytest.raises(ValueError, match="redact key must be a name"):
            Redactor(keys=[key])


def test_the_engine_builds_its_redactor_before_it_opens_the_store(tmp_path):
    db = tmp_path / "logs.duckdb"
    with pytest.raises(ValueError, match="not a valid regular expression"):
        Engine(db, redact_patterns=["("], handle_signals=False)
    assert not db.exists()
    engine = Engine(db, redact_patterns=[r"INTERNAL-\d+"], redact_keys=["dsn"], redact_defaults=False, handle_signals=False)
    try:
        assert engine.redactor.text("INTERNAL-1 password=x") == "[REDACTED] password=x"
        assert engine.redactor.is_secret_key("dsn") and not engine.redactor.is_secret_key("password")
    finally:
        engine.close()


def test_the_server_extension_has_the_redaction_traitlets():
    traits = NbTaskLogApp.class_own_traits(config=True)
    assert traits["redact_patterns"].default() == [] and traits["redact_keys"].default() == []
    assert traits["redact_defaults"].default() is True


# ---- hostile input --------------------------------------------------------------------------
def test_hostile_text_never_raises():
    assert R.text("\ud800 password=\udfff x") == "\ud800 password=[REDACTED] x"
    assert R.text("a\x00b password=\x00c") == "a\x00b password=[REDACTED]"
    assert (R.metadata_json('{"a\ud800":"\udc00 token=1","password":"\x00"}')
            == '{"a\ud800":"\udc00 token=[REDACTED]","password":"[REDACTED]"}')
    for broken in ["", "{", "}", "[[[", '{"a":', '"', '{"a":1}}', "\\", '{"token":"\\', "null", "[1,2]"]:
        R.metadata_json(broken)  # whatever it gives, it gives it
    assert R.text(None) == MARKER  # not text: nothing can be said about it, so nothing of it is kept
    assert R.metadata_json(None) == '{"metadata":"[REDACTED]"}'
    assert R.params({"deep": _nested(10_000)}) == {"deep": _nested_marker(10_000)}


def _nested(depth: int) -> dict:
    value: dict = {"password": "x"}
    for _ in range(depth):
        value = {"a": value}
    return value


def _nested_marker(depth: int) -> dict:
    """What params makes of _nested(depth): containers past the 100th level are not real params and become MARKER."""
    value: object = MARKER
    for _ in range(99):
        value = {"a": value}
    return value  # type: ignore[return-value]


def test_ten_megabytes_of_text_and_deeply_nested_json():
    line = "GET https://u:pw@example.org/a?b=1 key: x-y_z Task started: eyJ IA Bearer the token_count=5 password=hunter2\n"
    text = line * (10_000_000 // len(line))
    out = R.text(text)
    assert out.count(MARKER) == 2 * text.count("\n") and "hunter2" not in out and ":pw@" not in out
    plain = "copied 4213 rows to warehouse.users in 35 ms; next batch\n" * (10_000_000 // 57)
    assert R.text(plain) is plain
    depth = 200_000
    deep = '{"a":' * depth + '"password=x"' + "}" * depth
    assert R.metadata_json(deep) == '{"a":' * depth + '"password=[REDACTED]"' + "}" * depth
    deep_secret = '{"a":[' * depth + '{"token":' + '{"b":' * depth + "1" + "}" * depth + "}" + "]}" * depth
    assert R.metadata_json(deep_secret) == '{"a":[' * depth + '{"token":"[REDACTED]"}' + "]}" * depth


# Units that, repeated, would make a careless pattern backtrack over the rest of the input for each of them.
PATHOLOGICAL = [
    "a", "a.", "password=", "password ", 'password="\\', "pass:", "token\t", "api key ", '"password":"', "\\'",
    "-", "-----BEGIN PRIVATE KEY-----", "-----BEGIN A", "://", "://a:", ":@", "a://b:c@", "eyJ", "eyJ-",
    "eyJaaaaaaaaa.", "Bearer ", "Bearer a", "AKIA", "ghp_", "gh_", "xoxb-", "authorization: ",
    "authorization:bearer ", "cookie: ", "cookie:=", "\ud800", "\x00",
]


@pytest.mark.parametrize("unit", PATHOLOGICAL)
def test_pathological_input_of_a_million_characters(unit):
    """Linear time: a pattern that backtracked quadratically would need ~10^12 steps here and never finish."""
    text = unit * (1_000_000 // len(unit))
    out = R.text(text)
    assert R.text(out) == out  # the result is final: nothing in it is still a secret
    assert json.loads(R.metadata_json(COMPACT({"m": text, "password": text}))) == {"m": out, "password": MARKER}
