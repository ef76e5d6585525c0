import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { freePort } from './ports.js';
import { tempDir } from './tmp.js';

/** The config wharf ships; tests run it, adapted only in where it scrapes. */
export const SHIPPED_PROMETHEUS_CONFIG = resolve(
  dirname(fileURLToPath(import.meta.url)),
  '../../deploy/prometheus/prometheus.yml',
);

export interface PrometheusOptions {
  /** 127.0.0.1:PORT of the wharf (or metrics endpoint) to scrape */
  scrapeTarget: string;
  /** default: the shipped job's metrics_path (/metrics) */
  metricsPath?: string;
  /** scrape and rule evaluation interval; default 1s so tests need not wait long */
  scrapeInterval?: string;
  /** how long to wait for /-/ready; default 30 s */
  startTimeoutMs?: number;
  /** the job's `authorization` (e.g. `{ type: 'Bearer', credentials_file }`) for a wharf whose /metrics is closed */
  authorization?: Record<string, string>;
}

export interface PrometheusProcess {
  /** http://127.0.0.1:PORT */
  url: string;
  /** Instant query; resolves with `data.result` of /api/v1/query (for a vector: [{ metric, value: [t, "v"] }]). */
  query(expr: string): Promise<unknown>;
  /** Resolves once the wharf target has been scraped successfully (health "up"); rejects after timeoutMs. */
  waitForScrape(timeoutMs?: number): Promise<void>;
  /** Stops the process and removes its config and TSDB. Safe to call twice. */
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

interface ScrapeConfig {
  job_name?: string;
  metrics_path?: string;
  authorization?: Record<string, string>;
  static_configs?: Array<{ targets: string[] }>;
  dns_sd_configs?: unknown;
}
interface PromConfig {
  global?: Record<string, unknown>;
  rule_files?: string[];
  scrape_configs?: ScrapeConfig[];
}

/** The shipped config with its wharf job pointed at the test's target and its rule files made absolute. */
export async function adaptConfig(opts: PrometheusOptions): Promise<string> {
  const shipped = parse(await readFile(SHIPPED_PROMETHEUS_CONFIG, 'utf8')) as PromConfig;
  const job = shipped.scrape_configs?.find((s) => s.job_name === 'wharf');
  if (!job) throw new Error(`${SHIPPED_PROMETHEUS_CONFIG} has no scrape job named wharf`);
  const interval = opts.scrapeInterval ?? '1s';
  const base = dirname(SHIPPED_PROMETHEUS_CONFIG);
  const config: PromConfig = {
    ...shipped,
    global: { ...shipped.global, scrape_interval: interval, evaluation_interval: interval },
    rule_files: (shipped.rule_files ?? []).map((f) => (isAbsolute(f) ? f : join(base, f))),
    scrape_configs: [
      {
        ...job,
        metrics_path: opts.metricsPath ?? job.metrics_path ?? '/metrics',
        static_configs: [{ targets: [opts.scrapeTarget] }],
        ...(opts.authorization ? { authorization: opts.authorization } : {}),
      },
    ],
  };
  return stringify(config);
}

export async function startPrometheus(opts: PrometheusOptions): Promise<PrometheusProcess> {
  const dir = await tempDir('wharf-prometheus-');
  const configFile = join(dir.path, 'prometheus.yml');
  await writeFile(configFile, await adaptConfig(opts));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;

  const child = spawn(
    'prometheus',
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dir.path, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  live.add(child);
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString('utf8')).slice(-4000);
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const alive = () => child.exitCode === null && child.signalCode === null;

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (alive()) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    }
    live.delete(child);
    await dir.cleanup();
  };

  try {
    await waitReady(url, opts.startTimeoutMs ?? 30_000, alive);
  } catch (err) {
    await stop();
    throw new Error(`prometheus did not become ready: ${(err as Error).message}\n${stderr}`);
  }

  const api = async (path: string): Promise<unknown> => {
    const res = await fetch(`${url}${path}`);
    const body = (await res.json()) as { status?: string; data?: unknown; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.error ?? res.status}`);
    return body.data;
  };

  return {
    url,
    async query(expr) {
      const data = (await api(`/api/v1/query?query=${encodeURIComponent(expr)}`)) as { result: unknown };
      return data.result;
    },
    async waitForScrape(timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      let last = '';
      while (Date.now() < deadline) {
        const data = (await api('/api/v1/targets?state=active')) as {
          activeTargets: Array<{ scrapePool: string; health: string; lastError: string }>;
        };
        const t = data.activeTargets.find((a) => a.scrapePool === 'wharf');
        if (t?.health === 'up') return;
        last = t ? `${t.health} ${t.lastError}` : 'no wharf target';
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`wharf target not scraped within ${timeoutMs} ms (${last})`);
    },
    stop,
  };
}

/** /-/ready answers 503 while the TSDB opens; only 200 means queries will work. */
async function waitReady(url: string, timeoutMs: number, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (!alive()) throw new Error('process exited');
    try {
      const res = await fetch(`${url}/-/ready`);
      await res.arrayBuffer();
      if (res.status === 200) return;
      last = `status ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`not ready within ${timeoutMs} ms (${last})`);
}
