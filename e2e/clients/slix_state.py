#!/usr/bin/python3
"""The state of issue 14 that the other drivers leave out, and a client's
view of all of it, for the rebuild test (e2e/rebuild_test.go), with
slixmpp's own plugins where it has one.

Usage: slix_state.py PORT SCENARIO ARGS...

  extras PW OWNER FRIEND STRANGER ADMIN KEPT ONESHOT ROOM DOOMED WAKE
  view   PW SPEC

Every account has the password PW but KEPT, which ADMIN makes.

extras: OWNER puts FRIEND in its roster group "Friends" and STRANGER in
"Others", publishes three items to a node with the roster access model
(Friends) and max_items 2 and retracts the newest; publishes a bookmark
with a password (XEP-0402, whitelist); stores an element in private XML
storage (XEP-0049, xep_0049); blocks spam.example, a full JID and FRIEND
and unblocks FRIEND (XEP-0191, xep_0191). ADMIN adds KEPT with PW + "-old" and
changes its password to PW (XEP-0133, xep_0133); it adds DOOMED, which
makes the room WAKE, speaks in it, writes OWNER, keeps a bookmark with
a password, a vCard and a block list, then deletes DOOMED and adds it
again (a new incarnation, none of that state). ONESHOT's client joins
ROOM, says three things, retracts the second (xep_0424) and goes: its
account stays in ROOM until the server's --muc-idle-leave takes it out;
then a client of it that sends no presence moderates the third
(xep_0425), which is the last event of ROOM's stream. Prints one fact per step.

view: SPEC is a JSON object naming what to look at (see rebuild_test.go:
pep, private, vcards, blocklists, mam, last, logins, occupants); prints
one fact per thing seen, as a client sees it: items' ids and payloads,
errors' conditions, MAM results as the XML of each forwarded message.
Nothing in it depends on when it runs but the seconds of last activity
and the time each was asked at.
"""
import asyncio
import json
import ssl
import time
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.plugins.xep_0004 import Form
from slixmpp.xmlstream import ElementBase
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from common import NS_CLIENT, NS_MAM, Fatal, child, error_fact, local, mam_query, out, run
import slix_adhoc

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_BOOKMARKS = "urn:xmpp:bookmarks:1"
NS_MUC = "http://jabber.org/protocol/muc"
NODE_NOTES = "urn:example:rebuild:notes"
WAIT = 15


class Prefs(ElementBase):
    """An element some client keeps in private XML storage."""
    name = "prefs"
    namespace = "exodus:prefs"
    plugin_attrib = "prefs"
    interfaces = {"defaultnick"}
    sub_interfaces = interfaces


class Client(slixmpp.ClientXMPP):
    def __init__(self, port, jid, password, label):
        super().__init__(jid, password)
        self.port = int(port)
        self.label = label
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        for p in ("xep_0030", "xep_0004", "xep_0012", "xep_0045", "xep_0049", "xep_0054", "xep_0060", "xep_0191", "xep_0424"):
            self.register_plugin(p)
        self["xep_0049"].register(Prefs)
        self.mam_results = {}
        self.presences = []  # every presence from a room: (from, type, role, affiliation, codes)
        self.groupchat = []  # (body, the room's stanza-id) of every groupchat message
        self.register_handler(Callback("mam", MatchXPath("{%s}message/{%s}result" % (NS_CLIENT, NS_MAM)), self._on_result))
        self.register_handler(Callback("room presence", MatchXPath("{%s}presence" % NS_CLIENT), self._on_presence))
        self.add_event_handler("groupchat_message", self._on_groupchat)
        self.started = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", lambda _: self.started.done() or self.started.set_result(True))
        self.add_event_handler("failed_auth", lambda _: self.started.done() or self.started.set_result(False))
        self.add_event_handler("disconnected", lambda _: self.started.done() or self.started.set_result(False))

    def _on_result(self, m):
        res = child(m.xml, NS_MAM, "result")
        fwd = child(res, "urn:xmpp:forward:0", "forwarded")
        for c in (fwd if fwd is not None else []):
            if local(c.tag) == "message":
                self.mam_results.setdefault(res.get("queryid"), []).append(
                    {"id": res.get("id"), "xml": ET.tostring(fwd, encoding="unicode")})

    def _on_groupchat(self, m):
        sid = [x.get("id") for x in m.xml.findall("{urn:xmpp:sid:0}stanza-id") if x.get("by") == m["from"].bare]
        self.groupchat.append((m["body"], sid[0] if sid else None))

    async def said(self, body):
        """The room's stanza-id of our groupchat message body, once it came back."""
        for _ in range(WAIT * 10):
            for b, sid in self.groupchat:
                if b == body and sid:
                    return sid
            await asyncio.sleep(0.1)
        raise Fatal("%s never saw %r" % (self.label, body))

    def _on_presence(self, p):
        x = child(p.xml, NS_MUC + "#user", "x")
        if x is None:
            return
        item = child(x, NS_MUC + "#user", "item")
        codes = sorted(int(s.get("code")) for s in x.findall("{%s#user}status" % NS_MUC))
        self.presences.append((str(p["from"]), p["type"], item.get("role") if item is not None else None,
                               item.get("affiliation") if item is not None else None, codes))

    async def login(self, presence=True):
        self.connect(address=("127.0.0.1", self.port))
        if not await asyncio.wait_for(self.started, 20):
            self.abort()
            return None
        if presence:
            self.send_presence()
        await self.get_roster()
        return self


