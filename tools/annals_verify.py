#!/usr/bin/python3
"""Recompute an Annals export's hash chains and head digest (docs/audit.md).

Usage: annals_verify.py EXPORT [--head HEADFILE]

Reads the JSON lines of `annals audit export`, recomputes every event's
hash from the one before it in its stream, checks that versions are dense
and positions increase, and recomputes the head digest at the last event
(and, with --head, at the position of a head line printed by
`annals audit head [--sign]`; the signature itself is not checked here).
Exit 0 if everything matches, 1 on the first mismatch, 2 on bad input.
Standard library only.
"""

import base64
import hashlib
import json
import sys

TAG = b"annals.event.v1\x00"
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class Mismatch(Exception):
    pass


def uvarint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def lp(b):
    return uvarint(len(b)) + b


def u64(n):
    return (n & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")


def ulid_bytes(s):
    if len(s) != 26 or s[0] > "7":
        raise ValueError("id %r is not a ULID" % s)
    n = 0
    for c in s.upper():
        n = n * 32 + CROCKFORD.index(c)
    return n.to_bytes(16, "big")


def field(ev, name):
    """The exact bytes of a string field: JSON string (UTF-8) or NAME_base64."""
    if name in ev:
        return ev[name].encode("utf-8")
    return base64.b64decode(ev[name + "_base64"], validate=True)


def canonical(ev):
    return (TAG + ulid_bytes(ev["id"]) + lp(field(ev, "stream")) + u64(ev["version"])
            + lp(field(ev, "type")) + u64(ev["schema"]) + u64(ev["occurred_at_ns"])
            + lp(field(ev, "cause")) + lp(field(ev, "data")))


def position(s):
    c, _, p = s.partition("/")
    return (int(c), int(p) if p else int(c))


def digest(heads):
    h = hashlib.sha256()
    for name in sorted(heads):
        version, hsh = heads[name]
        h.update(name + b"\n" + str(version).encode() + b"\n" + hsh.hex().encode() + b"\n")
    return "sha256:" + h.hexdigest()


def check_tips(header, heads, last):
    """The tips must give the digest the header states at --since."""
    if not header.get("since"):
        return last
    got = digest(heads)
    if got != header["since_digest"]:
        raise Mismatch("the tips give digest %s at position %s, the header says %s"
                       % (got, header["since"], header["since_digest"]))
    return position(header["since"])


def verify(lines, head_line=None):
    heads = {}  # stream bytes -> (version, hash bytes)
    want_at = None
    if head_line is not None:
        f = head_line.split(" ")
        try:
            want_at = position(f[f.index("position") + 1])
            want_digest = f[f.index("digest") + 1]
        except (ValueError, IndexError):
            raise ValueError("head line has no position or digest")
    seen_head = False
    header = json.loads(next(lines))
    if header.get("kind") != "header" or header.get("format") != "annals-export/1":
        raise ValueError("not an annals-export/1 file")
    last = None
    events = 0
    end = None
    for n, raw in enumerate(lines, start=2):
        rec = json.loads(raw)
        kind = rec.get("kind")
        if end is not None:
            raise Mismatch("line %d: after the end line" % n)
        if kind == "tip":
            if events:
                raise Mismatch("line %d: tip after events" % n)
            heads[rec["stream"].encode()] = (rec["version"], bytes.fromhex(rec["hash"]))
            last = position(rec["position"]) if last is None else max(last, position(rec["position"]))
            continue
        if kind == "end":
            end = rec
            continue
        if kind != "event":
            raise ValueError("line %d: unknown kind %r" % (n, kind))
        if events == 0:
            last = check_tips(header, heads, last)
        stream = field(rec, "stream")
        name = stream.decode("utf-8", "replace")
        pos = position(rec["position"])
        if last is not None and pos <= last:
            raise Mismatch("stream %s version %d: position %s does not follow the one before"
                           % (name, rec["version"], rec["position"]))
        prev_version, prev_hash = heads.get(stream, (0, b""))
        if rec["version"] != prev_version + 1:
            raise Mismatch("stream %s version %d: missing or out of order: the event before it in the stream is version %d"
                           % (name, prev_version + 1 if rec["version"] > prev_version + 1 else rec["version"], prev_version))
        got = hashlib.sha256(prev_hash + canonical(rec)).digest()
        if got.hex() != rec["hash"]:
            raise Mismatch("stream %s version %d: hash does not match the event and the chain before it"
                           % (name, rec["version"]))
        heads[stream] = (rec["version"], got)
        last = pos
        events += 1
        if want_at is not None and pos == want_at:
            seen_head = True
            if digest(heads) != want_digest:
                raise Mismatch("at position %s the export gives digest %s, the head says %s"
                               % (rec["position"], digest(heads), want_digest))
    if end is None:
        raise Mismatch("the export has no end line: it was cut short")
    if events == 0:
        check_tips(header, heads, last)
    if end["exported"] != events:
        raise Mismatch("the end line counts %d events, the export has %d" % (end["exported"], events))
    got = digest(heads) if heads else None
    if heads and (got != end["digest"] or len(heads) != end["streams"]):
        raise Mismatch("at position %s the export gives %d streams digest %s, the end line says %d streams %s"
                       % (end.get("position"), len(heads), got, end["streams"], end["digest"]))
    if want_at is not None and not seen_head:
        raise Mismatch("the head's position is not an event of this export")
    return events, len(heads), end.get("position"), got


def main(argv):
    args = argv[1:]
    head = None
    if len(args) == 3 and args[1] == "--head":
        with open(args[2], encoding="utf-8") as f:
            head = f.read().strip()
        args = args[:1]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        with open(args[0], encoding="utf-8") as f:
            events, streams, at, got = verify(iter(f), head)
    except Mismatch as e:
        print("BROKEN: %s" % e)
        return 1
    except (OSError, ValueError, KeyError, StopIteration) as e:
        print("annals_verify: bad export: %r" % (e,), file=sys.stderr)
        return 2
    print("ok: %d events in %d streams verify; digest at position %s %s" % (events, streams, at, got))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
