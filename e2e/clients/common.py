"""Helpers the slixmpp drivers share: JSON fact lines and reading the
parts of stanzas the tests look at."""
import asyncio
import json
import logging
import secrets
import sys

NS_CLIENT = "jabber:client"
NS_SID = "urn:xmpp:sid:0"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def out(**kw):
    """One fact, as a JSON line on the real standard output (a driver may
    redirect sys.stdout around a chatty library call)."""
    sys.__stdout__.write(json.dumps(kw) + "\n")
    sys.__stdout__.flush()


def rand():
    return secrets.token_hex(4)


def local(tag):
    return tag.rsplit("}", 1)[-1]


def child(el, ns, name):
    return el.find("{%s}%s" % (ns, name)) if el is not None else None


def inner_message(wrapper):
    """The message inside a <forwarded/> below wrapper, whatever its namespace."""
    fwd = child(wrapper, NS_FORWARD, "forwarded")
    if fwd is None:
        return None, None
    for c in fwd:
        if local(c.tag) == "message":
            return fwd, c
    return fwd, None


def stanza_ids(el):
    return [{"by": s.get("by"), "id": s.get("id")} for s in el.findall("{%s}stanza-id" % NS_SID)]


def delay_of(el):
    d = child(el, NS_DELAY, "delay")
    return {"stamp": d.get("stamp"), "from": d.get("from")} if d is not None else None


def error_of(el):
    e = el.find("{%s}error" % NS_CLIENT)
    if e is None:
        for c in el:
            if local(c.tag) == "error":
                e = c
    if e is None:
        return None
    cond = ""
    text = ""
    for c in e:
        if c.tag.startswith("{%s}" % NS_STANZAS):
            if local(c.tag) == "text":
                text = c.text or ""
            else:
                cond = local(c.tag)
    return {"condition": cond, "type": e.get("type"), "text": text}


def error_fact(iq_error):
    e = iq_error.iq["error"]
    return {"condition": e["condition"], "type": e["type"], "text": e["text"]}


class Fatal(Exception):
    """The scenario could not run."""


def run(scenarios, prog, timeout):
    """Run the scenario named on the command line (PORT SCENARIO ARGS...);
    exit non-zero with a message when it cannot run."""
    logging.basicConfig(level=logging.CRITICAL)
    if len(sys.argv) < 3 or sys.argv[2] not in scenarios:
        sys.exit("usage: %s PORT {%s} ARGS..." % (prog, "|".join(scenarios)))
    port, scenario, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    fn, nargs = scenarios[scenario]
    if len(args) < nargs:
        sys.exit("%s needs %d arguments" % (scenario, nargs))
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(asyncio.wait_for(fn(port, *args), timeout))
    except Fatal as e:
        sys.exit(str(e))
    except asyncio.TimeoutError:
        sys.exit("%s: timed out" % scenario)