async def must_login(port, jid, pw, label):
    c = await Client(port, jid, pw, label).login()
    if c is None:
        raise Fatal("%s could not log in" % jid)
    return c


def options(fields):
    f = Form()
    f["type"] = "submit"
    f.add_field(var="FORM_TYPE", ftype="hidden", value=NS_PUBSUB + "#publish-options")
    for var, value in fields:
        f.add_field(var=var, ftype="list-multi" if isinstance(value, list) else None, value=value)
    return f


async def step(what, coro):
    try:
        await coro
        out(event="step", what=what, ok=True)
    except IqError as e:
        out(event="step", what=what, ok=False, error=error_fact(e))
    except IqTimeout:
        out(event="step", what=what, ok=False, error={"condition": "timeout"})


async def join(c, room, nick):
    """Join room as nick; the presences the room sent before ours."""
    mark = len(c.presences)
    p = c.make_presence(pto="%s/%s" % (room, nick))
    ET.SubElement(p.xml, "{%s}x" % NS_MUC)
    p.send()
    for _ in range(WAIT * 10):
        got = c.presences[mark:]
        if any(fr == "%s/%s" % (room, nick) and 110 in codes for fr, _, _, _, codes in got):
            return got
        await asyncio.sleep(0.1)
    raise Fatal("%s could not join %s" % (c.label, room))


async def admin_command(a, name, stages):
    fact = await asyncio.wait_for(slix_adhoc.run(a, name, stages), WAIT)
    out(event="step", what=name, ok=fact.get("status") == "completed", fact=fact)


async def doomed_life(port, pw, a, doomed, wake, friend):
    """The admin (client a) adds doomed, which leaves state everywhere
    (a room it made and spoke in, a 1:1 message, a bookmark with a
    password, a vCard, a block list), deletes it and adds it again."""
    await admin_command(a, "add-user", [({"accountjid": doomed, "password": pw, "password-verify": pw}, "complete")])
    d = await must_login(port, doomed + "/desk", pw, "doomed")
    await join(d, wake, "doomed")
    cfg = d.make_iq_set(ito=wake)
    ET.SubElement(ET.SubElement(cfg.xml, "{%s#owner}query" % NS_MUC), "{jabber:x:data}x", {"type": "submit"})
    await step("wake", cfg.send(timeout=WAIT))
    d.send_message(mto=wake, mbody="goodbye", mtype="groupchat")
    await d.said("goodbye")
    d.send_message(mto=friend, mbody="remember me", mtype="chat")
    conf = ET.Element("{%s}conference" % NS_BOOKMARKS, {"autojoin": "true"})
    ET.SubElement(conf, "{%s}nick" % NS_BOOKMARKS).text = "doomed"
    ET.SubElement(conf, "{%s}password" % NS_BOOKMARKS).text = "wake-pw-3"
    await step("doomed bookmark", d["xep_0060"].publish(doomed, NS_BOOKMARKS, id=wake, payload=conf,
                                                        options=options([("pubsub#access_model", "whitelist"), ("pubsub#max_items", "max")]), timeout=WAIT))
    v = d["xep_0054"].make_vcard()
    v["FN"] = "Doomed"
    await step("doomed vcard", d["xep_0054"].publish_vcard(v, timeout=WAIT))
    await step("doomed blocks", d["xep_0191"].block(["spam.example"], timeout=WAIT))
    d.disconnect()
    await asyncio.sleep(0.3)
    await admin_command(a, "delete-user", [({"accountjids": [doomed]}, "next"), ({}, "complete")])
    await admin_command(a, "add-user", [({"accountjid": doomed, "password": pw, "password-verify": pw}, "complete")])


