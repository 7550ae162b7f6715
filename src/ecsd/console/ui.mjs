// Small pieces every page uses: the html template tag, error display, status badges, polling, dialogs.

import { h } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import htm from "htm";

export const html = htm.bind(h);

// An API refusal: the ECS error code and message, announced to screen readers.
export function ErrorBox({ error }) {
  if (!error) return null;
  return html`<p role="alert" class="error-box" data-code=${error.code}>
    <strong class="error-code">${error.code}</strong> ${error.message}</p>`;
}

const STATUS_CLASS = {
  ACTIVE: "ok", SUCCESS: "ok", SHUTOFF: "off", ERROR: "bad", FAIL: "bad", DELETED: "off",
};

export function Status({ value }) {
  const busy = !STATUS_CLASS[value];
  return html`<span class=${`status status-${STATUS_CLASS[value] || "busy"}`} data-status=${value}
    aria-busy=${busy ? "true" : undefined}>${value}</span>`;
}

// API times are UTC, some without a zone ("2026-01-02T03:04:05.123456"): shown in the browser's zone.
function parseTime(iso) {
  const d = new Date(/Z|[+-]\d\d:?\d\d$/.test(iso) ? iso : `${iso}Z`);
  return Number.isNaN(d.getTime()) ? null : d;
}

export function when(iso) {
  const d = iso ? parseTime(iso) : null;
  return d ? d.toLocaleString() : iso || "";
}

export function clock(iso) {
  const d = iso ? parseTime(iso) : null;
  return d ? d.toLocaleTimeString() : iso || "";
}

// Call `load` now and every `ms` while mounted and visible (again when `deps` change); {data, error, reload}.
export function usePoll(load, ms, deps = []) {
  const [state, setState] = useState({ data: null, error: null });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let alive = true;
    let timer = null;
    let first = true;
    const run = async () => {
      if (first || !document.hidden) {     // a hidden tab asks nothing (jobs are still followed: jobs.mjs)
        first = false;
        try {
          const data = await load();
          if (alive) setState({ data, error: null });
        } catch (error) {
          if (alive) setState((prev) => ({ data: prev.data, error }));
        }
      }
      if (alive && ms) timer = setTimeout(run, ms);
    };
    run();
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, [...deps, tick]);
  return { ...state, reload: () => setTick((t) => t + 1) };
}

// A modal <dialog>: focus moves into it, Tab stays inside, Escape (the browser's "cancel") closes it.
export function Modal({ title, onClose, children, wide }) {
  const ref = useRef(null);
  useEffect(() => {
    const dialog = ref.current;
    const opener = document.activeElement;
    dialog.showModal();
    const closed = () => onClose();
    dialog.addEventListener("close", closed);
    return () => {
      dialog.removeEventListener("close", closed);
      if (dialog.open) dialog.close();
      if (opener && opener.focus) opener.focus();
    };
  }, []);
  return html`<dialog ref=${ref} aria-labelledby="dialog-title">
    <article class=${wide ? "wide" : ""}>
      <header>
        <button type="button" aria-label="Close" rel="prev" onClick=${() => ref.current.close()}></button>
        <h2 id="dialog-title">${title}</h2>
      </header>
      ${children}
    </article>
  </dialog>`;
}

// Run an API action from a form: busy flag, error, and the result to a callback.
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const run = async (fn) => {
    setBusy(true);
    setError(null);
    try {
      return await fn();
    } catch (err) {
      setError(err);
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, setError, run };
}

// A labelled input; its hint is at `${id}-hint` (the input names it in aria-describedby).
export function Field({ label, id, hint, children }) {
  return html`<div class="field"><label for=${id}>${label}</label>${children}
    ${hint ? html`<small class="hint" id=${`${id}-hint`}>${hint}</small>` : null}</div>`;
}

export function stepName(event) {
  return event.replace(/^compute_/, "").replaceAll("_", " ");
}
