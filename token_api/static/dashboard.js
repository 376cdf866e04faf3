// The status page: follows /dashboard/events (server-sent events) and draws each board it gets.
// Everything the cluster says is put in as text (never as HTML).
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const PURPOSES = { portal: "Portals", conference: "Conference controllers" };
const STATUS_TEXT = { in_service: "in service", draining: "draining", lost: "lost" };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(child === null || child === undefined ? "" : String(child)));
  }
  return node;
}

function seconds(value) {
  if (value === null || value === undefined) return "–";
  if (value < 10) return value.toFixed(1) + " s";
  if (value < 120) return Math.round(value) + " s";
  if (value < 7200) return Math.round(value / 60) + " min";
  return Math.round(value / 3600) + " h";
}

function capacity(info) {
  const cap = (info && info.capacity) || {};
  const isps = (cap.isps || []).join(", ");
  const regions = (cap.regions || []).join(", ");
  return [isps || "any ISP", regions || "any region"].join(" / ");
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error((answer.error && answer.error.message) || response.statusText);
  return answer;
}

async function drainOrUndrain(worker, drain) {
  const verb = drain ? "Drain" : "Undrain";
  const what = drain
    ? "It keeps its current work but gets no new work; a controller moves its rooms away."
    : "It takes new work again.";
  if (!window.confirm(`${verb} ${worker.id}?\n${what}`)) return;
  try {
    await post(drain ? "/dashboard/drain" : "/dashboard/undrain", { worker_id: worker.id });
  } catch (error) {
    window.alert(`${verb} failed: ${error.message}`);
  }
}

function workerRow(worker) {
  const lost = worker.status === "lost";
  const row = el("tr", { "data-worker-id": worker.id, "data-status": worker.status, class: "worker" },
    el("td", { "data-label": "Worker", class: "id" }, worker.id),
    el("td", { "data-label": "State" },
      el("span", { class: "badge " + worker.status }, STATUS_TEXT[worker.status] || worker.status),
      lost && worker.lost_reason ? ` (${worker.lost_reason.replace("_", " ")}, ${seconds(worker.lost_for)} ago)` : ""),
    el("td", { "data-label": "Load" }, lost ? "–" : `${Math.round(worker.load * 100)}% of ${Math.round(worker.max_load * 100)}%`),
    el("td", { "data-label": "ISP / region" }, capacity(worker.info)),
    el("td", { "data-label": "Last keepalive" }, lost ? "–" : seconds(worker.keepalive_age) + " ago"),
    el("td", { "data-label": "Version" }, (worker.info && worker.info.version) || "–"),
  );
  const actions = el("td", { "data-label": "Action" });
  if (!lost) {
    const button = el("button", { type: "button", class: worker.drained ? "undrain" : "drain" },
      worker.drained ? "Undrain" : "Drain");
    button.addEventListener("click", () => drainOrUndrain(worker, !worker.drained));
    actions.append(button);
  }
  row.append(actions);
  return row;
}

function drawWorkers(workers) {
  const byPurpose = new Map();
  for (const worker of workers) {
    if (!byPurpose.has(worker.purpose)) byPurpose.set(worker.purpose, []);
    byPurpose.get(worker.purpose).push(worker);
  }
  const parts = [];
  for (const [purpose, list] of [...byPurpose.entries()].sort()) {
    const body = el("tbody", {}, ...list.map(workerRow));
    parts.push(el("h3", {}, `${PURPOSES[purpose] || purpose} (${list.length})`),
      el("table", { class: "workers", "data-purpose": purpose },
        el("thead", {}, el("tr", {}, ...["Worker", "State", "Load", "ISP / region", "Last keepalive", "Version", ""].map((h) => el("th", {}, h)))),
        body));
  }
  if (!parts.length) parts.push(el("p", { class: "quiet" }, "No workers."));
  document.getElementById("workers").replaceChildren(...parts);
}

function drawManagers(managers, status) {
  document.getElementById("managers").replaceChildren(...managers.map((m) =>
    el("li", { "data-role": m.role, class: "manager" },
      el("span", { class: "badge " + m.role }, m.role), " ",
      el("span", { class: "id" }, m.node),
      m.role === "active" ? ` · ${status.state}, up ${seconds(status.uptime)}` : (m.synced ? " · synced" : " · syncing"))));
}

function drawRooms(rooms) {
  const body = document.querySelector("#rooms tbody");
  body.replaceChildren(...rooms.map((room) => el("tr", { "data-room": room.room },
    el("td", { "data-label": "Room", class: "id" }, room.name ? `${room.name} (${room.room})` : room.room),
    el("td", { "data-label": "Participants" }, room.participants === null || room.participants === undefined ? "?" : room.participants),
    el("td", { "data-label": "Controller", class: "id" }, room.worker))));
  document.getElementById("no-rooms").hidden = rooms.length > 0;
  document.getElementById("rooms").hidden = rooms.length === 0;
}

function describe(fault) {
  const detail = Object.entries(fault.detail || {}).map(([k, v]) => `${k}: ${v}`).join(", ");
  return [fault.kind.replaceAll("_", " "), fault.worker_id || "", detail ? `(${detail})` : ""].filter(Boolean).join(" ");
}

function drawTimeline(faults) {
  const items = [...faults].reverse().map((fault) => el("li",
    { class: fault.severity, "data-kind": fault.kind, "data-worker": fault.worker_id, "data-seq": fault.seq },
    el("time", { datetime: new Date(fault.at * 1000).toISOString() }, new Date(fault.at * 1000).toLocaleTimeString()),
    describe(fault)));
  document.getElementById("timeline").replaceChildren(...items);
}

function draw(board) {
  const error = document.getElementById("error");
  if (board.error) {
    error.textContent = `The cluster manager cannot be read: ${board.error.message} (${board.error.code})`;
    error.hidden = false;
    return;
  }
  error.hidden = true;
  drawManagers(board.overview.managers, board.overview.status);
  drawWorkers(board.overview.workers);
  drawRooms(board.rooms || []);
  drawTimeline(board.faults || []);
}

function follow() {
  const live = document.getElementById("live");
  const source = new EventSource("/dashboard/events");
  source.addEventListener("open", () => { live.dataset.state = "live"; live.textContent = "live"; });
  source.addEventListener("board", (event) => draw(JSON.parse(event.data)));
  source.addEventListener("logout", () => { source.close(); window.location.reload(); });
  source.addEventListener("error", () => {
    live.dataset.state = "down";
    live.textContent = "reconnecting…";
    // Refused (the login ended): the browser gives up; the page then asks for the key again.
    if (source.readyState === EventSource.CLOSED) window.setTimeout(() => window.location.reload(), 3000);
  });
}

document.getElementById("logout").addEventListener("click", async () => {
  try { await post("/dashboard/logout", {}); } finally { window.location.reload(); }
});
follow();
