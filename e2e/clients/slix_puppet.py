"""slixmpp clients a Go test drives step by step, for scenarios whose
steps depend on things the test does between them (cutting a link).

Reads one JSON command per line on stdin:

  {"op": "login", "name": N, "addr": HOST:PORT, "jid": FULLJID, "password": P,
   "sm": B, "carbons": B}        (stream management, XEP-0198; carbons, XEP-0280)
  {"op": "chat", "name": N, "to": JID, "body": B}           (1:1; with sm, "done" once the
                                   server's <a h/> covers it: "acked" true)
  {"op": "subscribe", "name": N, "to": BAREJID}             (presence subscription; slixmpp
                                   clients approve and subscribe back on their own)
  {"op": "join", "name": N, "room": ROOM, "nick": NICK}
  {"op": "configure", "name": N, "room": ROOM}                (an instant room, XEP-0045 §10.1.2)
  {"op": "say", "name": N, "to": ROOM, "body": B}            (groupchat)
  {"op": "presence", "name": N, "to": JID, "show": S}        (directed presence)
  {"op": "leave", "name": N, "to": OCCUPANT}
  {"op": "admin", "name": N, "room": ROOM, "nick": NICK, "role": R}
  {"op": "admin", "name": N, "room": ROOM, "jid": JID, "affiliation": A}
  {"op": "mam", "name": N, "to": ARCHIVE, "with": JID, "groupchat": B}
                                   (all pages; "to" "" is the account's; groupchat: include-groupchat)
  {"op": "logout", "name": N}                                (the client disconnects)
  {"op": "quit"}

Each command may carry an "id", which its "done" fact repeats. Prints
one JSON fact per line on stdout: "ready", "done" (a command
finished, with its id), and every message and presence each client
receives ("message", "presence", "carbon" for a XEP-0280 copy), facts
the test waits for and checks.
"""
import asyncio
import json
import ssl
import sys
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from common import NS_CLIENT, NS_MAM, child, error_of, local, mam_query, out, stanza_ids

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = NS_MUC + "#user"
NS_MUC_ADMIN = NS_MUC + "#admin"
NS_MUC_OWNER = NS_MUC + "#owner"
NS_FORWARD = "urn:xmpp:forward:0"
NS_CARBONS = "urn:xmpp:carbons:2"


def body_of(m):
    for c in m:
        if local(c.tag) == "body":
            return c.text or ""
    return None


def muc_facts(p):
    x = child(p, NS_MUC_USER, "x")
    item = child(x, NS_MUC_USER, "item")
    return {"from": p.get("from"), "type": p.get("type", "available"),
            "codes": sorted(int(c.get("code")) for c in (x.findall("{%s}status" % NS_MUC_USER) if x is not None else [])),
            "affiliation": item.get("affiliation") if item is not None else None,
            "role": item.get("role") if item is not None else None,
            "show": (child(p, NS_CLIENT, "show").text or "") if child(p, NS_CLIENT, "show") is not None else "",
            "error": error_of(p) if p.get("type") == "error" else None}


class Puppet(slixmpp.ClientXMPP):
    def __init__(self, name, addr, jid, password, sm=False):
        super().__init__(jid, password)
        host, port = addr.rsplit(":", 1)
        self.addr = (host, int(port))
        self.name = self.label = name
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        for p in ("xep_0030", "xep_0199", "xep_0297", "xep_0359", "xep_0280"):
            self.register_plugin(p)
        if sm:
            self.register_plugin("xep_0198")
        self.mam_results = {}  # queryid -> [messages], for common.mam_query
        self.started = asyncio.get_event_loop().create_future()
        self.register_handler(Callback("puppet message", MatchXPath("{%s}message" % NS_CLIENT), self._on_message))
        self.register_handler(Callback("puppet presence", MatchXPath("{%s}presence" % NS_CLIENT), self._on_presence))
        self.add_event_handler("session_start", lambda _: self.started.done() or self.started.set_result(True))
        self.add_event_handler("failed_auth", lambda _: self.started.done() or self.started.set_result(False))
        self.add_event_handler("disconnected", lambda _: self.started.done() or self.started.set_result(False))

    def _on_message(self, m):
        res = child(m.xml, NS_MAM, "result")
        if res is not None:
            fwd = child(res, NS_FORWARD, "forwarded")
            for c in (fwd if fwd is not None else []):
                if local(c.tag) == "message":
                    self.mam_results.setdefault(res.get("queryid"), []).append(
                        {"from": c.get("from"), "body": body_of(c), "stanza_ids": stanza_ids(c)})
            return
        x = m.xml
        for kind in ("sent", "received"):
            w = child(x, NS_CARBONS, kind)
            if w is not None:
                fwd = child(w, NS_FORWARD, "forwarded")
                inner = next((c for c in (fwd if fwd is not None else []) if local(c.tag) == "message"), None)
                if inner is not None:
                    out(event="carbon", name=self.name, dir=kind, **{"from": inner.get("from"), "to": inner.get("to"),
                        "body": body_of(inner), "stanza_ids": stanza_ids(inner)})
                return
        out(event="message", name=self.name, **{"from": x.get("from"), "type": x.get("type", "normal"), "body": body_of(x),
            "subject": child(x, NS_CLIENT, "subject") is not None, "stanza_ids": stanza_ids(x),
            "delayed": child(x, "urn:xmpp:delay", "delay") is not None,
            "error": error_of(x) if x.get("type") == "error" else None})

    def _on_presence(self, p):
        out(event="presence", name=self.name, **muc_facts(p.xml))


