#!/usr/bin/python3
"""Drive accounts on two federated servers of any make (Annals, Prosody,
ejabberd) with slixmpp: each client logs in to its own server, and what
one sends must cross the s2s link. Only what every server does: no
archives, no carbons (slix_fed.py checks Annals' own).

Usage: slix_peers.py SCENARIO A_ADDR A_JID A_PW B_ADDR B_JID B_PW [ROOM]

  ADDR is HOST:PORT of the user's own server (c2s).

  chat       a sends b a chat message, b answers
  subscribe  a asks b for a subscription; both approve and ask back
  room       a creates ROOM (an instant room), b joins; each says a line

Prints one JSON object per line on stdout: facts, not verdicts. Exits 0
when the scenario ran, non-zero (message on stderr) when it could not.
Facts: login (who, jid); received (who, sender, to, type, body); error
(who, sender, condition); presence-seen (who, sender); roster (who,
contact, subscription, pending_out); joined (who, room, codes, error);
groupchat (who, sender, body). A message bounced back ends the wait for
it.
"""
import asyncio
import logging
import ssl
import sys
import xml.etree.ElementTree as ET

import slixmpp

from common import Fatal, error_fact, error_of, out
from slixmpp.exceptions import IqError, IqTimeout

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = NS_MUC + "#user"
NS_MUC_OWNER = NS_MUC + "#owner"
NS_DATA = "jabber:x:data"
# Across servers the first stanza waits for the s2s stream (TCP, TLS,
# dialback or EXTERNAL): give it more than a local hop.
WAIT = 20


class Client(slixmpp.ClientXMPP):
    def __init__(self, addr, jid, password, label):
        host, port = addr.rsplit(":", 1)
        super().__init__(jid, password)
        self.label, self.addr = label, (host, int(port))
        # The peers' certificates come from the test's own CA.
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0045")
        self.started = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", lambda _: self.started.done() or self.started.set_result(True))
        self.add_event_handler("failed_auth", lambda _: self.started.done() or self.started.set_result(False))
        self.add_event_handler("disconnected", lambda _: self.started.done() or self.started.set_result(False))
        # Set by the first message bounced back: nothing waits for the
        # message any longer.
        self.bounced = asyncio.get_event_loop().create_future()
        self.add_event_handler("message_error", self._on_error)

    def _on_error(self, m):
        e = error_of(m.xml) or {}
        out(event="error", who=self.label, sender=str(m["from"]), condition=e.get("condition", ""))
        if not self.bounced.done():
            self.bounced.set_result(e)

    async def login(self):
        self.connect(address=self.addr)
        try:
            ok = await asyncio.wait_for(self.started, WAIT)
        except asyncio.TimeoutError:
            ok = False
        if not ok:
            raise Fatal("%s: login to %s:%d failed" % (self.label, *self.addr))
        out(event="login", who=self.label, jid=str(self.boundjid.full))
        self.send_presence()


async def both(a_args, b_args):
    a, b = Client(*a_args, "a"), Client(*b_args, "b")
    await asyncio.gather(a.login(), b.login())
    return a, b


async def bye(*cs):
    for c in cs:
        c.disconnect()
    await asyncio.sleep(0.2)


