// The dialogs that start jobs or make key pairs: change OS / reinstall, create a server, key pairs, confirm.

import { useEffect, useState } from "preact/hooks";
import { get, post } from "./api.mjs";
import { track } from "./jobs.mjs";
import { ErrorBox, Field, Modal, html, useAction } from "./ui.mjs";

export const listImages = async () => (await get("/v2/cloudimages?limit=1000")).images;
export const listKeypairs = async () => (await get("/v2.1/{pid}/os-keypairs")).keypairs.map((k) => k.keypair);
const listFlavors = async () => (await get("/v1/{pid}/cloudservers/flavors")).flavors;

// What an ECS can boot (domain/images.py check_boot_image, domain/changeos.py): an active system-disk
// image, with the firmware of the server's current image, needing no more memory than the flavor has.
export function bootable(image, { firmware, ram } = {}) {
  return image.status === "active" && image.virtual_env_type === "FusionCompute"
    && (!firmware || image.hw_firmware_type === firmware) && (!ram || !image.min_ram || image.min_ram <= ram);
}

function imageLabel(image) {
  return `${image.name} (${image.__os_version || image.__os_type || "?"}, ${image.hw_firmware_type.toUpperCase()}`
    + `${image.min_ram ? `, ≥ ${image.min_ram} MB` : ""})`;
}

function useLoaded(load, deps = []) {
  const [state, setState] = useState({ data: null, error: null });
  useEffect(() => {
    load().then((data) => setState({ data, error: null }), (error) => setState({ data: null, error }));
  }, deps);
  return state;
}

// The login of a new system: a key pair or a password (or, at create only, neither).
function LoginChoice({ prefix, value, onChange, keypairs, optional }) {
  const set = (patch) => onChange({ ...value, ...patch });
  const names = (keypairs || []).map((k) => k.name);
  useEffect(() => {       // the key pairs arrived after "A key pair" was chosen: the first one, as shown
    if (value.kind === "key" && !value.keyname && names.length) set({ keyname: names[0] });
  }, [value.kind, names.join("\n")]);
  return html`<fieldset>
    <legend>Log in with</legend>
    ${optional ? html`<label><input type="radio" name=${`${prefix}-login`} checked=${value.kind === "none"}
      onChange=${() => set({ kind: "none" })} /> Nothing (set later)</label>` : null}
    <label><input type="radio" name=${`${prefix}-login`} id=${`${prefix}-login-key`} checked=${value.kind === "key"}
      onChange=${() => set({ kind: "key", keyname: value.keyname || names[0] || "" })} /> A key pair</label>
    <label><input type="radio" name=${`${prefix}-login`} id=${`${prefix}-login-password`}
      checked=${value.kind === "password"} onChange=${() => set({ kind: "password" })} /> A password</label>
    ${value.kind === "key" ? html`<${Field} label="Key pair" id=${`${prefix}-keyname`}
        hint=${names.length ? "" : "No key pair yet: create or import one on the Key pairs page."}>
      <select id=${`${prefix}-keyname`} aria-describedby=${`${prefix}-keyname-hint`} required value=${value.keyname} onChange=${(e) => set({ keyname: e.target.value })}>
        ${names.map((n) => html`<option value=${n}>${n}</option>`)}
      </select></${Field}>` : null}
    ${value.kind === "password" ? html`<${Field} label="Password" id=${`${prefix}-password`}
        hint="8 to 26 characters, three of: upper case, lower case, digits, special characters.">
      <input id=${`${prefix}-password`} aria-describedby=${`${prefix}-password-hint`} type="password" required autocomplete="new-password" value=${value.password || ""}
        onInput=${(e) => set({ password: e.target.value })} /></${Field}>` : null}
  </fieldset>`;
}

function loginFields(login, names) {
  if (login.kind === "key") return { [names[0]]: login.keyname };
  if (login.kind === "password") return { [names[1]]: login.password };
  return {};
}

