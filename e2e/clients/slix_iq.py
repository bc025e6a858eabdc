#!/usr/bin/python3
"""IQs between two accounts' clients, full JID to full JID, with slixmpp
answering its own disco#info (XEP-0030), software version (XEP-0092),
ping (XEP-0199), in-band bytestreams (XEP-0047) and entity capabilities
lookups (XEP-0115).

Usage: slix_iq.py PORT SCENARIO ARGS...

  between  A_JID PW B_JID PW
  mixed    A_JID PW PEER_FULL_JID   (with iq.mjs answer as the peer)

Earlier clients of both accounts ("a-first", "b-gone") make them contacts
both ways ("subscription" facts) and leave; then clients "a" and "b"
print, for each direction (who asks, to whom, ok, who answered):
"disco", "version", "ping"; "ibb" (the sender's side: size and SHA-256
of what it sent) and "ibb-received" (the receiver's: who opened, size,
SHA-256 and count of the blocks it got); "offline" for an IQ to a
resource that is not connected (the error's condition, type and from);
"caps-presence" (the caps a client saw in the other's presence),
"caps-info" (disco#info of node#ver asked by hand), "caps-asked" (the
lookups a client answered) and "caps-verified" (whether slixmpp's own
XEP-0115 plugin fetched and accepted the other's hash). One JSON object
per line on stdout: facts, not verdicts.
"""
import asyncio
import hashlib
import os

from slixmpp.exceptions import IqError, IqTimeout

from common import child, out, rand, run
from slix_chat import Client

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_CAPS = "http://jabber.org/protocol/caps"
NS_DATA = "jabber:x:data"
CAPS_NODE = "https://annals.im/e2e/slixmpp"
IBB_SIZE = 20 * 1024
IBB_BLOCK = 4096


def error_fields(e):
    if isinstance(e, IqError):
        return {"error": e.iq["error"]["condition"], "error_type": e.iq["error"]["type"], "sender": str(e.iq["from"])}
    return {"error": "timeout"}


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def make(jid, pw, resource, label):
    c = Client(jid, pw, resource, label, sm=False)
    c.register_plugin("xep_0092", pconfig={"software_name": "client-" + label, "version": "1"})
    c.register_plugin("xep_0199")
    c.register_plugin("xep_0047", pconfig={"auto_accept": True, "block_size": IBB_BLOCK})
    c.register_plugin("xep_0115", pconfig={"caps_node": CAPS_NODE})
    c.ibb_out = set()   # sids this client opened
    c.ibb_in = {}       # sid -> what came in on a stream the other opened
    c.caps_seen = {}    # full JID -> the caps in its last presence
    c.caps_asked = []   # disco#info lookups with a node this client was asked

    def on_ibb_start(stream):
        if stream.sid not in c.ibb_out:
            c.ibb_in[stream.sid] = {"from": str(stream.peer_jid), "chunks": 0,
                                    "task": asyncio.ensure_future(stream.gather(timeout=15))}

    def on_ibb_data(stream):
        if stream.sid in c.ibb_in:
            c.ibb_in[stream.sid]["chunks"] += 1

    def on_presence(p):
        caps = child(p.xml, NS_CAPS, "c")
        if caps is not None:
            c.caps_seen[str(p["from"])] = {"node": caps.get("node"), "hash": caps.get("hash"), "ver": caps.get("ver")}

    def asked(st):
        q = child(st.xml, NS_DISCO_INFO, "query")
        if st.xml.tag.endswith("}iq") and st.xml.get("type") == "get" and q is not None and q.get("node"):
            c.caps_asked.append({"from": st.xml.get("from"), "node": q.get("node")})
        return st

    c.add_event_handler("ibb_stream_start", on_ibb_start)
    c.add_event_handler("ibb_stream_data", on_ibb_data)
    c.add_event_handler("presence_available", on_presence)
    c.add_filter("in", asked)
    return c


