"""Password sources: resolve, failures that never echo the secret, masking."""

from __future__ import annotations

import logging
import shlex
import sys

import pytest

from popkeep.config.secrets import MaskingFilter, SecretSource, mask
from popkeep.errors import ConfigError

WHERE = 'config.toml: account "isp".password_command'


def command(code: str, timeout: float = 30.0) -> SecretSource:
    argv = (sys.executable, "-c", code)
    return SecretSource("command", shlex.join(argv), WHERE, argv=argv, timeout=timeout)


def test_literal_resolves_to_itself() -> None:
    assert SecretSource("literal", "hunter2", "x").resolve() == "hunter2"


def test_env_resolves_from_the_given_environment() -> None:
    source = SecretSource("env", "ISP_PASS", 'config.toml: account "isp".password_env')
    assert source.resolve({"ISP_PASS": "s3cret"}) == "s3cret"


@pytest.mark.parametrize(("env", "says"), [({}, "is not set"), ({"ISP_PASS": ""}, "is empty")])
def test_env_missing_or_empty_names_the_variable(env: dict[str, str], says: str) -> None:
    source = SecretSource("env", "ISP_PASS", 'config.toml: account "isp".password_env')
    with pytest.raises(ConfigError) as info:
        source.resolve(env)
    assert str(info.value) == (
        f'config.toml: account "isp".password_env: environment variable ISP_PASS {says}'
    )


def test_command_output_loses_one_trailing_newline() -> None:
    assert command("import sys; sys.stdout.write(' pa ss \\n')").resolve() == " pa ss "


@pytest.mark.parametrize("printed", ["'pw\\n\\n'", "'p\\nw'", "'p\\x00w'"])
def test_secret_with_line_break_or_nul_is_refused(printed: str) -> None:
    with pytest.raises(ConfigError) as info:
        command(f"import sys; sys.stdout.write({printed})").resolve()
    assert str(info.value) == f"{WHERE}: the password contains a line break or NUL"


def test_command_crlf_is_one_newline() -> None:
    assert command("import sys; sys.stdout.write('pw\\r\\n')").resolve() == "pw"


def test_command_sees_the_given_environment() -> None:
    source = command("import os; print(os.environ['FROM_ENV'])")
    assert source.resolve({"FROM_ENV": "v4lue", "PATH": "/usr/bin:/bin"}) == "v4lue"


def test_command_failure_names_the_account_but_not_the_secret() -> None:
    code = (
        "import sys; print('hunter2'); "
        "sys.stderr.write('warning\\nError: hunter2 isp is not in the password store.\\n'); "
        "sys.exit(3)"
    )
    with pytest.raises(ConfigError) as info:
        command(code).resolve()
    message = str(info.value)
    assert message.startswith(f"{WHERE}: {sys.executable} exited with status 3: Error:")
    assert "is not in the password store" in message
    assert "hunter2" not in message


def test_command_timeout() -> None:
    with pytest.raises(ConfigError) as info:
        command("import time; time.sleep(30)", timeout=0.3).resolve()
    assert str(info.value) == f"{WHERE}: {sys.executable} did not finish within 0.3 s"


def test_command_not_found() -> None:
    argv = ("/nonexistent/popkeep-pass",)
    source = SecretSource("command", argv[0], WHERE, argv=argv)
    with pytest.raises(ConfigError, match=r"command not found: /nonexistent/popkeep-pass$"):
        source.resolve()


def test_command_printing_nothing_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"printed no password$"):
        command("print()").resolve()


def test_command_printing_binary_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"not UTF-8$"):
        command("import sys; sys.stdout.buffer.write(b'\\xff\\xfe')").resolve()


def test_repr_and_str_never_show_the_secret() -> None:
    literal = SecretSource("literal", "hunter2", WHERE)
    assert "hunter2" not in repr(literal)
    assert "hunter2" not in str(literal)
    assert "hunter2" not in repr({"password": literal})
    cmd = SecretSource("command", "sh -c 'echo hunter2'", WHERE, argv=("sh", "-c", "echo hunter2"))
    assert "hunter2" not in repr(cmd)
    assert repr(cmd) == "SecretSource(command sh …)"
    assert repr(SecretSource("env", "ISP_PASS", WHERE)) == "SecretSource(env ISP_PASS)"


def test_mask_replaces_longest_first_and_ignores_empty() -> None:
    assert mask("PASS hunter2x and hunter2", ["hunter2", "hunter2x", ""]) == (
        "PASS ******** and ********"
    )
    assert mask("nothing here", []) == "nothing here"


def test_masking_filter_masks_rendered_records(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("popkeep.test.masking")
    masking = MaskingFilter()
    masking.add("hunter2")
    masking.add("")
    caplog.handler.addFilter(masking)
    try:
        with caplog.at_level(logging.INFO, logger=log.name):
            log.info("sent PASS %s to %s", "hunter2", "pop.example")
    finally:
        caplog.handler.removeFilter(masking)
    assert caplog.records[0].getMessage() == "sent PASS ******** to pop.example"
    assert "hunter2" not in caplog.text


def test_a_source_is_a_value_immutable_and_not_a_tuple() -> None:
    a = SecretSource("literal", "hunter2", WHERE)
    assert a == SecretSource("literal", "hunter2", WHERE) and hash(a) == hash(
        SecretSource("literal", "hunter2", WHERE))
    assert a != SecretSource("literal", "hunter3", WHERE)
    assert a != SecretSource("env", "hunter2", WHERE)
    with pytest.raises(AttributeError):
        a.value = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del a.kind
    with pytest.raises(TypeError):  # nothing that iterates can take the secret out
        list(a)  # type: ignore[call-overload]
    assert a.value == "hunter2"
