#!/usr/bin/python3
"""Push Notifications (XEP-0357) end to end with slixmpp: the app server
is a pubsub service of another server (Prosody's mod_pubsub component),
whose administrator provisions a node per device and reads what was
published there; the user's server publishes a notification to it.

Debian's slixmpp 1.8.3 has no xep_0357 plugin: <enable/> and <disable/>
are built by hand, as are the pubsub requests (publish-options included),
so that what goes on the wire is exactly what the test says.

Usage: slix_push.py SCENARIO ARGS...  (an ACCOUNT is ADDR JID PW, ADDR
the HOST:PORT of the account's own server)

  appserver ADMIN PUBLISHER SERVICE PREFIX
      The app server alone: ADMIN (an admin of SERVICE's server)
      provisions PREFIX-open (publish_model open) and PREFIX-closed
      (publishers only); PUBLISHER, a plain account of any server,
      publishes notifications there as a user's server would, with and
      without publish-options; ADMIN reads the nodes back.
  provision ADMIN SERVICE NODE:MODEL...
      ADMIN creates each NODE with that publish_model.
  push ADMIN JULIET ROMEO SERVICE NODE
      JULIET's client "phone" enables push to NODE and is in turn
      inactive (CSI), active, detached (XEP-0198), resumed, offline,
      while her "desk" is connected and active; ROMEO sends her a chat
      message each time, and ADMIN reads NODE. Then the phone disables
      push, goes offline, and she gets one more message.
  errors JULIET ROMEO SERVICE N RESOURCE:NODE[:FIELD=VALUE]...
      Each RESOURCE of JULIET enables push to NODE (with publish-options
      FIELD=VALUE, if given; the IQ to her bare JID) and leaves; ROMEO
      then sends her N messages.
  disable-all ADMIN JULIET ROMEO SERVICE NODE...
      JULIET's "pad" enables push to each NODE, disables push to
      SERVICE with no node, and leaves; ROMEO sends her a message;
      ADMIN reads each NODE.
  send ROMEO JULIET N
      ROMEO sends JULIET N chat messages.
  items ADMIN SERVICE NODE LEAST
      ADMIN reads NODE once it holds at least LEAST items.

Prints one JSON object per line on stdout: facts, not verdicts.
Facts: provision (node, model, ok, error); publish (probe, node, ok,
error); items (step, node, ok, error, items: [{id, publisher, form_type,
fields}]); disco (features); enable / disable (who, node, ok, error);
sent (step, id); received (who, step, body); new-item (step, waited,
items: the new ones); csi (who, state); detached / resumed / offline
(who, ...); desk (received: how many messages the desk got).
"""
import asyncio
import logging
import ssl
import sys
import time
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

from common import Fatal, data_form, error_fact, out, rand

NS_PUSH = "urn:xmpp:push:0"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_DATA = "jabber:x:data"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_CSI = "urn:xmpp:csi:0"
NODE_CONFIG = "http://jabber.org/protocol/pubsub#node_config"
PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"
SUMMARY = "urn:xmpp:push:summary"
# The first stanza to another server waits for the s2s stream.
WAIT = 20
# How long nothing must appear for "no push" to hold: a push that is
# coming crosses one s2s hop already up, in well under a second.
QUIET = 2.0


