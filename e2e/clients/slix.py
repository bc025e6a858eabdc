#!/usr/bin/python3
"""Drive Annals with slixmpp, a third-party XMPP client library.

Usage: slix.py PORT SCENARIO ARGS...
Prints one JSON object per line; the Go tests in e2e/ read them.
"""
import asyncio
import json
import logging
import ssl
import sys

import slixmpp


def out(**kw):
    print(json.dumps(kw), flush=True)


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, mech=None):
        super().__init__(jid, password, sasl_mech=mech)
        # The server's certificate is self-signed in tests.
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0199")
        self.started = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", lambda _: self.started.done() or self.started.set_result(True))
        self.add_event_handler("failed_auth", lambda _: self.started.done() or self.started.set_result(False))
        self.add_event_handler("disconnected", lambda _: self.started.done() or self.started.set_result(False))

    async def login(self, port):
        self.connect(address=("127.0.0.1", port))
        return await asyncio.wait_for(self.started, 20)


async def login(port, jid, password, mech):
    c = Client(jid, password, mech)
    ok = await c.login(port)
    out(event="login", ok=ok, jid=str(c.boundjid.full) if ok else "",
        mech=mech, tls=bool(getattr(c, "is_secure", False) or c.socket is not None and hasattr(c.socket, "cipher")))
    if ok:
        rtt = await c["xep_0199"].ping(jid=c.boundjid.domain, timeout=10)
        out(event="ping", rtt=rtt)
        info = await c["xep_0030"].get_info(jid=c.boundjid.domain, timeout=10)
        out(event="disco", features=sorted(info["disco_info"]["features"]))
        try:
            await c["xep_0030"].get_items(jid="nobody@" + c.boundjid.domain + "/x", timeout=10)
            out(event="unknown-iq", error="")
        except slixmpp.exceptions.IqError as e:
            out(event="unknown-iq", error=e.iq["error"]["condition"])
    c.disconnect()
    await asyncio.sleep(0.2)


async def converse(port, a_jid, a_pw, b_jid, b_pw):
    a, b = Client(a_jid, a_pw), Client(b_jid, b_pw)
    got = asyncio.get_event_loop().create_future()
    b.add_event_handler("message", lambda m: got.done() or got.set_result(m))
    if not (await b.login(port) and await a.login(port)):
        out(event="converse", error="login failed")
        return
    # A spoofed from must be overwritten by the server.
    a.send_message(mto=b.boundjid.full, mbody="wherefore art thou", mtype="chat", mfrom="tybalt@localhost/x")
    m = await asyncio.wait_for(got, 10)
    out(event="received", sender=str(m["from"]), body=m["body"], to=str(m["to"]), sent_by=str(a.boundjid.full))
    errors = asyncio.Queue()
    a.add_event_handler("message_error", errors.put_nowait)
    a.send_message(mto="nobody@localhost", mbody="anyone?", mtype="chat")
    a.send_message(mto="someone@elsewhere.example", mbody="hello?", mtype="chat")
    for _ in range(2):
        e = await asyncio.wait_for(errors.get(), 10)
        out(event="error", sender=str(e["from"]), condition=e["error"]["condition"])
    a.disconnect()
    b.disconnect()
    await asyncio.sleep(0.2)


