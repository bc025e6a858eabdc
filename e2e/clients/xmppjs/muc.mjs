// Drive a server's group chat (XEP-0045 MUC) with xmpp.js (@xmpp/client):
// one account on two clients in a room, another account on one, a
// groupchat message, and the first account's MAM archive with groupchat.
//
// Usage: node muc.mjs PORT attach ROMEO_JID PW JULIET_JID PW ROOM
//
// ROOM is a bare room JID; without a domain it is put on
// conference.localhost. Prints one JSON object per line on stdout: facts,
// not verdicts. Exits 0 when the scenario ran, 1 (message on stderr) when
// it could not.
import { client, xml, jid as parseJid } from "@xmpp/client";
import { Fatal, delayOf, innerMessage, out, quietDown, rand, runMain, sleep, stanzaIds, withTimeout, serviceOf } from "./common.mjs";

const NS_SID = "urn:xmpp:sid:0";
const NS_MAM = "urn:xmpp:mam:2";
const NS_DATA = "jabber:x:data";
const NS_RSM = "http://jabber.org/protocol/rsm";
const NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const NS_MUC = "http://jabber.org/protocol/muc";
const NS_MUC_USER = NS_MUC + "#user";
const NS_MUC_OWNER = NS_MUC + "#owner";
const MUC_DOMAIN = "conference.localhost";

// common.mjs accepts the test server's self-signed certificate on
// 127.0.0.1 only.

const bare = (j) => (j ? j.split("/")[0].toLowerCase() : j);

function errorOf(el) {
  const e = el.getChild("error");
  if (!e) return null;
  let condition = "";
  let text = "";
  for (const c of e.getChildElements()) {
    if (c.attrs.xmlns !== NS_STANZAS) continue;
    if (c.name === "text") text = c.text();
    else condition = c.name;
  }
  return { condition, type: e.attrs.type ?? null, text };
}

function mucUser(el) {
  const x = el.getChild("x", NS_MUC_USER);
  if (!x) return { muc_user: false, codes: [], items: [] };
  return {
    muc_user: true,
    codes: x
      .getChildren("status")
      .map((s) => Number(s.attrs.code))
      .filter((n) => !Number.isNaN(n))
      .sort((a, b) => a - b),
    items: x.getChildren("item").map((i) => ({
      role: i.attrs.role ?? null,
      affiliation: i.attrs.affiliation ?? null,
      jid: i.attrs.jid ?? null,
      nick: i.attrs.nick ?? null,
    })),
  };
}

function presenceFields(p) {
  const f = {
    from: p.attrs.from ?? null,
    to: p.attrs.to ?? null,
    id: p.attrs.id ?? null,
    type: p.attrs.type ?? "available",
    show: p.getChildText("show"),
    ...mucUser(p),
  };
  if (f.type === "error") f.error = errorOf(p);
  return f;
}

function msgFields(m) {
  if (!m) return { id: null };
  return {
    id: m.attrs.id ?? null,
    type: m.attrs.type ?? "normal",
    from: m.attrs.from ?? null,
    to: m.attrs.to ?? null,
    body: m.getChildText("body"),
    subject: m.getChildText("subject"),
    stanza_ids: stanzaIds(m),
    delay: delayOf(m),
    ...(m.attrs.type === "error" ? { error: errorOf(m) } : {}),
  };
}

function makeClient(port, jidStr, password, resource, label) {
  const j = parseJid(jidStr);
  const c = client({
    service: serviceOf(port),
    domain: j.domain,
    username: j.local,
    password,
    resource,
  });
  c.reconnect.stop();
  const st = { label, phase: "login", log: [], mam: new Map(), errors: [], waiters: [] };
  const record = (rec) => {
    rec.phase = st.phase;
    st.log.push(rec);
    for (const w of [...st.waiters]) {
      if (w.pred(rec)) {
        st.waiters.splice(st.waiters.indexOf(w), 1);
        w.resolve(rec);
      }
    }
  };
  c.on("error", (err) => st.errors.push(String(err?.message ?? err)));
  c.on("stanza", (el) => {
    const from = el.attrs.from ?? "";
    if (el.is("presence")) {
      // Only the MUC service's presences, not the account's roster.
      if (from && !bare(from).endsWith("@" + MUC_DOMAIN) && bare(from) !== MUC_DOMAIN) return;
      record({ stanza: "presence", ...presenceFields(el) });
      return;
    }
    if (!el.is("message")) return;
    const res = el.getChild("result", NS_MAM);
    if (res) {
      const [fwd, m] = innerMessage(res);
      const list = st.mam.get(res.attrs.queryid) ?? [];
      list.push({ result_id: res.attrs.id ?? null, forwarded_delay: delayOf(fwd), ...msgFields(m) });
      st.mam.set(res.attrs.queryid, list);
      return;
    }
    record({ stanza: "message", ...msgFields(el) });
  });
  return { c, st };
}

