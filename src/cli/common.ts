import type { Command } from 'commander';
import { AdminClient } from './admin-client.js';
import { loadTarget, type ConfiguredTarget } from './target.js';

/** What every operator command gets from cli.ts (a slice of CliIo, so the commands stay testable). */
export interface CommandIo {
  env: Record<string, string | undefined>;
  stdout: { write(text: string): unknown; isTTY?: boolean; columns?: number };
  stderr: { write(text: string): unknown };
  exit: (code: number) => void;
}

export interface RemoteOptions {
  /** wharf's configuration file: where it listens, its admin credentials */
  config?: string;
  /** filled in from --config / $WHARF_CONFIG before the action runs */
  target?: ConfiguredTarget;
  url?: string;
  username?: string;
  password?: string;
  json?: boolean;
}

export interface OfflineCapable extends RemoteOptions {
  dataDir?: string;
}

export const DEFAULT_URL = 'http://127.0.0.1:5000';

/** A failure the user can act on: printed as one line, exit code 1. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** --url/--username/--password (and --json) on a command that talks to a running wharf. */
export function remoteOptions(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', "wharf's configuration: its address and admin credentials; with --data-dir, where its blobs are (storage.s3) (default: $WHARF_CONFIG)")
    .option('--url <url>', `wharf to talk to (default: $WHARF_URL, else from the configuration, else ${DEFAULT_URL})`)
    .option('--username <name>', 'admin API user (default: $WHARF_ADMIN_USERNAME); for ls and stats a registry user (default: $WHARF_USERNAME)')
    .option('--password <password>', 'admin API password (default: $WHARF_ADMIN_PASSWORD); for ls and stats the registry user\'s (default: $WHARF_PASSWORD)')
    .option('--json', 'print the JSON answer instead of text');
}

/**
 * Before a remote command runs (one with remoteOptions), reads wharf's configuration named by --config or
 * $WHARF_CONFIG into its `target` option. Offline runs (--data-dir) need none. Installed once on the program.
 */
export function resolveTargets(program: Command, io: CommandIo): void {
  program.hook('preAction', async (_program, action) => {
    if (action.name() === 'serve' || !action.options.some((o) => o.long === '--url')) return;
    const opts = action.opts<OfflineCapable>();
    const file = opts.config ?? (io.env.WHARF_CONFIG || undefined);
    if (file === undefined || opts.dataDir !== undefined) return;
    action.setOptionValue('target', await loadTarget(file, io.env));
  });
}

/** Flags win, then WHARF_URL / WHARF_ADMIN_*, then the configuration (--config, $WHARF_CONFIG), then the default. */
export function adminClient(io: CommandIo, opts: RemoteOptions): AdminClient {
  const t = opts.target;
  const url = opts.url ?? io.env.WHARF_URL ?? t?.url ?? DEFAULT_URL;
  const username = opts.username ?? io.env.WHARF_ADMIN_USERNAME ?? t?.admin?.username;
  const password = opts.password ?? io.env.WHARF_ADMIN_PASSWORD ?? t?.admin?.password;
  return new AdminClient(url, username !== undefined && password !== undefined ? { username, password } : undefined);
}

/**
 * A client for the web UI's JSON API (`wharf ls`, `wharf stats`): the address as adminClient finds it; the
 * credentials of a registry user (what /v2 takes): flags, then WHARF_USERNAME / WHARF_PASSWORD. The admin
 * API's credentials (WHARF_ADMIN_*, the configuration's `admin`) are not a registry user's, so they are not sent.
 */
export function apiClient(io: CommandIo, opts: RemoteOptions): AdminClient {
  const url = opts.url ?? io.env.WHARF_URL ?? opts.target?.url ?? DEFAULT_URL;
  const username = opts.username ?? io.env.WHARF_USERNAME;
  const password = opts.password ?? io.env.WHARF_PASSWORD;
  return new AdminClient(url, username !== undefined && password !== undefined ? { username, password } : undefined);
}

export function assertOneTarget(opts: OfflineCapable): void {
  if (opts.dataDir !== undefined && opts.url !== undefined) throw new CliError('use either --url (a running wharf) or --data-dir (offline), not both', 2);
}

export function printJson(io: CommandIo, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** 1536 → "1.5 KiB": for people; exact byte counts are in --json. */
export function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${bytes} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

export function when(ms: number | undefined): string {
  return ms === undefined ? '-' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
