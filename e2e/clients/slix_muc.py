#!/usr/bin/python3
"""Drive a server's group chat (XEP-0045 MUC) with slixmpp: one account on
several clients in a room, groupchat fan-out with stanza IDs, room and user
MAM archives, nick changes, detach versus leave, moderation, the ordinary
owner/member flows and the error cases.

Usage: slix_muc.py PORT SCENARIO ARGS...

  attach     ROMEO_JID PW JULIET_JID PW ROOM
  moderation OWNER_JID PW USER_JID PW ROOM
  flows      OWNER_JID PW USER_JID PW ROOM
  bad        OWNER_JID PW USER_JID PW ROOM
  bookmarks  JID PW ROOM

ROOM is a bare room JID; without a domain it is put on conference.localhost.

Prints one JSON object per line on stdout: facts, not verdicts. Exits 0
when the scenario ran, non-zero (message on stderr) when it could not.

Every presence a client gets from the MUC service, and every message, is
printed at the end of the step (phase) it arrived in as a "presence"
(from, type, show, codes, items [role affiliation jid nick reason actor],
error, muc_x_echoed, from_invalid_jid) or "message" (id, type, from, body,
subject, stanza_ids [by id], delay, codes, invite, error) event with who
and phase, followed by one "phase" summary per client. Joins, leaves and
requests print their own event: create/join/rejoin/nick-change/... (ok,
answer self-presence|error|timeout, codes, nick, item, error), leave
events (answer, presence), admin/config events (ok, error), "mam" (query,
to, fields, ok, fin, results [result_id id from stanza_ids]), "state"
(owner's roster, disco#info, affiliation lists). Scenario summaries:
attach: second-occupant, delivery, archive-check, dropped, left,
late-check; moderation: state; flows: config-form, room-info,
invite-seen, join-muc-wait, user-role, voice-check, subject-seen,
history-seen; bad: non-occupant-message, state after every step.
"""
import asyncio
import contextlib
import ssl
import sys
import xml.etree.ElementTree as ET

import slixmpp

from common import Fatal, child, data_form, delay_of, error_fact, error_of, inner_message, local, mam_query, out, quiet_down, rand, run, stanza_ids
from slixmpp.exceptions import IqError, IqTimeout, PresenceError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.xmlstream.tostring import tostring

NS_CLIENT = "jabber:client"
NS_SID = "urn:xmpp:sid:0"
NS_MAM = "urn:xmpp:mam:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
NS_DATA = "jabber:x:data"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = NS_MUC + "#user"
NS_MUC_ADMIN = NS_MUC + "#admin"
NS_MUC_OWNER = NS_MUC + "#owner"
NS_ROOMCONFIG = NS_MUC + "#roomconfig"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0"
MUC_DOMAIN = "conference.localhost"
RAW_FROM = "annals-driver-invalid-from"  # set on stanzas whose from was no JID

# slixmpp's join_muc_wait print()s every groupchat message's delay to
# stdout; common.out writes the JSON lines to the real stdout regardless.


def text_of(el, ns, name):
    c = child(el, ns, name)
    return (c.text or "") if c is not None else None


def bare(j):
    return j.split("/", 1)[0].lower() if j else j


def room_jid(arg):
    return arg if "@" in arg else "%s@%s" % (arg, MUC_DOMAIN)


def muc_user_fields(el):
    """Status codes, items, invite/decline/destroy of a muc#user <x/>."""
    x = child(el, NS_MUC_USER, "x")
    if x is None:
        return {"muc_user": False, "codes": [], "items": []}
    items = []
    for it in x.findall("{%s}item" % NS_MUC_USER):
        actor = child(it, NS_MUC_USER, "actor")
        items.append({
            "role": it.get("role"), "affiliation": it.get("affiliation"), "jid": it.get("jid"),
            "nick": it.get("nick"), "reason": text_of(it, NS_MUC_USER, "reason"),
            "actor": {"jid": actor.get("jid"), "nick": actor.get("nick")} if actor is not None else None,
        })
    f = {"muc_user": True,
         "codes": sorted(int(s.get("code")) for s in x.findall("{%s}status" % NS_MUC_USER) if (s.get("code") or "").isdigit()),
         "items": items}
    for kind in ("invite", "decline"):
        i = child(x, NS_MUC_USER, kind)
        if i is not None:
            f[kind] = {"from": i.get("from"), "to": i.get("to"), "reason": text_of(i, NS_MUC_USER, "reason")}
    if child(x, NS_MUC_USER, "password") is not None:
        f["password"] = text_of(x, NS_MUC_USER, "password")
    d = child(x, NS_MUC_USER, "destroy")
    if d is not None:
        f["destroy"] = {"jid": d.get("jid"), "reason": text_of(d, NS_MUC_USER, "reason")}
    return f


def occupant_id(el):
    o = child(el, NS_OCCUPANT_ID, "occupant-id")
    return o.get("id") if o is not None else None


def presence_fields(p):
    f = {"from": p.get(RAW_FROM, p.get("from")), "to": p.get("to"), "id": p.get("id"), "type": p.get("type", "available"),
         "show": text_of(p, NS_CLIENT, "show"), "status": text_of(p, NS_CLIENT, "status"),
         "occupant_id": occupant_id(p)}
    f.update(muc_user_fields(p))
    if p.get(RAW_FROM) is not None:
        f["from_invalid_jid"] = True
    if f["type"] == "error":
        f["error"] = error_of(p)
        f["muc_x_echoed"] = child(p, NS_MUC, "x") is not None
    return f