class Client(slixmpp.ClientXMPP):
    def __init__(self, addr, jid, password, label, resource=None, sm=False):
        host, port = addr.rsplit(":", 1)
        jid = slixmpp.JID(jid)
        super().__init__("%s/%s" % (jid.bare, resource) if resource else jid.bare, password)
        self.label, self.addr = label, (host, int(port))
        # Every server's certificate comes from the test's CA.
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.register_plugin("xep_0030")
        if sm:
            self.register_plugin("xep_0198")
        self.inbox = []
        self.loop_ = asyncio.get_event_loop()
        self._fresh()
        self.add_event_handler("session_start", lambda _: self._settle("started", True))
        self.add_event_handler("session_resumed", lambda _: self._settle("resumed", True))
        self.add_event_handler("failed_auth", lambda _: self._settle("started", False))
        self.add_event_handler("disconnected", self._on_disconnected)
        self.add_event_handler("message", lambda m: self.inbox.append(m) if m["body"] else None)

    def _fresh(self):
        self.futs = {k: self.loop_.create_future() for k in ("started", "resumed", "disconnected")}

    def _settle(self, name, value):
        f = self.futs.get(name)
        if f is not None and not f.done():
            f.set_result(value)

    def _on_disconnected(self, _):
        self._settle("disconnected", True)
        self._settle("started", False)

    async def login(self):
        self.connect(address=self.addr)
        try:
            ok = await asyncio.wait_for(self.futs["started"], WAIT)
        except asyncio.TimeoutError:
            ok = False
        if not ok:
            raise Fatal("%s: login to %s:%d failed" % (self.label, *self.addr))
        self.send_presence()
        out(event="login", who=self.label, jid=str(self.boundjid.full))
        return self

    async def close(self):
        self._fresh()
        self.disconnect()
        try:
            await asyncio.wait_for(self.futs["disconnected"], 5)
        except asyncio.TimeoutError:
            self.abort()

    async def iq(self, ityp, to, payload):
        """Send an IQ with payload; returns (ok, reply or error fact)."""
        iq = self.Iq()
        iq["type"] = ityp
        if to:
            iq["to"] = to
        iq.xml.append(payload)
        try:
            return True, await iq.send(timeout=WAIT)
        except IqError as e:
            f = error_fact(e)
            # The pubsub condition under the stanza error, if any
            # (XEP-0060 §7.1.3: precondition-not-met).
            f["pubsub"] = next((c.tag.rsplit("}", 1)[-1] for c in e.iq["error"].xml
                                if c.tag.startswith("{%s#errors}" % NS_PUBSUB)), None)
            return False, f
        except IqTimeout:
            return False, {"condition": "timeout", "type": None, "text": ""}


def account(args):
    return args[0], args[1], args[2]


def el(tag, attrs=None, *children):
    e = ET.Element(tag, attrs or {})
    for c in children:
        e.append(c)
    return e


def form(ftype, form_type, fields):
    holder = ET.Element("holder")
    return data_form(holder, ftype, form_type, fields)


def notification(count, sender=None, body=None):
    """A summary notification (XEP-0357 §7) as a push-sending server
    makes it."""
    fields = [("message-count", [str(count)])]
    if sender:
        fields.append(("last-message-sender", [sender]))
    if body:
        fields.append(("last-message-body", [body]))
    return el("{%s}notification" % NS_PUSH, None, form("submit", SUMMARY, fields))


async def provision(admin, service, node, model):
    create = el("{%s}pubsub" % NS_PUBSUB, None, el("{%s}create" % NS_PUBSUB, {"node": node}),
                el("{%s}configure" % NS_PUBSUB, None,
                   form("submit", NODE_CONFIG, [("pubsub#publish_model", [model]), ("pubsub#access_model", ["open"])])))
    ok, r = await admin.iq("set", service, create)
    out(event="provision", node=node, model=model, ok=ok, error=None if ok else r)
    return ok


async def publish(c, service, node, probe, options=None, count=1):
    ps = el("{%s}pubsub" % NS_PUBSUB, None,
            el("{%s}publish" % NS_PUBSUB, {"node": node}, el("{%s}item" % NS_PUBSUB, None, notification(count))))
    if options is not None:
        ps.append(el("{%s}publish-options" % NS_PUBSUB, None, form("submit", PUBLISH_OPTIONS, options)))
    ok, r = await c.iq("set", service, ps)
    out(event="publish", probe=probe, who=c.label, node=node, ok=ok, error=None if ok else r)


