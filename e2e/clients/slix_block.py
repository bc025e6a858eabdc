#!/usr/bin/python3
"""Blocking (XEP-0191) with slixmpp's own plugin, xep_0191.

Usage: slix_block.py PORT SCENARIO ARGS...

  block  A_JID A_PW B_JID B_PW
  list   JID PW

block: clients a1 and a2 of account A and b of account B; the accounts
become contacts both ways ("subscription") and every client sends
presence. a1 asks disco#info of its server and its account ("disco").
a2 asks for the block list ("blocklist"); a1 blocks B
("blocked": a1's answer). Then, each fact tagged with the phase
("blocked", then "unblocked"): b sends A a chat message and A's client a
disco#info ("sent", "iq"), b changes its presence, a1 sends B a chat
message; then a1 asks its archive for the conversation with B ("mam").
a1 unblocks B and the same is done again. At the end a1 blocks
"spam.example" and "iago@shakespeare.example/phone" and a2 asks for the
list again. Every client's pushes ("push": block or unblock, the items),
the presence it got from the other account ("presence") and the
messages it got ("received", with the error's condition and whether it
carried <blocked/>) are printed per phase.

list: a client of the account asks for its block list ("blocklist").

One JSON object per line on stdout: facts, not verdicts.
"""
import asyncio

from slixmpp.exceptions import IqError, IqTimeout

from common import error_fact, mam_query, out, rand, run
from slix_chat import Client

NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"


def make(jid, pw, resource, label):
    c = Client(jid, pw, resource, label, sm=False)
    c.register_plugin("xep_0191")
    c.pushes = []      # (phase, "block"/"unblock", items)
    c.presences = []   # (phase, from, type, status)

    def on_push(kind):
        def handler(iq):
            c.pushes.append((c.phase, kind, sorted(str(j) for j in iq[kind]["items"])))
        return handler

    def on_presence(p):
        c.presences.append((c.phase, str(p["from"]), p["type"], p["status"]))

    c.add_event_handler("blocked", on_push("block"))
    c.add_event_handler("unblocked", on_push("unblock"))
    c.add_event_handler("presence", on_presence)
    return c


async def get_list(c):
    try:
        iq = await c["xep_0191"].get_blocked(timeout=10)
        out(event="blocklist", who=c.label, phase=c.phase, ok=True, items=sorted(str(j) for j in iq["blocklist"]["items"]))
    except (IqError, IqTimeout) as e:
        out(event="blocklist", who=c.label, phase=c.phase, ok=False,
            error=error_fact(e) if isinstance(e, IqError) else {"condition": "timeout"})


async def change(c, kind, jids):
    """c blocks or unblocks jids with the plugin, and says what came back."""
    fact = {"event": kind + "ed", "who": c.label, "phase": c.phase, "jids": jids}
    try:
        await getattr(c["xep_0191"], kind)(jids, timeout=10)
        out(ok=True, **fact)
    except (IqError, IqTimeout) as e:
        out(ok=False, error=error_fact(e) if isinstance(e, IqError) else {"condition": "timeout"}, **fact)


async def subscribe(x, y):
    x.send_presence_subscription(pto=y.boundjid.bare, ptype="subscribe")
    for _ in range(50):
        if all(c.client_roster[d.boundjid.bare]["subscription"] == "both" for c, d in ((x, y), (y, x))):
            break
        await asyncio.sleep(0.1)
    for c, d in ((x, y), (y, x)):
        out(event="subscription", who=c.label, contact=d.boundjid.bare,
            subscription=c.client_roster[d.boundjid.bare]["subscription"])