async def first(fut, sender=None):
    """fut's result, or None after WAIT or once sender's message bounced."""
    waits = [fut] + ([sender.bounced] if sender else [])
    await asyncio.wait(waits, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
    return fut.result() if fut.done() else None


async def chat(a_args, b_args):
    a, b = await both(a_args, b_args)
    loop = asyncio.get_event_loop()
    got = {"a": loop.create_future(), "b": loop.create_future()}

    def on(who):
        def h(m):
            if m["type"] in ("chat", "normal") and m["body"] and not got[who].done():
                got[who].set_result(m)
        return h
    a.add_event_handler("message", on("a"))
    b.add_event_handler("message", on("b"))
    for sender, to, who, body in ((a, b, "b", "across the border"), (b, a, "a", "and back again")):
        sender.send_message(mto=to.boundjid.full, mbody=body, mtype="chat")
        m = await first(got[who], sender)
        if m is None:
            out(event="received", who=who, sender="", to="", type="", body=None)
            continue
        out(event="received", who=who, sender=str(m["from"]), to=str(m["to"]), type=m["type"], body=m["body"])
    await bye(a, b)


async def subscribe(a_args, b_args):
    """slixmpp approves a request and asks back by default, so one request
    from a ends with a subscription both ways."""
    a, b = await both(a_args, b_args)
    loop = asyncio.get_event_loop()
    seen = {"a": loop.create_future(), "b": loop.create_future()}

    def watcher(who, other):
        def on(p):
            if p["from"].bare == other.boundjid.bare and not seen[who].done():
                seen[who].set_result(str(p["from"]))
        return on
    a.add_event_handler("presence_available", watcher("a", b))
    b.add_event_handler("presence_available", watcher("b", a))
    a.send_presence_subscription(pto=b.boundjid.bare, ptype="subscribe")
    for who in ("a", "b"):
        out(event="presence-seen", who=who, sender=await first(seen[who]) or "")
    # The last <subscribed/> may still be crossing when the presences are in.
    await asyncio.sleep(0.5)
    for who, c, other in (("a", a, b), ("b", b, a)):
        await c.get_roster()
        item = c.client_roster[other.boundjid.bare]
        out(event="roster", who=who, contact=other.boundjid.bare, subscription=item["subscription"],
            pending_out=bool(item["pending_out"]))
    await bye(a, b)


async def join(c, room, nick):
    """Send the MUC join presence and wait for the self-presence (or an
    error); returns the status codes."""
    loop = asyncio.get_event_loop()
    done = loop.create_future()

    def on(p):
        if p["from"].bare != room or done.done():
            return
        x = p.xml.find("{%s}x" % NS_MUC_USER)
        codes = sorted(int(s.get("code")) for s in x.findall("{%s}status" % NS_MUC_USER)) if x is not None else []
        if p["type"] == "error":
            done.set_result({"codes": codes, "error": (error_of(p.xml) or {}).get("condition", "?")})
        elif p["from"].resource == nick and 110 in codes:
            done.set_result({"codes": codes, "error": None})
    c.add_event_handler("presence", on)
    pres = c.make_presence(pto="%s/%s" % (room, nick))
    ET.SubElement(pres.xml, "{%s}x" % NS_MUC)
    pres.send()
    r = await first(done)
    c.del_event_handler("presence", on)
    r = r or {"codes": [], "error": "timeout"}
    out(event="joined", who=c.label, room=room, **r)
    return r


async def room(a_args, b_args, room_jid):
    a, b = await both(a_args, b_args)
    loop = asyncio.get_event_loop()
    said = {"a": loop.create_future(), "b": loop.create_future()}

    def hearer(who, body):
        def on(m):
            if m["type"] == "groupchat" and m["from"].bare == room_jid and m["body"] == body and not said[who].done():
                said[who].set_result(m)
        return on
    r = await join(a, room_jid, "a")
    if r["error"]:
        return await bye(a, b)
    if 201 in r["codes"]:
        # A new room stays locked until its owner configures it
        # (XEP-0045 §10.1.2): accept the default configuration.
        iq = a.make_iq_set(ito=room_jid)
        q = ET.SubElement(iq.xml, "{%s}query" % NS_MUC_OWNER)
        ET.SubElement(q, "{%s}x" % NS_DATA, {"type": "submit"})
        try:
            await iq.send(timeout=WAIT)
        except (IqError, IqTimeout) as e:
            out(event="error", who="a", sender=room_jid, condition=error_fact(e)["condition"] if isinstance(e, IqError) else "timeout")
            return await bye(a, b)
    r = await join(b, room_jid, "b")
    if r["error"]:
        return await bye(a, b)
    a.add_event_handler("groupchat_message", hearer("a", "from the guest"))
    b.add_event_handler("groupchat_message", hearer("b", "from the host"))
    for sender, who, body in ((a, "b", "from the host"), (b, "a", "from the guest")):
        sender.send_message(mto=room_jid, mbody=body, mtype="groupchat")
        m = await first(said[who], sender)
        out(event="groupchat", who=who, sender=str(m["from"]) if m else "", body=m["body"] if m else None)
    await bye(a, b)


# Each scenario and the arguments it takes past the two accounts.
SCENARIOS = {"chat": (chat, 0), "subscribe": (subscribe, 0), "room": (room, 1)}


def main():
    logging.basicConfig(level=logging.CRITICAL)
    if len(sys.argv) < 2 or sys.argv[1] not in SCENARIOS:
        sys.exit("usage: slix_peers.py {%s} A_ADDR A_JID A_PW B_ADDR B_JID B_PW [ROOM]" % "|".join(SCENARIOS))
    scenario, args = sys.argv[1], sys.argv[2:]
    fn, extra = SCENARIOS[scenario]
    if len(args) != 6 + extra:
        sys.exit("%s needs %d arguments" % (scenario, 6 + extra))
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(asyncio.wait_for(fn(args[0:3], args[3:6], *args[6:]), 90))
    except Fatal as e:
        sys.exit(str(e))
    except asyncio.TimeoutError:
        sys.exit("%s: timed out" % scenario)


if __name__ == "__main__":
    main()
