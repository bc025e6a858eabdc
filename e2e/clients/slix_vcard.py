#!/usr/bin/python3
"""Drive a server's vcard-temp (XEP-0054), vCard-based avatars (XEP-0153)
and room avatars (XEP-0486) with slixmpp's own plugins (xep_0054,
xep_0153).

Usage: slix_vcard.py PORT SCENARIO ARGS...

  avatars A_JID PW B_JID PW C_JID PW ROOM PHOTO BIG
  check   A_JID PW B_JID PW ROOM
  remote  A_ADDR A_JID PW B_ADDR B_JID PW PHOTO   (PORT is ignored)

A and B become contacts; C is a stranger to both. A's client does not
load xep_0153: what its presence says of its avatar is the server's doing.
B's does. PHOTO is an image file, BIG a file too large for the server's
vCard limit. ROOM is a bare room JID; A creates it.

avatars: A reads its own vCard before it has one (own-before), then
publishes one with PHOTO and sends no presence after; B reports every
presence of A's it gets (presence: photo None without an update element,
"" for an empty photo, else the hash) and whether its xep_0153 plugin saw
an avatar update (avatar-update); B and C fetch A's vCard (fetched: sha1
and size of the photo bytes, type, fn); C tries to set A's (set-other:
error); A tries BIG (set-big: error). A creates ROOM, B joins, A sets the
room's vCard with PHOTO (room-set), B tries to (room-set-other: error), B
sees status 104 (room-104), fetches it (fetched who=b-room) and reads the
room's disco#info (room-info: features, avatarhash). B's disco#info on A
and on the server (disco: features).

check: after a restart (and a rebuild) A logs in again and sends a plain
presence; B reports A's presence photo, A's vCard and the room's.

remote: A and B are at two federated servers (ADDR is HOST:PORT of each
one's c2s) and no contacts; B publishes a vCard with PHOTO (set), A
fetches it across the servers (fetched who=a) and tries to set it
(set-other).

Prints one JSON object per line on stdout: facts, not verdicts. Exits 0
when the scenario ran, non-zero (message on stderr) when it could not.
"""
import asyncio
import hashlib
import ssl
import xml.etree.ElementTree as ET

import slixmpp

from common import Fatal, error_fact, out, run
from slixmpp.exceptions import IqError, IqTimeout

NS_UPDATE = "vcard-temp:x:update"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = NS_MUC + "#user"
NS_MUC_OWNER = NS_MUC + "#owner"
NS_DATA = "jabber:x:data"
WAIT = 15


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, label, avatars):
        super().__init__(jid + "/" + label, password)
        self.label = label
        # The server's certificate is self-signed in tests.
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        for p in ("xep_0030", "xep_0054", "xep_0045"):
            self.register_plugin(p)
        if avatars:
            self.register_plugin("xep_0153")
        loop = asyncio.get_event_loop()
        self.started = loop.create_future()
        self.add_event_handler("session_start", lambda _: self.started.done() or self.started.set_result(True))
        self.add_event_handler("failed_auth", lambda _: self.started.done() or self.started.set_result(False))
        self.add_event_handler("disconnected", lambda _: self.started.done() or self.started.set_result(False))

    async def login(self, port, host="127.0.0.1"):
        self.connect(address=(host, port))
        try:
            ok = await asyncio.wait_for(self.started, 20)
        except asyncio.TimeoutError:
            ok = False
        if not ok:
            raise Fatal("%s: login failed" % self.label)


def photo_of(p):
    """What presence p says of the avatar: None without an update element,
    "" for an empty photo or none, else the hash."""
    x = p.xml.find("{%s}x" % NS_UPDATE)
    if x is None:
        return None
    ph = x.find("{%s}photo" % NS_UPDATE)
    return (ph.text or "") if ph is not None else ""


class PresenceLog:
    """The photos of the presences c gets from bare JID of, in order, and
    a way to wait for one that satisfies a test."""

    def __init__(self, c, of):
        self.seen, self.waiters, self.of = [], [], of
        c.add_event_handler("presence_available", self._on)

    def _on(self, p):
        if p["from"].bare != self.of or p.xml.find("{%s}x" % NS_MUC_USER) is not None:
            return
        ph = photo_of(p)
        self.seen.append(ph)
        for test, fut in self.waiters:
            if not fut.done() and test(ph):
                fut.set_result(ph)

    async def wait(self, test):
        for ph in self.seen:
            if test(ph):
                return ph
        fut = asyncio.get_event_loop().create_future()
        self.waiters.append((test, fut))
        try:
            return await asyncio.wait_for(fut, WAIT)
        except asyncio.TimeoutError:
            return "timeout"