def msg_fields(m):
    if m is None:
        return {"id": None}
    origin = child(m, NS_SID, "origin-id")
    f = {"id": m.get("id"), "type": m.get("type", "normal"), "from": m.get(RAW_FROM, m.get("from")), "to": m.get("to"),
         "body": text_of(m, NS_CLIENT, "body"), "subject": text_of(m, NS_CLIENT, "subject"),
         "stanza_ids": stanza_ids(m), "origin_id": origin.get("id") if origin is not None else None,
         "delay": delay_of(m), "occupant_id": occupant_id(m)}
    mu = muc_user_fields(m)
    if mu["muc_user"]:
        f.update(mu)
    direct = child(m, "jabber:x:conference", "x")
    if direct is not None:
        f["direct_invite"] = {"jid": direct.get("jid"), "password": direct.get("password"), "reason": direct.get("reason")}
    x = child(m, NS_DATA, "x")
    if x is not None:
        f["form"] = {fl.get("var"): text_of(fl, NS_DATA, "value") for fl in x.findall("{%s}field" % NS_DATA)}
    if m.get(RAW_FROM) is not None:
        f["from_invalid_jid"] = True
    if m.get("type") == "error":
        f["error"] = error_of(m)
    return f


def item_of(p):
    return p["items"][0] if p.get("items") else {}


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, resource, label, sm=True):
        jid = slixmpp.JID(jid)
        super().__init__("%s/%s" % (jid.bare, resource), password)
        self.label = label
        # The server's certificate is self-signed in tests.
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        for p in ("xep_0030", "xep_0004", "xep_0059", "xep_0297", "xep_0313", "xep_0359", "xep_0203", "xep_0045"):
            self.register_plugin(p)
        if sm:
            self.register_plugin("xep_0198")
        self.sm = sm
        self.phase = "login"
        self.log = []              # presences and messages from the MUC service / rooms, parsed
        self.mam_results = {}      # queryid -> [result facts]
        self.waiters = []          # (predicate, future) over log entries
        self.loop_ = asyncio.get_event_loop()
        self.futs = {k: self.loop_.create_future() for k in ("negotiated", "disconnected")}
        self.register_handler(Callback("annals muc message", MatchXPath("{%s}message" % NS_CLIENT), self._on_message))
        self.register_handler(Callback("annals muc presence", MatchXPath("{%s}presence" % NS_CLIENT), self._on_presence))
        self.add_event_handler("stream_negotiated", lambda _: self._settle("negotiated", True))
        self.add_event_handler("failed_auth", lambda _: self._settle("negotiated", False))
        self.add_event_handler("disconnected", self._on_disconnected)

    def _settle(self, name, value):
        f = self.futs.get(name)
        if f is not None and not f.done():
            f.set_result(value)

    def _on_disconnected(self, _):
        self._settle("disconnected", True)
        self._settle("negotiated", False)

    def incoming_filter(self, xml):
        # slixmpp 1.8.3 drops the connection when a stanza's 'from' is no
        # valid JID (Prosody answers a join to 'room@service/' from
        # 'room@service/'). Keep what was sent, route it as if from the
        # bare room.
        frm = xml.get("from")
        if frm is not None:
            try:
                slixmpp.JID(frm)
            except slixmpp.InvalidJID:
                xml.set(RAW_FROM, frm)
                try:
                    xml.set("from", slixmpp.JID(frm.split("/", 1)[0]).bare)
                except slixmpp.InvalidJID:
                    del xml.attrib["from"]
        return xml

    def _record(self, rec):
        rec["phase"] = self.phase
        self.log.append(rec)
        for w in list(self.waiters):
            pred, fut = w
            if not fut.done() and pred(rec):
                fut.set_result(rec)
                self.waiters.remove(w)

    def _on_presence(self, pr):
        x = pr.xml
        frm = x.get("from") or ""
        # Only the MUC service's presences: rooms and occupants (or errors
        # without a from); the account's own roster presences are noise.
        if frm and not bare(frm).endswith("@" + MUC_DOMAIN) and bare(frm) != MUC_DOMAIN:
            return
        rec = {"stanza": "presence"}
        rec.update(presence_fields(x))
        self._record(rec)

    def _on_message(self, msg):
        x = msg.xml
        res = child(x, NS_MAM, "result")
        if res is not None:
            fwd, m = inner_message(res)
            r = {"result_id": res.get("id"), "archive_from": x.get("from"),
                 "forwarded_delay": delay_of(fwd) if fwd is not None else None}
            r.update(msg_fields(m))
            self.mam_results.setdefault(res.get("queryid"), []).append(r)
            return
        rec = {"stanza": "message"}
        rec.update(msg_fields(x))
        self._record(rec)

    def wait_for(self, pred, timeout):
        """A record matching pred, among those already logged in this
        phase or the next to come; None after timeout."""
        fut = self.loop_.create_future()
        self.waiters.append((pred, fut))

        async def w():
            try:
                return await asyncio.wait_for(asyncio.shield(fut), timeout)
            except asyncio.TimeoutError:
                return None
            finally:
                if (pred, fut) in self.waiters:
                    self.waiters.remove((pred, fut))
        return w()

    async def login(self, port, timeout=20):
        self.connect(address=("127.0.0.1", port))
        try:
            ok = await asyncio.wait_for(self.futs["negotiated"], timeout)
        except asyncio.TimeoutError:
            raise Fatal("%s: login timed out" % self.label)
        if not ok:
            raise Fatal("%s: login failed" % self.label)
        self.phase = "session"
        self.send_presence()

    def session_fact(self):
        out(event="session", who=self.label, jid=str(self.boundjid.full), sm=self.sm)

    def presence_to(self, to, ptype=None, join=False, password=None, history=None, show=None):
        """Send a presence to a room occupant JID, written as given (even
        when it is no valid JID). Returns its id."""
        p = self.make_presence()
        p.xml.set("to", to)
        if ptype:
            p.xml.set("type", ptype)
        pid = "p-" + rand()
        p.xml.set("id", pid)
        if show:
            ET.SubElement(p.xml, "{%s}show" % NS_CLIENT).text = show
        if join:
            x = ET.SubElement(p.xml, "{%s}x" % NS_MUC)
            if password is not None:
                ET.SubElement(x, "{%s}password" % NS_MUC).text = password
            if history:
                ET.SubElement(x, "{%s}history" % NS_MUC, {k: str(v) for k, v in history.items()})
        try:
            slixmpp.JID(to)
        except slixmpp.InvalidJID:
            # slixmpp drops, without a word, a stanza whose 'to' it cannot
            # parse; write it to the stream ourselves. Stream management
            # would count it on the server's side only.
            if self.sm:
                raise Fatal("%s: cannot send to %r with stream management on" % (self.label, to))
            self.send_raw(tostring(p.xml, xmlns=self.default_ns, stream=self, top_level=True))
            return pid
        p.send()
        return pid

    async def join(self, room, nick, password=None, history=None, to=None, timeout=10, report=True, name="join",
                   x=True):
        """Join (or re-join) a room with a raw presence, or change nick
        (x=False: no MUC <x/>); wait for our available self-presence
        (status 110) or an error presence."""
        to = to if to is not None else "%s/%s" % (room, nick)

        def mine(r):
            if r["stanza"] != "presence":
                return False
            if r["type"] == "error":
                return not r["from"] or bare(r["from"]) == bare(room) or r["from"] == to
            return bare(r["from"]) == bare(room) and 110 in r["codes"] and r["type"] != "unavailable"
        waiter = self.wait_for(mine, timeout)
        pid = self.presence_to(to, join=x, password=password, history=history)
        r = await waiter
        fact = {"event": name, "who": self.label, "room": room, "to": to, "id": pid, "phase": self.phase}
        if r is None:
            fact.update(ok=False, answer="timeout")
        elif r["type"] == "error":
            fact.update(ok=False, answer="error", error=r.get("error"), presence=r)
        else:
            fact.update(ok=True, answer="self-presence", codes=r["codes"], nick=r["from"].split("/", 1)[-1],
                        item=item_of(r), presence=r)
        if report:
            out(**fact)
        return fact

    async def leave(self, room, nick, timeout=8, name="leave", status=None):
        to = "%s/%s" % (room, nick)

        def mine(r):
            return (r["stanza"] == "presence" and bare(r["from"]) == bare(room)
                    and r["type"] in ("unavailable", "error") and (110 in r["codes"] or r["type"] == "error"))
        waiter = self.wait_for(mine, timeout)
        p = self.make_presence(ptype="unavailable")
        p.xml.set("to", to)
        if status:
            ET.SubElement(p.xml, "{%s}status" % NS_CLIENT).text = status
        p.send()
        r = await waiter
        fact = {"event": name, "who": self.label, "room": room, "to": to, "phase": self.phase,
                "answer": "timeout" if r is None else r["type"], "presence": r}
        out(**fact)
        return fact

    async def iq(self, itype, to, payload, timeout=10):
        """Send an iq with payload (an Element); (ok, response element or error fact)."""
        iq = self.Iq()
        iq["type"] = itype
        iq["to"] = to
        if payload is not None:
            iq.xml.append(payload)
        try:
            resp = await iq.send(timeout=timeout)
            return True, resp.xml
        except IqError as e:
            return False, error_fact(e)
        except IqTimeout:
            return False, {"condition": "timeout", "type": None, "text": ""}

    async def owner_submit(self, room, fields=None, form_type=NS_ROOMCONFIG,
                           name="configure", ftype="submit"):
        """Submit a room configuration form built by hand: fields is a list
        of (var, [values]); no fields and no FORM_TYPE = instant room."""
        q = ET.Element("{%s}query" % NS_MUC_OWNER)
        data_form(q, ftype, form_type if fields is not None and form_type else None, fields)
        ok, r = await self.iq("set", room, q)
        fact = {"event": name, "who": self.label, "room": room, "fields": [[v, vals] for v, vals in (fields or ())],
                "ok": ok}
        if not ok:
            fact["error"] = r
        out(**fact)
        return fact

    async def admin_set(self, room, item, reason=None, name="admin"):
        q = ET.Element("{%s}query" % NS_MUC_ADMIN)
        it = ET.SubElement(q, "{%s}item" % NS_MUC_ADMIN, item)
        if reason:
            ET.SubElement(it, "{%s}reason" % NS_MUC_ADMIN).text = reason
        ok, r = await self.iq("set", room, q)
        fact = {"event": name, "who": self.label, "room": room, "item": item, "reason": reason, "ok": ok}
        if not ok:
            fact["error"] = r
        out(**fact)
        return fact

    async def room_info(self, room):
        """disco#info of the room: identities, features, muc#roominfo fields."""
        ok, r = await self.iq("get", room, ET.Element("{%s}query" % NS_DISCO_INFO))
        if not ok:
            return {"ok": False, "error": r}
        q = child(r, NS_DISCO_INFO, "query")
        info = {"ok": True, "identities": [], "features": [], "fields": {}}
        if q is None:
            return info
        for i in q.findall("{%s}identity" % NS_DISCO_INFO):
            info["identities"].append({"category": i.get("category"), "type": i.get("type"), "name": i.get("name")})
        info["features"] = sorted(f.get("var") for f in q.findall("{%s}feature" % NS_DISCO_INFO))
        for x in q.findall("{%s}x" % NS_DATA):
            for f in x.findall("{%s}field" % NS_DATA):
                vals = [v.text or "" for v in f.findall("{%s}value" % NS_DATA)]
                info["fields"][f.get("var")] = vals[0] if len(vals) == 1 else vals
        return info

    async def affiliation_list(self, room, affiliation):
        q = ET.Element("{%s}query" % NS_MUC_ADMIN)
        ET.SubElement(q, "{%s}item" % NS_MUC_ADMIN, {"affiliation": affiliation})
        ok, r = await self.iq("get", room, q)
        if not ok:
            return {"error": r}
        qq = child(r, NS_MUC_ADMIN, "query")
        return sorted((it.get("jid") or "") for it in (qq.findall("{%s}item" % NS_MUC_ADMIN) if qq is not None else []))

    def groupchat(self, room, body, mid=None, subject=None):
        mid = mid or "g-" + rand()
        m = self.make_message(mto=room, mtype="groupchat")
        if body is not None:
            m["body"] = body
        if subject is not None:
            m["subject"] = subject
        m["id"] = mid
        m.send()
        return mid

    async def mam(self, name, to=None, fields=None, rsm=None, timeout=15, report=True):
        """A MAM query to the account (to None) or to a room."""
        return await mam_query(self, name, to=to, fields=fields, rsm=rsm, timeout=timeout, report=report)

    def abort_now(self):
        """Drop the TCP connection: no unavailable presence, no </stream>."""
        if self.transport:
            self.transport.abort()

    async def close(self):
        try:
            await asyncio.wait_for(self.disconnect(), 5)
        except Exception:
            self.abort()


