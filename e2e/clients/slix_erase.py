#!/usr/bin/python3
"""Content for the erasure test (e2e/erase_test.go) to erase, written
with slixmpp, and sessions that wait for the server to end them.

Usage: slix_erase.py PORT SCENARIO ARGS...

  write PW ALICE BOB ROOM
  hold  PW JID RESOURCE...

write: ALICE and BOB (password PW) write each other two chat messages
each; ALICE makes ROOM, BOB joins it, each posts there and sees the
other's post; each publishes a XEP-0402 bookmark of ROOM (a name and a
password) and sets a vCard. Every text is distinctive (ALICE-SECRET-1,
BOB-WORDS-2, ...): a "wrote" fact per account lists them, for the test
to look for byte by byte (its messages, which the archive keeps in the
clear; its bookmark's password, kept in the clear beside the log; what
is only in the log, sealed: the bookmark's name and the vCard); a "step"
fact per publication says it was accepted.

hold: logs JID in with each RESOURCE, prints "ready", then waits (at
most 30 s) for the server to end each session: an "ended" fact each,
with the stream error's condition.
"""
import asyncio
import xml.etree.ElementTree as ET

from common import Fatal, out, run
import slix_adhoc
from slix_state import NS_BOOKMARKS, NS_MUC, WAIT, join, must_login, options, step


async def seen(c, test, what):
    for _ in range(WAIT * 10):
        if test():
            return
        await asyncio.sleep(0.1)
    raise Fatal("%s never saw %s" % (c.label, what))


async def write(port, pw, alice, bob, room):
    a = await must_login(port, alice + "/desk", pw, "alice")
    b = await must_login(port, bob + "/phone", pw, "bob")
    words = {alice: ["ALICE-SECRET-1", "ALICE-SECRET-2"], bob: ["BOB-WORDS-1", "BOB-WORDS-2"]}
    chats = {a.label: [], b.label: []}
    for c in (a, b):
        c.add_event_handler("message", lambda m, c=c: m["type"] == "chat" and chats[c.label].append(m["body"]))
    for i in range(2):
        a.send_message(mto=bob, mbody=words[alice][i], mtype="chat")
        b.send_message(mto=alice, mbody=words[bob][i], mtype="chat")
    await seen(b, lambda: set(words[alice]) <= set(chats["bob"]), words[alice])
    await seen(a, lambda: set(words[bob]) <= set(chats["alice"]), words[bob])

    await join(a, room, "alice")
    cfg = a.make_iq_set(ito=room)
    ET.SubElement(ET.SubElement(cfg.xml, "{%s#owner}query" % NS_MUC), "{jabber:x:data}x", {"type": "submit"})
    await step("room", cfg.send(timeout=WAIT))
    await join(b, room, "bob")
    posts = {alice: "ALICE-ROOM-1", bob: "BOB-ROOM-1"}
    a.send_message(mto=room, mbody=posts[alice], mtype="groupchat")
    b.send_message(mto=room, mbody=posts[bob], mtype="groupchat")
    for c in (a, b):
        await seen(c, lambda c=c: set(posts.values()) <= {body for body, _ in c.groupchat}, posts)

    for c, jid, who in ((a, alice, "ALICE"), (b, bob, "BOB")):
        name, password, fn = who + "-BOOKMARK-NAME", who + "-BOOKMARK-PASSWORD", who + "-VCARD-FN"
        conf = ET.Element("{%s}conference" % NS_BOOKMARKS, {"name": name, "autojoin": "true"})
        ET.SubElement(conf, "{%s}nick" % NS_BOOKMARKS).text = who.lower()
        ET.SubElement(conf, "{%s}password" % NS_BOOKMARKS).text = password
        await step(who.lower() + " bookmark", c["xep_0060"].publish(
            jid, NS_BOOKMARKS, id=room, payload=conf,
            options=options([("pubsub#access_model", "whitelist"), ("pubsub#max_items", "max")]), timeout=WAIT))
        v = c["xep_0054"].make_vcard()
        v["FN"] = fn
        await step(who.lower() + " vcard", c["xep_0054"].publish_vcard(v, timeout=WAIT))
        out(event="wrote", who=jid, messages=words[jid] + [posts[jid]], password=password, sealed=[name, fn])
    for c in (a, b):
        c.disconnect()
    await asyncio.sleep(0.3)


async def hold(port, pw, jid, *resources):
    cs = []
    for r in resources:
        c = slix_adhoc.Client("127.0.0.1:%s" % port, "%s/%s" % (jid, r), pw, r)
        if not await c.login():
            raise Fatal("%s/%s could not log in" % (jid, r))
        cs.append(c)
    out(event="ready", who=jid, resources=list(resources))
    for c in cs:
        try:
            await asyncio.wait_for(asyncio.shield(c.futs["disconnected"]), 30)
            out(event="ended", who=c.label, ok=True, condition=c.condition)
        except asyncio.TimeoutError:
            out(event="ended", who=c.label, ok=False, condition=None)
            c.abort()


SCENARIOS = {"write": (write, 4), "hold": (hold, 3)}

if __name__ == "__main__":
    run(SCENARIOS, "slix_erase.py", 60)