async def ask(x, kind, to):
    """One IQ from client x to full JID to, and what came back."""
    fact = {"event": kind, "who": x.label, "to": to}
    try:
        if kind == "disco":
            iq = await x["xep_0030"].get_info(jid=to, timeout=10)
            fact["features"] = sorted(iq["disco_info"]["features"])
        elif kind == "version":
            iq = await x["xep_0092"].get_version(to, timeout=10)
            fact["name"] = iq["software_version"]["name"]
        else:
            iq = await x["xep_0199"].send_ping(to, timeout=10)
        fact.update(ok=True, sender=str(iq["from"]))
    except (IqError, IqTimeout) as e:
        fact.update(ok=False, **error_fields(e))
    out(**fact)


async def ibb(x, to):
    """x sends full JID to IBB_SIZE random bytes over an in-band
    bytestream of IBB_BLOCK-byte blocks, carried in IQs: open, data...,
    close. Returns the stream's id."""
    data = os.urandom(IBB_SIZE)
    sid = "ibb-" + rand()
    x.ibb_out.add(sid)
    fact = {"event": "ibb", "who": x.label, "to": to, "sid": sid, "size": len(data), "sha256": sha256(data),
            "block_size": IBB_BLOCK}
    try:
        stream = await x["xep_0047"].open_stream(to, sid=sid, block_size=IBB_BLOCK, timeout=10)
        await stream.sendall(data, timeout=10)
        await stream.close(timeout=10)
        fact.update(ok=True, sender=str(stream.peer_jid))
    except (IqError, IqTimeout) as e:
        fact.update(ok=False, **error_fields(e))
    out(**fact)
    return sid


async def ibb_received(y, sid):
    """What y received on stream sid."""
    got = {"event": "ibb-received", "who": y.label, "sid": sid}
    r = y.ibb_in.get(sid)
    if r is None:
        out(ok=False, error="no stream was opened", **got)
        return
    try:
        b = await asyncio.wait_for(r["task"], 15)
        out(ok=True, sender=r["from"], size=len(b), sha256=sha256(b), chunks=r["chunks"], **got)
    except (IqTimeout, asyncio.TimeoutError):
        out(ok=False, error="the stream was not closed", sender=r["from"], chunks=r["chunks"], **got)


async def offline(x, to):
    try:
        await x["xep_0030"].get_info(jid=to, timeout=5)
        out(event="offline", who=x.label, to=to, ok=True)
    except (IqError, IqTimeout) as e:
        out(event="offline", who=x.label, to=to, ok=False, **error_fields(e))


async def caps(x, peer, y=None):
    """What x learnt of the entity capabilities of full JID peer (client
    y, if in this process): the c element of its presence, whether x's
    caps plugin (which asks by itself on seeing the presence) verified
    the hash, and the disco#info of node#ver asked by hand."""
    for _ in range(40):
        if peer in x.caps_seen:
            break
        await asyncio.sleep(0.1)
    seen = x.caps_seen.get(peer)
    out(event="caps-presence", who=x.label, sender=peer, caps=seen)
    if not seen:
        return
    verified = False
    for _ in range(40):
        if await x["xep_0115"].get_verstring(peer) == seen["ver"]:
            verified = True
            break
        await asyncio.sleep(0.1)
    # The lookups y's client had answered by then: the plugin's own went
    # over the wire, as each client has only its own hash cached.
    answered = {"peer_answered": len(y.caps_asked)} if y else {}
    out(event="caps-verified", who=x.label, peer=peer, verified=verified, **answered)
    node = "%s#%s" % (seen["node"], seen["ver"])
    fact = {"event": "caps-info", "who": x.label, "to": peer, "node": node}
    try:
        iq = await x["xep_0030"].get_info(jid=peer, node=node, timeout=10)
        info = iq["disco_info"]
        fact.update(ok=True, sender=str(iq["from"]), answer_node=info["node"],
                    identities=[[i[0], i[1], i[2] or "", i[3] or ""] for i in info.get_identities(dedupe=False)],
                    features=list(info.get_features(dedupe=False)),
                    forms=len(info.xml.findall("{%s}x" % NS_DATA)))
    except (IqError, IqTimeout) as e:
        fact.update(ok=False, **error_fields(e))
    out(**fact)