async def exchange(a1, a2, b, phase):
    """What b and a1 send each other in one phase, and what came of it."""
    clients = (a1, a2, b)
    a_bare, b_bare = a1.boundjid.bare, b.boundjid.bare
    n = rand()
    bid = b.chat(a_bare, "from b, %s %s" % (phase, n))
    out(event="sent", who=b.label, phase=phase, id=bid, to=a_bare, body="from b, %s %s" % (phase, n))
    try:
        iq = await b["xep_0030"].get_info(jid=a1.boundjid.full, timeout=10)
        out(event="iq", who=b.label, phase=phase, to=a1.boundjid.full, ok=True, sender=str(iq["from"]))
    except IqError as e:
        out(event="iq", who=b.label, phase=phase, to=a1.boundjid.full, ok=False, error=error_fact(e), sender=str(e.iq["from"]))
    except IqTimeout:
        out(event="iq", who=b.label, phase=phase, to=a1.boundjid.full, ok=False, error={"condition": "timeout"})
    b.send_presence(pstatus="b's status, %s" % phase)
    aid = a1.chat(b_bare, "from a1, %s %s" % (phase, n))
    out(event="sent", who=a1.label, phase=phase, id=aid, to=b_bare, body="from a1, %s %s" % (phase, n))
    await a1.settle(list(clients))
    for c in clients:
        for rec in c.inbox:
            if rec["phase"] == phase:
                out(event="received", who=c.label, **rec)
        for ph, frm, typ, status in c.presences:
            if ph == phase and not frm.startswith(c.boundjid.bare):
                out(event="presence", who=c.label, phase=phase, sender=frm, type=typ, status=status)
    fact = await mam_query(a1, phase, fields=[("with", [b_bare])], report=False)
    out(event="mam", who=a1.label, phase=phase, ok=fact["ok"], bodies=[r.get("body") for r in fact.get("results", [])])


async def block(port, ajid, apw, bjid, bpw):
    a1, a2, b = make(ajid, apw, "desk", "a1"), make(ajid, apw, "phone", "a2"), make(bjid, bpw, "orchard", "b")
    clients = (a1, a2, b)
    await asyncio.gather(*(c.login(port) for c in clients))
    await subscribe(a1, b)
    for c in clients:
        c.send_presence()
    await a1.settle(list(clients))
    for c in clients:
        c.phase = "start"
    for to in (a1.boundjid.domain, a1.boundjid.bare):
        try:
            iq = await a1["xep_0030"].get_info(jid=to, timeout=10)
            out(event="disco", who=a1.label, to=to, ok=True, features=sorted(iq["disco_info"]["features"]))
        except (IqError, IqTimeout) as e:
            out(event="disco", who=a1.label, to=to, ok=False, error=str(e))
    await get_list(a2)

    for c in clients:
        c.phase = "blocked"
    await change(a1, "block", [b.boundjid.bare])
    await exchange(a1, a2, b, "blocked")

    for c in clients:
        c.phase = "unblocked"
    await change(a1, "unblock", [b.boundjid.bare])
    await exchange(a1, a2, b, "unblocked")

    for c in clients:
        c.phase = "end"
    await change(a1, "block", ["spam.example", "iago@shakespeare.example/phone"])
    await a1.settle(list(clients))
    await get_list(a2)
    for c in clients:
        for ph, kind, items in c.pushes:
            out(event="push", who=c.label, phase=ph, kind=kind, items=items)
    await asyncio.gather(*(c.close() for c in clients))


async def list_(port, jid, pw):
    c = make(jid, pw, "again", "c")
    await c.login(port)
    await get_list(c)
    await c.close()


# slix_chat.Client records errors without the application condition:
# add whether <blocked/> came with it.
_client_on_message = Client._on_message


def _on_message(self, msg):
    _client_on_message(self, msg)
    if self.inbox and msg.xml.get("type") == "error" and self.inbox[-1].get("id") == msg.xml.get("id"):
        err = [c for c in msg.xml if c.tag.endswith("}error")]
        self.inbox[-1]["blocked"] = bool(err) and err[0].find("{%s}blocked" % NS_BLOCKING_ERRORS) is not None


Client._on_message = _on_message

SCENARIOS = {"block": (block, 4), "list": (list_, 2)}

if __name__ == "__main__":
    run(SCENARIOS, "slix_block.py", 120)
