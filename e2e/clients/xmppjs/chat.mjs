// Drive a server's 1:1 chat state with xmpp.js (@xmpp/client): stream
// management as shipped, stanza IDs, MAM with client-computable IDs.
//
// Usage: node chat.mjs PORT fork ROMEO_JID PW JULIET_JID PW
//
// Prints one JSON object per line on stdout: facts, not verdicts. Exits 0
// when the scenario ran, 1 (message on stderr) when it could not.
import { client, xml, jid as parseJid } from "@xmpp/client";
import { Fatal, delayOf, innerMessage, out, quietDown, rand, runMain, sleep, stanzaIds, withTimeout, serviceOf } from "./common.mjs";

const NS_SM = "urn:xmpp:sm:3";
const NS_SID = "urn:xmpp:sid:0";
const NS_MAM = "urn:xmpp:mam:2";
const NS_DATA = "jabber:x:data";
const NS_RSM = "http://jabber.org/protocol/rsm";
const NS_STREAMS = "http://etherx.jabber.org/streams";

// common.mjs accepts the test server's self-signed certificate on
// 127.0.0.1 only.

function msgFields(m) {
  if (!m) return { id: null };
  const origin = m.getChild("origin-id", NS_SID);
  return {
    id: m.attrs.id ?? null,
    type: m.attrs.type ?? "normal",
    from: m.attrs.from ?? null,
    to: m.attrs.to ?? null,
    body: m.getChildText("body"),
    stanza_ids: stanzaIds(m),
    origin_id: origin ? origin.attrs.id : null,
    delay: delayOf(m),
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
  const st = {
    label,
    phase: "login",
    streamIds: [], // id attribute of every server stream header, in order
    boundStreamId: null,
    offered: [], // children of the last <stream:features/>
    smIn: [], // SM nonzas received
    smOut: [], // SM nonzas sent (as text)
    inbox: [],
    mam: new Map(),
    errors: [],
  };
  c.on("open", (el) => st.streamIds.push(el?.attrs?.id ?? null));
  c.on("online", () => {
    st.boundStreamId = st.streamIds[st.streamIds.length - 1] ?? null;
  });
  c.on("error", (err) => st.errors.push(String(err?.message ?? err)));
  c.on("send", (el) => {
    if (el.attrs?.xmlns === NS_SM && el.name !== "a" && el.name !== "r") st.smOut.push(el.toString());
  });
  c.on("nonza", (el) => {
    if (el.is("features", NS_STREAMS)) {
      st.offered = el.getChildElements().map((x) => `{${x.attrs.xmlns ?? ""}}${x.name}`);
    } else if (el.attrs.xmlns === NS_SM && el.name !== "a" && el.name !== "r") {
      st.smIn.push({ name: el.name, attrs: { ...el.attrs } });
    }
  });
  c.on("stanza", (el) => {
    if (!el.is("message")) return;
    const res = el.getChild("result", NS_MAM);
    if (res) {
      const [fwd, m] = innerMessage(res);
      const list = st.mam.get(res.attrs.queryid) ?? [];
      list.push({ result_id: res.attrs.id ?? null, forwarded_delay: delayOf(fwd), ...msgFields(m) });
      st.mam.set(res.attrs.queryid, list);
      return;
    }
    for (const kind of ["sent", "received"]) {
      const w = el.getChild(kind, "urn:xmpp:carbons:2");
      if (w) {
        const [, m] = innerMessage(w);
        st.inbox.push({ phase: st.phase, kind: `carbon-${kind}`, outer_from: el.attrs.from ?? null, ...msgFields(m) });
        return;
      }
    }
    st.inbox.push({ phase: st.phase, kind: "direct", ...msgFields(el) });
  });
  return { c, st };
}

async function login({ c, st }) {
  try {
    await withTimeout(c.start(), 20000, `${st.label}: login`);
  } catch (err) {
    throw new Fatal(`${st.label}: login failed: ${err?.message ?? err}`);
  }
  // Resource binding reports "online" before <enable/> is even sent; give
  // stream management its round trip when the server offered it.
  if (st.offered.includes(`{${NS_SM}}sm`)) {
    for (let i = 0; i < 40 && !c.streamManagement.enabled; i++) {
      if (st.smIn.some((n) => n.name === "failed")) break;
      await sleep(125);
    }
  }
  st.phase = "session";
}

function smFacts({ c, st }) {
  const sm = c.streamManagement;
  return {
    offered: st.offered.includes(`{${NS_SM}}sm`),
    enable_sent: st.smOut.find((s) => s.startsWith("<enable")) ?? null,
    enabled: !!sm.enabled,
    answer: st.smIn,
    resume_id: sm.id || null,
    max: sm.max ?? null,
    inbound: sm.inbound,
    outbound: sm.outbound,
    outbound_queue: sm.outbound_q.length,
  };
}

function sessionFact(cl) {
  out({
    event: "session",
    who: cl.st.label,
    jid: String(cl.c.jid),
    stream_id: cl.st.boundStreamId,
    stream_ids: cl.st.streamIds,
    sm: smFacts(cl),
  });
}

async function mam({ c, st }, name, fields) {
  const qid = "q-" + rand();
  const x = xml(
    "x",
    { xmlns: NS_DATA, type: "submit" },
    xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", {}, NS_MAM)),
    ...fields.map(([v, vals]) => xml("field", { var: v }, ...vals.map((s) => xml("value", {}, s)))),
  );
  const iq = xml("iq", { type: "set", id: "mam-" + rand() }, xml("query", { xmlns: NS_MAM, queryid: qid }, x));
  st.mam.set(qid, []);
  const fact = { event: "mam", who: st.label, query: name, fields };
  try {
    const resp = await c.iqCaller.request(iq, 15000);
    await sleep(50);
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
    fact.error = { condition: err.condition ?? String(err.message ?? err), type: err.element?.attrs?.type ?? null, text: err.text ?? "" };
  }
  fact.results = st.mam.get(qid) ?? [];
  st.mam.delete(qid);
  fact.count = fact.results.length;
  out(fact);
  return fact;
}

function settle(clients, quietMs = 1500, capMs = 10000) {
  return quietDown(() => clients.reduce((a, cl) => a + cl.st.inbox.length, 0), quietMs, capMs);
}

async function fork(port, romeoJid, romeoPw, julietJid, julietPw) {
  const romeo = makeClient(port, romeoJid, romeoPw, "xmppjs", "romeo");
  const juliet = makeClient(port, julietJid, julietPw, "xmppjs", "juliet");
  const both = [romeo, juliet];
  try {
    await Promise.all(both.map(login));
    for (const cl of both) await cl.c.send(xml("presence"));
    for (const cl of both) sessionFact(cl);
    await sleep(500);
    for (const cl of both) {
      cl.st.inbox.length = 0;
      cl.st.phase = "fork";
    }
    const mid = "x1-" + rand();
    const body = "parting is such sweet sorrow " + mid;
    const to = parseJid(julietJid).bare().toString();
    const sid = romeo.st.boundStreamId;
    await romeo.c.send(xml("message", { type: "chat", to, id: mid }, xml("body", {}, body)));
    const expected = `${sid}:${mid}`;
    out({
      event: "sent",
      who: "romeo",
      id: mid,
      type: "chat",
      to,
      body,
      stream_id: sid,
      resume_id: romeo.c.streamManagement.id || null,
      expected,
    });
    await settle(both);
    for (const cl of both) for (const rec of cl.st.inbox) out({ event: "received", who: cl.st.label, ...rec });
    const ids = await mam(romeo, "ids", [["ids", [expected]]]);
    const rw = await mam(romeo, "with", [["with", [to]]]);
    const jw = await mam(juliet, "with", [["with", [parseJid(romeoJid).bare().toString()]]]);
    const count = (f) => f.results.filter((r) => r.id === mid).length;
    out({
      event: "archive-check",
      expected,
      ids_query_result_ids: ids.results.map((r) => r.result_id),
      romeo_result_ids: rw.results.map((r) => r.result_id),
      expected_in_romeo_archive: rw.results.some((r) => r.result_id === expected),
      romeo_count: count(rw),
      juliet_count: count(jw),
    });
    for (const cl of both) sessionFact(cl); // SM counters after the exchange
    for (const cl of both) if (cl.st.errors.length) out({ event: "client-errors", who: cl.st.label, errors: cl.st.errors });
  } finally {
    await Promise.all(both.map((cl) => withTimeout(cl.c.stop(), 5000, "stop").catch(() => {})));
  }
}

// resume: romeo's transport drops without a word (the TCP socket
// destroyed, or the WebSocket closed with no <close/>) after his message
// was acknowledged; juliet writes to him meanwhile; he reconnects and
// resumes (XEP-0198 §5), gets what was sent while he was away once, and
// both archives hold each message once.
async function resume(port, romeoJid, romeoPw, julietJid, julietPw) {
  const romeo = makeClient(port, romeoJid, romeoPw, "xmppjs", "romeo");
  const juliet = makeClient(port, julietJid, julietPw, "xmppjs", "juliet");
  const both = [romeo, juliet];
  const romeoBare = parseJid(romeoJid).bare().toString();
  const julietBare = parseJid(julietJid).bare().toString();
  try {
    await Promise.all(both.map(login));
    for (const cl of both) await cl.c.send(xml("presence"));
    await sleep(300);
    const m1 = "r1-" + rand();
    await romeo.c.send(xml("message", { type: "chat", to: julietBare, id: m1 }, xml("body", {}, "before the cut " + m1)));
    for (let i = 0; i < 40 && romeo.c.streamManagement.outbound_q.length > 0; i++) await sleep(100);
    const sm = romeo.c.streamManagement;
    out({ event: "cut", resume_id: sm.id || null, unacked: sm.outbound_q.length, inbound: sm.inbound });
    romeo.st.phase = "away";
    const sock = romeo.c.socket?.socket;
    if (typeof sock?.destroy === "function") sock.destroy(); // TCP
    else sock?.close(); // WebSocket: closed as a transport, the stream left open
    await sleep(800);
    const m2 = "r2-" + rand();
    await juliet.c.send(xml("message", { type: "chat", to: romeoBare, id: m2 }, xml("body", {}, "while you were away " + m2)));
    await sleep(500);
    romeo.st.phase = "resumed";
    const resumed = new Promise((res) => sm.once("resumed", () => res("resumed")));
    const failedEv = new Promise((res) => sm.once("fail", () => res("failed")));
    await withTimeout(romeo.c.reconnect.reconnect(), 15000, "reconnect");
    const result = await withTimeout(Promise.race([resumed, failedEv, sleep(10000).then(() => "timeout")]), 12000, "resume");
    out({ event: "resume", result, resume_id: sm.id || null, stream_ids: romeo.st.streamIds });
    await settle(both);
    const got = romeo.st.inbox.filter((r) => r.id === m2);
    out({ event: "retransmitted", count: got.length, phases: got.map((r) => r.phase), stanza_ids: got.map((r) => r.stanza_ids) });
    const rw = await mam(romeo, "with", [["with", [julietBare]]]);
    const jw = await mam(juliet, "with", [["with", [romeoBare]]]);
    const count = (f, id) => f.results.filter((r) => r.id === id).length;
    out({
      event: "archive-check",
      romeo_counts: { [m1]: count(rw, m1), [m2]: count(rw, m2) },
      juliet_counts: { [m1]: count(jw, m1), [m2]: count(jw, m2) },
    });
  } finally {
    await Promise.all(both.map((cl) => withTimeout(cl.c.stop(), 5000, "stop").catch(() => {})));
  }
}

const SCENARIOS = { fork: [fork, 4], resume: [resume, 4] };

runMain(SCENARIOS, "chat.mjs", 90000);