async def settle(clients, quiet=1.5, cap=10.0):
    """Wait until no client's log grew for `quiet` seconds (at most cap)."""
    await quiet_down(lambda: sum(len(c.log) for c in clients), quiet, cap)


def set_phase(clients, phase):
    for c in clients:
        c.phase = phase


def report_phase(clients, phase):
    """Every stanza each client logged during phase, then a per-client
    summary of presences (from, type, codes) and messages (id, from)."""
    for c in clients:
        recs = [r for r in c.log if r["phase"] == phase]
        for r in recs:
            out(event=r["stanza"], who=c.label, **r)
        out(event="phase", phase=phase, who=c.label,
            presences=[[r["from"], r["type"], r["codes"]] for r in recs if r["stanza"] == "presence"],
            messages=[[r["id"], r["from"], r["type"]] for r in recs if r["stanza"] == "message"])


def roster_of(c, room):
    """Occupants (nick -> role, affiliation, jid, show) as c's presences
    from room tell, in the order they came."""
    occ = {}
    for r in c.log:
        if r["stanza"] != "presence" or bare(r["from"]) != bare(room) or "/" not in (r["from"] or ""):
            continue
        nick = r["from"].split("/", 1)[1]
        it = item_of(r)
        if r["type"] == "unavailable":
            occ.pop(nick, None)
        elif r["type"] != "error":
            occ[nick] = {"role": it.get("role"), "affiliation": it.get("affiliation"), "jid": it.get("jid"),
                         "show": r.get("show")}
    return occ