async def extras(port, pw, owner, friend, stranger, admin, kept, oneshot, room, doomed, wake):
    o = await must_login(port, owner + "/desk", pw, "owner")
    await step("roster", asyncio.gather(o.update_roster(friend, groups=["Friends"], timeout=WAIT),
                                        o.update_roster(stranger, groups=["Others"], timeout=WAIT)))
    notes = options([("pubsub#access_model", "roster"), ("pubsub#roster_groups_allowed", ["Friends"]), ("pubsub#max_items", "2")])
    for n in ("n1", "n2", "n3"):
        note = ET.Element("{urn:example:rebuild}note")
        note.text = "note " + n
        await step("publish " + n, o["xep_0060"].publish(owner, NODE_NOTES, id=n, payload=note, options=notes, timeout=WAIT))
    await step("retract n3", o["xep_0060"].retract(owner, NODE_NOTES, "n3", timeout=WAIT))
    conf = ET.Element("{%s}conference" % NS_BOOKMARKS, {"name": "The vault", "autojoin": "false"})
    ET.SubElement(conf, "{%s}nick" % NS_BOOKMARKS).text = "Owner"
    ET.SubElement(conf, "{%s}password" % NS_BOOKMARKS).text = "vault-pw-7"
    await step("bookmark", o["xep_0060"].publish(owner, NS_BOOKMARKS, id="vault@conference.localhost", payload=conf,
                                                 options=options([("pubsub#access_model", "whitelist"), ("pubsub#max_items", "max")]), timeout=WAIT))
    prefs = Prefs()
    prefs["defaultnick"] = "Hamlet"
    await step("private", o["xep_0049"].store(prefs, timeout=WAIT))
    await step("block", o["xep_0191"].block(["spam.example", "iago@shakespeare.example/phone", friend], timeout=WAIT))
    await step("unblock", o["xep_0191"].unblock([friend], timeout=WAIT))

    a = slix_adhoc.Client("127.0.0.1:%s" % port, admin + "/desk", pw, "admin")
    if not await a.login():
        raise Fatal("the admin could not log in")
    await admin_command(a, "add-user", [({"accountjid": kept, "password": pw + "-old", "password-verify": pw + "-old"}, "complete")])
    await admin_command(a, "change-user-password", [({"accountjid": kept, "password": pw}, "complete")])
    await doomed_life(port, pw, a, doomed, wake, owner)

    s = await must_login(port, oneshot + "/script", pw, "oneshot")
    await join(s, room, "oneshot")
    cfg = s.make_iq_set(ito=room)
    ET.SubElement(ET.SubElement(cfg.xml, "{%s#owner}query" % NS_MUC), "{jabber:x:data}x", {"type": "submit"})
    await step("room", cfg.send(timeout=WAIT))
    for body in ("the build is green", "the build is red", "the build is green again"):
        s.send_message(mto=room, mbody=body, mtype="groupchat")
    # Retracted by its author (XEP-0424)...
    s["xep_0424"].send_retraction(room, await s.said("the build is red"), mtype="groupchat")
    spam = await s.said("the build is green again")
    for c in (o, a, s):
        c.disconnect()
    await asyncio.sleep(0.5)
    # ... and moderated (XEP-0425) by a client of the account that sends no
    # presence: the room's stream ends with the retraction.
    m = await Client(port, oneshot + "/cron", pw, "oneshot-cron").login(presence=False)
    if m is None:
        raise Fatal("%s could not log in again" % oneshot)
    m.register_plugin("xep_0425")
    await step("moderate", m["xep_0425"].moderate(slixmpp.JID(room), spam, "flaky", timeout=WAIT))
    m.disconnect()
    await asyncio.sleep(0.3)