def photo_vcard(c, data, fn):
    v = c["xep_0054"].make_vcard()
    v["FN"] = fn
    v["PHOTO"]["TYPE"] = "image/png"
    v["PHOTO"]["BINVAL"] = data
    return v


async def fetch(c, who, jid):
    """c fetches jid's vCard; the facts of its photo."""
    fact = {"event": "fetched", "who": who, "of": jid}
    try:
        iq = await c["xep_0054"].get_vcard(jid, cached=False, timeout=WAIT)
        # Before the plugin's accessors, which add what they look at.
        raw = iq.xml.find("{vcard-temp}vCard")
        fact.update(empty=raw is not None and len(raw) == 0)
        v = iq["vcard_temp"]
        data = v["PHOTO"]["BINVAL"]
        fact.update(ok=True, sha1=hashlib.sha1(data).hexdigest() if data else "", size=len(data),
                    type=v["PHOTO"]["TYPE"], fn=v["FN"])
    except IqError as e:
        fact.update(ok=False, error=error_fact(e)["condition"])
    except IqTimeout:
        fact.update(ok=False, error="timeout")
    out(**fact)
    return fact


async def publish(c, event, vcard, jid=None):
    fact = {"event": event, "who": c.label}
    try:
        await c["xep_0054"].publish_vcard(vcard, jid=jid, timeout=WAIT)
        fact.update(ok=True)
    except IqError as e:
        fact.update(ok=False, error=error_fact(e)["condition"], text=error_fact(e)["text"])
    except IqTimeout:
        fact.update(ok=False, error="timeout")
    out(**fact)


async def join(c, room, nick):
    """Join room as nick; True once the self-presence came."""
    done = asyncio.get_event_loop().create_future()
    codes = []

    def on(p):
        if p["from"].bare != room or done.done():
            return
        x = p.xml.find("{%s}x" % NS_MUC_USER)
        cs = [int(s.get("code")) for s in x.findall("{%s}status" % NS_MUC_USER)] if x is not None else []
        if p["type"] == "error":
            done.set_result(False)
        elif 110 in cs:
            codes.extend(cs)
            done.set_result(True)
    c.add_event_handler("presence", on)
    pres = c.make_presence(pto="%s/%s" % (room, nick))
    ET.SubElement(pres.xml, "{%s}x" % NS_MUC)
    pres.send()
    try:
        ok = await asyncio.wait_for(done, WAIT)
    except asyncio.TimeoutError:
        ok = False
    c.del_event_handler("presence", on)
    if not ok:
        raise Fatal("%s could not join %s" % (c.label, room))
    if 201 in codes:
        # A new room waits for its owner's configuration: the default.
        iq = c.make_iq_set(ito=room)
        q = ET.SubElement(iq.xml, "{%s}query" % NS_MUC_OWNER)
        ET.SubElement(q, "{%s}x" % NS_DATA, {"type": "submit"})
        await iq.send(timeout=WAIT)


async def disco(c, who, jid):
    try:
        info = await c["xep_0030"].get_info(jid=jid, cached=False, timeout=WAIT)
    except (IqError, IqTimeout) as e:
        out(event="disco", who=who, of=jid, error=error_fact(e)["condition"] if isinstance(e, IqError) else "timeout")
        return None
    out(event="disco", who=who, of=jid, features=sorted(info["disco_info"]["features"]))
    return info