def received(c, phase, mid):
    return [r for r in c.log if r["stanza"] == "message" and r["phase"] == phase and r["id"] == mid]


async def ensure_room(c, room, nick):
    """Join room; if it was created and is locked (201), make it an
    instant room with an empty submit form."""
    j = await c.join(room, nick, name="create")
    if not j["ok"]:
        raise Fatal("%s: could not join %s: %s" % (c.label, room, j.get("error") or j["answer"]))
    if 201 in j["codes"]:
        cf = await c.owner_submit(room, None, name="instant-configure")
        if not cf["ok"]:
            raise Fatal("%s: instant configuration of %s failed: %s" % (c.label, room, cf["error"]))
    return j


def archive_counts(fact, ids):
    return {i: sum(1 for r in fact.get("results", []) if r.get("id") == i) for i in ids}


async def attach(port, romeo, rpw, juliet, jpw, room):
    room = room_jid(room)
    rd = Client(romeo, rpw, "desk", "romeo/desk")
    rp = Client(romeo, rpw, "phone", "romeo/phone", sm=False)  # its drop is seen at once
    jb = Client(juliet, jpw, "balcony", "juliet/balcony")
    clients = [rd, rp, jb]
    await asyncio.gather(*(c.login(port) for c in clients))
    for c in clients:
        c.session_fact()
    romeo_bare = rd.boundjid.bare

    set_phase(clients, "join-desk")
    await ensure_room(rd, room, "Romeo")
    await settle(clients)
    report_phase(clients, "join-desk")

    set_phase(clients, "join-balcony")
    await jb.join(room, "Juliet")
    await settle(clients)
    report_phase(clients, "join-balcony")

    set_phase(clients, "join-phone")
    await rp.join(room, "Romeo")
    await settle(clients)
    report_phase(clients, "join-phone")
    jr = [r for r in jb.log if r["phase"] == "join-phone" and r["stanza"] == "presence"]
    out(event="second-occupant", who=jb.label, presences_seen=len(jr),
        froms=[r["from"] for r in jr], jids=[item_of(r).get("jid") for r in jr],
        juliet_roster=roster_of(jb, room), desk_roster=roster_of(rd, room), phone_roster=roster_of(rp, room))

    set_phase(clients, "message-1")
    n = rand()
    m1 = "g1-" + n
    jb.groupchat(room, "good night, good night " + n, mid=m1)
    out(event="sent", who=jb.label, id=m1, to=room, type="groupchat")
    await settle(clients)
    report_phase(clients, "message-1")
    out(event="delivery", id=m1, counts={c.label: len(received(c, "message-1", m1)) for c in clients},
        stanza_ids={c.label: [r["stanza_ids"] for r in received(c, "message-1", m1)] for c in clients})

    set_phase(clients, "archives")
    own = await rd.mam("own-include-groupchat", to=romeo_bare,
                       fields=[("with", [room]), ("include-groupchat", ["true"])])
    own_plain = await rd.mam("own-without-include", to=romeo_bare, fields=[("with", [room])])
    own_all = await rd.mam("own-include-no-with", to=romeo_bare, fields=[("include-groupchat", ["true"])])
    rooma = await rd.mam("room", to=room)
    out(event="archive-check", id=m1,
        own_counts=archive_counts(own, [m1]), own_without_include_counts=archive_counts(own_plain, [m1]),
        own_include_no_with_counts=archive_counts(own_all, [m1]), room_counts=archive_counts(rooma, [m1]),
        own_result_ids=[r["result_id"] for r in own["results"]],
        room_result_ids=[r["result_id"] for r in rooma["results"]],
        copy_stanza_ids=[s for r in received(rd, "message-1", m1) for s in r["stanza_ids"]])
    # The archive id of m1 in Romeo's archive, for the late client.
    first_id = next((r["result_id"] for r in own["results"] if r.get("id") == m1), None)
    if first_id is None:
        first_id = next((s["id"] for r in received(rd, "message-1", m1) for s in r["stanza_ids"]
                         if bare(s["by"]) == romeo_bare.lower()), None)

    set_phase(clients, "nick-change")
    await rp.join(room, "Romeo2", name="nick-change", x=False)
    await settle(clients)
    report_phase(clients, "nick-change")

    set_phase(clients, "phone-drop")
    rp.abort_now()
    try:
        await asyncio.wait_for(rp.futs["disconnected"], 10)
        dropped = True
    except asyncio.TimeoutError:
        dropped = False
    out(event="dropped", who=rp.label, disconnected=dropped)
    await settle([rd, jb], quiet=2.0)
    m2 = "g2-" + n
    jb.groupchat(room, "parting is such sweet sorrow " + n, mid=m2)
    out(event="sent", who=jb.label, id=m2, to=room, type="groupchat")
    await settle([rd, jb])
    report_phase([rd, jb], "phone-drop")
    out(event="delivery", id=m2, counts={c.label: len(received(c, "phone-drop", m2)) for c in (rd, jb)},
        juliet_saw_unavailable=[r["from"] for r in jb.log if r["phase"] == "phone-drop"
                                and r["stanza"] == "presence" and r["type"] == "unavailable"])

    set_phase([rd, jb], "desk-leave")
    # Desk leaves under the nick its latest self-presence gave it.
    nick_now = "Romeo"
    for r in rd.log:
        if r["stanza"] == "presence" and bare(r["from"]) == bare(room) and 110 in r["codes"] and r["type"] != "unavailable":
            nick_now = r["from"].split("/", 1)[1]
    await rd.leave(room, nick_now, name="explicit-leave")
    await settle([rd, jb])
    report_phase([rd, jb], "desk-leave")
    out(event="left", who=rd.label, nick=nick_now,
        juliet_unavailable=[r["from"] for r in jb.log if r["phase"] == "desk-leave"
                            and r["stanza"] == "presence" and r["type"] == "unavailable"],
        desk_self_unavailable=[[r["from"], r["codes"]] for r in rd.log if r["phase"] == "desk-leave"
                               and r["stanza"] == "presence" and r["type"] == "unavailable"])
    await rd.close()

    late = Client(romeo, rpw, "late", "romeo/late")
    await late.login(port)
    late.session_fact()
    late.phase = "late"
    await settle([late], quiet=1.5)
    report_phase([late], "late")
    fields = [("include-groupchat", ["true"])] + ([("after-id", [first_id])] if first_id else [])
    lm = await late.mam("late-after-first", to=romeo_bare, fields=fields)
    out(event="late-check", after_id=first_id, counts=archive_counts(lm, [m1, m2]),
        result_ids=[r["result_id"] for r in lm["results"]])
    for c in (late, jb):
        await c.close()