async def mam(c, to, with_jid, groupchat=False):
    """Every message of an archive, oldest first, page by page;
    groupchat: include rooms' messages in the account's own archive."""
    fields = []
    if with_jid:
        fields.append(("with", [with_jid]))
    if groupchat:
        fields.append(("include-groupchat", ["true"]))
    got, after = [], None
    for _ in range(100):
        rsm = [("max", 100)] + ([("after", after)] if after else [])
        f = await mam_query(c, "puppet", to=to or None, fields=fields, rsm=rsm, timeout=20, report=False)
        if not f["ok"]:
            raise RuntimeError("mam: %s" % f.get("error"))
        got += f["results"]
        fin = f["fin"]
        if fin is None or fin["complete"] == "true" or not fin["last"]:
            break
        after = fin["last"]
    return got


async def chat(c, to, body):
    """Send one chat message; with stream management, wait (up to 30 s)
    until the server's <a h/> covers it, which on Annals means archived."""
    if "xep_0198" not in c.plugin:
        c.send_message(mto=to, mbody=body, mtype="chat")
        return False
    p = c["xep_0198"]
    # slixmpp counts a stanza when it leaves its queue: fix the target first.
    target = p.seq + 1
    c.send_message(mto=to, mbody=body, mtype="chat")
    for _ in range(600):
        if p.seq >= target and p.last_ack >= target:
            return True
        await asyncio.sleep(0.05)
        if p.seq >= target:
            p.request_ack()
    return False


async def run():
    clients = {}
    loop = asyncio.get_event_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out(event="ready")
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        op, name, cid = cmd["op"], cmd.get("name"), cmd.get("id")
        try:
            if op == "quit":
                break
            if op == "login":
                c = Puppet(name, cmd["addr"], cmd["jid"], cmd["password"], sm=cmd.get("sm", False))
                c.connect(address=c.addr)
                if not await asyncio.wait_for(c.started, 20):
                    raise RuntimeError("login failed")
                if cmd.get("carbons"):
                    await c["xep_0280"].enable(timeout=10)
                c.send_presence()
                clients[name] = c
                out(event="done", id=cid)
                continue
            c = clients[name]
            if op == "join":
                p = c.make_presence(pto=cmd["room"] + "/" + cmd["nick"])
                ET.SubElement(p.xml, "{%s}x" % NS_MUC)
                p.send()
                out(event="done", id=cid)
            elif op == "configure":
                iq = c.Iq()
                iq["type"], iq["to"] = "set", cmd["room"]
                q = ET.SubElement(iq.xml, "{%s}query" % NS_MUC_OWNER)
                ET.SubElement(q, "{jabber:x:data}x", {"type": "submit"})
                await iq.send(timeout=15)
                out(event="done", id=cid)
            elif op == "say":
                c.send_message(mto=cmd["to"], mbody=cmd["body"], mtype="groupchat")
                out(event="done", id=cid)
            elif op == "chat":
                acked = await chat(c, cmd["to"], cmd["body"])
                out(event="done", id=cid, acked=acked)
            elif op == "subscribe":
                c.send_presence(pto=cmd["to"], ptype="subscribe")
                out(event="done", id=cid)
            elif op == "presence":
                p = c.make_presence(pto=cmd["to"])
                if cmd.get("show"):
                    ET.SubElement(p.xml, "{%s}show" % NS_CLIENT).text = cmd["show"]
                p.send()
                out(event="done", id=cid)
            elif op == "leave":
                c.make_presence(pto=cmd["to"], ptype="unavailable").send()
                out(event="done", id=cid)
            elif op == "admin":
                iq = c.Iq()
                iq["type"], iq["to"] = "set", cmd["room"]
                q = ET.SubElement(iq.xml, "{%s}query" % NS_MUC_ADMIN)
                attrs = {k: cmd[k] for k in ("nick", "role", "jid", "affiliation") if cmd.get(k)}
                ET.SubElement(q, "{%s}item" % NS_MUC_ADMIN, attrs)
                await iq.send(timeout=15)
                out(event="done", id=cid)
            elif op == "logout":
                c.disconnect()
                del clients[name]
                out(event="done", id=cid)
            elif op == "mam":
                out(event="done", id=cid, messages=await mam(c, cmd.get("to"), cmd.get("with"), cmd.get("groupchat", False)))
            else:
                raise RuntimeError("unknown op " + op)
        except (IqError, IqTimeout, RuntimeError, asyncio.TimeoutError, KeyError) as e:
            err = error_of(e.iq.xml) if isinstance(e, IqError) else {"condition": type(e).__name__, "text": str(e)}
            out(event="done", id=cid, error=err)
    for c in clients.values():
        c.disconnect()
    await asyncio.sleep(0.3)


if __name__ == "__main__":
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(run())