async def avatars(port, a_jid, a_pw, b_jid, b_pw, c_jid, c_pw, room, photo_path, big_path):
    photo = open(photo_path, "rb").read()
    big = open(big_path, "rb").read()
    a, b = Client(a_jid, a_pw, "a", False), Client(b_jid, b_pw, "b", True)
    c = Client(c_jid, c_pw, "c", False)
    await asyncio.gather(a.login(port), b.login(port), c.login(port))
    of_a = PresenceLog(b, a_jid)
    updates = []
    b.add_event_handler("vcard_avatar_update", lambda p: updates.append(str(p["from"])))
    a.send_presence()
    b.send_presence()
    a.send_presence_subscription(pto=b_jid, ptype="subscribe")
    # Contacts both ways once B sees A's presence (slixmpp approves and asks back).
    if await of_a.wait(lambda ph: True) == "timeout":
        raise Fatal("b never saw a's presence")
    await asyncio.sleep(0.5)
    await fetch(a, "a-own-before", a_jid)

    await publish(a, "set", photo_vcard(a, photo, "Romeo Montague"))
    # A sends no presence: the server broadcasts it again with the hash.
    ph = await of_a.wait(lambda ph: ph not in (None, ""))
    out(event="presence", who="b", of=a_jid, photo=ph, seen=of_a.seen)
    await asyncio.sleep(0.5)  # the plugin's event follows the presence
    out(event="avatar-update", who="b", updates=updates)
    await fetch(b, "b", a_jid)
    await fetch(c, "c", a_jid)
    await publish(c, "set-other", photo_vcard(c, b"not romeo", "Tybalt was here"), jid=a_jid)
    await publish(a, "set-big", photo_vcard(a, big, "Romeo, large"))
    await fetch(b, "b-after", a_jid)
    await disco(b, "b", a_jid)
    await disco(b, "b", b.boundjid.domain)

    await join(a, room, "Romeo")
    await join(b, room, "Juliet")
    told = asyncio.get_event_loop().create_future()

    def on_104(m):
        x = m.xml.find("{%s}x" % NS_MUC_USER)
        if m["from"].bare == room and x is not None and any(s.get("code") == "104" for s in x.findall("{%s}status" % NS_MUC_USER)):
            told.done() or told.set_result(True)
    # slixmpp's xep_0045 hands a room's status-code message to this event.
    b.add_event_handler("groupchat_config_status", on_104)
    await publish(a, "room-set", photo_vcard(a, photo, "The orchard"), jid=room)
    try:
        await asyncio.wait_for(told, WAIT)
        out(event="room-104", who="b", seen=True)
    except asyncio.TimeoutError:
        out(event="room-104", who="b", seen=False)
    await publish(b, "room-set-other", photo_vcard(b, b"juliet's", "Juliet's now"), jid=room)
    await fetch(b, "b-room", room)
    await fetch(c, "c-room", room)
    info = await disco(b, "b", room)
    hashes = []
    if info is not None:
        for f in info.xml.iter("{%s}field" % NS_DATA):
            if f.get("var") == "muc#roominfo_avatarhash":
                hashes = [v.text for v in f.findall("{%s}value" % NS_DATA)]
    out(event="room-info", who="b", avatarhash=hashes)
    for x in (a, b, c):
        x.disconnect()
    await asyncio.sleep(0.3)


async def check(port, a_jid, a_pw, b_jid, b_pw, room):
    a, b = Client(a_jid, a_pw, "a", False), Client(b_jid, b_pw, "b", True)
    await b.login(port)
    of_a = PresenceLog(b, a_jid)
    b.send_presence()
    await a.login(port)
    a.send_presence()
    out(event="presence", who="b", of=a_jid, photo=await of_a.wait(lambda ph: True))
    await fetch(b, "b", a_jid)
    await fetch(b, "b-room", room)
    for x in (a, b):
        x.disconnect()
    await asyncio.sleep(0.3)


async def remote(_port, a_addr, a_jid, a_pw, b_addr, b_jid, b_pw, photo_path):
    photo = open(photo_path, "rb").read()
    a, b = Client(a_jid, a_pw, "a", False), Client(b_jid, b_pw, "b", False)
    for c, addr in ((a, a_addr), (b, b_addr)):
        host, port = addr.rsplit(":", 1)
        await c.login(int(port), host)
    await publish(b, "set", photo_vcard(b, photo, "Juliet Capulet"))
    # Across servers the first stanza waits for the s2s stream.
    await fetch(a, "a", b_jid)
    await publish(a, "set-other", photo_vcard(a, b"not juliet", "Romeo was here"), jid=b_jid)
    for x in (a, b):
        x.disconnect()
    await asyncio.sleep(0.3)


if __name__ == "__main__":
    run({"avatars": (avatars, 9), "check": (check, 5), "remote": (remote, 7)}, "slix_vcard.py", 120)
