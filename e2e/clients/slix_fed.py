#!/usr/bin/python3
"""Drive two XMPP servers that federate with slixmpp: users at each, each
client connected to its own server.

Usage: slix_fed.py SCENARIO A_ADDR A_JID A_PW B_ADDR B_JID B_PW

  ADDR is HOST:PORT of the user's own server (c2s).

  chat       a (two clients) and b exchange 1:1 messages both ways; each
             archive is then queried (MAM); a writes to a stranger at b's
             server and to a domain nobody serves
  subscribe  a asks b for a subscription; both approve and ask back, as
             slixmpp does by default; each must then see the other's
             presence
  iq         a pings b's client and asks b's server for disco#info; b pings
             a's client
  ghost ROOM PID
             b joins a's ROOM, b's server (PID) is killed, a talks until
             the room says b is gone
  roster     a's roster item for b
  stop-room ROOM PID
             a makes ROOM, b joins from its server, a's server (PID)
             stops: b is told it is out
  host ROOM N BODY
             a makes ROOM, waits for N others, says BODY (b unused: -)
  stop-joiner ROOM PID
             b makes ROOM at its server, a joins from its own, a's
             server (PID) stops: b sees a leave
  invite ROOM
             a makes ROOM and invites b, at another server
  others ROOM
             a joins ROOM: who else is in it
  attach ROOM
             b makes ROOM at its server; a joins it from two clients: one
             occupant, both clients see everything
  stop PID   a and b (subscribed both ways) are available; a's server
             (PID) stops; b must see a go unavailable
  say TIMEOUT
             a writes b one chat message, then b writes a one: for each,
             whether it arrived and after how long (ms, from sending),
             the error its sender got back, or neither within TIMEOUT s
  room ROOM  a joins ROOM (at its own server's or b's room service; made
             and configured if new), then b; each says something the
             other must see; b leaves

Prints one JSON object per line on stdout: facts, not verdicts. Exits 0
when the scenario ran, non-zero (message on stderr) when it could not.
"""
import asyncio
import os
import signal
import ssl
import sys
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from common import NS_CLIENT, NS_MAM, child, error_of, local, out, rand, stanza_ids

NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"


class Client(slixmpp.ClientXMPP):
    def __init__(self, addr, jid, password, label):
        super().__init__(jid, password)
        host, port = addr.rsplit(":", 1)
        self.addr = (host, int(port))
        self.label = label
        # The servers' certificates are made by the tests.
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        for p in ("xep_0030", "xep_0199", "xep_0280", "xep_0297", "xep_0359"):
            self.register_plugin(p)
        self.inbox = asyncio.Queue()
        self.mam = {}  # queryid -> [forwarded message elements]
        self.started = asyncio.get_event_loop().create_future()
        self.presences = asyncio.Queue()
        self.register_handler(Callback("fed message", MatchXPath("{%s}message" % NS_CLIENT), self._on_message))
        self.register_handler(Callback("fed presence", MatchXPath("{%s}presence" % NS_CLIENT), lambda p: self.presences.put_nowait(p.xml)))
        self.add_event_handler("session_start", lambda _: self.started.done() or self.started.set_result(True))
        self.add_event_handler("failed_auth", lambda _: self.started.done() or self.started.set_result(False))
        self.add_event_handler("disconnected", lambda _: self.started.done() or self.started.set_result(False))

    def _on_message(self, m):
        res = child(m.xml, NS_MAM, "result")
        if res is not None:
            fwd = child(res, NS_FORWARD, "forwarded")
            inner = [c for c in fwd if local(c.tag) == "message"] if fwd is not None else []
            self.mam.setdefault(res.get("queryid"), []).extend(inner)
            return
        self.inbox.put_nowait(m.xml)

    async def login(self):
        self.connect(address=self.addr)
        ok = await asyncio.wait_for(self.started, 20)
        if not ok:
            raise SystemExit("%s: login failed" % self.label)
        return self

    async def next_message(self, pred, timeout=15):
        """The next message pred accepts; those before it are dropped."""
        async def wait():
            while True:
                m = await self.inbox.get()
                if pred(m):
                    return m
        return await asyncio.wait_for(wait(), timeout)

    async def next_presence(self, pred, timeout=15):
        async def wait():
            while True:
                p = await self.presences.get()
                if pred(p):
                    return p
        return await asyncio.wait_for(wait(), timeout)

    async def archive(self, with_jid):
        """The bodies of the 1:1 messages with with_jid in the account's archive."""
        qid = "q-" + rand()
        iq = self.Iq()
        iq["type"] = "set"
        q = ET.SubElement(iq.xml, "{%s}query" % NS_MAM, {"queryid": qid})
        x = ET.SubElement(q, "{jabber:x:data}x", {"type": "submit"})
        for var, val in (("FORM_TYPE", NS_MAM), ("with", with_jid)):
            f = ET.SubElement(x, "{jabber:x:data}field", {"var": var})
            ET.SubElement(f, "{jabber:x:data}value").text = val
        await iq.send(timeout=15)
        await asyncio.sleep(0.2)
        return [body_of(m) for m in self.mam.pop(qid, [])]


