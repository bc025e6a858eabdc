"""PEP events to contacts at another server (issue 14): alice at one
server, bob and carol at another, with slixmpp's own plugins.

usage: slix_pep_fed.py ALICE_ADDR ALICE PASSWORD_A BOB_ADDR BOB CAROL PASSWORD_B

alice and bob subscribe to each other; carol, at bob's server, is a
stranger who also asks for the events (+notify). alice publishes a
nickname (XEP-0172, access model presence) and an OMEMO device list
(open). Prints what each of bob's clients and carol heard: bob's desk
live, bob's phone (online after the publishing) the last items.
"""
import asyncio
import xml.etree.ElementTree as ET

from slix_pep import INTERESTS, NS_AXOLOTL, NS_DEVICELIST, Client, open_access
from common import main_of, out


async def main(alice_addr, alice_jid, pw_a, bob_addr, bob_jid, carol_jid, pw_b):
    alice = await Client(alice_addr, alice_jid + "/desk", pw_a, "alice").login()
    bob = await Client(bob_addr, bob_jid + "/desk", pw_b, "bob", INTERESTS).login()
    carol = await Client(bob_addr, carol_jid + "/desk", pw_b, "carol", INTERESTS).login()
    loop = asyncio.get_event_loop()
    bob_sees, alice_sees = loop.create_future(), loop.create_future()
    bob.add_event_handler("presence_available", lambda p: p["from"].bare == alice_jid and not bob_sees.done() and bob_sees.set_result(True))
    alice.add_event_handler("presence_available", lambda p: p["from"].bare == bob_jid and not alice_sees.done() and alice_sees.set_result(True))
    alice.send_presence_subscription(pto=bob_jid, ptype="subscribe")
    await asyncio.wait_for(asyncio.gather(bob_sees, alice_sees), 30)
    out(event="subscribed")
    # alice's server learns what bob's client can do (it asks it once,
    # over federation) before alice publishes.
    await asyncio.sleep(2)
    await alice["xep_0172"].publish_nick("Alice of Capulet")
    devices = ET.Element("{%s}list" % NS_AXOLOTL)
    ET.SubElement(devices, "{%s}device" % NS_AXOLOTL, {"id": "4242"})
    await alice["xep_0060"].publish(alice_jid, NS_DEVICELIST, id="current", payload=devices, options=open_access())
    out(event="published", who="alice")
    await asyncio.sleep(2)
    for c in (bob, carol):
        out(event="events", who=c.label, events=c.events)
    phone = await Client(bob_addr, bob_jid + "/phone", pw_b, "bob-phone", INTERESTS).login()
    await asyncio.sleep(3)
    out(event="events", who="bob-phone", events=phone.events)
    for c in (alice, bob, carol, phone):
        c.disconnect()
    await asyncio.sleep(0.3)


if __name__ == "__main__":
    main_of(main, 7, __doc__, 90)