// Change OS (an image picker offering only compatible images) or reinstall (the same image).
export function ChangeOsDialog({ server, reinstall, onClose }) {
  const images = useLoaded(listImages);
  const keypairs = useLoaded(listKeypairs);
  const [imageId, setImageId] = useState("");
  const [login, setLogin] = useState({ kind: "password", password: "" });
  const [withStop, setWithStop] = useState(true);
  const action = useAction();
  const current = (images.data || []).find((i) => i.id === server.image.id);
  const needs = { firmware: current && current.hw_firmware_type, ram: Number(server.flavor.ram) };
  const offered = (images.data || []).filter((i) => bootable(i, needs));
  const chosen = reinstall ? current : offered.find((i) => i.id === imageId) || offered[0];
  const running = server.status === "ACTIVE";

  const submit = (e) => {
    e.preventDefault();
    action.run(async () => {
      const cloudInit = chosen && chosen.__support_cloudinit === "true";
      const args = { ...loginFields(login, ["keyname", "adminpass"]), ...(running && withStop ? { mode: "withStopServer" } : {}) };
      const verb = reinstall ? "reinstallos" : "changeos";
      const payload = reinstall ? { "os-reinstall": args } : { "os-change": { imageid: chosen ? chosen.id : imageId, ...args } };
      const { body, requestId } = await post(`/${cloudInit ? "v2" : "v1"}/{pid}/cloudservers/${server.id}/${verb}`, payload);
      track(body.job_id, reinstall ? "Reinstall OS" : `Change OS to ${chosen ? chosen.name : imageId}`,
        [{ id: server.id, name: server.name }], requestId);
      onClose();
    });
  };

  return html`<${Modal} title=${`${reinstall ? "Reinstall" : "Change"} the OS of ${server.name}`} onClose=${onClose}>
    <form onSubmit=${submit} id="changeos-form">
      <${ErrorBox} error=${images.error || keypairs.error} />
      ${reinstall
        ? html`<p>Reinstall <strong>${current ? current.name : server.image.id}</strong> on a new system disk.</p>`
        : html`<${Field} label="Image" id="changeos-image"
            hint=${`Only images this server can boot: ${needs.firmware ? needs.firmware.toUpperCase() : "any firmware"}, at most ${needs.ram} MB of memory needed.`}>
            <select id="changeos-image" aria-describedby="changeos-image-hint" required value=${chosen ? chosen.id : ""} onChange=${(e) => setImageId(e.target.value)}
              aria-busy=${images.data ? undefined : "true"}>
              ${offered.map((i) => html`<option value=${i.id}>${imageLabel(i)}</option>`)}
            </select></${Field}>`}
      <${LoginChoice} prefix="changeos" value=${login} onChange=${setLogin} keypairs=${keypairs.data} />
      ${running ? html`<label><input type="checkbox" role="switch" id="changeos-stop" checked=${withStop}
          onChange=${(e) => setWithStop(e.target.checked)} /> Stop the server first (withStopServer)</label>` : null}
      <${ErrorBox} error=${action.error} />
      <footer>
        <button type="button" class="secondary" onClick=${onClose}>Cancel</button>
        <button type="submit" aria-busy=${action.busy ? "true" : undefined} disabled=${action.busy}>
          ${reinstall ? "Reinstall" : "Change OS"}</button>
      </footer>
    </form>
  </${Modal}>`;
}

const VOLUME_TYPES = ["SSD", "SAS", "SATA", "GPSSD", "ESSD"];

// Create servers: name, image, flavor, network, system disk, login, count.
export function CreateServerDialog({ network, onClose, onCreated }) {
  const images = useLoaded(listImages);
  const flavors = useLoaded(listFlavors);
  const keypairs = useLoaded(listKeypairs);
  const [form, setForm] = useState({
    name: `ecs-${Math.random().toString(36).slice(2, 6)}`, imageId: "", flavorId: "", count: 1, volumetype: "SSD",
    size: "", vpcid: network.vpcid || "", subnet: network.subnet || "",
  });
  const [login, setLogin] = useState({ kind: "none" });
  const action = useAction();
  const set = (key) => (e) => setForm({ ...form, [key]: e.target.value });
  const flavorList = flavors.data || [];
  const flavor = flavorList.find((f) => f.id === form.flavorId) || flavorList.find((f) => f.id === "s3.small.1") || flavorList[0];
  const offered = (images.data || []).filter((i) => bootable(i, { ram: flavor && flavor.ram }));
  const image = offered.find((i) => i.id === form.imageId) || offered.find((i) => /Ubuntu/.test(i.name)) || offered[0];

  const submit = (e) => {
    e.preventDefault();
    action.run(async () => {
      const server = {
        name: form.name, imageRef: image && image.id, flavorRef: flavor && flavor.id, vpcid: form.vpcid,
        nics: [{ subnet_id: form.subnet }], root_volume: { volumetype: form.volumetype, ...(form.size ? { size: Number(form.size) } : {}) },
        count: Number(form.count), ...loginFields(login, ["key_name", "adminPass"]),
      };
      const { body, requestId } = await post("/v1/{pid}/cloudservers", { server });
      const ids = body.serverIds || [];
      track(body.job_id, `Create ${form.name}`, ids.map((id) => ({ id, name: form.name })), requestId);
      onCreated(ids);
    });
  };

  return html`<${Modal} title="Create a server" onClose=${onClose} wide>
    <form onSubmit=${submit} id="create-form">
      <${ErrorBox} error=${images.error || flavors.error || keypairs.error} />
      <div class="grid">
        <${Field} label="Name" id="create-name"><input id="create-name" required maxlength="64" value=${form.name} onInput=${set("name")} /></${Field}>
        <${Field} label="How many" id="create-count"><input id="create-count" type="number" min="1" max="100" required value=${form.count} onInput=${set("count")} /></${Field}>
      </div>
      <div class="grid">
        <${Field} label="Flavor" id="create-flavor">
          <select id="create-flavor" value=${flavor ? flavor.id : ""} onChange=${set("flavorId")}>
            ${flavorList.map((f) => html`<option value=${f.id}>${f.id} (${f.vcpus} vCPU, ${f.ram / 1024} GB)</option>`)}
          </select></${Field}>
        <${Field} label="Image" id="create-image">
          <select id="create-image" value=${image ? image.id : ""} onChange=${set("imageId")}>
            ${offered.map((i) => html`<option value=${i.id}>${imageLabel(i)}</option>`)}
          </select></${Field}>
      </div>
      <div class="grid">
        <${Field} label="VPC ID" id="create-vpc"><input id="create-vpc" required value=${form.vpcid} onInput=${set("vpcid")} /></${Field}>
        <${Field} label="Subnet ID" id="create-subnet"><input id="create-subnet" required value=${form.subnet} onInput=${set("subnet")} /></${Field}>
      </div>
      <div class="grid">
        <${Field} label="System disk type" id="create-voltype">
          <select id="create-voltype" value=${form.volumetype} onChange=${set("volumetype")}>
            ${VOLUME_TYPES.map((t) => html`<option value=${t}>${t}</option>`)}
          </select></${Field}>
        <${Field} label="System disk size (GB, empty: the image's)" id="create-size">
          <input id="create-size" type="number" min="1" max="1024" value=${form.size} onInput=${set("size")} /></${Field}>
      </div>
      <${LoginChoice} prefix="create" value=${login} onChange=${setLogin} keypairs=${keypairs.data} optional />
      <${ErrorBox} error=${action.error} />
      <footer>
        <button type="button" class="secondary" onClick=${onClose}>Cancel</button>
        <button type="submit" aria-busy=${action.busy ? "true" : undefined} disabled=${action.busy}>Create</button>
      </footer>
    </form>
  </${Modal}>`;
}