async def moderation(port, owner, opw, user, upw, room):
    room = room_jid(room)
    o = Client(owner, opw, "mod", "owner")
    a = Client(user, upw, "a", "user/a")
    b = Client(user, upw, "b", "user/b")
    clients = [o, a, b]
    await asyncio.gather(*(c.login(port) for c in clients))
    for c in clients:
        c.session_fact()
    unick = slixmpp.JID(user).user
    set_phase(clients, "setup")
    await ensure_room(o, room, slixmpp.JID(owner).user)
    await a.join(room, unick)
    await b.join(room, unick)
    await settle(clients)
    report_phase(clients, "setup")

    set_phase(clients, "kick")
    await o.admin_set(room, {"nick": unick, "role": "none"}, reason="out, vile jelly", name="kick")
    await settle(clients)
    report_phase(clients, "kick")

    set_phase(clients, "rejoin")
    await a.join(room, unick, name="rejoin")
    await b.join(room, unick, name="rejoin")
    await settle(clients)
    report_phase(clients, "rejoin")

    # One client's explicit exit takes the account out: the other client
    # is told (110) and the owner sees one exit.
    set_phase(clients, "leave")
    await a.leave(room, unick, name="leave")
    await settle(clients)
    report_phase(clients, "leave")

    set_phase(clients, "rejoin2")
    await a.join(room, unick, name="rejoin")
    await b.join(room, unick, name="rejoin")
    await settle(clients)
    report_phase(clients, "rejoin2")

    set_phase(clients, "ban")
    await o.admin_set(room, {"jid": a.boundjid.bare, "affiliation": "outcast"}, reason="banished", name="ban")
    await settle(clients)
    report_phase(clients, "ban")

    set_phase(clients, "after-ban")
    await a.join(room, unick, name="rejoin-banned")
    await settle(clients)
    report_phase(clients, "after-ban")
    out(event="state", who=o.label, after="ban", roster=roster_of(o, room), info=await o.room_info(room),
        outcasts=await o.affiliation_list(room, "outcast"))
    for c in clients:
        await c.close()