def describe_items(res):
    items = []
    for it in res["pubsub"]["items"]:
        items.append({"id": it["id"], "payload": "".join(ET.tostring(c, encoding="unicode") for c in it.xml)})
    return items


def pubsub_error(e):
    f = error_fact(e)
    for c in e.iq.xml.find("{jabber:client}error"):
        if c.tag.startswith("{%s#errors}" % NS_PUBSUB):
            f["pubsub"] = local(c.tag)
    return f


async def view(port, pw, spec):
    """What each account named in spec sees, as facts."""
    spec = json.loads(spec)
    clients = {}

    async def as_(who):
        if who not in clients:
            clients[who] = await must_login(port, who + "/view", pw, who)
        return clients[who]

    for who, owner, node in spec.get("pep", []):
        c = await as_(who)
        fact = {"event": "pep", "who": who, "owner": owner, "node": node}
        try:
            fact["items"] = describe_items(await c["xep_0060"].get_items(owner, node, timeout=WAIT))
        except IqError as e:
            fact["error"] = pubsub_error(e)
        out(**fact)
    for who in spec.get("private", []):
        c = await as_(who)
        r = await c["xep_0049"].retrieve("prefs", timeout=WAIT)
        out(event="private", who=who, xml=ET.tostring(r["private"].xml, encoding="unicode"))
    for who, of in spec.get("vcards", []):
        c = await as_(who)
        try:
            iq = await c["xep_0054"].get_vcard(of, cached=False, timeout=WAIT)
            out(event="vcard", who=who, of=of, xml=ET.tostring(iq.xml.find("{vcard-temp}vCard"), encoding="unicode"))
        except IqError as e:
            out(event="vcard", who=who, of=of, error=error_fact(e))
    for who in spec.get("blocklists", []):
        c = await as_(who)
        iq = await c["xep_0191"].get_blocked(timeout=WAIT)
        out(event="blocklist", who=who, items=sorted(str(j) for j in iq["blocklist"]["items"]))
    for who, to, with_ in spec.get("mam", []):
        c = await as_(who)
        f = await mam_query(c, "view", to=to or None, fields=[("with", [with_])] if with_ else None, report=False)
        out(event="mam", who=who, to=to, with_=with_, ok=f["ok"], fin=f.get("fin"), results=f["results"])
    for who, of in spec.get("last", []):
        c = await as_(who)
        try:
            r = await c["xep_0012"].get_last_activity(of, timeout=WAIT)
            out(event="last", who=who, of=of, at=time.time(), seconds=int(r["last_activity"]["seconds"]), status=r["last_activity"]["status"])
        except IqError as e:
            out(event="last", who=who, of=of, error=error_fact(e))
    for jid, password in spec.get("logins", []):
        c = await Client(port, jid + "/view", password, jid).login(presence=False)
        out(event="login", jid=jid, password=password, ok=c is not None)
        if c is not None:
            c.disconnect()
    for who, room in spec.get("occupants", []):
        # An occupant's client attaching is told who else is in the room,
        # with their roles (a voice granted shows as participant).
        c = await as_(who)
        nick = who.split("@")[0]
        seen = sorted(p for p in await join(c, room, nick) if p[0].split("/")[0] == room and p[0] != room + "/" + nick)
        out(event="occupants", who=who, room=room, presences=seen)
    for c in clients.values():
        c.disconnect()
    await asyncio.sleep(0.3)


SCENARIOS = {"extras": (extras, 10), "view": (view, 2)}

if __name__ == "__main__":
    run(SCENARIOS, "slix_state.py", 90)