def parse_items(reply):
    items = []
    for it in reply.xml.iter("{%s}item" % NS_PUBSUB):
        rec = {"id": it.get("id"), "publisher": it.get("publisher"), "form_type": None, "fields": {}}
        n = it.find("{%s}notification" % NS_PUSH)
        x = n.find("{%s}x" % NS_DATA) if n is not None else None
        if x is not None:
            for f in x.findall("{%s}field" % NS_DATA):
                vals = [v.text or "" for v in f.findall("{%s}value" % NS_DATA)]
                if f.get("var") == "FORM_TYPE":
                    rec["form_type"] = vals[0] if vals else None
                else:
                    rec["fields"][f.get("var")] = vals
        items.append(rec)
    return items


async def get_items(reader, service, node):
    ok, r = await reader.iq("get", service, el("{%s}pubsub" % NS_PUBSUB, None, el("{%s}items" % NS_PUBSUB, {"node": node})))
    return (parse_items(r), None) if ok else (None, r)


async def items(reader, service, node, step):
    its, err = await get_items(reader, service, node)
    out(event="items", step=step, node=node, ok=err is None, error=err, items=its or [])
    return its or []


async def wait_items(admin_a, service, node, least):
    """ADMIN reads NODE once it has at least `least` items (or after WAIT)."""
    admin = await Client(*account(admin_a), "admin").login()
    t0 = time.monotonic()
    while True:
        its, err = await get_items(admin, service, node)
        if err or len(its) >= int(least) or time.monotonic() - t0 > WAIT:
            break
        await asyncio.sleep(0.2)
    out(event="items", step="wait", node=node, ok=err is None, error=err, items=its or [])
    await admin.close()


async def appserver(admin_a, pub_a, service, prefix):
    admin = await Client(*account(admin_a), "admin").login()
    pub = await Client(*account(pub_a), "publisher").login()
    opened, closed, missing = prefix + "-open", prefix + "-closed", prefix + "-missing"
    await provision(admin, service, opened, "open")
    await provision(admin, service, closed, "publishers")
    await publish(pub, service, opened, "plain")
    # A field publish-options names that is no node configuration
    # field: Prosody 0.12 ignores it.
    await publish(pub, service, opened, "secret", [("secret", ["s3cr3t"])])
    await publish(pub, service, opened, "matching-option", [("pubsub#access_model", ["open"])])
    await publish(pub, service, opened, "mismatching-option", [("pubsub#access_model", ["whitelist"])])
    await publish(pub, service, opened, "invalid-option", [("pubsub#max_items", ["many"])])
    await publish(pub, service, closed, "closed-node")
    await publish(pub, service, missing, "missing-node")
    await publish(admin, service, prefix + "-admin-made", "admin-autocreate")
    await items(admin, service, opened, "admin-reads")
    await items(pub, service, opened, "publisher-reads")
    await items(admin, service, closed, "admin-reads-closed")
    for c in (admin, pub):
        await c.close()


async def provision_nodes(admin_a, service, *specs):
    admin = await Client(*account(admin_a), "admin").login()
    for spec in specs:
        node, model = spec.split(":", 1)
        await provision(admin, service, node, model)
    await admin.close()


async def enable(c, service, node, options=None, to=None):
    """Enable push to node; to None sends the IQ with no 'to' (to the
    account), else to that JID (the account's bare JID)."""
    e = el("{%s}enable" % NS_PUSH, {"jid": service, "node": node})
    if options is not None:
        e.append(form("submit", PUBLISH_OPTIONS, options))
    ok, r = await c.iq("set", to, e)
    out(event="enable", who=c.label, node=node, options=options, to=to, ok=ok, error=None if ok else r,
        empty=ok and len(r.xml) == 0)
    return ok


async def disable(c, service, node):
    """Disable push to node, or to every node of service (node None)."""
    attrs = {"jid": service}
    if node is not None:
        attrs["node"] = node
    ok, r = await c.iq("set", None, el("{%s}disable" % NS_PUSH, attrs))
    out(event="disable", who=c.label, node=node, ok=ok, error=None if ok else r, empty=ok and len(r.xml) == 0)
    return ok


