"""The .dct grammar of server.md 2 (Java's net.cnri.util.StreamTable), the Java writer, scalar readers."""

from __future__ import annotations

from pathlib import Path

import pytest

from hdlserver.config.dct import (
    MAX_NESTING,
    dct_bool,
    dct_int,
    dct_optional_bool,
    format_dct,
    load_dct,
    load_dct_document,
    parse_dct,
    parse_dct_document,
)
from hdlserver.errors import ConfigError

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"


def vector_file(*parts: str) -> Path:
    path = VECTORS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"Java test vectors not available ({path} is missing; they live outside the repository)")
    return path


# --- what Java accepts, and how it reads it -------------------------------------------------------

# Inputs and results recorded by feeding each text to net.cnri.util.StreamTable.readFrom of the Handle.Net
# 9.2.0 jar (a few-line harness that prints the resulting table); "None" means Java raised an exception.
JAVA_VERIFIED = [
    ("{ a = b }", {"a": "b"}),
    # A bare word swallows the character that ends it: here the '=' after the key, so Java finds 'b'
    # where it wants '='.
    ("{a=b}", None),
    # '}' does not end a bare word: the value is 'b}' and the table still needs its '}'.
    ("{ a = b}", None),
    ("{ a = b} }", {"a": "b}"}),
    ("{ a = b}}", None),
    ('{"a"="b"}', {"a": "b"}),
    ('{ "a" = b=c }', None),
    ("{ a== b }", {"a": "b"}),
    ("{ = = x }", {"=": "x"}),
    ('{ a = "x\\ty\\nz\\"q\\\\" }', {"a": 'xty\nz"q\\'}),
    ('{ a = "line1\nline2" }', {"a": "line1\nline2"}),
    ("{}trailing", {}),
    ("{ } { a = b }", {}),
    ("{ a = ( b) ) }", {"a": ["b)"]}),
    ("{ a = ( b ) }", {"a": ["b"]}),
    ("{,a,=,b,;c;=;d;}", {"a": "b", "c": "d"}),
    ("{\ta\t=\tb\r\nc = d\n}", {"a": "b", "c": "d"}),
    ("{ a = ( x=y ) }", {"a": ["x", "y"]}),
    ("{ a = ( } ) }", {"a": ["}"]}),
    ("{ a = } }", {"a": "}"}),
    ("{ a = ) }", {"a": ")"}),
    ("{ # = comment }", {"#": "comment"}),
    ("{ a = b # c = d }", None),
    ("{ # comment\n a = b }", None),
    ("{ a = 1 a = 2 }", {"a": "2"}),
    ("{ a = { x = 1 } a = ( y ) }", {"a": ["y"]}),
    ("{ {x = y }", {"{x": "y"}),
    ("{ (x = y }", {"(x": "y"}),
    ("{ )x = y }", {")x": "y"}),
    ('{ a = ( ( "1" { k = v } ) () {} ) }', {"a": [["1", {"k": "v"}], [], {}]}),
    ('{ "" = "" }', {"": ""}),
    ("  \n\t{}", {}),
    ("", None),
    ("   ", None),
    ("a", None),
    ("{", None),
    ("{ a", None),
    ("{ a =", None),
    ('{ a = "', None),
    ('{ a = "x\\', None),
    ("{ a = ( ", None),
    ("{ a = { ", None),
    ("{ a b }", None),
    ("{ a = b", None),
    ("\ufeff{}", None),
    ('{ a = "\\q\\u0041" }', {"a": "qu0041"}),
    ("{ é = ü }", {"é": "ü"}),
]


@pytest.mark.parametrize(("text", "expected"), JAVA_VERIFIED)
def test_parses_like_java(text: str, expected: dict | None) -> None:
    if expected is None:
        with pytest.raises(ConfigError):
            parse_dct(text)
    else:
        assert parse_dct(text) == expected


@pytest.mark.parametrize("separator", [" ", "\t", "\r", "\n", ",", ";", "\r\n", " ,;\t"])
def test_every_separator_separates_tokens(separator: str) -> None:
    s = separator
    text = f"{s}{{{s}k{s}={s}v{s}l{s}={s}({s}x{s}y{s}){s}t{s}={s}{{{s}}}{s}}}"
    assert parse_dct(text) == {"k": "v", "l": ["x", "y"], "t": {}}


def test_separators_are_not_needed_around_quoted_strings() -> None:
    assert parse_dct('{"a"="b""c"=("x""y")}') == {"a": "b", "c": ["x", "y"]}