async def subscribe(port, a_jid, a_pw, b_jid, b_pw):
    """a asks b for a subscription; both clients approve and ask back, as
    slixmpp does by default; each must then see the other's presence."""
    a, b = Client(a_jid, a_pw), Client(b_jid, b_pw)
    seen = {"a": asyncio.get_event_loop().create_future(), "b": asyncio.get_event_loop().create_future()}

    def watcher(who, other):
        def on(p):
            if p["from"].bare == other and not seen[who].done():
                seen[who].set_result(str(p["from"]))
        return on

    a.add_event_handler("presence_available", watcher("a", b_jid.split("/")[0]))
    b.add_event_handler("presence_available", watcher("b", a_jid.split("/")[0]))
    if not (await a.login(port) and await b.login(port)):
        out(event="subscribe", error="login failed")
        return
    a.send_presence()
    b.send_presence()
    a.send_presence_subscription(pto=b_jid.split("/")[0], ptype="subscribe")
    for who in ("a", "b"):
        try:
            frm = await asyncio.wait_for(seen[who], 15)
            out(event="presence-seen", who=who, sender=frm)
        except asyncio.TimeoutError:
            out(event="presence-seen", who=who, sender="")
    await asyncio.sleep(0.5)
    for who, c, other in (("a", a, b_jid.split("/")[0]), ("b", b, a_jid.split("/")[0])):
        await c.get_roster()
        item = c.client_roster[other]
        out(event="roster", who=who, contact=other, subscription=item["subscription"], pending_out=bool(item["pending_out"]))
    a.disconnect()
    b.disconnect()
    await asyncio.sleep(0.2)


async def roster(port, jid_, pw, contact):
    c = Client(jid_, pw)
    if not await c.login(port):
        out(event="roster", error="login failed")
        return
    await c.get_roster()
    items = {str(j): c.client_roster[j]["subscription"] for j in c.client_roster}
    out(event="roster", items=items, contact=contact, subscription=items.get(contact, ""))
    c.disconnect()
    await asyncio.sleep(0.2)


async def register(port, jid_, pw):
    """In-band registration (XEP-0077), then a login with the new account."""
    c = Client(jid_, pw)
    c.register_plugin("xep_0077")
    c["xep_0077"].force_registration = True
    # slixmpp 1.8 holds back every stanza but bind and session until the
    # session starts, which would swallow the registration IQs themselves.
    c._always_send_everything = True
    result = {}

    async def on_register(_):
        iq = c.Iq()
        iq["type"] = "set"
        iq["register"]["username"] = c.boundjid.user
        iq["register"]["password"] = c.password
        try:
            await iq.send()
            result["ok"] = True
        except slixmpp.exceptions.IqError as e:
            result["error"] = e.iq["error"]["condition"]
            c.disconnect()

    c.add_event_handler("register", on_register)
    ok = await c.login(port)
    out(event="register", ok=result.get("ok", False), error=result.get("error", ""), login=ok,
        jid=str(c.boundjid.full) if ok else "")
    if ok:
        c.disconnect()
    await asyncio.sleep(0.2)


async def plaintext(port, jid, password, to):
    """Log in without STARTTLS (SCRAM over the plain stream) and send a chat message."""
    c = Client(jid, password)
    c.connect(address=("127.0.0.1", port), force_starttls=False, disable_starttls=True)
    ok = await asyncio.wait_for(c.started, 20)
    out(event="login", ok=ok, jid=str(c.boundjid.full) if ok else "",
        tls=bool(getattr(c, "is_secure", False) or c.socket is not None and hasattr(c.socket, "cipher")))
    if ok:
        c.send_message(mto=to, mbody="in the clear", mtype="chat")
        # The ping's answer comes after the message has been handled.
        await c["xep_0199"].ping(jid=c.boundjid.domain, timeout=10)
        out(event="sent", to=to)
        c.disconnect()
    await asyncio.sleep(0.2)


def main():
    logging.basicConfig(level=logging.ERROR)
    port, scenario, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    if scenario == "login":
        loop.run_until_complete(login(port, args[0], args[1], args[2] if len(args) > 2 else None))
    elif scenario == "converse":
        loop.run_until_complete(converse(port, *args))
    elif scenario == "subscribe":
        loop.run_until_complete(subscribe(port, *args))
    elif scenario == "register":
        loop.run_until_complete(register(port, *args))
    elif scenario == "roster":
        loop.run_until_complete(roster(port, *args))
    elif scenario == "plaintext":
        loop.run_until_complete(plaintext(port, *args))
    else:
        sys.exit("unknown scenario " + scenario)


if __name__ == "__main__":
    main()