async def flows(port, owner, opw, user, upw, room):
    room = room_jid(room)
    o = Client(owner, opw, "flows", "owner")
    u = Client(user, upw, "one", "user/one")
    clients = [o, u]
    await asyncio.gather(*(c.login(port) for c in clients))
    for c in clients:
        c.session_fact()
    onick, unick = slixmpp.JID(owner).user, slixmpp.JID(user).user
    muc = o["xep_0045"]
    secret = "s3cret-" + rand()

    # Reserved room: join, get the form, fill it in, submit.
    set_phase(clients, "create")
    j = await o.join(room, onick, name="create")
    if not j["ok"]:
        raise Fatal("owner could not create %s: %s" % (room, j.get("error") or j["answer"]))
    fact = {"event": "config-form", "who": o.label, "created": 201 in j["codes"]}
    try:
        form = await muc.get_room_config(room, timeout=10)
        fields = form.get_fields()
        fact["fields"] = {var: {"type": f["type"], "value": f["value"] if not isinstance(f["value"], (list, set))
                                else list(f["value"])} for var, f in fields.items() if var}
        want = {"muc#roomconfig_roomname": "Capulet orchard", "muc#roomconfig_membersonly": True,
                "muc#roomconfig_moderatedroom": True, "muc#roomconfig_passwordprotectedroom": True,
                "muc#roomconfig_roomsecret": secret, "muc#roomconfig_historylength": "5",
                "muc#roomconfig_persistentroom": True}
        fact["missing"] = [v for v in want if v not in fields]
        for var, val in want.items():
            if var in fields:
                fields[var]["value"] = val
        try:
            await muc.set_room_config(room, form, timeout=10)
            fact["submit"] = "ok"
        except IqError as e:
            fact["submit"] = error_fact(e)
    except (IqError, ValueError) as e:
        fact["error"] = error_fact(e) if isinstance(e, IqError) else str(e)
    except IqTimeout:
        fact["error"] = "timeout"
    out(**fact)
    await settle(clients)
    report_phase(clients, "create")
    out(event="room-info", after="configure", info=await o.room_info(room))

    # Mediated invitation.
    set_phase(clients, "invite")
    muc.invite(room, u.boundjid.bare, reason="come, gentle night")
    await settle(clients)
    report_phase(clients, "invite")
    inv = [r for r in u.log if r["phase"] == "invite" and r["stanza"] == "message"]
    out(event="invite-seen", who=u.label, count=len(inv), invites=[r.get("invite") for r in inv],
        passwords=[r.get("password") for r in inv], froms=[r["from"] for r in inv],
        members=await o.affiliation_list(room, "member"))

    # Join without, then with the password, with slixmpp's join_muc_wait
    # (it needs the error presence to echo the MUC <x/>, and a subject
    # message after the self-presence).
    async def join_wait(c, **kw):
        fact = {"event": "join-muc-wait", "who": c.label, "password": "password" in kw,
                "options": {k: v for k, v in kw.items() if k != "password"}}
        try:
            with contextlib.redirect_stdout(sys.stderr):
                pres, subject, occupants, history = await c["xep_0045"].join_muc_wait(room, unick, timeout=10, **kw)
            fact.update(ok=True, codes=sorted(pres["muc"]["status_codes"]), role=pres["muc"]["role"],
                        affiliation=pres["muc"]["affiliation"], subject=subject["subject"],
                        occupants=[str(p["from"]) for p in occupants],
                        history=[m["id"] for m in history])
        except PresenceError as e:
            fact.update(ok=False, error={"condition": e.condition, "type": e.etype, "text": e.text})
        except asyncio.TimeoutError:
            fact.update(ok=False, error={"condition": "timeout (no self-presence, error echoing <x/>, or subject)"})
        out(**fact)
        return fact

    set_phase(clients, "join-nopass")
    await join_wait(u, maxstanzas=0)
    await settle(clients)
    report_phase(clients, "join-nopass")

    set_phase(clients, "join-pass")
    jw = await join_wait(u, password=secret, maxstanzas=0)
    if not jw["ok"] and jw["error"]["condition"] == "registration-required":
        await o.admin_set(room, {"jid": u.boundjid.bare, "affiliation": "member"}, name="make-member")
        jw = await join_wait(u, password=secret, maxstanzas=0)
    if not jw["ok"]:
        # Not joined; try the raw presence so that the later steps run.
        await u.join(room, unick, password=secret, name="join-with-password-raw")
    await settle(clients)
    report_phase(clients, "join-pass")

    # Voice in the moderated room.
    set_phase(clients, "voice")
    role = roster_of(o, room).get(unick, {}).get("role")
    out(event="user-role", seen_by=o.label, role=role)
    if role != "visitor":
        await o.admin_set(room, {"nick": unick, "role": "visitor"}, name="revoke-voice")
        await settle(clients, quiet=1.0)
    v1 = u.groupchat(room, "may I speak? " + rand())
    out(event="sent", who=u.label, id=v1, to=room, role="visitor")
    await settle(clients)
    await o.admin_set(room, {"nick": unick, "role": "participant"}, name="grant-voice")
    await settle(clients, quiet=1.0)
    v2 = u.groupchat(room, "now I speak " + rand())
    out(event="sent", who=u.label, id=v2, to=room, role="participant?")
    await settle(clients)
    report_phase(clients, "voice")
    out(event="voice-check", visitor_post={"sender_errors": [r.get("error") for r in received(u, "voice", v1) if r["type"] == "error"],
                                           "owner_got": len(received(o, "voice", v1))},
        participant_post={"sender_errors": [r.get("error") for r in received(u, "voice", v2) if r["type"] == "error"],
                          "owner_got": len(received(o, "voice", v2)), "user_echo": len(received(u, "voice", v2))})

    # Subject.
    set_phase(clients, "subject")
    topic = "Two households, both alike in dignity " + rand()
    muc.set_subject(room, topic)
    await settle(clients)
    report_phase(clients, "subject")
    out(event="subject-seen", who=u.label, subjects=[r["subject"] for r in u.log
                                                    if r["phase"] == "subject" and r.get("subject") is not None])

    # History on join, from a third client of the user's account.
    set_phase(clients, "history")
    hist = []
    for i in range(3):
        hist.append(o.groupchat(room, "history %d %s" % (i, rand())))
    out(event="sent", who=o.label, ids=hist, to=room)
    await settle(clients)
    t = Client(user, upw, "three", "user/three")
    await t.login(port)
    t.session_fact()
    t.phase = "history"
    await t.join(room, unick, password=secret, history={"maxstanzas": 2}, name="join-history")
    await settle(clients + [t])
    report_phase(clients + [t], "history")
    delayed = [r for r in t.log if r["stanza"] == "message" and r["delay"] is not None]
    out(event="history-seen", who=t.label, sent=hist,
        delayed=[{"id": r["id"], "delay": r["delay"], "body": r["body"], "subject": r["subject"], "from": r["from"]}
                 for r in delayed],
        subject=[r["subject"] for r in t.log if r["stanza"] == "message" and r.get("subject") is not None])
    for c in clients + [t]:
        await c.close()