function waitFor({ st }, pred, ms) {
  return new Promise((resolve) => {
    const w = { pred, resolve };
    st.waiters.push(w);
    setTimeout(() => {
      const i = st.waiters.indexOf(w);
      if (i >= 0) {
        st.waiters.splice(i, 1);
        resolve(null);
      }
    }, ms);
  });
}

async function login(cl) {
  try {
    await withTimeout(cl.c.start(), 20000, `${cl.st.label}: login`);
  } catch (err) {
    throw new Fatal(`${cl.st.label}: login failed: ${err?.message ?? err}`);
  }
  await cl.c.send(xml("presence"));
  cl.st.phase = "session";
  out({ event: "session", who: cl.st.label, jid: String(cl.c.jid) });
}

// Join a room and wait for the self-presence (110) or an error presence.
async function join(cl, room, nick, name = "join") {
  const to = `${room}/${nick}`;
  const id = "p-" + rand();
  const got = waitFor(
    cl,
    (r) =>
      r.stanza === "presence" &&
      bare(r.from) === bare(room) &&
      (r.type === "error" || (r.codes.includes(110) && r.type !== "unavailable")),
    10000,
  );
  await cl.c.send(xml("presence", { to, id }, xml("x", { xmlns: NS_MUC })));
  const r = await got;
  const fact = { event: name, who: cl.st.label, room, to, id };
  if (!r) Object.assign(fact, { ok: false, answer: "timeout" });
  else if (r.type === "error") Object.assign(fact, { ok: false, answer: "error", error: r.error });
  else Object.assign(fact, { ok: true, answer: "self-presence", codes: r.codes, item: r.items[0] ?? null });
  out(fact);
  return fact;
}

async function instantConfigure(cl, room) {
  const iq = xml(
    "iq",
    { type: "set", to: room, id: "cfg-" + rand() },
    xml("query", { xmlns: NS_MUC_OWNER }, xml("x", { xmlns: NS_DATA, type: "submit" })),
  );
  const fact = { event: "instant-configure", who: cl.st.label, room };
  try {
    await cl.c.iqCaller.request(iq, 10000);
    fact.ok = true;
  } catch (err) {
    fact.ok = false;
    fact.error = { condition: err.condition ?? String(err.message ?? err), text: err.text ?? "" };
  }
  out(fact);
  return fact;
}

async function mam({ c, st }, name, to, fields) {
  const qid = "q-" + rand();
  const x = xml(
    "x",
    { xmlns: NS_DATA, type: "submit" },
    xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", {}, NS_MAM)),
    ...fields.map(([v, vals]) => xml("field", { var: v }, ...vals.map((s) => xml("value", {}, s)))),
  );
  const iq = xml("iq", { type: "set", to, id: "mam-" + rand() }, xml("query", { xmlns: NS_MAM, queryid: qid }, x));
  st.mam.set(qid, []);
  const fact = { event: "mam", who: st.label, query: name, to, fields };
  try {
    const resp = await c.iqCaller.request(iq, 15000);
    await sleep(100);
    const fin = resp.getChild("fin", NS_MAM);
    const set = fin?.getChild("set", NS_RSM);
    fact.ok = true;
    fact.fin = fin
      ? {
          complete: fin.attrs.complete ?? null,
          first: set?.getChildText("first") ?? null,
          last: set?.getChildText("last") ?? null,
          count: set?.getChildText("count") ?? null,
        }
      : null;
  } catch (err) {
    fact.ok = false;
    fact.error = { condition: err.condition ?? String(err.message ?? err), text: err.text ?? "" };
  }
  fact.results = st.mam.get(qid) ?? [];
  st.mam.delete(qid);
  fact.count = fact.results.length;
  out(fact);
  return fact;
}

function settle(clients, quietMs = 1500, capMs = 10000) {
  return quietDown(() => clients.reduce((a, cl) => a + cl.st.log.length, 0), quietMs, capMs);
}

