"""Administration over XMPP (issue 14): XEP-0050 ad-hoc commands with
the XEP-0133 commands, driven by slixmpp's own xep_0050 and xep_0133
plugins (their session flow: start, then complete or next from the
handler each stage calls).

usage: slix_adhoc.py ADDR ADMIN BOB PASSWORD NEWUSER PW1 PW2

ADMIN is an administrator (--admin), BOB an account that is not; both
have PASSWORD. The admin adds NEWUSER with PW1; NEWUSER logs in; the
admin changes its password to PW2 (the session ends, PW1 fails, PW2
works), lists the online users, announces to them and deletes NEWUSER
(through the confirmation stage); its session ends and it can no longer
log in. BOB sees no command and is refused one. One JSON fact a line.
"""
import asyncio
import ssl
import sys

import slixmpp

from common import main_of, out

NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_ADMIN = "http://jabber.org/protocol/admin"


class Client(slixmpp.ClientXMPP):
    def __init__(self, addr, jid, password, label):
        super().__init__(jid, password)
        host, port = addr.rsplit(":", 1)
        self.addr = (host, int(port))
        self.label = label
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        for p in ("xep_0030", "xep_0004", "xep_0050", "xep_0133"):
            self.register_plugin(p)
        loop = asyncio.get_event_loop()
        self.futs = {k: loop.create_future() for k in ("started", "disconnected")}
        self.condition = None  # of the stream error that ended the session
        self.messages = asyncio.Queue()
        self.add_event_handler("session_start", lambda _: self._settle("started", True))
        self.add_event_handler("failed_auth", lambda _: self._settle("started", False))
        self.add_event_handler("disconnected", self._on_disconnected)
        self.add_event_handler("stream_error", self._on_stream_error)
        self.add_event_handler("message", self.messages.put_nowait)

    def _settle(self, name, value):
        if not self.futs[name].done():
            self.futs[name].set_result(value)

    def _on_disconnected(self, _):
        self._settle("disconnected", True)
        self._settle("started", False)

    def _on_stream_error(self, err):
        self.condition = err["condition"]

    async def login(self):
        self.connect(address=self.addr)
        ok = await asyncio.wait_for(self.futs["started"], 20)
        if ok:
            self.send_presence()
            await self.get_roster()
        return ok


async def try_login(addr, jid, password, label):
    c = Client(addr, jid, password, label)
    ok = await c.login()
    out(event="login", who=label, ok=ok)
    if not ok:
        c.abort()
        return None
    return c


async def commands(c):
    """The command nodes c's server lists for it (XEP-0050 §2.2)."""
    res = await c["xep_0133"].get_commands(timeout=10)
    return sorted(item[1] for item in res["disco_items"]["items"])


def run(c, name, stages):
    """Run XEP-0133 command name through slixmpp's session flow. stages
    is a list of (values, action): what to fill in at each executing
    stage and whether to go "next" or "complete". Returns a future of the
    last answer's facts."""
    done = asyncio.get_event_loop().create_future()
    plan = list(stages)

    def on_result(iq, session):
        cmd = iq["command"]
        fact = {"status": cmd["status"], "actions": sorted(cmd["actions"]),
                "notes": [[t, n] for t, n in cmd["notes"]]}
        form = cmd["form"] if cmd.xml.find("{jabber:x:data}x") is not None else None
        if form is not None:
            fact["form_type"] = form["type"]
            fact["fields"] = {var: f["value"] for var, f in form.get_fields().items() if var and var != "FORM_TYPE"}
            fact["instructions"] = form["instructions"]
        if cmd["status"] != "executing" or not plan:
            if not done.done():
                done.set_result(fact)
            return
        fact["stage"] = True
        out(event="stage", who=c.label, command=name, **fact)
        values, action = plan.pop(0)
        form = cmd["form"]
        for var, value in values.items():
            form.get_fields()[var]["value"] = value
        form["type"] = "submit"
        session["payload"] = form
        if action == "next":
            c["xep_0050"].continue_command(session)
        else:
            c["xep_0050"].complete_command(session)

    def on_error(iq, session):
        e = iq["error"]
        app = [ch.tag.rsplit("}", 1)[-1] for ch in iq.xml.find("{jabber:client}error") if ch.tag.startswith("{%s}" % NS_COMMANDS)]
        if not done.done():
            done.set_result({"error": e["condition"], "type": e["type"], "text": e["text"], "app": app})
        c["xep_0050"].terminate_command(session)

    getattr(c["xep_0133"], name.replace("-", "_"))(session={"next": on_result, "error": on_error})
    return done