@pytest.mark.parametrize(
    ("escaped", "meaning"),
    [
        ("\\n", "\n"),
        ("\\t", "t"),  # only \n is special: a backslash before anything else yields that character
        ("\\r", "r"),
        ('\\"', '"'),
        ("\\\\", "\\"),
        ("\\q", "q"),
        ("\\u0041", "u0041"),
        ("\\ ", " "),
        ("\\\n", "\n"),
    ],
)
def test_backslash_escapes(escaped: str, meaning: str) -> None:
    assert parse_dct(f'{{ "k" = "<{escaped}>" }}') == {"k": f"<{meaning}>"}


def test_raw_newlines_tabs_and_brackets_inside_quotes_are_kept() -> None:
    assert parse_dct('{ "k\n1" = "a\r\n\tb } ) { ( = , ;" }') == {"k\n1": "a\r\n\tb } ) { ( = , ;"}


def test_closing_brackets_do_not_end_bare_words() -> None:
    assert parse_dct("{ a = b}\n}") == {"a": "b}"}
    assert parse_dct("{ a = ( b) c)) ) }") == {"a": ["b)", "c))"]}
    assert parse_dct("{ a = (b)\n)\n}") == {"a": ["b)"]}


def test_a_bare_word_swallows_the_equals_sign_that_ends_it() -> None:
    assert parse_dct("{ a==b }") == {"a": "b"}
    assert parse_dct("{ a = ( x=y=z ) }") == {"a": ["x", "y", "z"]}
    with pytest.raises(ConfigError, match="expected '=' after key 'a', got 'b'"):
        parse_dct("{a=b }")


def test_bare_words_may_start_with_brackets_and_equals_where_no_value_starts() -> None:
    assert parse_dct("{ } = x }") == {}  # '}' where a key may start ends the table
    assert parse_dct("{ ){ = ( }) ) }") == {"){": ["})"]}
    assert parse_dct("{ a = ( } ) }") == {"a": ["}"]}  # in a list, '}' is a word
    assert parse_dct("{ a = } b = ) }") == {"a": "}", "b": ")"}


def test_there_is_no_comment_syntax() -> None:
    assert parse_dct("{ # = x // = y /* = */ }") == {"#": "x", "//": "y", "/*": "*/"}
    with pytest.raises(ConfigError) as raised:
        parse_dct("{\n  # a comment\n  k = v\n}")
    assert raised.value.line == 2


def test_anything_after_the_closing_brace_is_ignored() -> None:
    assert parse_dct('{ a = b }\n} garbage "unterminated ( {') == {"a": "b"}


def test_repeated_keys_overwrite_including_a_change_of_type() -> None:
    assert parse_dct("{ a = 1 b = 2 a = 3 }") == {"a": "3", "b": "2"}
    document = parse_dct_document("{\n a = { x = 1 }\n a = ( y )\n}")
    assert document.table == {"a": ["y"]}
    assert document.line_of("a") == 3
    assert document.line_of("a", "x") is None  # the overwritten table's entries are forgotten
    assert document.line_of("a", 0) == 3


def test_nested_lists_and_tables() -> None:
    text = '{ t = { u = { v = ( ( ) ( "x" { w = ( ) } ) ) } } e = ( { } { k = v } ) }'
    assert parse_dct(text) == {"t": {"u": {"v": [[], ["x", {"w": []}]]}}, "e": [{}, {"k": "v"}]}


def test_empty_tables_keys_and_values() -> None:
    assert parse_dct("{}") == {}
    assert parse_dct('{ "" = "" x = ( "" ) }') == {"": "", "x": [""]}


def test_keys_are_case_sensitive_and_text_is_unicode() -> None:
    assert parse_dct("{ Key = a key = b ключ = 值 }") == {"Key": "a", "key": "b", "ключ": "值"}


def test_nesting_is_bounded() -> None:
    ok = "{ a = " + "(" * (MAX_NESTING - 1) + ")" * (MAX_NESTING - 1) + " }"
    assert parse_dct(ok)
    with pytest.raises(ConfigError, match="nested deeper"):
        parse_dct("{ a = " + "(" * MAX_NESTING)
    with pytest.raises(ConfigError, match="nested deeper"):
        parse_dct("{ a = " + "{ b = " * 10_000)


