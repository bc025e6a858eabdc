"""PEP for contacts (issue 14): what a contact and a stranger may read of
an account's nodes, with slixmpp's own plugins.

usage: slix_pep.py ADDR PASSWORD ALICE BOB CAROL

alice and bob subscribe to each other; carol is a stranger. alice
publishes an avatar (XEP-0084, data and metadata), a nickname
(XEP-0172), both with PEP's default access model (presence), and an
OMEMO device list and bundle (XEP-0384, legacy namespace) with access
model open (XEP-0223 publish-options). bob and carol each read all of
them. Prints one JSON fact per read: what was read, by whom, the items'
ids, or the error.
"""
import asyncio
import hashlib
import ssl
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.plugins.xep_0004 import Form
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from common import error_fact, main_of, out

NS_DEVICELIST = "eu.siacs.conversations.axolotl.devicelist"
NS_BUNDLES = "eu.siacs.conversations.axolotl.bundles"
NS_AXOLOTL = "eu.siacs.conversations.axolotl"
AVATAR = bytes(range(256)) * 4  # an image's bytes, as far as the server cares


INTERESTS = ["urn:xmpp:avatar:metadata", "http://jabber.org/protocol/nick", NS_DEVICELIST]


class Client(slixmpp.ClientXMPP):
    def __init__(self, addr, jid, password, label, interests=()):
        super().__init__(jid, password)
        host, port = addr.rsplit(":", 1)
        self.addr = (host, int(port))
        self.label = label
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        for p in ("xep_0030", "xep_0060", "xep_0084", "xep_0115", "xep_0163", "xep_0172"):
            self.register_plugin(p)
        for ns in interests:
            self["xep_0163"].add_interest(ns)  # +notify in the caps this client's presence carries
        self.events = []  # (from, node) of each PEP event it received
        self.register_handler(Callback("pep event", MatchXPath("{jabber:client}message/{http://jabber.org/protocol/pubsub#event}event"), self._on_event))
        self.started = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", lambda _: self.started.done() or self.started.set_result(True))
        self.add_event_handler("failed_auth", lambda _: self.started.done() or self.started.set_result(False))

    def _on_event(self, m):
        ev = m.xml.find("{http://jabber.org/protocol/pubsub#event}event")
        for items in ev.findall("{http://jabber.org/protocol/pubsub#event}items"):
            self.events.append([m["from"].bare, items.get("node")])

    async def login(self):
        self.connect(address=self.addr)
        if not await asyncio.wait_for(self.started, 20):
            raise SystemExit("%s: login failed" % self.label)
        self.send_presence()
        await self.get_roster()
        return self


def open_access():
    f = Form()
    f["type"] = "submit"
    f.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/pubsub#publish-options")
    f.add_field(var="pubsub#access_model", value="open")
    return f


async def read(c, owner, node, what):
    try:
        res = await c["xep_0060"].get_items(owner, node, timeout=15)
        items = res["pubsub"]["items"]
        ids = [it["id"] for it in items]
        payload = ""
        for it in items:
            for child in it.xml:
                payload += ET.tostring(child, encoding="unicode")
        out(event="read", who=c.label, what=what, ids=ids, payload_bytes=len(payload),
            avatar_intact=(hashlib.sha1(AVATAR).hexdigest() in ids and "AAECAwQF" in payload) if what.endswith("avatar-data") else None)
    except IqError as e:
        f = error_fact(e)
        for child in e.iq.xml.find("{jabber:client}error"):
            if child.tag.startswith("{http://jabber.org/protocol/pubsub#errors}"):
                f["pubsub"] = child.tag.rsplit("}", 1)[-1]
        out(event="read", who=c.label, what=what, error=f)
    except IqTimeout:
        out(event="read", who=c.label, what=what, error={"condition": "timeout"})


async def publish_all(c, jid, nick):
    """An avatar (data and metadata) and a nickname with the default access
    model, an OMEMO device list and bundle open to anyone."""
    avatar_id = hashlib.sha1(AVATAR).hexdigest()
    await c["xep_0084"].publish_avatar(AVATAR)
    await c["xep_0084"].publish_avatar_metadata([{"id": avatar_id, "type": "image/png", "bytes": len(AVATAR)}])
    await c["xep_0172"].publish_nick(nick)
    devices = ET.Element("{%s}list" % NS_AXOLOTL)
    ET.SubElement(devices, "{%s}device" % NS_AXOLOTL, {"id": "4223"})
    await c["xep_0060"].publish(jid, NS_DEVICELIST, id="current", payload=devices, options=open_access())
    bundle = ET.Element("{%s}bundle" % NS_AXOLOTL)
    ET.SubElement(bundle, "{%s}identityKey" % NS_AXOLOTL).text = "BWlkZW50aXR5"
    await c["xep_0060"].publish(jid, NS_BUNDLES + ":4223", id="current", payload=bundle, options=open_access())


async def main(addr, password, alice_jid, bob_jid, carol_jid):
    alice = await Client(addr, alice_jid + "/desk", password, "alice").login()
    bob = await Client(addr, bob_jid + "/desk", password, "bob", INTERESTS).login()
    carol = await Client(addr, carol_jid + "/desk", password, "carol", INTERESTS).login()
    subscribed = asyncio.get_event_loop().create_future()
    bob.add_event_handler("presence_available", lambda p: p["from"].bare == alice_jid and not subscribed.done() and subscribed.set_result(True))
    alice.send_presence_subscription(pto=bob_jid, ptype="subscribe")
    await asyncio.wait_for(subscribed, 20)
    await asyncio.sleep(0.5)

    await publish_all(alice, alice_jid, "Alice of the Tests")
    out(event="published", who="alice")
    await asyncio.sleep(1)
    for c in (bob, carol):
        out(event="events", who=c.label, events=c.events)
    # A client of bob's that comes online now gets the last items of the
    # nodes it asks events of.
    phone = await Client(addr, bob_jid + "/phone", password, "bob-phone", INTERESTS).login()
    await asyncio.sleep(1.5)
    out(event="events", who="bob-phone", events=phone.events)
    # And the other way: alice reads bob's.
    await publish_all(bob, bob_jid, "Bob of the Tests")
    for what, node in (("avatar-data", "urn:xmpp:avatar:data"), ("avatar-metadata", "urn:xmpp:avatar:metadata"),
                       ("nick", "http://jabber.org/protocol/nick"), ("devicelist", NS_DEVICELIST), ("bundle", NS_BUNDLES + ":4223")):
        await read(alice, bob_jid, node, "bob's " + what)

    for c in (bob, carol, alice):
        await read(c, alice_jid, "urn:xmpp:avatar:data", "avatar-data")
        await read(c, alice_jid, "urn:xmpp:avatar:metadata", "avatar-metadata")
        await read(c, alice_jid, "http://jabber.org/protocol/nick", "nick")
        await read(c, alice_jid, NS_DEVICELIST, "devicelist")
        await read(c, alice_jid, NS_BUNDLES + ":4223", "bundle")
        await read(c, alice_jid, "urn:xmpp:nothing-here", "no-such-node")
    for c in (alice, bob, carol, phone):
        c.disconnect()
    await asyncio.sleep(0.3)


if __name__ == "__main__":
    main_of(main, 5, __doc__, 90)
