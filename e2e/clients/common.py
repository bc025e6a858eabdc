"""Helpers the slixmpp drivers share: JSON fact lines and reading the
parts of stanzas the tests look at."""
import asyncio
import json
import logging
import secrets
import sys
import xml.etree.ElementTree as ET

from slixmpp.exceptions import IqError, IqTimeout

NS_CLIENT = "jabber:client"
NS_SID = "urn:xmpp:sid:0"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_MAM = "urn:xmpp:mam:2"
NS_DATA = "jabber:x:data"
NS_RSM = "http://jabber.org/protocol/rsm"


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


def main_of(main, nargs, doc, timeout):
    """Run the driver's main(*argv) with its nargs arguments (else exit
    with its usage, doc), for at most timeout seconds (then exit "timed
    out")."""
    if len(sys.argv) != nargs + 1:
        sys.exit(doc)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(asyncio.wait_for(main(*sys.argv[1:]), timeout))
    except asyncio.TimeoutError:
        sys.exit("timed out")


def data_form(parent, ftype, form_type, fields):
    """Add a XEP-0004 form to parent: FORM_TYPE (unless None) and fields,
    a list of (var, [values])."""
    x = ET.SubElement(parent, "{%s}x" % NS_DATA, {"type": ftype})
    if form_type is not None:
        f = ET.SubElement(x, "{%s}field" % NS_DATA, {"var": "FORM_TYPE", "type": "hidden"})
        ET.SubElement(f, "{%s}value" % NS_DATA).text = form_type
    for var, values in fields or ():
        f = ET.SubElement(x, "{%s}field" % NS_DATA, {"var": var})
        for v in values:
            ET.SubElement(f, "{%s}value" % NS_DATA).text = v
    return x


async def quiet_down(size, quiet=1.5, cap=10.0):
    """Wait until size() (what the clients received so far) has not grown
    for `quiet` seconds, at most cap seconds."""
    waited, last, still = 0.0, -1, 0.0
    while waited < cap:
        n = size()
        if n == last:
            still += 0.25
            if still >= quiet:
                return
        else:
            last, still = n, 0.0
        await asyncio.sleep(0.25)
        waited += 0.25


async def mam_query(c, name, to=None, fields=None, rsm=None, form_type=NS_MAM, timeout=15, report=True):
    """Send client c's MAM query built by hand, to its account (to None)
    or to a room: fields is a list of (var, [values]); form_type None
    leaves FORM_TYPE out. c.mam_results collects the results by queryid.
    Returns (and prints) the facts."""
    qid = "q-" + rand()
    iq = c.Iq()
    iq["type"] = "set"
    if to:
        iq["to"] = to
    q = ET.SubElement(iq.xml, "{%s}query" % NS_MAM, {"queryid": qid})
    if fields is not None or form_type is not None:
        data_form(q, "submit", form_type, fields)
    if rsm:
        s = ET.SubElement(q, "{%s}set" % NS_RSM)
        for k, v in rsm:
            ET.SubElement(s, "{%s}%s" % (NS_RSM, k)).text = str(v)
    c.mam_results[qid] = []
    fact = {"event": "mam", "who": c.label, "query": name, "to": to,
            "fields": [[v, vals] for v, vals in (fields or ())], "rsm": [[k, str(v)] for k, v in (rsm or ())],
            "form_type": form_type}
    try:
        resp = await iq.send(timeout=timeout)
        await asyncio.sleep(0.1)  # results are messages: let the last ones in
        fact["ok"] = True
        fact["fin"] = None
        fin = child(resp.xml, NS_MAM, "fin")
        if fin is not None:
            rs = child(fin, NS_RSM, "set")

            def text(name):
                e = child(rs, NS_RSM, name)
                return e.text if e is not None else None
            fact["fin"] = {"complete": fin.get("complete"), "stable": fin.get("stable"),
                           "first": text("first"), "last": text("last"), "count": text("count")}
    except IqError as e:
        fact["ok"] = False
        fact["error"] = error_fact(e)
    except IqTimeout:
        fact["ok"] = False
        fact["error"] = {"condition": "timeout", "type": None, "text": ""}
    res = c.mam_results.pop(qid, [])
    fact["count"] = len(res)
    fact["results"] = res
    if report:
        out(**fact)
    return fact