# --- errors name the line where the problem is ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("", 1, "expected '{' to start the document, got end of input"),
        ("\n\n  ", 3, "got end of input"),
        ("\n\nserver_config = {}", 3, "expected '{' to start the document, got 's'"),
        ("\n\n{\n  a = b\n\n", 3, "missing '}' for the table that starts here"),
        ('{\n  a = "abc\n\ndef', 2, "unterminated quoted string"),
        ('{\n  a = "abc\\', 2, "unterminated quoted string"),
        ('{\n  "a\nb', 2, "unterminated quoted string"),
        ("{\n  a\n  b = c\n}", 3, "expected '=' after key 'a', got 'b'"),
        ("{\n  a = b\n  c\n\n", 3, "expected '=' after key 'c', got end of input"),
        ("{\n  a =\n\n", 2, "expected a value for key 'a', got end of input"),
        ("{\n  a = (\n  x\n  y\n", 2, "missing ')' for the list that starts here"),
        ("{\n  a = {\n  x = y\n", 2, "missing '}' for the table that starts here"),
        ("{\n  a = b}\n", 1, "missing '}'"),
        ("{\n\n  a = " + "(" * 100, 3, "nested deeper than"),
    ],
)
def test_errors_report_the_line_and_reason(text: str, line: int, reason: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_dct(text, "conf/x.dct")
    error = raised.value
    assert error.line == line
    assert error.path == "conf/x.dct"
    assert reason in error.reason
    assert str(error).startswith(f"conf/x.dct:{line}: ")


def test_value_lines_are_recorded_for_every_path() -> None:
    text = (
        '{\n  "a" = "x"\n  "b" = {\n    "c" =\n      "y"\n  }\n'
        '  "l" = (\n    "p"\n\n    { "q" = "r" }\n  )\n}'
    )
    document = parse_dct_document(text, "f.dct")
    assert document.path == "f.dct"
    assert document.line_of() == 1
    assert document.line_of("a") == 2
    assert document.line_of("b") == 3
    assert document.line_of("b", "c") == 5  # the line where the value starts
    assert document.line_of("l") == 7
    assert document.line_of("l", 0) == 8
    assert document.line_of("l", 1) == 10
    assert document.line_of("l", 1, "q") == 10
    assert document.line_of("missing") is None


# --- the Java-written sample ---------------------------------------------------------------------


def test_java_written_server_config_from_the_vectors_parses() -> None:
    table = load_dct(vector_file("captures", "inputs", "server-config.dct"))
    assert table["server_type"] == "server"
    assert table["interfaces"] == ["hdl_udp", "hdl_tcp"]
    assert table["hdl_udp_config"] == {
        "bind_address": "127.0.0.1",
        "bind_port": "23643",
        "num_threads": "15",
        "log_accesses": "no",
    }
    server = table["server_config"]
    assert isinstance(server, dict)
    assert server["server_admins"] == ["300:0.NA/TEST", "301:0.NA/TEST"]
    assert server["auto_homed_prefixes"] == ["0.NA/0.NA", "0.NA/TEST"]
    assert server["max_session_time"] == "86400000"
    assert table["log_save_config"] == {"log_save_directory": "logs", "log_save_interval": "Never"}


def test_java_written_sample_round_trips_through_the_writer() -> None:
    table = load_dct(vector_file("captures", "inputs", "server-config.dct"))
    assert parse_dct(format_dct(table)) == table


# --- the writer -----------------------------------------------------------------------------------

# Output of StreamTable.writeToString() of the Handle.Net 9.2.0 jar for this table (entries in the jar's hash
# order, which is the insertion order used below). Note the empty line after every nested table or list and
# the tables/lists inside a list starting at column 0.
JAVA_WRITTEN = (
    "{\n"
    '  "lst" = (\n'
    '    "x"\n'
    "{\n"
    '      "a" = "b"\n'
    "    }\n"
    "(\n"
    '      "y"\n'
    "    )\n"
    "{\n"
    "    }\n"
    "  )\n"
    "\n"
    '  "el" = (\n'
    "  )\n"
    "\n"
    '  "s" = "1"\n'
    '  "e" = {\n'
    "  }\n"
    "\n"
    '  "tbl" = {\n'
    '    "k" = "v\\"\\\\\n'
    '\t"\n'
    "  }\n"
    "\n"
    "}\n"
)
JAVA_WRITTEN_TABLE = {
    "lst": ["x", {"a": "b"}, ["y"], {}],
    "el": [],
    "s": "1",
    "e": {},
    "tbl": {"k": 'v"\\\n\t'},
}


def test_writer_reproduces_the_java_layout_exactly() -> None:
    assert format_dct(JAVA_WRITTEN_TABLE) == JAVA_WRITTEN
    assert parse_dct(JAVA_WRITTEN) == JAVA_WRITTEN_TABLE


def test_writer_quotes_everything_and_escapes_only_quote_and_backslash() -> None:
    table = {'k"\\': 'a\nb\tc "d" \\n', "{": "}", "x y": "(,;=)"}
    text = format_dct(table)
    assert text == '{\n  "k\\"\\\\" = "a\nb\tc \\"d\\" \\\\n"\n  "{" = "}"\n  "x y" = "(,;=)"\n}\n'
    assert parse_dct(text) == table


def test_writer_keeps_insertion_order() -> None:
    assert format_dct({"b": "1", "a": "2"}) == '{\n  "b" = "1"\n  "a" = "2"\n}\n'


def test_writer_rejects_values_that_are_not_dct_values() -> None:
    with pytest.raises(TypeError):
        format_dct({"n": 1})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        format_dct({"l": [None]})  # type: ignore[list-item]
    with pytest.raises(TypeError):
        format_dct({1: "x"})  # type: ignore[dict-item]
    deep: dict = {}
    node = deep
    for _ in range(MAX_NESTING + 1):
        node["d"] = {}
        node = node["d"]
    with pytest.raises(ValueError, match="nested deeper"):
        format_dct(deep)


# --- scalar readers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "default", "expected"),
    [
        ("yes", False, True),
        ("Y", False, True),
        ("true", False, True),
        ("TRUE", False, True),
        ("tomato", False, True),  # first letter only, as Java
        ("no", True, False),
        ("N", True, False),
        ("false", True, False),
        ("F", True, False),
        ("maybe", True, True),
        ("maybe", False, False),
        ("", True, True),
        (" yes", False, False),  # not trimmed
        ("1", False, False),
        (None, True, True),
        (None, False, False),
        (["yes"], False, False),  # lists and tables are never booleans
        ({"y": "y"}, True, True),
    ],
)
def test_dct_bool_follows_java_get_boolean(value: object, default: bool, expected: bool) -> None:
    assert dct_bool(value, default) is expected  # type: ignore[arg-type]