def csi(c, state):
    c.send_raw("<%s xmlns='%s'/>" % (state, NS_CSI))
    out(event="csi", who=c.label, state=state)


async def send_chat(romeo, to, step):
    mid = "%s-%s" % (step, rand())
    m = romeo.make_message(mto=to, mbody="push me: " + mid, mtype="chat")
    m["id"] = mid
    m.send()
    out(event="sent", step=step, id=mid)
    return mid


async def expect(admin, service, node, seen, step, want_new, phone=None, mid=None):
    """Wait for a new item at node (want_new) or for QUIET seconds with
    none; report what appeared. seen: the item ids known before."""
    t0 = time.monotonic()
    if phone is not None and mid is not None:
        # The message reached the connected phone: the server has routed
        # it, and any push it was going to send is on its way.
        for _ in range(int(WAIT / 0.1)):
            if any(m["id"] == mid for m in phone.inbox):
                break
            await asyncio.sleep(0.1)
        out(event="received", who=phone.label, step=step, body=next((m["body"] for m in phone.inbox if m["id"] == mid), None))
    deadline = t0 + (WAIT if want_new else QUIET)
    new = []
    while time.monotonic() < deadline:
        its, err = await get_items(admin, service, node)
        new = [i for i in (its or []) if i["id"] not in seen]
        if new and want_new:
            await asyncio.sleep(0.3)  # a second one, if the server sent two
            its, err = await get_items(admin, service, node)
            new = [i for i in (its or []) if i["id"] not in seen]
            break
        await asyncio.sleep(0.2)
    seen.update(i["id"] for i in new)
    out(event="new-item", step=step, waited=round(time.monotonic() - t0, 2), items=new)


async def push(admin_a, juliet_a, romeo_a, service, node):
    admin = await Client(*account(admin_a), "admin").login()
    await provision(admin, service, node, "open")
    seen = set(i["id"] for i in await items(admin, service, node, "before"))
    romeo = await Client(*account(romeo_a), "romeo", resource="orchard").login()
    phone = await Client(*account(juliet_a), "juliet/phone", resource="phone", sm=True).login()
    bare = phone.boundjid.bare
    try:
        info = await phone["xep_0030"].get_info(jid=bare, timeout=WAIT)
        out(event="disco", features=[f for f in info["disco_info"]["features"]])
    except (IqError, IqTimeout) as e:
        out(event="disco", features=[], error=str(e))
    if not await enable(phone, service, node, [("secret", ["s3cr3t-" + rand()])]):
        raise Fatal("enable failed: nothing else can be checked")
    # Another client of hers, connected and active all along: the
    # registration is the phone's, so the phone's state alone counts.
    desk = await Client(*account(juliet_a), "juliet/desk", resource="desk").login()
    await asyncio.sleep(0.3)

    csi(phone, "inactive")
    await asyncio.sleep(0.3)
    await expect(admin, service, node, seen, "inactive", True, phone, await send_chat(romeo, bare, "inactive"))

    csi(phone, "active")
    await asyncio.sleep(0.3)
    await expect(admin, service, node, seen, "active", False, phone, await send_chat(romeo, bare, "active"))

    # Cut the connection without a word: the session waits for
    # resumption (XEP-0198), detached.
    phone._fresh()
    phone.transport.abort()
    await asyncio.wait_for(phone.futs["disconnected"], 10)
    out(event="detached", who=phone.label, resume_id=phone["xep_0198"].sm_id)
    await asyncio.sleep(0.5)
    await expect(admin, service, node, seen, "detached", True, None, await send_chat(romeo, bare, "detached"))

    phone._fresh()
    phone.connect(address=phone.addr)
    done, _ = await asyncio.wait([phone.futs["resumed"], phone.futs["started"]], timeout=WAIT,
                                 return_when=asyncio.FIRST_COMPLETED)
    out(event="resumed", who=phone.label, ok=phone.futs["resumed"].done())
    await asyncio.sleep(0.3)
    await expect(admin, service, node, seen, "resumed", False, phone, await send_chat(romeo, bare, "resumed"))

    await phone.close()
    out(event="offline", who=phone.label)
    await asyncio.sleep(0.5)
    await expect(admin, service, node, seen, "offline", True, None, await send_chat(romeo, bare, "offline"))

    phone = await Client(*account(juliet_a), "juliet/phone", resource="phone").login()
    await disable(phone, service, node)
    await phone.close()
    out(event="offline", who=phone.label)
    await asyncio.sleep(0.5)
    await expect(admin, service, node, seen, "disabled", False, None, await send_chat(romeo, bare, "disabled"))
    await items(admin, service, node, "after")
    out(event="desk", received=len(desk.inbox))
    for c in (admin, romeo, desk):
        await c.close()