async def command(c, name, stages):
    fact = await asyncio.wait_for(run(c, name, stages), 15)
    out(event="command", who=c.label, command=name, **fact)
    return fact


async def ended(c, label):
    """Wait for the server to end c's session; report how."""
    try:
        await asyncio.wait_for(c.futs["disconnected"], 10)
        out(event="ended", who=label, ok=True, condition=c.condition)
    except asyncio.TimeoutError:
        out(event="ended", who=label, ok=False, condition=None)
        c.abort()


async def main(addr, admin_jid, bob_jid, password, new_jid, pw1, pw2):
    admin = await try_login(addr, admin_jid + "/desk", password, "admin")
    bob = await try_login(addr, bob_jid + "/desk", password, "bob")
    if admin is None or bob is None:
        sys.exit("admin or bob could not log in")
    out(event="commands", who="admin", nodes=await commands(admin))
    out(event="commands", who="bob", nodes=await commands(bob))
    await command(bob, "add-user", [])
    try:
        await admin["xep_0030"].get_info(jid=admin.boundjid.domain, node=NS_ADMIN + "#add-user", timeout=10)
        out(event="info", who="admin", ok=True)
    except slixmpp.exceptions.IqError:
        out(event="info", who="admin", ok=False)
    try:
        await bob["xep_0030"].get_info(jid=bob.boundjid.domain, node=NS_ADMIN + "#add-user", timeout=10)
        out(event="info", who="bob", ok=True)
    except slixmpp.exceptions.IqError as e:
        out(event="info", who="bob", ok=False, error=e.iq["error"]["condition"])

    await command(admin, "add-user", [({"accountjid": new_jid, "password": pw1, "password-verify": pw1}, "complete")])
    await command(admin, "add-user", [({"accountjid": new_jid, "password": pw1, "password-verify": pw1}, "complete")])  # again: it exists
    new = await try_login(addr, new_jid + "/phone", pw1, "new")

    await command(admin, "change-user-password", [({"accountjid": new_jid, "password": pw2}, "complete")])
    await ended(new, "new")
    await try_login(addr, new_jid + "/phone", pw1, "new-old-password")
    new = await try_login(addr, new_jid + "/phone", pw2, "new-new-password")

    await command(admin, "get-online-users-list", [({"max_items": "none"}, "complete")])
    await command(admin, "announce", [({"announcement": "The server restarts at noon.\nSave your work."}, "complete")])
    for c in (new, bob):
        try:
            while True:
                m = await asyncio.wait_for(c.messages.get(), 10)
                if m["type"] == "headline":
                    break
            out(event="announcement", who=c.label, sender=str(m["from"]), type=m["type"], body=m["body"])
        except asyncio.TimeoutError:
            out(event="announcement", who=c.label, sender=None)

    await command(admin, "delete-user", [({"accountjids": [new_jid]}, "next"), ({}, "complete")])
    await ended(new, "new-deleted")
    await try_login(addr, new_jid + "/phone", pw2, "new-after-delete")
    for c in (admin, bob):
        c.disconnect()
    await asyncio.sleep(0.3)


if __name__ == "__main__":
    main_of(main, 7, __doc__, 120)