async def bad(port, owner, opw, user, upw, room):
    room = room_jid(room)
    o = Client(owner, opw, "bad", "owner")
    u = Client(user, upw, "bad", "user", sm=False)  # writes stanzas slixmpp cannot
    clients = [o, u]
    await asyncio.gather(*(c.login(port) for c in clients))
    for c in clients:
        c.session_fact()
    onick, unick = slixmpp.JID(owner).user, slixmpp.JID(user).user
    set_phase(clients, "setup")
    await ensure_room(o, room, onick)
    await settle(clients, quiet=1.0)

    async def state(after):
        await settle(clients, quiet=1.0)
        out(event="state", who=o.label, after=after, roster=roster_of(o, room), info=await o.room_info(room),
            owners=await o.affiliation_list(room, "owner"), admins=await o.affiliation_list(room, "admin"),
            members=await o.affiliation_list(room, "member"), outcasts=await o.affiliation_list(room, "outcast"))

    await state("setup")

    async def leave_if_joined(j):
        if j["ok"]:
            await u.leave(room, j["nick"], name="leave-again")
            await settle(clients, quiet=1.0)

    # A groupchat message from an account that is not in the room.
    set_phase(clients, "non-occupant-message")
    mid = "nm-" + rand()
    w = u.wait_for(lambda r: r["stanza"] == "message" and r["id"] == mid, 6)
    u.groupchat(room, "let me in", mid=mid)
    r = await w
    out(event="non-occupant-message", who=u.label, id=mid, answer=None if r is None else r)
    await state("non-occupant-message")

    for name, to in (("empty-nick", room + "/"), ("spaces-nick", room + "/   "),
                     ("taken-nick", "%s/%s" % (room, onick))):
        set_phase(clients, name)
        j = await u.join(room, None, to=to, name=name, timeout=6)
        await leave_if_joined(j)
        report_phase(clients, name)
        await state(name)

    set_phase(clients, "join")
    j = await u.join(room, unick)
    if not j["ok"]:
        raise Fatal("user could not join %s: %s" % (room, j.get("error") or j["answer"]))
    await state("join")

    set_phase(clients, "non-admin")
    await u.admin_set(room, {"nick": onick, "role": "none"}, reason="mutiny", name="non-admin-kick")
    await u.admin_set(room, {"jid": u.boundjid.bare, "affiliation": "owner"}, name="non-admin-self-owner")
    await u.admin_set(room, {"nick": onick, "role": "visitor"}, name="non-admin-devoice")
    report_phase(clients, "non-admin")
    await state("non-admin")

    set_phase(clients, "config")
    await u.owner_submit(room, [], name="non-owner-config")
    await state("non-owner-config")
    await o.owner_submit(room, [("x-annals-bogus-field", ["1"])], name="config-unknown-field")
    await state("config-unknown-field")
    await o.owner_submit(room, [("muc#roomconfig_membersonly", ["maybe"])], name="config-bad-boolean")
    await state("config-bad-boolean")
    await o.owner_submit(room, [("muc#roomconfig_maxusers", ["lots"])], name="config-bad-number")
    await state("config-bad-number")
    report_phase(clients, "config")
    for c in clients:
        await c.close()


NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event"
NS_BOOKMARKS = "urn:xmpp:bookmarks:1"


def watch_bookmarks(c):
    """Record the bookmark notifications (XEP-0402 over PEP) c receives."""
    c.bookmark_events = []

    def on(msg):
        ev = child(msg.xml, NS_PUBSUB_EVENT, "event")
        items = child(ev, NS_PUBSUB_EVENT, "items") if ev is not None else None
        if items is None or items.get("node") != NS_BOOKMARKS:
            return
        for it in items:
            conf = child(it, NS_BOOKMARKS, "conference")
            c.bookmark_events.append({"phase": c.phase, "kind": local(it.tag), "id": it.get("id"),
                                      "autojoin": conf.get("autojoin") if conf is not None else None,
                                      "nick": text_of(conf, NS_BOOKMARKS, "nick") if conf is not None else None})
    c.register_handler(Callback("bookmark events", MatchXPath("{%s}message/{%s}event" % (NS_CLIENT, NS_PUBSUB_EVENT)), on))


async def publish_bookmark(c, room, autojoin, nick):
    pubsub = ET.Element("{%s}pubsub" % NS_PUBSUB)
    pub = ET.SubElement(pubsub, "{%s}publish" % NS_PUBSUB, {"node": NS_BOOKMARKS})
    item = ET.SubElement(pub, "{%s}item" % NS_PUBSUB, {"id": room})
    conf = ET.SubElement(item, "{%s}conference" % NS_BOOKMARKS, {"autojoin": "true" if autojoin else "false"})
    ET.SubElement(conf, "{%s}nick" % NS_BOOKMARKS).text = nick
    opts = ET.SubElement(pubsub, "{%s}publish-options" % NS_PUBSUB)
    x = ET.SubElement(opts, "{%s}x" % NS_DATA, {"type": "submit"})
    for var, val in (("FORM_TYPE", NS_PUBSUB + "#publish-options"), ("pubsub#persist_items", "true"),
                     ("pubsub#max_items", "max"), ("pubsub#access_model", "whitelist")):
        f = ET.SubElement(x, "{%s}field" % NS_DATA, {"var": var})
        ET.SubElement(f, "{%s}value" % NS_DATA).text = val
    ok, r = await c.iq("set", None, pubsub)
    out(event="publish-bookmark", who=c.label, room=room, autojoin=autojoin, ok=ok, error=None if ok else r)
    return ok


