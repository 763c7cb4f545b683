"""Template and options-template records of NetFlow v9 (RFC 3954 section 5.2/6.1) and IPFIX (RFC 7011 section 3.4)."""

from __future__ import annotations

import struct

from flowscope.collect.fields import IPFIX, V9
from flowscope.collect.templates import Field, Template

_PAIR = struct.Struct(">HH")
_V9_OPTIONS_HEADER = struct.Struct(">HHH")  # template id, scope length, option length (bytes)
_IPFIX_OPTIONS_HEADER = struct.Struct(">HHH")  # template id, field count, scope field count

V9_SCOPE = 1 << 32
"""Pseudo enterprise for NetFlow v9 scope fields, whose type numbers (1 System, 2 Interface...) are not IEs."""

Parsed = list[tuple[int, Template | None]]
"""(template id, template) per record; None = withdrawal (IPFIX field count 0)."""


class Malformed(Exception):
    """A datagram (or the rest of it) cannot be parsed; the message is the skip reason."""


def _check_template(template_id: int, fields: tuple[Field, ...], scope_count: int = 0) -> Template:
    if template_id < 256:
        raise Malformed("template id below 256")
    template = Template(template_id, fields, scope_count)
    if template.min_record_length == 0:
        raise Malformed("template with zero-length records")
    return template


def templates(payload: bytes, start: int, end: int, version: int, set_id: int) -> Parsed:
    """Template records of a v9 (set 0) or IPFIX (set 2) template set; field count 0 = withdrawal (IPFIX)."""
    out: Parsed = []
    offset = start
    while end - offset >= 4:
        template_id, count = _PAIR.unpack_from(payload, offset)
        offset += 4
        if count == 0:
            if version == V9:
                break  # padding
            out.append((template_id, None))
            continue
        fields, offset = _fields(payload, offset, end, count, version)
        out.append((template_id, _check_template(template_id, fields)))
    return out


def _fields(payload: bytes, offset: int, end: int, count: int, version: int) -> tuple[tuple[Field, ...], int]:
    """Field specifiers; length 0xFFFF is variable length in both versions. RFC 3954 has no such thing,
    but NetFlow v9 exporters (H3C NetStream) send it with IPFIX's encoding in the records (RFC 7011
    section 7), which nfcapd, Wireshark and Logstash decode, so their data is not thrown away here."""
    fields = []
    for _ in range(count):
        if offset + 4 > end:
            raise Malformed("template runs past its set")
        element, length = _PAIR.unpack_from(payload, offset)
        offset += 4
        enterprise = 0
        if version == IPFIX and element & 0x8000:
            if offset + 4 > end:
                raise Malformed("template runs past its set")
            element &= 0x7FFF
            enterprise = int.from_bytes(payload[offset : offset + 4], "big")
            offset += 4
        fields.append(Field(element, length, enterprise))
    return tuple(fields), offset


def v9_options_templates(payload: bytes, start: int, end: int, set_id: int) -> Parsed:
    out: Parsed = []
    offset = start
    while end - offset >= _V9_OPTIONS_HEADER.size + 4:
        template_id, scope_length, option_length = _V9_OPTIONS_HEADER.unpack_from(payload, offset)
        offset += _V9_OPTIONS_HEADER.size
        if scope_length % 4 or option_length % 4 or scope_length == 0:
            raise Malformed("NetFlow v9 options template with impossible lengths")
        if offset + scope_length + option_length > end:
            raise Malformed("template runs past its set")
        scopes, offset = _fields(payload, offset, end, scope_length // 4, V9)
        scopes = tuple(Field(f.element, f.length, V9_SCOPE) for f in scopes)
        options, offset = _fields(payload, offset, end, option_length // 4, V9)
        out.append((template_id, _check_template(template_id, scopes + options, len(scopes))))
    return out


def ipfix_options_templates(payload: bytes, start: int, end: int, set_id: int) -> Parsed:
    out: Parsed = []
    offset = start
    while end - offset >= 4:
        template_id, count = _PAIR.unpack_from(payload, offset)
        if count == 0:
            out.append((template_id, None))
            offset += 4
            continue
        if end - offset < _IPFIX_OPTIONS_HEADER.size:
            break
        _, _, scope_count = _IPFIX_OPTIONS_HEADER.unpack_from(payload, offset)
        offset += _IPFIX_OPTIONS_HEADER.size
        if scope_count == 0 or scope_count > count:
            raise Malformed("IPFIX options template with impossible scope count")
        fields, offset = _fields(payload, offset, end, count, IPFIX)
        out.append((template_id, _check_template(template_id, fields, scope_count)))
    return out


# column decoding ----------------------------------------------------------------------------------
