"""Helpers the slixmpp drivers share: JSON fact lines and reading the
parts of stanzas the tests look at."""
import json
import secrets

NS_CLIENT = "jabber:client"
NS_SID = "urn:xmpp:sid:0"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def out(**kw):
    print(json.dumps(kw), flush=True)


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
