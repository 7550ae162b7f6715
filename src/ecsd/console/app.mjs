// The ecsd web console: sign in, servers, a server's details and actions, jobs, key pairs.
// Pages are chosen by the URL's fragment (#/servers, #/servers/{id}, #/jobs, #/keypairs).

import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError, call, currentSession, get, lastLogin, login, onSessionChange, post, signOut } from "./api.mjs";
import { ChangeOsDialog, ConfirmDialog, CreateServerDialog, KeypairDialog, listKeypairs } from "./dialogs.mjs";
import { FINISHED, clearFinished, track, useJobs } from "./jobs.mjs";
import { ErrorBox, Field, Status, clock, html, stepName, useAction, usePoll, when } from "./ui.mjs";

const LIST_POLL_MS = 2000;
const DETAIL_POLL_MS = 1000;

function useHash() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const fn = () => setHash(location.hash);
    addEventListener("hashchange", fn);
    return () => removeEventListener("hashchange", fn);
  }, []);
  return hash;
}

function go(hash) {
  location.hash = hash;
}

// --- sign in ---------------------------------------------------------------------------------------

function Login({ reason }) {
  const last = lastLogin();
  const [form, setForm] = useState({ domain: last.domain || "", user: last.user || "", password: "", project: last.project || "" });
  const action = useAction();
  const set = (key) => (e) => setForm({ ...form, [key]: e.target.value });
  const submit = (e) => {
    e.preventDefault();
    action.run(() => login(form));
  };
  return html`<article class="login">
    <header><h1>ecsd console</h1><p>Sign in with your user's password.</p></header>
    ${reason ? html`<p role="status" class="notice">${reason}</p>` : null}
    <form onSubmit=${submit} id="login-form">
      <${Field} label="Domain (account)" id="login-domain"><input id="login-domain" required autocomplete="organization" value=${form.domain} onInput=${set("domain")} /></${Field}>
      <${Field} label="User" id="login-user"><input id="login-user" required autocomplete="username" value=${form.user} onInput=${set("user")} /></${Field}>
      <${Field} label="Password" id="login-password"><input id="login-password" type="password" required autocomplete="current-password" value=${form.password} onInput=${set("password")} /></${Field}>
      <${Field} label="Project" id="login-project" hint="The project (region) name, e.g. eu-de."><input id="login-project" aria-describedby="login-project-hint" required value=${form.project} onInput=${set("project")} /></${Field}>
      <${ErrorBox} error=${action.error} />
      <button type="submit" aria-busy=${action.busy ? "true" : undefined} disabled=${action.busy}>Sign in</button>
    </form>
  </article>`;
}

// --- the servers -------------------------------------------------------------------------------------

function firstAddress(server) {
  for (const list of Object.values(server.addresses || {})) {
    for (const a of list) if (a["OS-EXT-IPS:type"] !== "floating") return a.addr;
  }
  return "";
}

// ecsd has no VPC service: a network is known by the servers on it. Offer the network of an existing
// server, else the project's default network (GET os-networks) in a new VPC id.
function newUuid() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

async function defaultNetwork(servers) {
  const server = servers.find((sv) => sv.metadata && sv.metadata.vpc_id);
  try {
    if (server) {
      const nics = (await get(`/v1/{pid}/cloudservers/${server.id}/os-interface`)).interfaceAttachments;
      return { vpcid: server.metadata.vpc_id, subnet: nics.length ? nics[0].net_id : "" };
    }
    const networks = (await get("/v2.1/{pid}/os-networks")).networks;
    const found = networks.find((n) => n.label === "default") || networks[0];
    return { vpcid: newUuid(), subnet: found ? found.id : "" };
  } catch {
    return { vpcid: server ? server.metadata.vpc_id : "" };
  }
}

