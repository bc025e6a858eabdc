#!/usr/bin/python3
"""Hostile input against a server, with slixmpp as the victim's client
(its parser is expat: strict and namespace-aware, as clients are).

Usage: slix_hostile.py PORT SCENARIO ARGS...

  xml  ATTACKER_JID PW VICTIM_JID PW ROOM_JID

xml: the attacker sends stanzas that are not namespace-well-formed XML
(undeclared prefixes, duplicate attributes, comments, processing
instructions, DOCTYPEs, bad names) to the victim and to a room, each on a
fresh login. Facts: "attack" (name, disconnected, condition) for each,
then a well-formed but prefix-heavy message and a plain one; "victim"
(still connected, bodies received, the child tags of the prefixed one),
"victim-archive" (bodies in the victim's archive) and "room-history"
(bodies replayed to the victim when it joins the room afterwards).

Prints one JSON object per line on stdout: facts, not verdicts.
"""
import asyncio

import slixmpp

from common import Fatal, out, run
from slix_chat import Client

NS_MUC = "http://jabber.org/protocol/muc"

# name -> a stanza with {to} for the addressee; each is sent as is.
ATTACKS = [
    ("undeclared-prefix", "<message to='{to}' type='{t}' id='a1'><body>a1</body><foo:bar/></message>"),
    ("undeclared-attr-prefix", "<message to='{to}' type='{t}' id='a2'><body foo:x='1'>a2</body></message>"),
    ("duplicate-attr", "<message to='{to}' type='{t}' id='a3'><body x='1' x='2'>a3</body></message>"),
    ("duplicate-stanza-attr", "<message to='{to}' type='{t}' id='a4' id='a5'><body>a4</body></message>"),
    ("comment", "<message to='{to}' type='{t}' id='a6'><body>a6<!-- c --></body></message>"),
    ("processing-instruction", "<message to='{to}' type='{t}' id='a7'><body>a7</body><?pi x?></message>"),
    ("doctype", "<message to='{to}' type='{t}' id='a8'><body>a8</body><!DOCTYPE x></message>"),
    ("colon-name", "<message to='{to}' type='{t}' id='a9'><body>a9</body><:x xmlns='urn:x'/></message>"),
    ("empty-prefix-binding", "<message to='{to}' type='{t}' id='a10'><body>a10</body><p:x xmlns:p=''/></message>"),
]

TRICKY = ("<message xmlns:r='urn:xmpp:receipts' xmlns:e='urn:example:e' to='{to}' type='chat' id='tricky'>"
          "<body>tricky &amp; fine</body><r:request/><e:data e:k='v'>1</e:data></message>")


class Victim(Client):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.tricky_tags = None
        self.add_event_handler("message", self._tags)

    def _tags(self, msg):
        if msg["id"] == "tricky":
            self.tricky_tags = [c.tag for c in msg.xml]


class Attacker(Client):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.condition = None
        self.add_event_handler("stream_error", self._stream_error)

    def _stream_error(self, err):
        self.condition = err["condition"]


async def attack(port, jid, pw, name, raw, before=()):
    a = Attacker(jid, pw, "atk-" + name, "attacker", sm=False)
    await a.login(port)
    for r in before:
        a.send_raw(r)
        await asyncio.sleep(0.3)
    a.send_raw(raw)
    try:
        await asyncio.wait_for(a.futs["disconnected"], 10)
        gone = True
    except asyncio.TimeoutError:
        gone = False
        await a.close()
    out(event="attack", name=name, disconnected=gone, condition=a.condition)


async def xml(port, ajid, apw, vjid, vpw, room):
    v = Victim(vjid, vpw, "victim", "victim", sm=False)
    await v.login(port)
    v.send_presence()
    anick = slixmpp.JID(ajid).user

    # The room exists and is open before the attacks: the attacker joins
    # it (creating it) and submits the instant configuration.
    setup = Attacker(ajid, apw, "setup", "attacker", sm=False)
    await setup.login(port)
    setup.send_raw("<presence to='%s/%s'><x xmlns='%s'/></presence>" % (room, anick, NS_MUC))
    await asyncio.sleep(0.5)
    setup.send_raw("<iq type='set' to='%s' id='cfg'><query xmlns='%s#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>"
                   % (room, NS_MUC))
    await asyncio.sleep(0.5)
    setup.send_raw("<message to='%s' type='groupchat' id='r0'><body>room-before</body></message>" % room)
    await asyncio.sleep(0.5)
    await setup.close()

    for name, tmpl in ATTACKS:
        await attack(port, ajid, apw, name, tmpl.format(to=vjid, t="chat"))
        await attack(port, ajid, apw, "room-" + name, tmpl.format(to=room, t="groupchat"),
                     before=["<presence to='%s/%s'><x xmlns='%s'/></presence>" % (room, anick, NS_MUC)])

    a = Attacker(ajid, apw, "fine", "attacker", sm=False)
    await a.login(port)
    a.send_raw(TRICKY.format(to=vjid))
    a.send_raw("<message to='%s' type='chat' id='end'><body>end</body></message>" % vjid)
    a.send_raw("<presence to='%s/%s'><x xmlns='%s'/></presence>" % (room, anick, NS_MUC))
    await asyncio.sleep(0.5)
    a.send_raw("<message to='%s' type='groupchat' id='r1'><body>room-after</body></message>" % room)
    await v.settle(quiet=1.5, cap=10)
    out(event="attacker-after", connected=not a.futs["disconnected"].done())
    await a.close()

    out(event="victim", connected=not v.futs["disconnected"].done(),
        bodies=[r.get("body") for r in v.inbox if r.get("body") is not None],
        tricky_tags=v.tricky_tags)
    fact = await v.mam("all", report=False)
    out(event="victim-archive", ok=fact["ok"], bodies=[r.get("body") for r in fact["results"]])

    # Joining the room replays its history to the victim's parser.
    v.inbox.clear()
    v.send_raw("<presence to='%s/victim'><x xmlns='%s'><history maxstanzas='50'/></x></presence>" % (room, NS_MUC))
    await v.settle(quiet=1.5, cap=10)
    out(event="room-history", connected=not v.futs["disconnected"].done(),
        bodies=[r.get("body") for r in v.inbox if r.get("type") == "groupchat" and r.get("body") is not None])
    await v.close()


SCENARIOS = {"xml": (xml, 5)}

if __name__ == "__main__":
    run(SCENARIOS, "slix_hostile.py", 140)
