// The OpenOrder console's script: the live overview and a topic's live tail, both from
// server-sent events. Every value is put in with textContent (never as HTML).
"use strict";

function liveOverview(root) {
  const source = new EventSource("/live");
  source.addEventListener("overview", (event) => {
    const s = JSON.parse(event.data);
    const set = (key, text) => {
      for (const el of root.querySelectorAll('[data-live="' + CSS.escape(key) + '"]')) el.textContent = text;
    };
    for (const svc of s.services) {
      const ready = root.querySelector('[data-live="' + CSS.escape("service:" + svc.name + ":ready") + '"]');
      if (ready) { ready.textContent = svc.ready ? "ready" : "not ready"; ready.className = "health " + (svc.ready ? "up" : "down"); }
      set("service:" + svc.name + ":outbox", svc.outboxPending == null ? "-" : String(svc.outboxPending));
      set("service:" + svc.name + ":outboxAge", svc.outboxOldestAgeMs == null ? "-" : (svc.outboxOldestAgeMs / 1000).toFixed(1) + " s");
    }
    for (const t of s.topics) {
      set("topic:" + t.name + ":rate", t.perSecond == null ? "…" : t.perSecond.toFixed(1));
      set("topic:" + t.name + ":records", String(t.records));
      set("topic:" + t.name + ":lag", t.groups.map(([g, l]) => g + ": " + l).join(", "));
    }
    set("deadLetters", String(s.deadLetters));
    set("at", new Date(s.atMs).toISOString().replace("T", " ").replace("Z", ""));
  });
}

function recordElement(r) {
  const article = document.createElement("article");
  article.className = "record";
  const head = document.createElement("header");
  const link = document.createElement("a");
  link.href = "/topics/" + encodeURIComponent(r.topic) + "?partition=" + r.partition + "&offset=" + r.offset + "&limit=1";
  link.textContent = "partition " + r.partition + " · offset " + r.offset;
  head.append(link, " · " + (r.timestampMs ? new Date(r.timestampMs).toISOString() : "-") + " · key " + (r.key ?? "(none)") + (r.eventType ? " · " + r.eventType : ""));
  const pre = document.createElement("pre");
  pre.className = "value";
  pre.textContent = r.value.kind === "none" ? "(no value)" : r.value.text;
  article.append(head, pre);
  return article;
}

function liveTail(section) {
  const topic = section.dataset.topic;
  const list = section.querySelector("#tail-records");
  const status = section.querySelector("#tail-status");
  section.hidden = false;
  let shown = 0;
  const source = new EventSource("/topics/" + encodeURIComponent(topic) + "/tail");
  source.addEventListener("records", (event) => {
    const batch = JSON.parse(event.data);
    for (const r of batch.records) { list.prepend(recordElement(r)); shown++; }
    while (list.children.length > 200) list.lastElementChild.remove();
    status.textContent = shown + " record(s) received" + (batch.skipped ? ", " + batch.skipped + " skipped in the last half-second (too many to show)" : "");
  });
  source.addEventListener("failure", (event) => { status.textContent = "tail stopped: " + event.data; source.close(); });
}

document.addEventListener("DOMContentLoaded", () => {
  const overview = document.querySelector('[data-live="overview"]');
  if (overview) liveOverview(overview);
  const tail = document.getElementById("tail");
  const start = document.getElementById("tail-start");
  if (tail && start) start.addEventListener("click", () => { start.disabled = true; liveTail(tail); });
  if (tail && new URLSearchParams(location.search).get("tail") === "1") { if (start) start.disabled = true; liveTail(tail); }
});