function reportPhase(clients, phase) {
  for (const cl of clients) {
    const recs = cl.st.log.filter((r) => r.phase === phase);
    for (const r of recs) out({ event: r.stanza, who: cl.st.label, ...r });
    out({
      event: "phase",
      phase,
      who: cl.st.label,
      presences: recs.filter((r) => r.stanza === "presence").map((r) => [r.from, r.type, r.codes]),
      messages: recs.filter((r) => r.stanza === "message").map((r) => [r.id, r.from, r.type]),
    });
  }
}

const setPhase = (clients, phase) => clients.forEach((cl) => (cl.st.phase = phase));

async function attach(port, romeoJid, romeoPw, julietJid, julietPw, roomArg) {
  const room = roomArg.includes("@") ? roomArg : `${roomArg}@${MUC_DOMAIN}`;
  const desk = makeClient(port, romeoJid, romeoPw, "xjs-desk", "romeo/desk");
  const phone = makeClient(port, romeoJid, romeoPw, "xjs-phone", "romeo/phone");
  const juliet = makeClient(port, julietJid, julietPw, "xjs-balcony", "juliet/balcony");
  const all = [desk, phone, juliet];
  try {
    await Promise.all(all.map(login));

    setPhase(all, "join-desk");
    const j = await join(desk, room, "Romeo", "create");
    if (!j.ok) throw new Fatal(`romeo/desk could not join ${room}: ${JSON.stringify(j.error ?? j.answer)}`);
    if (j.codes.includes(201)) {
      const cf = await instantConfigure(desk, room);
      if (!cf.ok) throw new Fatal(`instant configuration of ${room} failed: ${JSON.stringify(cf.error)}`);
    }
    await settle(all);
    reportPhase(all, "join-desk");

    setPhase(all, "join-balcony");
    await join(juliet, room, "Juliet");
    await settle(all);
    reportPhase(all, "join-balcony");

    setPhase(all, "join-phone");
    await join(phone, room, "Romeo");
    await settle(all);
    reportPhase(all, "join-phone");
    const jp = juliet.st.log.filter((r) => r.phase === "join-phone" && r.stanza === "presence");
    out({
      event: "second-occupant",
      who: juliet.st.label,
      presences_seen: jp.length,
      froms: jp.map((r) => r.from),
      desk_saw: desk.st.log.filter((r) => r.phase === "join-phone").length,
    });

    setPhase(all, "message");
    const mid = "x1-" + rand();
    await juliet.c.send(xml("message", { type: "groupchat", to: room, id: mid }, xml("body", {}, "wherefore art thou " + mid)));
    out({ event: "sent", who: juliet.st.label, id: mid, to: room, type: "groupchat" });
    await settle(all);
    reportPhase(all, "message");
    const got = (cl) => cl.st.log.filter((r) => r.phase === "message" && r.stanza === "message" && r.id === mid);
    out({
      event: "delivery",
      id: mid,
      counts: Object.fromEntries(all.map((cl) => [cl.st.label, got(cl).length])),
      stanza_ids: Object.fromEntries(all.map((cl) => [cl.st.label, got(cl).map((r) => r.stanza_ids)])),
    });

    const romeoBare = parseJid(romeoJid).bare().toString();
    const own = await mam(desk, "own-include-groupchat", romeoBare, [
      ["with", [room]],
      ["include-groupchat", ["true"]],
    ]);
    const plain = await mam(desk, "own-without-include", romeoBare, [["with", [room]]]);
    const ra = await mam(phone, "room", room, []);
    const count = (f) => f.results.filter((r) => r.id === mid).length;
    out({
      event: "archive-check",
      id: mid,
      own_count: count(own),
      own_without_include_count: count(plain),
      room_count: count(ra),
      own_result_ids: own.results.map((r) => r.result_id),
      room_result_ids: ra.results.map((r) => r.result_id),
    });
    for (const cl of all) if (cl.st.errors.length) out({ event: "client-errors", who: cl.st.label, errors: cl.st.errors });
  } finally {
    await Promise.all(all.map((cl) => withTimeout(cl.c.stop(), 5000, "stop").catch(() => {})));
  }
}

const SCENARIOS = { attach: [attach, 5] };

// xmpp.js can throw from a parser it has already detached (a stream
// closing while a client stops mid-login): a failure to run, not a crash.
process.on("uncaughtException", (err) => {
  process.stderr.write(`uncaught: ${err?.message ?? err}\n`);
  process.exit(1);
});

runMain(SCENARIOS, "muc.mjs", 90000);
