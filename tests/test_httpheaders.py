"""The fast header parser builds exactly the message ``http.client.parse_headers`` builds."""

from __future__ import annotations

import http.client
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from phoenix.httpheaders import parse_headers, with_fast_headers

NAMES = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12)
VALUES = st.text(st.characters(min_codepoint=0x09, max_codepoint=0xFF, exclude_characters="\r\n"), max_size=30)
TRICKY = st.sampled_from([b" continued\r\n", b"\tfolded\r\n", b"no colon here\r\n", b": empty name\r\n",
                          b"Content-Type: multipart/mixed; boundary=x\r\n", b"Content-Type: message/rfc822\r\n",
                          b"Bare\rCR: x\r\n", b"X-LF-Only: y\n", b"From nobody\r\n"])


def _line(name: str, value: str, blanks: str, end: bytes) -> bytes:
    return f"{name}:{blanks}{value}".encode("latin-1") + end


LINES = st.one_of(st.builds(_line, NAMES, VALUES, st.sampled_from(["", " ", "  ", "\t", " \t"]),
                            st.sampled_from([b"\r\n", b"\n"])), TRICKY)


def _both(block: bytes) -> tuple[http.client.HTTPMessage, http.client.HTTPMessage]:
    return parse_headers(io.BytesIO(block)), http.client.parse_headers(io.BytesIO(block))


def _payload(message: http.client.HTTPMessage) -> object:
    payload = message.get_payload()
    return [part.items() for part in payload] if isinstance(payload, list) else payload


@settings(max_examples=400, deadline=None)
@given(st.lists(LINES, max_size=12), st.sampled_from([b"\r\n", b"\n", b""]), st.binary(max_size=8))
def test_fast_parse_equals_the_email_parser(lines, end, body):
    fast, slow = _both(b"".join(lines) + end + body)
    assert type(fast) is type(slow)
    assert fast.items() == slow.items()
    assert _payload(fast) == _payload(slow)
    assert fast.get_content_type() == slow.get_content_type()
    assert fast.get("content-length") == slow.get("content-length")


header_names = st.one_of(st.sampled_from(["Host", "Content-Type", "content-type", "Authorization", "Connection",
                                          "Expect", "Content-Length", "X-A"]),
                         st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=10))
header_values = st.one_of(st.sampled_from(["text/plain", "multipart/form-data; boundary=x", "message/rfc822",
                                           "application/json", " keep-alive", "\tclose  ", ""]),
                          st.text(st.characters(min_codepoint=0, max_codepoint=0xFF), max_size=20))
line_ends = st.sampled_from(["\r\n", "\n", "\r\r\n"])


@settings(max_examples=300)
@given(st.lists(st.tuples(header_names, st.sampled_from([":", ": ", ":\t ", " :", ""]), header_values, line_ends),
                max_size=8),
       st.sampled_from(["\r\n", "\n", "", " continued\r\n\r\n"]))
def test_fast_parse_equals_the_email_parser_with_errors_and_defects(fields, end):
    raw = "".join(f"{name}{sep}{value}{eol}" for name, sep, value, eol in fields) + end
    data = raw.encode("latin-1")
    results = []
    for parse in (parse_headers, http.client.parse_headers):
        try:
            message = parse(io.BytesIO(data))
        except http.client.HTTPException as exc:
            results.append(("error", type(exc), str(exc)))
            continue
        payload = message.get_payload()
        if isinstance(payload, list):                   # message/rfc822, multipart: parts, compared by content
            payload = [part.as_string() for part in payload]
        results.append((type(message), message.items(), payload, [repr(d) for d in message.defects],
                        message.get_content_type(), message.get("Content-Length"), message.get("Connection")))
    assert results[0][:3] == results[1][:3]


def test_the_limits_of_the_stdlib_reader_still_apply():
    too_many = b"".join(b"X-%d: y\r\n" % i for i in range(http.client._MAXHEADERS + 1)) + b"\r\n"
    for parse in (parse_headers, http.client.parse_headers):
        try:
            parse(io.BytesIO(too_many))
        except http.client.HTTPException as exc:
            assert "got more than" in str(exc)
        else:
            raise AssertionError("no limit")


def test_a_rebuilt_stdlib_function_keeps_its_code_and_uses_the_fast_parser():
    begin = with_fast_headers(http.client.HTTPResponse.begin)
    assert begin.__code__ is http.client.HTTPResponse.begin.__code__
    assert begin.__globals__["parse_headers"] is parse_headers
    assert http.client.parse_headers is not parse_headers            # the stdlib itself is untouched