def body_of(m):
    for c in m:
        if local(c.tag) == "body":
            return c.text or ""
    return None


def carbon_of(m, kind):
    """The message inside a carbon of kind (sent, received), or None."""
    c = child(m, NS_CARBONS, kind)
    fwd = child(c, NS_FORWARD, "forwarded")
    if fwd is None:
        return None
    for e in fwd:
        if local(e.tag) == "message":
            return e
    return None


def facts(m):
    return {"from": m.get("from"), "to": m.get("to"), "body": body_of(m), "stanza_ids": stanza_ids(m)}


async def chat(a_addr, a_jid, a_pw, b_addr, b_jid, b_pw):
    a1 = await Client(a_addr, a_jid + "/one", a_pw, "a1").login()
    a2 = await Client(a_addr, a_jid + "/two", a_pw, "a2").login()
    b = await Client(b_addr, b_jid + "/desk", b_pw, "b").login()
    for c in (a1, a2, b):
        c.send_presence()
    await asyncio.sleep(0.5)
    a1.send_message(mto=b_jid, mbody="wherefore art thou", mtype="chat")
    got = await b.next_message(lambda m: body_of(m) == "wherefore art thou")
    out(event="received", who="b", **facts(got))
    sent = await a2.next_message(lambda m: carbon_of(m, "sent") is not None)
    out(event="carbon-sent", who="a2", **facts(carbon_of(sent, "sent")))
    b.send_message(mto=a_jid, mbody="deny thy father", mtype="chat")
    for c in (a1, a2):
        got = await c.next_message(lambda m: body_of(m) == "deny thy father")
        out(event="received", who=c.label, **facts(got))
    for c, other in ((a1, b_jid), (b, a_jid)):
        out(event="archive", who=c.label, bodies=await c.archive(other))
    stranger = "nobody@" + b_jid.split("@", 1)[1]
    for to in (stranger, "someone@unreachable.invalid"):
        a1.send_message(mto=to, mbody="anyone?", mtype="chat")
        e = await a1.next_message(lambda m: m.get("type") == "error" and m.get("from") == to, timeout=30)
        out(event="error", sender=to, **(error_of(e) or {}))
    for c in (a1, a2, b):
        c.disconnect()
    await asyncio.sleep(0.2)


async def subscribe(a_addr, a_jid, a_pw, b_addr, b_jid, b_pw):
    a = Client(a_addr, a_jid, a_pw, "a")
    b = Client(b_addr, b_jid, b_pw, "b")
    loop = asyncio.get_event_loop()
    seen = {"a": loop.create_future(), "b": loop.create_future()}

    def watcher(who, other):
        def on(p):
            if p["from"].bare == other and not seen[who].done():
                seen[who].set_result(str(p["from"]))
        return on

    a.add_event_handler("presence_available", watcher("a", b_jid))
    b.add_event_handler("presence_available", watcher("b", a_jid))
    await a.login()
    await b.login()
    a.send_presence()
    b.send_presence()
    a.send_presence_subscription(pto=b_jid, ptype="subscribe")
    for who in ("a", "b"):
        try:
            out(event="presence-seen", who=who, sender=await asyncio.wait_for(seen[who], 20))
        except asyncio.TimeoutError:
            out(event="presence-seen", who=who, sender="")
    await asyncio.sleep(0.5)
    for who, c, other in (("a", a, b_jid), ("b", b, a_jid)):
        await c.get_roster()
        item = c.client_roster[other]
        out(event="roster", who=who, contact=other, subscription=item["subscription"], pending_out=bool(item["pending_out"]))
    a.disconnect()
    b.disconnect()
    await asyncio.sleep(0.2)


