/** The maintenance jobs of /_wharf/api/jobs (README "Web UI"): gc and verify run in the background. */
import { call } from './api.js';

export type JobKind = 'gc' | 'verify';

export interface JobProgress {
  phase: string;
  done: number;
  total: number | null;
  bytes: number;
  totalBytes: number | null;
}

export interface GcReport {
  blobs: Array<{ digest: string; size: number }>;
  uploads: Array<{ id: string; repo: string; size: number }>;
  temps: string[];
  freedBytes: number;
  dryRun: boolean;
}

export interface VerifyReport {
  checked: number;
  bytes: number;
  corrupt: Array<{ digest: string; actual: string; size: number; repositories: string[]; quarantined: boolean }>;
  skipped: string[];
}

export interface Job {
  id: string;
  kind: JobKind;
  dryRun: boolean;
  state: 'running' | 'succeeded' | 'failed';
  startedBy: string;
  startedAt: number;
  finishedAt: number | null;
  progress: JobProgress;
  /** only when one job is asked for (the list leaves reports out) */
  report?: GcReport | VerifyReport | null;
  error: string | null;
}

export const jobsApi = {
  list: () => call<{ running: Job | null; jobs: Job[] }>('GET', 'jobs'),
  get: (id: string) => call<Job>('GET', `jobs?${new URLSearchParams({ id }).toString()}`),
  start: (kind: JobKind, dryRun: boolean) => call<Job>('POST', 'jobs', { kind, dryRun }),
};
