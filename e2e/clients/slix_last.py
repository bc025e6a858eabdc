"""Last Activity (XEP-0012) with slixmpp's own plugin.

usage: slix_last.py ADDR PASSWORD ALICE BOB CAROL

alice and bob subscribe to each other; bob leaves with a status; then
alice asks the server's uptime and bob's last activity, carol (a
stranger) asks bob's. Prints one JSON fact per answer.
"""
import asyncio
import ssl

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

from common import error_fact, main_of, out


class Client(slixmpp.ClientXMPP):
    def __init__(self, addr, jid, password, label):
        super().__init__(jid, password)
        host, port = addr.rsplit(":", 1)
        self.addr = (host, int(port))
        self.label = label
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        for p in ("xep_0030", "xep_0012"):
            self.register_plugin(p)
        self.started = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", lambda _: self.started.done() or self.started.set_result(True))

    async def login(self):
        self.connect(address=self.addr)
        await asyncio.wait_for(self.started, 20)
        self.send_presence()
        await self.get_roster()
        return self


async def ask(c, jid, what):
    try:
        r = await c["xep_0012"].get_last_activity(jid, timeout=15)
        out(event="last", who=c.label, what=what, seconds=int(r["last_activity"]["seconds"]), status=r["last_activity"]["status"])
    except IqError as e:
        out(event="last", who=c.label, what=what, error=error_fact(e))
    except IqTimeout:
        out(event="last", who=c.label, what=what, error={"condition": "timeout"})


async def main(addr, password, alice_jid, bob_jid, carol_jid):
    alice = await Client(addr, alice_jid + "/desk", password, "alice").login()
    bob = await Client(addr, bob_jid + "/desk", password, "bob").login()
    carol = await Client(addr, carol_jid + "/desk", password, "carol").login()
    subscribed = asyncio.get_event_loop().create_future()
    alice.add_event_handler("presence_available", lambda p: p["from"].bare == bob_jid and not subscribed.done() and subscribed.set_result(True))
    alice.send_presence_subscription(pto=bob_jid, ptype="subscribe")
    await asyncio.wait_for(subscribed, 20)
    await ask(alice, bob_jid, "bob-online")
    bob.send_presence(ptype="unavailable", pstatus="gone to Mantua")
    await asyncio.sleep(0.3)
    bob.disconnect()
    await asyncio.sleep(2.2)
    await ask(alice, slixmpp.JID(alice_jid).domain, "uptime")
    await ask(alice, bob_jid, "bob-gone")
    await ask(carol, bob_jid, "bob-to-a-stranger")
    for c in (alice, carol):
        c.disconnect()
    await asyncio.sleep(0.3)


if __name__ == "__main__":
    main_of(main, 5, __doc__, 90)