async def iq(a_addr, a_jid, a_pw, b_addr, b_jid, b_pw):
    a = await Client(a_addr, a_jid + "/one", a_pw, "a").login()
    b = await Client(b_addr, b_jid + "/desk", b_pw, "b").login()
    for who, c, to in (("a", a, b.boundjid.full), ("a", a, b.boundjid.domain), ("b", b, a.boundjid.full)):
        try:
            rtt = await c["xep_0199"].ping(jid=to, timeout=15)
            out(event="ping", who=who, to=to, ok=True, rtt=rtt)
        except (IqError, IqTimeout) as e:
            out(event="ping", who=who, to=to, ok=False, error=str(e))
    try:
        info = await a["xep_0030"].get_info(jid=b.boundjid.domain, timeout=15)
        out(event="disco", who="a", to=b.boundjid.domain, features=sorted(info["disco_info"]["features"]))
    except (IqError, IqTimeout) as e:
        out(event="disco", who="a", to=b.boundjid.domain, error=str(e))
    gone = b.boundjid.bare + "/gone"
    try:
        await a["xep_0199"].ping(jid=gone, timeout=15)
        out(event="ping-gone", ok=True)
    except IqError as e:
        out(event="ping-gone", ok=False, condition=e.iq["error"]["condition"])
    except IqTimeout:
        out(event="ping-gone", ok=False, condition="timeout")
    a.disconnect()
    b.disconnect()
    await asyncio.sleep(0.2)


NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = NS_MUC + "#user"
NS_MUC_OWNER = NS_MUC + "#owner"


def muc_facts(p):
    x = child(p, NS_MUC_USER, "x")
    item = child(x, NS_MUC_USER, "item")
    return {"from": p.get("from"), "type": p.get("type", "available"),
            "codes": sorted(int(c.get("code")) for c in (x.findall("{%s}status" % NS_MUC_USER) if x is not None else [])),
            "affiliation": item.get("affiliation") if item is not None else None,
            "role": item.get("role") if item is not None else None,
            "jid": item.get("jid") if item is not None else None}


async def join(c, room, nick):
    """Join room as nick; its self-presence's facts (or its error's)."""
    occupant = room + "/" + nick
    p = c.make_presence(pto=occupant)
    ET.SubElement(p.xml, "{%s}x" % NS_MUC)
    p.send()
    me = await c.next_presence(lambda p: p.get("from") == occupant)
    if me.get("type") == "error":
        return {"error": error_of(me)}
    f = muc_facts(me)
    if 201 in f["codes"]:
        iq = c.Iq()
        iq["type"], iq["to"] = "set", room
        q = ET.SubElement(iq.xml, "{%s}query" % NS_MUC_OWNER)
        ET.SubElement(q, "{jabber:x:data}x", {"type": "submit"})
        await iq.send(timeout=15)
    return f


async def room(a_addr, a_jid, a_pw, b_addr, b_jid, b_pw, room_jid):
    a = await Client(a_addr, a_jid + "/one", a_pw, "a").login()
    b = await Client(b_addr, b_jid + "/desk", b_pw, "b").login()
    out(event="joined", who="a", **await join(a, room_jid, "Alpha"))
    out(event="joined", who="b", **await join(b, room_jid, "Beta"))
    seen = await a.next_presence(lambda p: p.get("from") == room_jid + "/Beta")
    out(event="occupant", who="a", **muc_facts(seen))
    for c, other, body in ((a, b, "hello from here"), (b, a, "hello from afar")):
        c.send_message(mto=room_jid, mbody=body, mtype="groupchat")
        got = await other.next_message(lambda m: body_of(m) == body)
        out(event="groupchat", who=other.label, **facts(got))
    p = b.make_presence(pto=room_jid + "/Beta", ptype="unavailable")
    p.send()
    gone = await a.next_presence(lambda p: p.get("from") == room_jid + "/Beta" and p.get("type") == "unavailable")
    out(event="left", who="a", **muc_facts(gone))
    a.disconnect()
    b.disconnect()
    await asyncio.sleep(0.2)