async def subscribe(x, y):
    """A subscription both ways between x's and y's accounts, which the
    clients approve themselves (slixmpp's default)."""
    x.send_presence_subscription(pto=y.boundjid.bare, ptype="subscribe")
    for _ in range(50):
        if all(c.client_roster[d.boundjid.bare]["subscription"] == "both" for c, d in ((x, y), (y, x))):
            break
        await asyncio.sleep(0.1)
    for c, d in ((x, y), (y, x)):
        out(event="subscription", who=c.label, contact=d.boundjid.bare,
            subscription=c.client_roster[d.boundjid.bare]["subscription"])


async def between(port, ajid, apw, bjid, bpw):
    # Earlier clients of both accounts make them contacts, then leave:
    # juliet's is the resource no longer connected.
    first = make(ajid, apw, "laptop", "a-first")
    gone = make(bjid, bpw, "tablet", "b-gone")
    await first.login(port)
    await gone.login(port)
    await subscribe(first, gone)
    await first.close()
    await gone.close()
    a = make(ajid, apw, "desk", "a")
    b = make(bjid, bpw, "phone", "b")
    await a.login(port)
    await b.login(port)
    for x in (a, b):
        # Distinct identity names make distinct hashes: a client that had
        # the other's hash in its own cache would not need to ask.
        await x["xep_0030"].add_identity(category="client", itype="pc", name="annals-e2e-" + x.label)
        await x["xep_0115"].update_caps(broadcast=False)
    for x, y in ((a, b), (b, a)):
        to = y.boundjid.full
        for kind in ("disco", "version", "ping"):
            await ask(x, kind, to)
        await ibb_received(y, await ibb(x, to))
    await offline(a, gone.boundjid.full)
    await offline(b, a.boundjid.bare + "/nowhere")
    # Entity capabilities, as at login: each client announces its hash in
    # its initial presence (the plugin adds it). b learns a's from the
    # server's answer to its own initial presence (the probe), a learns
    # b's from b's broadcast to its contacts.
    a.send_presence()
    for _ in range(50):  # the server echoes a's presence once it has it
        if a.boundjid.full in a.caps_seen:
            break
        await asyncio.sleep(0.1)
    b.send_presence()
    for x, y in ((a, b), (b, a)):
        await caps(x, y.boundjid.full, y)
    for x in (a, b):
        out(event="caps-asked", who=x.label, asked=x.caps_asked)
    await a.close()
    await b.close()


async def mixed(port, ajid, apw, peer):
    """Client a asks peer, a client of another library already online
    and a contact, everything it asked in between, tells it "your turn"
    in a chat message, and waits for its "done" while it asks back."""
    a = make(ajid, apw, "desk", "a")
    await a.login(port)
    await a["xep_0030"].add_identity(category="client", itype="pc", name="annals-e2e-" + a.label)
    await a["xep_0115"].update_caps(broadcast=False)
    a.send_presence()
    for kind in ("disco", "version", "ping"):
        await ask(a, kind, peer)
    await ibb(a, peer)
    await caps(a, peer)
    a.send_message(mto=peer, mbody="your turn", mtype="chat")
    for _ in range(300):
        if any(m.get("from") == peer and m.get("body") == "done" for m in a.inbox):
            break
        await asyncio.sleep(0.1)
    for sid in list(a.ibb_in):
        await ibb_received(a, sid)
    out(event="caps-asked", who=a.label, asked=a.caps_asked)
    await a.close()


SCENARIOS = {"between": (between, 4), "mixed": (mixed, 3)}

if __name__ == "__main__":
    run(SCENARIOS, "slix_iq.py", 90)