async def bookmarks(port, jid, pw, room):
    """One account on two clients: joining from one sets the bookmark's
    autojoin and the other hears of it; leaving clears it; a client
    publishing autojoin=true makes the account join (the room shows an
    occupant though no client joined), autojoin=false makes it leave."""
    room = room_jid(room)
    desk = Client(jid, pw, "desk", "desk")
    phone = Client(jid, pw, "phone", "phone")
    clients = [desk, phone]
    for c in clients:
        watch_bookmarks(c)
    await asyncio.gather(*(c.login(port) for c in clients))
    for c in clients:
        c.send_presence()
    nick = slixmpp.JID(jid).user
    set_phase(clients, "join")
    await ensure_room(desk, room, nick)
    await settle(clients)
    set_phase(clients, "leave")
    await desk.leave(room, nick)
    await settle(clients)
    info = await phone.room_info(room)
    out(event="occupants", after="leave", count=info.get("fields", {}).get("muc#roominfo_occupants"))
    set_phase(clients, "publish-true")
    await publish_bookmark(phone, room, True, nick)
    await settle(clients)
    info = await phone.room_info(room)
    out(event="occupants", after="publish-true", count=info.get("fields", {}).get("muc#roominfo_occupants"))
    # XEP-0048 clients see the same bookmarks in private XML storage.
    q = ET.Element("{jabber:iq:private}query")
    ET.SubElement(q, "{storage:bookmarks}storage")
    ok, r = await phone.iq("get", None, q)
    confs = []
    if ok:
        for conf in r.iter("{storage:bookmarks}conference"):
            confs.append({"jid": conf.get("jid"), "autojoin": conf.get("autojoin")})
    out(event="private-bookmarks", ok=ok, conferences=confs)
    set_phase(clients, "publish-false")
    await publish_bookmark(phone, room, False, nick)
    await settle(clients)
    info = await phone.room_info(room)
    out(event="occupants", after="publish-false", count=info.get("fields", {}).get("muc#roominfo_occupants"))
    # A client joins a room its bookmark does not autojoin: the bookmark
    # stays as the user set it, and the account is in only while a client
    # is: the client going unavailable takes it out.
    set_phase(clients, "join-unheld")
    await ensure_room(desk, room, nick)
    await settle(clients)
    info = await phone.room_info(room)
    out(event="occupants", after="join-unheld", count=info.get("fields", {}).get("muc#roominfo_occupants"))
    set_phase(clients, "unavailable-unheld")
    desk.send_presence(ptype="unavailable")
    await settle(clients)
    info = await phone.room_info(room)
    out(event="occupants", after="unavailable-unheld", count=info.get("fields", {}).get("muc#roominfo_occupants"))
    # autojoin=false published while a client is in the room does not
    # pull that client out.
    set_phase(clients, "publish-false-attached")
    desk.send_presence()
    await ensure_room(desk, room, nick)
    await publish_bookmark(phone, room, False, nick)
    await settle(clients)
    info = await phone.room_info(room)
    out(event="occupants", after="publish-false-attached", count=info.get("fields", {}).get("muc#roominfo_occupants"))
    for c in clients:
        for ev in c.bookmark_events:
            out(event="bookmark-event", who=c.label, **ev)
    for c in clients:
        await c.close()


async def voice(port, owner, opw, user, upw, room):
    """Voice requests (XEP-0045 §7.13, §8.6), asked with slixmpp's own
    request_voice: in a moderated room a visitor cannot speak; it asks
    for voice, asks again at once (refused: the interval), the
    moderator's client gets the approval form and submits it, and the
    visitor, now a participant, speaks; a participant asking is refused."""
    room = room_jid(room)
    o = Client(owner, opw, "voice", "owner")
    u = Client(user, upw, "one", "user")
    clients = [o, u]
    await asyncio.gather(*(c.login(port) for c in clients))
    onick, unick = slixmpp.JID(owner).user, slixmpp.JID(user).user
    set_phase(clients, "setup")
    await ensure_room(o, room, onick)
    await o.owner_submit(room, [("muc#roomconfig_moderatedroom", ["1"])], name="moderate")
    j = await u.join(room, unick)
    out(event="visitor-joined", ok=j["ok"], role=item_of(j.get("presence") or {}).get("role"))
    await settle(clients)

    set_phase(clients, "silenced")
    w = u.wait_for(lambda r: r["stanza"] == "message" and r["type"] == "error", 8)
    u.groupchat(room, "may I speak?")
    r = await w
    out(event="visitor-says", error=r.get("error") if r else None)

    set_phase(clients, "request")
    form_seen = o.wait_for(lambda r: r["stanza"] == "message" and
                           (r.get("form") or {}).get("FORM_TYPE") == "http://jabber.org/protocol/muc#request", 8)
    u["xep_0045"].request_voice(slixmpp.JID(room), "participant")
    f = await form_seen
    out(event="approval-form", form=f.get("form") if f else None, frm=f["from"] if f else None)
    w = u.wait_for(lambda r: r["stanza"] == "message" and r["type"] == "error", 8)
    u["xep_0045"].request_voice(slixmpp.JID(room), "participant")
    r = await w
    out(event="second-request", error=r.get("error") if r else None)

    set_phase(clients, "approve")
    voiced = u.wait_for(lambda r: r["stanza"] == "presence" and 110 in r["codes"] and item_of(r).get("role") == "participant", 8)
    m = o.make_message(mto=room)
    data_form(m.xml, "submit", "http://jabber.org/protocol/muc#request", [
        ("muc#role", ["participant"]), ("muc#jid", [(f.get("form") or {}).get("muc#jid") or ""]),
        ("muc#roomnick", [(f.get("form") or {}).get("muc#roomnick") or ""]), ("muc#request_allow", ["true"])])
    m.send()
    r = await voiced
    out(event="voiced", role=item_of(r).get("role") if r else None)

    set_phase(clients, "speaks")
    heard = o.wait_for(lambda r: r["stanza"] == "message" and r["type"] == "groupchat" and r["body"] == "thank you", 8)
    u.groupchat(room, "thank you")
    r = await heard
    out(event="heard", ok=r is not None)
    w = u.wait_for(lambda r: r["stanza"] == "message" and r["type"] == "error", 8)
    u["xep_0045"].request_voice(slixmpp.JID(room), "participant")
    r = await w
    out(event="participant-request", error=r.get("error") if r else None)
    for c in clients:
        await c.close()


SCENARIOS = {"attach": (attach, 5), "moderation": (moderation, 5), "flows": (flows, 5), "bad": (bad, 5),
             "bookmarks": (bookmarks, 3), "voice": (voice, 5)}


if __name__ == "__main__":
    run(SCENARIOS, "slix_muc.py", 130)