async def ghost(a_addr, a_jid, a_pw, b_addr, b_jid, b_pw, room_jid, b_server_pid):
    """b joins a's room from its server, which is then killed: a talks
    until the room says b is gone."""
    a = await Client(a_addr, a_jid + "/one", a_pw, "a").login()
    b = await Client(b_addr, b_jid + "/desk", b_pw, "b").login()
    out(event="joined", who="a", **await join(a, room_jid, "Alpha"))
    out(event="joined", who="b", **await join(b, room_jid, "Beta"))
    os.kill(int(b_server_pid), signal.SIGKILL)
    beta = room_jid + "/Beta"
    for i in range(40):
        a.send_message(mto=room_jid, mbody="are you there? %d" % i, mtype="groupchat")
        try:
            gone = await a.next_presence(lambda p: p.get("from") == beta and p.get("type") == "unavailable", timeout=0.5)
            out(event="left", who="a", after=i + 1, **muc_facts(gone))
            break
        except asyncio.TimeoutError:
            pass
    else:
        out(event="left", who="a", error="never")
    a.disconnect()
    await asyncio.sleep(0.2)


async def stop(a_addr, a_jid, a_pw, b_addr, b_jid, b_pw, a_server_pid):
    """a and b share presence; a's server (PID) is stopped (SIGINT): b must
    see a go unavailable."""
    a = await Client(a_addr, a_jid + "/one", a_pw, "a").login()
    b = await Client(b_addr, b_jid + "/desk", b_pw, "b").login()
    b.send_presence()
    a.send_presence()
    p = await b.next_presence(lambda p: p.get("from", "").startswith(a_jid + "/") and p.get("type") is None, timeout=20)
    out(event="available", who="b", sender=p.get("from"))
    os.kill(int(a_server_pid), signal.SIGINT)
    try:
        p = await b.next_presence(lambda p: p.get("from", "").startswith(a_jid + "/") and p.get("type") == "unavailable", timeout=20)
        out(event="unavailable", who="b", sender=p.get("from"))
    except asyncio.TimeoutError:
        out(event="unavailable", who="b", sender="")
    b.disconnect()
    await asyncio.sleep(0.2)


async def attach(a_addr, a_jid, a_pw, b_addr, b_jid, b_pw, room_jid):
    """b makes ROOM at its server; a joins it from two clients: the room
    must see one occupant, and both clients everything said there."""
    b = await Client(b_addr, b_jid + "/desk", b_pw, "b").login()
    out(event="joined", who="b", **await join(b, room_jid, "Beta"))
    a1 = await Client(a_addr, a_jid + "/one", a_pw, "a1").login()
    a2 = await Client(a_addr, a_jid + "/two", a_pw, "a2").login()
    alpha = room_jid + "/Alpha"
    out(event="joined", who="a1", **await join(a1, room_jid, "Alpha"))
    seen = await b.next_presence(lambda p: p.get("from") == alpha)
    out(event="occupant", who="b", **muc_facts(seen))
    # The others' presence comes before the client's own (XEP-0045 §7.2.3).
    p = a2.make_presence(pto=alpha)
    ET.SubElement(p.xml, "{%s}x" % NS_MUC)
    p.send()
    others = []
    while True:
        got = await a2.next_presence(lambda p: p.get("from", "").startswith(room_jid + "/"))
        if got.get("from") == alpha:
            break
        others.append(got.get("from"))
    out(event="joined", who="a2", others=others, **muc_facts(got))
    b.send_message(mto=room_jid, mbody="to all of you", mtype="groupchat")
    for c in (a1, a2):
        got = await c.next_message(lambda m: body_of(m) == "to all of you")
        out(event="groupchat", who=c.label, **facts(got))
    a2.send_message(mto=room_jid, mbody="from the second client", mtype="groupchat")
    for c in (b, a1):
        got = await c.next_message(lambda m: body_of(m) == "from the second client")
        out(event="groupchat", who=c.label, **facts(got))
    a2.disconnect()
    await asyncio.sleep(1)
    more = []
    while not b.presences.empty():
        p = b.presences.get_nowait()
        if p.get("from") == alpha:
            more.append(muc_facts(p))
    out(event="after-a2-left", who="b", presences=more)
    p = a1.make_presence(pto=alpha, ptype="unavailable")
    p.send()
    gone = await b.next_presence(lambda p: p.get("from") == alpha and p.get("type") == "unavailable")
    out(event="left", who="b", **muc_facts(gone))
    a1.disconnect()
    b.disconnect()
    await asyncio.sleep(0.2)