function download(name, text) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([text], { type: "application/x-pem-file" }));
  a.download = `${name}.pem`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

// Create a key pair (the private key is shown once) or import a public key.
export function KeypairDialog({ onClose, onDone }) {
  const [name, setName] = useState("");
  const [publicKey, setPublicKey] = useState("");
  const [created, setCreated] = useState(null);
  const action = useAction();
  const submit = (e) => {
    e.preventDefault();
    action.run(async () => {
      const keypair = { name, ...(publicKey.trim() ? { public_key: publicKey.trim() } : {}) };
      const { body } = await post("/v2.1/{pid}/os-keypairs", { keypair });
      onDone();
      if (body.keypair.private_key) setCreated(body.keypair);
      else onClose();
    });
  };
  if (created) {
    return html`<${Modal} title=${`Key pair ${created.name} created`} onClose=${onClose}>
      <p>This is the only time the private key is shown: keep it now.</p>
      <label for="private-key">Private key<textarea id="private-key" readonly rows="8">${created.private_key}</textarea></label>
      <footer>
        <button type="button" class="secondary" onClick=${() => download(created.name, created.private_key)}>Download ${created.name}.pem</button>
        <button type="button" onClick=${onClose}>Done</button>
      </footer>
    </${Modal}>`;
  }
  return html`<${Modal} title="Create or import a key pair" onClose=${onClose}>
    <form onSubmit=${submit} id="keypair-form">
      <${Field} label="Name" id="keypair-name"><input id="keypair-name" required maxlength="64" pattern="[A-Za-z0-9_.\\- ]+"
        value=${name} onInput=${(e) => setName(e.target.value)} /></${Field}>
      <${Field} label="Public key to import (empty: create a new key pair)" id="keypair-public">
        <textarea id="keypair-public" rows="4" placeholder="ssh-ed25519 AAAA…" value=${publicKey}
          onInput=${(e) => setPublicKey(e.target.value)}></textarea></${Field}>
      <${ErrorBox} error=${action.error} />
      <footer>
        <button type="button" class="secondary" onClick=${onClose}>Cancel</button>
        <button type="submit" disabled=${action.busy}>${publicKey.trim() ? "Import" : "Create"}</button>
      </footer>
    </form>
  </${Modal}>`;
}

// Ask before something that cannot be undone.
export function ConfirmDialog({ title, children, confirm, onConfirm, onClose }) {
  const action = useAction();
  const submit = (e) => {
    e.preventDefault();
    action.run(async () => {
      await onConfirm();
      onClose();
    });
  };
  return html`<${Modal} title=${title} onClose=${onClose}>
    <form onSubmit=${submit} id="confirm-form">
      ${children}
      <${ErrorBox} error=${action.error} />
      <footer>
        <button type="button" class="secondary" onClick=${onClose}>Cancel</button>
        <button type="submit" class="danger" disabled=${action.busy}>${confirm}</button>
      </footer>
    </form>
  </${Modal}>`;
}
