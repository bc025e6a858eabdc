"""Retraction (XEP-0424) and moderation (XEP-0425) in a room, with
slixmpp's own plugins (which speak the fastened v0 forms).

usage: slix_retract.py ADDR PASSWORD ALICE BOB ROOM

alice (two clients) makes ROOM and moderates it; bob joins. bob says
something and retracts it; bob says something else and alice moderates
it; bob tries to moderate alice's message. Prints facts: what each
client received, what the room's archive (MAM) holds afterwards.
"""
import asyncio
import ssl
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from common import NS_CLIENT, NS_MAM, child, error_fact, local, main_of, mam_query, out

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_OWNER = NS_MUC + "#owner"
NS_SID = "urn:xmpp:sid:0"


class Client(slixmpp.ClientXMPP):
    def __init__(self, addr, jid, password, label):
        super().__init__(jid, password)
        host, port = addr.rsplit(":", 1)
        self.addr = (host, int(port))
        self.label = label
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        for p in ("xep_0030", "xep_0045", "xep_0059", "xep_0313", "xep_0359", "xep_0421", "xep_0424", "xep_0425"):
            self.register_plugin(p)
        self.got = []  # every groupchat message: body, stanza-id, what it retracts or moderates
        self.mam_results = {}
        self.chats = []
        self.register_handler(Callback("gc", MatchXPath("{%s}message" % NS_CLIENT), self._on_message))
        self.started = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", lambda _: self.started.done() or self.started.set_result(True))

    def _on_message(self, m):
        x = m.xml
        res = child(x, NS_MAM, "result")
        if res is not None:
            fwd = child(res, "urn:xmpp:forward:0", "forwarded")
            for c in (fwd if fwd is not None else []):
                if local(c.tag) == "message":
                    self.mam_results.setdefault(res.get("queryid"), []).append(describe(c, res.get("id")))
            return
        if x.get("type") == "groupchat":
            self.got.append(describe(x, None))
        elif x.get("type") == "chat":
            d = describe(x, None)
            d["id"] = x.get("id")
            self.chats.append(d)

    async def login(self):
        self.connect(address=self.addr)
        await asyncio.wait_for(self.started, 20)
        self.send_presence()
        return self


def describe(m, archive_id):
    """What a test looks at in a message (or a tombstone)."""
    body = child(m, NS_CLIENT, "body")
    sid = [s.get("id") for s in m.findall("{%s}stanza-id" % NS_SID)]
    retract, moderated, retracted = None, False, False
    for c in m.iter():
        tag = local(c.tag)
        if tag == "retract" and c.get("id"):
            retract = c.get("id")
        if tag == "apply-to" and c.get("id"):
            retract = retract or c.get("id")
        if tag == "moderated":
            moderated = True
        if tag == "retracted":
            retracted = True
    return {"from": m.get("from"), "body": body.text if body is not None else None, "stanza_id": archive_id or (sid[0] if sid else None),
            "retracts": retract, "moderated": moderated, "tombstone": retracted, "id": m.get("id")}


async def join(c, room, nick, make=False):
    joined = asyncio.get_event_loop().create_future()

    def on_presence(p):
        x = child(p.xml, NS_MUC + "#user", "x")
        if p["from"] == room + "/" + nick and x is not None and any(s.get("code") == "110" for s in x.findall("{%s#user}status" % NS_MUC)):
            joined.done() or joined.set_result(True)
    c.register_handler(Callback("join " + nick, MatchXPath("{%s}presence" % NS_CLIENT), on_presence))
    p = c.make_presence(pto=room + "/" + nick)
    ET.SubElement(p.xml, "{%s}x" % NS_MUC)
    p.send()
    await asyncio.wait_for(joined, 15)
    if make:
        iq = c.Iq()
        iq["type"], iq["to"] = "set", room
        q = ET.SubElement(iq.xml, "{%s}query" % NS_MUC_OWNER)
        ET.SubElement(q, "{jabber:x:data}x", {"type": "submit"})
        await iq.send(timeout=15)


async def said(c, body):
    for _ in range(100):
        for m in c.got:
            if m["body"] == body and m["stanza_id"]:
                return m["stanza_id"]
        await asyncio.sleep(0.1)
    raise SystemExit("%s never saw %r" % (c.label, body))


async def main(addr, password, alice_jid, bob_jid, room):
    a1 = await Client(addr, alice_jid + "/one", password, "alice1").login()
    a2 = await Client(addr, alice_jid + "/two", password, "alice2").login()
    b = await Client(addr, bob_jid + "/desk", password, "bob").login()
    await join(a1, room, "Alice", make=True)
    await join(a2, room, "Alice")
    await join(b, room, "Bob")

    b.send_message(mto=room, mbody="oops, wrong room", mtype="groupchat")
    oops = await said(b, "oops, wrong room")
    b["xep_0424"].send_retraction(room, oops, mtype="groupchat")
    b.send_message(mto=room, mbody="buy magic potions", mtype="groupchat")
    spam = await said(a1, "buy magic potions")
    await a1["xep_0425"].moderate(slixmpp.JID(room), spam, "spam")
    a1.send_message(mto=room, mbody="welcome", mtype="groupchat")
    welcome = await said(b, "welcome")
    try:
        await b["xep_0425"].moderate(slixmpp.JID(room), welcome, "nope")
        out(event="bob-moderates", error=None)
    except IqError as e:
        out(event="bob-moderates", error=error_fact(e))
    # 1:1: bob writes alice something and takes it back.
    m = b.make_message(mto=alice_jid, mbody="a typo", mtype="chat")
    m["id"] = "typo-1"
    m.send()
    m = b.make_message(mto=alice_jid, mbody="kept", mtype="chat")
    m["id"] = "kept-1"
    m.send()
    await asyncio.sleep(0.5)
    b["xep_0424"].send_retraction(alice_jid, "typo-1", mtype="chat")
    await asyncio.sleep(1)
    out(event="ids", oops=oops, spam=spam, welcome=welcome)
    for c in (a1, a2):
        out(event="chat", who=c.label, messages=c.chats)
    f = await mam_query(a1, "chat", fields=[("with", [bob_jid])], report=False)
    out(event="chat-archive", messages=f["results"])
    for c in (a1, a2, b):
        out(event="received", who=c.label, messages=c.got)
    f = await mam_query(b, "room", to=room, report=False)
    out(event="archive", messages=f["results"])
    for c in (a1, a2, b):
        c.disconnect()
    await asyncio.sleep(0.3)


if __name__ == "__main__":
    main_of(main, 5, __doc__, 90)