async def disable_all(admin_a, juliet_a, romeo_a, service, *nodes):
    admin = await Client(*account(admin_a), "admin").login()
    pad = await Client(*account(juliet_a), "juliet/pad", resource="pad").login()
    for node in nodes:
        await enable(pad, service, node)
    await disable(pad, service, None)
    await pad.close()
    out(event="offline", who=pad.label)
    romeo = await Client(*account(romeo_a), "romeo", resource="orchard").login()
    await send_chat(romeo, pad.boundjid.bare, "disabled-all")
    await asyncio.sleep(QUIET)
    for node in nodes:
        await items(admin, service, node, "disabled-all")
    for c in (admin, romeo):
        await c.close()


async def send(romeo_a, juliet_a, n):
    romeo = await Client(*account(romeo_a), "romeo", resource="orchard").login()
    for i in range(int(n)):
        await send_chat(romeo, slixmpp.JID(juliet_a[1]).bare, "send%d" % i)
        # One push per registration per message, each answered before
        # the next message: the errors come in a row.
        await asyncio.sleep(1.0)
    await romeo.close()


async def errors(juliet_a, romeo_a, service, n, *specs):
    for spec in specs:
        parts = spec.split(":", 2)
        resource, node = parts[0], parts[1]
        options = None
        if len(parts) == 3:
            var, value = parts[2].split("=", 1)
            options = [(var, [value])]
        c = await Client(*account(juliet_a), "juliet/" + resource, resource=resource).login()
        await enable(c, service, node, options, to=c.boundjid.bare)
        await c.close()
    await send(romeo_a, juliet_a, n)


# Each scenario: its function, how many accounts come first, how many
# other arguments it needs at least.
SCENARIOS = {
    "appserver": (appserver, 2, 2),
    "provision": (provision_nodes, 1, 2),
    "push": (push, 3, 2),
    "errors": (errors, 2, 3),
    "disable-all": (disable_all, 3, 2),
    "send": (send, 2, 1),
    "items": (wait_items, 1, 3),
}


def main():
    logging.basicConfig(level=logging.CRITICAL)
    if len(sys.argv) < 2 or sys.argv[1] not in SCENARIOS:
        sys.exit("usage: slix_push.py {%s} ARGS..." % "|".join(SCENARIOS))
    fn, accounts, extra = SCENARIOS[sys.argv[1]]
    args = sys.argv[2:]
    if len(args) < 3 * accounts + extra:
        sys.exit("%s needs %d accounts and %d more arguments" % (sys.argv[1], accounts, extra))
    accs = [args[3 * i:3 * i + 3] for i in range(accounts)]
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(asyncio.wait_for(fn(*accs, *args[3 * accounts:]), 120))
    except Fatal as e:
        sys.exit(str(e))
    except asyncio.TimeoutError:
        sys.exit("%s: timed out" % sys.argv[1])


if __name__ == "__main__":
    main()