async def roster(a_addr, a_jid, a_pw, b_addr, b_jid, b_pw):
    """a's roster item for b (b's server is not contacted)."""
    a = await Client(a_addr, a_jid + "/roster", a_pw, "a").login()
    await a.get_roster()
    if b_jid in a.client_roster:
        item = a.client_roster[b_jid]
        out(event="roster", who="a", contact=b_jid, subscription=item["subscription"], pending_out=bool(item["pending_out"]))
    else:
        out(event="roster", who="a", contact=b_jid, subscription="")
    a.disconnect()
    await asyncio.sleep(0.2)


async def stop_room(a_addr, a_jid, a_pw, b_addr, b_jid, b_pw, room_jid, a_server_pid):
    """a makes ROOM, b joins it from its server; a's server (PID) stops:
    b is told it is out."""
    a = await Client(a_addr, a_jid + "/one", a_pw, "a").login()
    b = await Client(b_addr, b_jid + "/desk", b_pw, "b").login()
    out(event="joined", who="a", **await join(a, room_jid, "Alpha"))
    out(event="joined", who="b", **await join(b, room_jid, "Beta"))
    os.kill(int(a_server_pid), signal.SIGINT)
    try:
        p = await b.next_presence(lambda p: p.get("from") == room_jid + "/Beta" and p.get("type") == "unavailable", timeout=20)
        out(event="out", who="b", **muc_facts(p))
    except asyncio.TimeoutError:
        out(event="out", who="b", codes=[])
    b.disconnect()
    await asyncio.sleep(0.2)


async def others(a_addr, a_jid, a_pw, b_addr, b_jid, b_pw, room_jid):
    """a joins ROOM: who else is in it."""
    a = await Client(a_addr, a_jid + "/one", a_pw, "a").login()
    me = room_jid + "/Alpha"
    p = a.make_presence(pto=me)
    ET.SubElement(p.xml, "{%s}x" % NS_MUC)
    p.send()
    seen = []
    while True:
        got = await a.next_presence(lambda p: p.get("from", "").startswith(room_jid + "/"))
        if got.get("from") == me:
            break
        if got.get("type") is None:
            seen.append(got.get("from"))
    out(event="joined", who="a", others=seen, **muc_facts(got))
    a.disconnect()
    await asyncio.sleep(0.2)


async def invite(a_addr, a_jid, a_pw, b_addr, b_jid, b_pw, room_jid):
    """a makes ROOM and invites b (mediated, XEP-0045 §7.8.2), who is at
    another server."""
    a = await Client(a_addr, a_jid + "/one", a_pw, "a").login()
    b = await Client(b_addr, b_jid + "/desk", b_pw, "b").login()
    b.send_presence()
    out(event="joined", who="a", **await join(a, room_jid, "Alpha"))
    m = a.make_message(mto=room_jid)
    x = ET.SubElement(m.xml, "{%s}x" % NS_MUC_USER)
    inv = ET.SubElement(x, "{%s}invite" % NS_MUC_USER, {"to": b_jid})
    ET.SubElement(inv, "{%s}reason" % NS_MUC_USER).text = "come to the hall"
    m.send()
    got = await b.next_message(lambda m: child(child(m, NS_MUC_USER, "x"), NS_MUC_USER, "invite") is not None)
    i = child(child(got, NS_MUC_USER, "x"), NS_MUC_USER, "invite")
    reason = child(i, NS_MUC_USER, "reason")
    out(event="invited", who="b", **{"from": got.get("from"), "by": i.get("from"), "reason": reason.text if reason is not None else None})
    a.disconnect()
    b.disconnect()
    await asyncio.sleep(0.2)