def test_dct_optional_bool_tells_absent_and_unparsable_apart_from_no() -> None:
    assert dct_optional_bool(None) is None
    assert dct_optional_bool("perhaps") is None
    assert dct_optional_bool("No") is False
    assert dct_optional_bool("yes") is True


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0),
        ("2641", 2641),
        ("+5", 5),
        ("-12", -12),
        ("007", 7),
        ("2147483647", 2**31 - 1),
        ("-2147483648", -(2**31)),
        ("\u0663\u0660", 30),  # Arabic-Indic digits: Java's Character.digit accepts any decimal digit
    ],
)
def test_dct_int_reads_java_integers(value: str, expected: int) -> None:
    assert dct_int(value, 99) == expected


@pytest.mark.parametrize(
    "value", ["abc", "", " 5", "5 ", "1_000", "0x10", "1.5", "2147483648", "-2147483649", "+"]
)
def test_dct_int_rejects_what_java_rejects(value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        dct_int(value, 0, key="bind_port", path="config.dct", line=12)
    assert raised.value.path == "config.dct"
    assert raised.value.line == 12
    assert "bind_port" in raised.value.reason


def test_dct_int_message_names_key_and_value() -> None:
    with pytest.raises(ConfigError) as raised:
        dct_int("abc", 0, key="bind_port", path="config.dct", line=12)
    assert str(raised.value) == "config.dct:12: bind_port must be an integer, got 'abc'"


def test_dct_int_defaults_trims_and_bounds() -> None:
    assert dct_int(None, 42) == 42
    assert dct_int(" \t60000\n", 0, trim=True) == 60000
    assert dct_int("9000000000", 0, maximum=2**63 - 1) == 9_000_000_000
    with pytest.raises(ConfigError, match="between 0 and 65535, got 65536"):
        dct_int("65536", 0, minimum=0, maximum=65535)
    with pytest.raises(ConfigError, match="must be an integer, got a list"):
        dct_int(["1"], 0)
    with pytest.raises(ConfigError, match="must be an integer, got a table"):
        dct_int({}, 0)


# --- files ----------------------------------------------------------------------------------------


def test_load_reads_utf8_and_names_the_file_in_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.dct"
    good.write_bytes('{ "name" = "Zoë" }'.encode())
    assert load_dct(good) == {"name": "Zoë"}
    bad = tmp_path / "bad.dct"
    bad.write_text("{\n  a = b\n  c\n")
    with pytest.raises(ConfigError) as raised:
        load_dct(bad)
    assert raised.value.path == str(bad)
    assert raised.value.line == 3


def test_load_reports_missing_and_undecodable_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.dct"
    with pytest.raises(ConfigError) as raised:
        load_dct(missing)
    assert raised.value.path == str(missing)
    assert raised.value.line is None
    assert "cannot read" in raised.value.reason
    with pytest.raises(ConfigError, match="cannot read"):
        load_dct(tmp_path)  # a directory
    latin1 = tmp_path / "latin1.dct"
    latin1.write_bytes(b'{\n  "a" = "b"\n  "name" = "Zo\xeb"\n}\n')
    with pytest.raises(ConfigError) as raised:
        load_dct(latin1)
    assert raised.value.line == 3
    assert "UTF-8" in raised.value.reason


def test_load_skips_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.dct"
    path.write_bytes(b"\xef\xbb\xbf{ a = b }")
    document = load_dct_document(path)
    assert document.table == {"a": "b"}
    assert document.path == str(path)
