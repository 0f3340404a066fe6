"""Properties of the .dct parser and writer: exact round trips, and ConfigError as the only failure."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hdlserver.config.dct import DctValue, format_dct, parse_dct, parse_dct_document
from hdlserver.errors import ConfigError

# Text biased towards everything the grammar treats specially, plus arbitrary code points.
SPECIAL = [*'{}()"\\=,; \t\r\nnt', "\\n", '\\"', "\\\\", "é", "\U0001f600"]
tricky_text = st.lists(st.one_of(st.sampled_from(SPECIAL), st.characters()), max_size=12).map("".join)
any_text = st.one_of(tricky_text, st.text(max_size=12))

values: st.SearchStrategy[DctValue] = st.recursive(
    any_text,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(any_text, children, max_size=4),
    ),
    max_leaves=20,
)
tables = st.dictionaries(any_text, values, max_size=6)


@given(tables)
def test_format_then_parse_is_the_identity(table: dict[str, DctValue]) -> None:
    text = format_dct(table)
    parsed = parse_dct(text)
    assert parsed == table
    assert format_dct(parsed) == text  # same entry order too


@given(tables)
def test_every_value_of_a_formatted_table_has_a_line(table: dict[str, DctValue]) -> None:
    text = format_dct(table)
    document = parse_dct_document(text)
    last_line = text.count("\n") + 1

    def check(value: DctValue, where: tuple[str | int, ...]) -> None:
        line = document.line_of(*where)
        assert line is not None
        assert 1 <= line <= last_line
        if isinstance(value, dict):
            for key, item in value.items():
                check(item, (*where, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                check(item, (*where, index))

    check(table, ())


@given(any_text, any_text)
def test_any_string_survives_quoting(key: str, value: str) -> None:
    escaped_key = key.replace("\\", "\\\\").replace('"', '\\"')
    escaped_value = value.replace("\\", "\\\\").replace('"', '\\"')
    assert parse_dct(f'{{"{escaped_key}"="{escaped_value}"}}') == {key: value}


bare_words = st.text(
    alphabet=st.characters(blacklist_characters=' \t\r\n,;="{(', blacklist_categories=("Cs",)), min_size=1
)


@given(bare_words)
def test_a_bare_word_value_ends_at_a_separator(word: str) -> None:
    # Whatever it contains ('}' and ')' included), a bare word runs up to the separator before the last '}'.
    assert parse_dct(f"{{ k = {word} }}") == {"k": word}


token_soup = st.lists(st.sampled_from([*SPECIAL, "{", "key", "("]), max_size=40).map("".join)


@settings(max_examples=500)
@given(st.one_of(tricky_text, st.text(), token_soup))
def test_parser_raises_nothing_but_config_error(text: str) -> None:
    try:
        result = parse_dct(text, "fuzz.dct")
    except ConfigError as e:
        assert e.path == "fuzz.dct"
        assert e.line is not None
        assert 1 <= e.line <= text.count("\n") + 1
    else:
        assert isinstance(result, dict)


@given(st.text(max_size=30))
def test_text_after_the_closing_brace_is_ignored(trailer: str) -> None:
    assert parse_dct('{ "a" = ( "b" ) }' + trailer) == {"a": ["b"]}
