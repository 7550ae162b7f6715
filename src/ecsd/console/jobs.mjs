// The jobs this console started (there is no "list jobs" API): kept in sessionStorage, each unfinished
// one polled about every second (GET /v1/{pid}/jobs/{id}), its steps read from the operation history
// of its servers (GET /v2.1/{pid}/servers/{id}/os-instance-actions/{request id}: one event per step).

import { useEffect, useState } from "preact/hooks";
import { currentSession, get, onSessionChange } from "./api.mjs";

const KEY = "ecsd.console.jobs";
const POLL_MS = 1000;
const MAX_KEPT = 50;
const MAX_STEP_SERVERS = 5;       // the steps of a batch's first few servers

export const FINISHED = new Set(["SUCCESS", "FAIL"]);

let jobs = [];
try {
  jobs = JSON.parse(sessionStorage.getItem(KEY) || "[]");
} catch {
  jobs = [];
}
const listeners = new Set();
let timer = null;

function save() {
  sessionStorage.setItem(KEY, JSON.stringify(jobs));
  for (const fn of listeners) fn(jobs);
}

function projectJobs() {
  const s = currentSession();
  return s ? jobs.filter((j) => j.projectId === s.projectId) : [];
}

// Record a job the console just started: `what` names the action, `servers` [{id, name}].
export function track(jobId, what, servers, requestId) {
  const s = currentSession();
  jobs = [{
    id: jobId, what, servers, requestId, projectId: s.projectId, status: "RUNNING", started: new Date().toISOString(),
    steps: {}, subJobs: [], errorCode: null, failReason: null,
  }, ...jobs.filter((j) => j.id !== jobId)].slice(0, MAX_KEPT);
  save();
  schedule(0);
}

export function clearFinished() {
  const s = currentSession();
  jobs = jobs.filter((j) => !(s && j.projectId === s.projectId && FINISHED.has(j.status)));
  save();
}

function serverIds(job) {
  const ids = job.servers.map((sv) => sv.id).filter(Boolean);
  for (const sub of job.subJobs) {
    const sid = sub.entities && sub.entities.server_id;
    if (sid && !ids.includes(sid)) ids.push(sid);
  }
  return ids;
}

async function refresh(job) {
  const body = await get(`/v1/{pid}/jobs/${job.id}`);
  const subJobs = (body.entities && body.entities.sub_jobs) || [];
  const failed = subJobs.find((sub) => sub.status === "FAIL" && sub.error_code);
  const update = {
    status: body.status, jobType: body.job_type, subJobs, ended: body.end_time,
    errorCode: body.error_code || (failed ? failed.error_code : null),
    failReason: body.fail_reason || (failed ? failed.fail_reason : null),
  };
  if (body.entities && body.entities.server_id && !job.servers.some((sv) => sv.id === body.entities.server_id)) {
    update.servers = [...job.servers, { id: body.entities.server_id }];
  }
  const steps = { ...job.steps };
  if (job.requestId) {
    for (const sid of serverIds({ ...job, ...update }).slice(0, MAX_STEP_SERVERS)) {
      try {
        const action = await get(`/v2.1/{pid}/servers/${sid}/os-instance-actions/${job.requestId}`);
        steps[sid] = action.instanceAction.events || [];
      } catch {
        // not recorded (yet), or the server is gone (a delete): the job status still says it all
      }
    }
  }
  update.steps = steps;
  jobs = jobs.map((j) => (j.id === job.id ? { ...j, ...update } : j));
}

async function poll() {
  timer = null;
  const open = projectJobs().filter((j) => !FINISHED.has(j.status));
  if (!open.length) return;
  await Promise.all(open.map((job) => refresh(job).catch((err) => {
    if (err.status === 404) jobs = jobs.map((j) => (j.id === job.id ? { ...j, status: "FAIL", errorCode: err.code, failReason: err.message } : j));
  })));
  save();
  schedule(POLL_MS);
}

function schedule(ms) {
  if (timer === null && currentSession()) timer = setTimeout(poll, ms);
}

onSessionChange((signedIn) => {
  if (signedIn) schedule(0);           // jobs left running when the last token expired
});

export function useJobs() {
  const [list, setList] = useState(projectJobs());
  useEffect(() => {
    const fn = () => setList(projectJobs());
    listeners.add(fn);
    schedule(0);
    return () => listeners.delete(fn);
  }, []);
  return list;
}
