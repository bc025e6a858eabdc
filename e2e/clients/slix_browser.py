#!/usr/bin/python3
"""The slixmpp side of the browser test: the peer a Converse.js user
(e2e/clients/browser/converse.mjs) talks to.

Usage: slix_browser.py PORT peer JID PW BROWSER_JID ROOM NICK REPLY HISTORY...

Logs in as JID, joins ROOM as NICK (making it an instant room if it is
new) and says each HISTORY line there, then prints "ready" (its first
fact). It waits for
a chat message from BROWSER_JID (bare), prints it ("received") and
answers REPLY ("replied"); then waits for the next chat message from
BROWSER_JID that names a URL (XEP-0066 out-of-band data, or the body),
prints it ("file-message") and downloads it with an HTTP GET ("download":
status, content_type, size, sha256; the server's certificate is not
checked, it is the test's own on 127.0.0.1).

Prints one JSON object per line on stdout: facts, not verdicts. Exits 0
when the scenario ran, non-zero (message on stderr) when it could not.
"""
import asyncio
import hashlib
import ssl
import urllib.request
import xml.etree.ElementTree as ET

import slixmpp

from common import Fatal, error_of, out, run

NS_OOB = "jabber:x:oob"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = NS_MUC + "#user"
NS_MUC_OWNER = NS_MUC + "#owner"
NS_DATA = "jabber:x:data"


class Peer(slixmpp.ClientXMPP):
    def __init__(self, jid, password):
        super().__init__(jid, password)
        # The test server's certificate is self-signed.
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.started = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", lambda _: self.started.done() or self.started.set_result(True))
        self.add_event_handler("failed_auth", lambda _: self.started.done() or self.started.set_result(False))
        self.add_event_handler("disconnected", lambda _: self.started.done() or self.started.set_result(False))
        self.chats = asyncio.Queue()
        self.add_event_handler("message", self.on_message)
        self.room_presence = asyncio.Queue()
        self.add_event_handler("presence", self.on_presence)

    def on_message(self, m):
        if m["type"] in ("chat", "normal") and m["body"]:
            self.chats.put_nowait(m)

    def on_presence(self, p):
        if p.xml.find("{%s}x" % NS_MUC_USER) is not None or p["type"] == "error":
            self.room_presence.put_nowait(p)


def url_of(m):
    """The URL a file message names: its XEP-0066 <x><url/>, else its body
    when that is one URL."""
    x = m.xml.find("{%s}x" % NS_OOB)
    if x is not None:
        u = x.find("{%s}url" % NS_OOB)
        if u is not None and u.text:
            return u.text.strip(), "oob"
    body = (m["body"] or "").strip()
    if body.startswith(("http://", "https://")) and " " not in body:
        return body, "body"
    return None, None


def download(url):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(url, context=ctx, timeout=15) as r:
        data = r.read()
        return r.status, r.headers.get("Content-Type"), data


async def join_room(c, room, nick):
    """Join room as nick; a new (locked, 201) room becomes an instant room."""
    pres = c.make_presence(pto="%s/%s" % (room, nick))
    pres.append(ET.Element("{%s}x" % NS_MUC))
    pres.send()
    while True:
        p = await asyncio.wait_for(c.room_presence.get(), 15)
        if p["type"] == "error":
            raise Fatal("join %s: %s" % (room, error_of(p.xml)))
        x = p.xml.find("{%s}x" % NS_MUC_USER)
        codes = [int(s.get("code")) for s in x.findall("{%s}status" % NS_MUC_USER)]
        if 110 in codes:
            break
    if 201 in codes:
        iq = c.Iq()
        iq["type"] = "set"
        iq["to"] = room
        q = ET.SubElement(iq.xml, "{%s}query" % NS_MUC_OWNER)
        ET.SubElement(q, "{%s}x" % NS_DATA, {"type": "submit"})
        await iq.send(timeout=15)
    return 201 in codes


async def next_chat_from(c, bare):
    while True:
        m = await c.chats.get()
        if m["from"].bare == bare:
            return m


async def peer(port, jid, password, browser_jid, room, nick, reply, *history):
    c = Peer(jid, password)
    c.connect(address=("127.0.0.1", int(port)))
    if not await asyncio.wait_for(c.started, 20):
        raise Fatal("%s: login failed" % jid)
    c.send_presence()
    created = await join_room(c, room, nick)
    for h in history:
        c.send_message(mto=room, mbody=h, mtype="groupchat")
    await asyncio.sleep(0.5)  # let the room store them before anyone joins
    out(event="ready", jid=str(c.boundjid.full), room=room, nick=nick, created=created, history=list(history))

    m = await next_chat_from(c, browser_jid)
    out(event="received", id=m["id"], type=m["type"], sender=str(m["from"]), to=str(m["to"]), body=m["body"])
    c.send_message(mto=m["from"], mbody=reply, mtype="chat")
    out(event="replied", to=str(m["from"]), body=reply)

    while True:
        m = await next_chat_from(c, browser_jid)
        url, where = url_of(m)
        if url:
            break
        out(event="received", id=m["id"], type=m["type"], sender=str(m["from"]), to=str(m["to"]), body=m["body"])
    out(event="file-message", id=m["id"], sender=str(m["from"]), body=m["body"], url=url, url_in=where)
    try:
        status, ctype, data = await asyncio.get_event_loop().run_in_executor(None, download, url)
        out(event="download", url=url, status=status, content_type=ctype, size=len(data),
            sha256=hashlib.sha256(data).hexdigest())
    except Exception as e:  # the test reads the failure as a fact
        out(event="download", url=url, error=str(e))
    c.disconnect()
    await asyncio.sleep(0.2)


run({"peer": (peer, 6)}, "slix_browser.py", 170)