async def stop_joiner(a_addr, a_jid, a_pw, b_addr, b_jid, b_pw, room_jid, a_server_pid):
    """b makes ROOM at its server, a joins it from its own; a's server
    (PID) stops: b sees a leave."""
    b = await Client(b_addr, b_jid + "/desk", b_pw, "b").login()
    out(event="joined", who="b", **await join(b, room_jid, "Beta"))
    a = await Client(a_addr, a_jid + "/one", a_pw, "a").login()
    out(event="joined", who="a", **await join(a, room_jid, "Alpha"))
    os.kill(int(a_server_pid), signal.SIGINT)
    try:
        p = await b.next_presence(lambda p: p.get("from") == room_jid + "/Alpha" and p.get("type") == "unavailable", timeout=20)
        out(event="left", who="b", **muc_facts(p))
    except asyncio.TimeoutError:
        out(event="left", who="b", type="")
    b.disconnect()
    await asyncio.sleep(0.2)


async def host(a_addr, a_jid, a_pw, _b_addr, _b_jid, _b_pw, room_jid, n, body):
    """a makes ROOM, waits until N others are in it, and says BODY (b is
    not used: the others come from elsewhere)."""
    a = await Client(a_addr, a_jid + "/one", a_pw, "a").login()
    out(event="joined", who="a", **await join(a, room_jid, "Host"))
    seen = set()
    try:
        while len(seen) < int(n):
            p = await a.next_presence(lambda p: p.get("from", "").startswith(room_jid + "/") and p.get("type") is None, timeout=30)
            if p.get("from") != room_jid + "/Host":
                seen.add(p.get("from"))
    except asyncio.TimeoutError:
        pass
    a.send_message(mto=room_jid, mbody=body, mtype="groupchat")
    await a.next_message(lambda m: body_of(m) == body)
    out(event="said", who="a", seen=len(seen))
    a.disconnect()
    await asyncio.sleep(0.2)


async def say(a_addr, a_jid, a_pw, b_addr, b_jid, b_pw, timeout):
    """One chat message each way, each timed; over a link the test may
    have cut or throttled."""
    timeout = float(timeout)
    a = await Client(a_addr, a_jid + "/one", a_pw, "a").login()
    b = await Client(b_addr, b_jid + "/desk", b_pw, "b").login()
    for c in (a, b):
        c.send_presence()
    await asyncio.sleep(0.5)
    loop = asyncio.get_event_loop()

    async def first(c, pred):
        while True:
            m = await c.inbox.get()
            if pred(m):
                return m

    for sender, to, receiver in ((a, b_jid, b), (b, a_jid, a)):
        body = "%s to %s %s" % (sender.label, receiver.label, rand())
        start = loop.time()
        sender.send_message(mto=to, mbody=body, mtype="chat")
        arrived = asyncio.ensure_future(first(receiver, lambda m: body_of(m) == body and m.get("type") != "error"))
        bounced = asyncio.ensure_future(first(sender, lambda m: m.get("type") == "error" and m.get("from") == to))
        await asyncio.wait({arrived, bounced}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        fact = {"event": "said", "who": sender.label, "to": receiver.label, "arrived": False, "error": None}
        if bounced.done():
            fact["error"] = (error_of(bounced.result()) or {}).get("condition")
            fact["error_ms"] = round((loop.time() - start) * 1000)
            # Bounced and delivered too would be a bug: give it a moment.
            await asyncio.wait({arrived}, timeout=0.5)
        if arrived.done():
            fact["arrived"] = True
            fact["ms"] = round((loop.time() - start) * 1000) if not bounced.done() else None
        for f in (arrived, bounced):
            f.cancel()
        out(**fact)
    for c in (a, b):
        c.disconnect()
    await asyncio.sleep(0.2)


SCENARIOS = {"host": host, "say": say, "stop-joiner": stop_joiner, "invite": invite, "stop-room": stop_room, "others": others, "roster": roster, "attach": attach, "stop": stop, "chat": chat, "subscribe": subscribe, "iq": iq, "room": room, "ghost": ghost}

if __name__ == "__main__":
    if len(sys.argv) < 8 or sys.argv[1] not in SCENARIOS:
        sys.exit(__doc__)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(asyncio.wait_for(SCENARIOS[sys.argv[1]](*sys.argv[2:]), 120))
    except asyncio.TimeoutError:
        sys.exit("%s: timed out" % sys.argv[1])