function Servers() {
  const list = usePoll(() => get("/v1/{pid}/cloudservers/detail?limit=1000"), LIST_POLL_MS);
  const [creating, setCreating] = useState(null);
  const [opening, setOpening] = useState(false);
  const servers = (list.data && list.data.servers) || [];
  const openCreate = async () => {
    if (opening) return;
    setOpening(true);
    const network = await defaultNetwork(servers);
    setOpening(false);
    setCreating(network);
  };
  return html`<section>
    <div class="toolbar">
      <h1>Servers <small>${list.data ? `(${list.data.count})` : ""}</small></h1>
      <button type="button" id="create-server" onClick=${openCreate}
        aria-busy=${opening ? "true" : undefined}>Create server</button>
    </div>
    <${ErrorBox} error=${list.error} />
    ${list.data ? null : html`<p aria-busy="true">Loading…</p>`}
    ${list.data && !servers.length ? html`<p>No servers in this project yet.</p>` : null}
    ${servers.length ? html`<div class="overflow-auto"><table class="striped" id="server-table">
      <thead><tr><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Image</th><th scope="col">Flavor</th>
        <th scope="col">Address</th><th scope="col">Zone</th><th scope="col">Created</th></tr></thead>
      <tbody>${servers.map((sv) => html`<tr key=${sv.id} data-id=${sv.id}>
        <td><a href=${`#/servers/${sv.id}`}>${sv.name}</a></td>
        <td><${Status} value=${sv.status} />${sv["OS-EXT-STS:task_state"] ? html` <small>${sv["OS-EXT-STS:task_state"]}</small>` : null}</td>
        <td>${(sv.metadata && sv.metadata.image_name) || sv.image.id}</td>
        <td>${sv.flavor.id}</td><td>${firstAddress(sv)}</td>
        <td>${sv["OS-EXT-AZ:availability_zone"]}</td><td>${when(sv.created)}</td>
      </tr>`)}</tbody></table></div>` : null}
    ${creating ? html`<${CreateServerDialog} network=${creating} onClose=${() => setCreating(null)}
      onCreated=${(ids) => { setCreating(null); list.reload(); if (ids.length === 1) go(`#/servers/${ids[0]}`); }} />` : null}
  </section>`;
}

function batch(kind, server, extra = {}) {
  return post("/v1/{pid}/cloudservers/action", { [kind]: { servers: [{ id: server.id }], ...extra } });
}

const POWER = [
  { label: "Start", kind: "os-start", when: (s) => s.status === "SHUTOFF" },
  { label: "Stop", kind: "os-stop", extra: { type: "SOFT" }, when: (s) => s.status === "ACTIVE" },
  { label: "Reboot", kind: "reboot", extra: { type: "SOFT" }, when: (s) => s.status === "ACTIVE" },
];

function Actions({ server, onChanged }) {
  const [dialog, setDialog] = useState(null);
  const action = useAction();
  const power = (p) => action.run(async () => {
    const { body, requestId } = await batch(p.kind, server, p.extra);
    track(body.job_id, `${p.label} ${server.name}`, [{ id: server.id, name: server.name }], requestId);
    onChanged();
  });
  const close = () => {
    setDialog(null);
    onChanged();
  };
  const remove = async (deleteVolume) => {
    const { body, requestId } = await post("/v1/{pid}/cloudservers/delete", { servers: [{ id: server.id }], delete_volume: deleteVolume });
    track(body.job_id, `Delete ${server.name}`, [{ id: server.id, name: server.name }], requestId);
    go("#/jobs");
  };
  // Every action is offered; the API refuses what the server's state does not allow (and says why).
  return html`<div class="actions" role="toolbar" aria-label="Server actions">
    ${POWER.map((p) => html`<button type="button" class=${p.when(server) ? "" : "outline"} onClick=${() => power(p)}
      disabled=${action.busy}>${p.label}</button>`)}
    <button type="button" class="secondary" onClick=${() => setDialog("changeos")}>Change OS</button>
    <button type="button" class="secondary" onClick=${() => setDialog("reinstall")}>Reinstall</button>
    <button type="button" class="danger" onClick=${() => setDialog("delete")}>Delete</button>
  </div>
  <${ErrorBox} error=${action.error} />
    ${dialog === "changeos" || dialog === "reinstall" ? html`<${ChangeOsDialog} server=${server}
      reinstall=${dialog === "reinstall"} onClose=${close} />` : null}
    ${dialog === "delete" ? html`<${DeleteDialog} server=${server} onDelete=${remove} onClose=${close} />` : null}`;
}

function DeleteDialog({ server, onDelete, onClose }) {
  const [volumes, setVolumes] = useState(true);
  return html`<${ConfirmDialog} title=${`Delete ${server.name}?`} confirm="Delete" onClose=${onClose}
      onConfirm=${() => onDelete(volumes)}>
    <p>The server <strong>${server.name}</strong> (${server.id}) and its system disk are deleted.</p>
    <label><input type="checkbox" checked=${volumes} onChange=${(e) => setVolumes(e.target.checked)} /> Delete its data disks too</label>
  </${ConfirmDialog}>`;
}

function Definition({ items }) {
  return html`<dl class="facts">${items.map(([k, v]) => html`<dt>${k}</dt><dd>${v ?? ""}</dd>`)}</dl>`;
}

function Table({ id, head, rows, empty }) {
  if (!rows.length) return html`<p>${empty}</p>`;
  return html`<div class="overflow-auto"><table id=${id}>
    <thead><tr>${head.map((h) => html`<th scope="col">${h}</th>`)}</tr></thead>
    <tbody>${rows.map((r) => html`<tr>${r.map((c) => html`<td>${c}</td>`)}</tr>`)}</tbody>
  </table></div>`;
}

function HistoryEntry({ serverId, action }) {
  const [events, setEvents] = useState(null);
  const [error, setError] = useState(null);
  const toggle = async (e) => {
    if (!e.target.open || events) return;
    try {
      setEvents((await get(`/v2.1/{pid}/servers/${serverId}/os-instance-actions/${action.request_id}`)).instanceAction.events || []);
    } catch (err) {
      setError(err);
    }
  };
  return html`<details onToggle=${toggle}>
    <summary><strong>${action.action}</strong> ${when(action.start_time)}
      ${action.message ? html` <span class="status status-bad">${action.message}</span>` : null}</summary>
    <${ErrorBox} error=${error} />
    ${events ? html`<${Steps} events=${events} />` : null}
    <small>Request ${action.request_id}</small>
  </details>`;
}

function Steps({ events, running }) {
  if (!events.length && !running) return html`<p><small>No step recorded.</small></p>`;
  return html`<ol class="steps">${events.map((ev) => {
    const failed = ev.result === "Error";
    return html`<li class=${`step step-${failed ? "failed" : "done"}`} data-step=${ev.event}>
      <span class="mark" aria-hidden="true">${failed ? "✗" : "✓"}</span>
      ${stepName(ev.event)} <small>${clock(ev.finish_time)}${failed && ev.traceback ? ` · ${ev.traceback}` : ""}</small></li>`;
  })}${running ? html`<li class="step step-running"><span class="mark" aria-hidden="true">…</span> <small>next step running</small></li>` : null}</ol>`;
}

function ServerDetails({ id }) {
  const server = usePoll(() => get(`/v1/{pid}/cloudservers/${id}`), DETAIL_POLL_MS, [id]);
  const extra = usePoll(async () => {
    const [disks, nics, history] = await Promise.all([
      get(`/v1/{pid}/cloudservers/${id}/block_device`), get(`/v1/{pid}/cloudservers/${id}/os-interface`),
      get(`/v2.1/{pid}/servers/${id}/os-instance-actions`)]);
    return { disks: disks.volumeAttachments, nics: nics.interfaceAttachments, history: history.instanceActions };
  }, 4000, [id]);
  const jobs = useJobs().filter((j) => j.servers.some((s) => s.id === id));
  const reload = () => {
    server.reload();
    extra.reload();
  };
  if (!server.data) {
    return html`<section><p><a href="#/servers">← Servers</a></p><${ErrorBox} error=${server.error} />
      ${server.error ? null : html`<p aria-busy="true">Loading…</p>`}</section>`;
  }
  const sv = server.data.server;
  const e = extra.data;
  return html`<section id="server-details" data-id=${sv.id}>
    <p><a href="#/servers">← Servers</a></p>
    <h1 id="server-name">${sv.name} <${Status} value=${sv.status} /></h1>
    ${server.error ? html`<${ErrorBox} error=${server.error} />` : null}
    <${Actions} server=${sv} onChanged=${reload} />
    ${jobs.length ? html`<h2>Operations started here</h2><${JobList} jobs=${jobs} />` : null}
    <div class="grid">
      <article><header><h2>Summary</h2></header><${Definition} items=${[
        ["ID", html`<code>${sv.id}</code>`], ["Status", `${sv.status}${sv["OS-EXT-STS:task_state"] ? ` (${sv["OS-EXT-STS:task_state"]})` : ""}`],
        ["Image", (sv.metadata && sv.metadata.image_name) || sv.image.id], ["Flavor", `${sv.flavor.id} (${sv.flavor.vcpus} vCPU, ${sv.flavor.ram} MB)`],
        ["Key pair", sv.key_name || "none"], ["Zone", sv["OS-EXT-AZ:availability_zone"]], ["Created", when(sv.created)],
        ["Locked", sv.locked ? "yes" : "no"]]} /></article>
      <article><header><h2>Metadata</h2></header><${Definition} items=${Object.entries(sv.metadata || {})} /></article>
    </div>
    <${ErrorBox} error=${extra.error} />
    <h2>Disks</h2>
    ${e ? html`<${Table} id="disk-table" head=${["Device", "Volume", "Size (GB)", "Boot index", "Bus"]} empty="No disk."
      rows=${e.disks.map((d) => [d.device, html`<code>${d.volumeId}</code>`, d.size, d.bootIndex ?? "", d.bus || ""])} />` : html`<p aria-busy="true">Loading…</p>`}
    <h2>Network interfaces</h2>
    ${e ? html`<${Table} id="nic-table" head=${["Port", "Subnet", "Addresses", "MAC", "State"]} empty="No network interface."
      rows=${e.nics.map((n) => [html`<code>${n.port_id}</code>`, html`<code>${n.net_id}</code>`,
        n.fixed_ips.map((f) => f.ip_address).join(", "), n.mac_addr, n.port_state])} />` : null}
    <h2>Operation history</h2>
    ${e ? html`<div id="history">${e.history.map((a) => html`<${HistoryEntry} key=${a.request_id} serverId=${sv.id} action=${a} />`)}</div>` : null}
  </section>`;
}

// --- jobs ----------------------------------------------------------------------------------------------

function JobList({ jobs }) {
  return html`<div class="jobs">${jobs.map((job) => html`<article class="job" key=${job.id} data-job=${job.id} data-status=${job.status}>
    <header class="toolbar">
      <strong>${job.what}</strong> <${Status} value=${job.status} />
      <small>${when(job.started)} · job <code>${job.id}</code>${job.jobType ? ` · ${job.jobType}` : ""}</small>
    </header>
    ${FINISHED.has(job.status) ? null : html`<progress aria-label=${`${job.what}: running`}></progress>`}
    ${job.errorCode ? html`<p role="alert" class="error-box" data-code=${job.errorCode}>
      <strong class="error-code">${job.errorCode}</strong> ${job.failReason}</p>` : null}
    ${Object.entries(job.steps || {}).map(([sid, events]) => html`<div>
      ${Object.keys(job.steps).length > 1 || job.servers.length !== 1 ? html`<a href=${`#/servers/${sid}`}><small>${sid}</small></a>` : null}
      <${Steps} events=${events} running=${!FINISHED.has(job.status)} /></div>`)}
    ${job.servers.length === 1 && job.servers[0].id ? html`<a href=${`#/servers/${job.servers[0].id}`}>${job.servers[0].name || job.servers[0].id}</a>` : null}
  </article>`)}</div>`;
}

function Jobs() {
  const jobs = useJobs();
  return html`<section>
    <div class="toolbar"><h1>Jobs</h1>
      <button type="button" class="secondary" onClick=${clearFinished} disabled=${!jobs.some((j) => FINISHED.has(j.status))}>Clear finished</button></div>
    <p><small>The jobs started from this browser tab, followed every second until they finish. A server's whole
      operation history is on its page.</small></p>
    ${jobs.length ? html`<${JobList} jobs=${jobs} />` : html`<p>No job started yet.</p>`}
  </section>`;
}

// --- key pairs -----------------------------------------------------------------------------------------

function Keypairs() {
  const list = usePoll(listKeypairs, 0);
  const [open, setOpen] = useState(false);
  const action = useAction();
  const remove = (name) => action.run(async () => {
    await call("DELETE", `/v2.1/{pid}/os-keypairs/${encodeURIComponent(name)}`);
    list.reload();
  });
  return html`<section>
    <div class="toolbar"><h1>Key pairs</h1><button type="button" id="new-keypair" onClick=${() => setOpen(true)}>Create or import</button></div>
    <${ErrorBox} error=${list.error || action.error} />
    ${list.data ? html`<${Table} id="keypair-table" head=${["Name", "Type", "Fingerprint", ""]} empty="No key pair yet."
      rows=${list.data.map((k) => [k.name, k.type, html`<code>${k.fingerprint}</code>`,
        html`<button type="button" class="outline danger" aria-label=${`Delete key pair ${k.name}`} onClick=${() => remove(k.name)}>Delete</button>`])} />`
      : html`<p aria-busy="true">Loading…</p>`}
    ${open ? html`<${KeypairDialog} onClose=${() => setOpen(false)} onDone=${list.reload} />` : null}
  </section>`;
}

// --- the shell -----------------------------------------------------------------------------------------

function Nav({ session, page }) {
  const link = (hash, label, name) => html`<li><a href=${hash} aria-current=${page === name ? "page" : undefined}>${label}</a></li>`;
  return html`<nav class="top">
    <ul><li><strong>ecsd console</strong></li></ul>
    <ul>${link("#/servers", "Servers", "servers")}${link("#/jobs", "Jobs", "jobs")}${link("#/keypairs", "Key pairs", "keypairs")}
      <li><small>${session.userName} @ ${session.domainName} / ${session.projectName}</small></li>
      <li><button type="button" class="outline secondary" id="sign-out" onClick=${() => signOut("Signed out.")}>Sign out</button></li></ul>
  </nav>`;
}

function App() {
  const [session, setSession] = useState(currentSession());
  const [reason, setReason] = useState("");
  const hash = useHash();
  useEffect(() => onSessionChange((value, why) => {
    setSession(value);
    setReason(why || "");
  }), []);
  if (!session) return html`<${Login} reason=${reason} />`;
  const [, page = "servers", id] = hash.split("/");
  let body;
  if (page === "servers" && id) body = html`<${ServerDetails} id=${decodeURIComponent(id)} key=${id} />`;
  else if (page === "jobs") body = html`<${Jobs} />`;
  else if (page === "keypairs") body = html`<${Keypairs} />`;
  else body = html`<${Servers} />`;
  return html`<${Nav} session=${session} page=${page} /><div id="page">${body}</div>`;
}

addEventListener("unhandledrejection", (e) => {
  if (e.reason instanceof ApiError) e.preventDefault();
});
render(html`<${App} />`, document.getElementById("app"));
